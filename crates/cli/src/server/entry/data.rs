//! The `-data` file of `entry create|update`: `{"entries":[...]}` decoded as Go's `encoding/json` decodes
//! it into SPIRE's `common.RegistrationEntries` (keys matched case-insensitively, unknown keys ignored,
//! `null` leaving the zero value, and the odd `entryExpiry` key), then converted to API entries as
//! `api.RegistrationEntriesToProto` does.

use serde_json::{Map, Value};
use spire_identity::{SpiffeId, TrustDomain};
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use crate::error::CliError;

/// The JSON form of one entry, before its IDs are checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RegistrationEntry {
    selectors: Vec<(String, String)>,
    parent_id: String,
    spiffe_id: String,
    x509_svid_ttl: i32,
    federates_with: Vec<String>,
    entry_id: String,
    admin: bool,
    downstream: bool,
    entry_expiry: i64,
    dns_names: Vec<String>,
    revision_number: i64,
    store_svid: bool,
    jwt_svid_ttl: i32,
    hint: String,
}

/// Decodes a `-data` document into entries ready to send.
pub(crate) fn parse_entries(data: &[u8]) -> Result<Vec<Entry>, CliError> {
    let root: Value = serde_json::from_slice(data).map_err(|e| CliError::msg(syntax_error(&e)))?;
    let root = match root {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            return Err(type_error(&other, "Go value of type common.RegistrationEntries", ""));
        }
    };
    let mut entries = Vec::new();
    match lookup(&root, "entries") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                entries.push(match item {
                    Value::Null => return Err(CliError::msg("missing registration entry")),
                    Value::Object(map) => decode_entry(map)?,
                    other => {
                        return Err(type_error(
                            other,
                            "Go struct field RegistrationEntries.entries",
                            "common.RegistrationEntry",
                        ));
                    }
                });
            }
        }
        Some(other) => {
            return Err(type_error(
                other,
                "Go struct field RegistrationEntries.entries",
                "[]*common.RegistrationEntry",
            ));
        }
    }
    entries.into_iter().map(to_proto).collect()
}

/// Go's field lookup: an exact key, else one equal ignoring case.
fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn decode_entry(map: &Map<String, Value>) -> Result<RegistrationEntry, CliError> {
    let mut e = RegistrationEntry::default();
    let field = |key: &str| lookup(map, key).filter(|v| !v.is_null());
    if let Some(v) = field("selectors") {
        let Value::Array(items) = v else { return Err(field_error(v, "selectors", "[]*common.Selector")) };
        for item in items {
            match item {
                Value::Null => e.selectors.push((String::new(), String::new())),
                Value::Object(sel) => {
                    let part = |key: &str| -> Result<String, CliError> {
                        match lookup(sel, key) {
                            None | Some(Value::Null) => Ok(String::new()),
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(other) => Err(type_error(
                                other,
                                &format!("Go struct field Selector.entries.selectors.{key}"),
                                "string",
                            )),
                        }
                    };
                    e.selectors.push((part("type")?, part("value")?));
                }
                other => return Err(field_error(other, "selectors", "common.Selector")),
            }
        }
    }
    e.parent_id = string(field("parent_id"), "parent_id")?;
    e.spiffe_id = string(field("spiffe_id"), "spiffe_id")?;
    e.x509_svid_ttl = int(field("x509_svid_ttl"), "x509_svid_ttl", "int32")? as i32;
    e.federates_with = strings(field("federates_with"), "federates_with")?;
    e.entry_id = string(field("entry_id"), "entry_id")?;
    e.admin = boolean(field("admin"), "admin")?;
    e.downstream = boolean(field("downstream"), "downstream")?;
    e.entry_expiry = int(field("entryExpiry"), "entryExpiry", "int64")?;
    e.dns_names = strings(field("dns_names"), "dns_names")?;
    e.revision_number = int(field("revision_number"), "revision_number", "int64")?;
    e.store_svid = boolean(field("store_svid"), "store_svid")?;
    e.jwt_svid_ttl = int(field("jwt_svid_ttl"), "jwt_svid_ttl", "int32")? as i32;
    e.hint = string(field("hint"), "hint")?;
    Ok(e)
}

fn string(v: Option<&Value>, key: &str) -> Result<String, CliError> {
    match v {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(field_error(other, key, "string")),
    }
}

fn boolean(v: Option<&Value>, key: &str) -> Result<bool, CliError> {
    match v {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(field_error(other, key, "bool")),
    }
}

fn strings(v: Option<&Value>, key: &str) -> Result<Vec<String>, CliError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                other => Err(field_error(other, key, "string")),
            })
            .collect(),
        Some(other) => Err(field_error(other, key, "[]string")),
    }
}

/// An integer field; Go refuses fractions, exponents and values outside the Go type.
fn int(v: Option<&Value>, key: &str, go_type: &str) -> Result<i64, CliError> {
    let Some(v) = v else { return Ok(0) };
    let Value::Number(n) = v else { return Err(field_error(v, key, go_type)) };
    let in_range = |x: i64| go_type != "int32" || i32::try_from(x).is_ok();
    match n.as_i64() {
        Some(x) if in_range(x) => Ok(x),
        _ => Err(CliError::msg(format!(
            "json: cannot unmarshal number {n} into Go struct field RegistrationEntry.entries.{key} of type {go_type}"
        ))),
    }
}

fn field_error(v: &Value, key: &str, go_type: &str) -> CliError {
    type_error(v, &format!("Go struct field RegistrationEntry.entries.{key}"), go_type)
}

/// `encoding/json`'s `UnmarshalTypeError` text.
fn type_error(v: &Value, target: &str, go_type: &str) -> CliError {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let of_type = if go_type.is_empty() { String::new() } else { format!(" of type {go_type}") };
    CliError::msg(format!("json: cannot unmarshal {kind} into {target}{of_type}"))
}

/// Syntax errors: Go's text for a truncated document, serde's description otherwise.
fn syntax_error(e: &serde_json::Error) -> String {
    if e.is_eof() { "unexpected end of JSON input".to_owned() } else { e.to_string() }
}

/// `api.RegistrationEntryToProto`.
fn to_proto(e: RegistrationEntry) -> Result<Entry, CliError> {
    let spiffe_id = SpiffeId::parse(&e.spiffe_id)
        .map_err(|err| CliError::msg(format!("invalid SPIFFE ID: {}", err.go_spiffe_message())))?;
    let parent_id = SpiffeId::parse(&e.parent_id)
        .map_err(|err| CliError::msg(format!("invalid parent ID: {}", err.go_spiffe_message())))?;
    let federates_with = e
        .federates_with
        .iter()
        .map(|td| {
            TrustDomain::parse(td)
                .map(|td| td.as_str().to_owned())
                .map_err(|err| CliError::msg(format!("invalid federated trust domain: {}", err.go_spiffe_message())))
        })
        .collect::<Result<_, _>>()?;
    let proto_id =
        |id: &SpiffeId| Spiffeid { trust_domain: id.trust_domain().as_str().to_owned(), path: id.path().to_owned() };
    Ok(Entry {
        id: e.entry_id,
        spiffe_id: Some(proto_id(&spiffe_id)),
        parent_id: Some(proto_id(&parent_id)),
        selectors: e.selectors.into_iter().map(|(r#type, value)| Selector { r#type, value }).collect(),
        x509_svid_ttl: e.x509_svid_ttl,
        federates_with,
        admin: e.admin,
        downstream: e.downstream,
        expires_at: e.entry_expiry,
        dns_names: e.dns_names,
        revision_number: e.revision_number,
        store_svid: e.store_svid,
        jwt_svid_ttl: e.jwt_svid_ttl,
        hint: e.hint,
        created_at: 0,
        additional_attributes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
  "entries": [
    {
      "selectors": [{"type": "unix", "value": "uid:1111"}],
      "spiffe_id": "spiffe://example.org/Blog",
      "parent_id": "spiffe://example.org/spire/agent/join_token/TokenBlog",
      "x509_svid_ttl": 200,
      "jwt_svid_ttl": 30,
      "admin": true
    },
    {
      "selectors": [{"type": "unix", "value": "uid:1111"}],
      "spiffe_id": "spiffe://example.org/Database",
      "parent_id": "spiffe://example.org/spire/agent/join_token/TokenDatabase",
      "x509_svid_ttl": 200,
      "jwt_svid_ttl": 30,
      "hint": "internal"
    },
    {
      "selectors": [{"type": "type", "value": "key1:value"}, {"type": "type", "value": "key2:value"}],
      "spiffe_id": "spiffe://example.org/storesvid",
      "parent_id": "spiffe://example.org/spire/agent/join_token/TokenDatabase",
      "x509_svid_ttl": 200,
      "jwt_svid_ttl": 30,
      "store_svid": true,
      "federates_with": [],
      "entry_id": "",
      "downstream": false,
      "entryExpiry": 0,
      "dns_names": []
    }
  ]
}"#;

    #[test]
    fn good_file() {
        let entries = parse_entries(GOOD.as_bytes()).unwrap();
        assert_eq!(entries.len(), 3);
        let blog = &entries[0];
        assert_eq!(blog.spiffe_id.as_ref().unwrap().path, "/Blog");
        assert_eq!(blog.parent_id.as_ref().unwrap().path, "/spire/agent/join_token/TokenBlog");
        assert_eq!((blog.x509_svid_ttl, blog.jwt_svid_ttl, blog.admin), (200, 30, true));
        assert_eq!(blog.selectors, vec![Selector { r#type: "unix".into(), value: "uid:1111".into() }]);
        assert_eq!(entries[1].hint, "internal");
        assert!(entries[2].store_svid);
        assert_eq!(entries[2].selectors.len(), 2);
    }

    #[test]
    fn odd_keys_like_go() {
        let doc = r#"{"ENTRIES":[{"Spiffe_ID":"spiffe://td/a","parent_id":"spiffe://td/p","entryExpiry":1700000000,
            "federates_with":["spiffe://other.org","third.org"],"unknown":1,"hint":null}]}"#;
        let e = &parse_entries(doc.as_bytes()).unwrap()[0];
        assert_eq!(e.expires_at, 1_700_000_000);
        assert_eq!(e.federates_with, ["other.org", "third.org"]);
        assert_eq!(e.spiffe_id.as_ref().unwrap().trust_domain, "td");
    }

    #[test]
    fn bad_files() {
        let err = |doc: &str| parse_entries(doc.as_bytes()).unwrap_err().to_string();
        assert_eq!(err("{\"entries\":["), "unexpected end of JSON input");
        assert_eq!(
            err(r#"{"entries":[{"spiffe_id":"spiffe://td/a","parent_id":"spiffe://td/p","x509_svid_ttl":"200"}]}"#),
            "json: cannot unmarshal string into Go struct field RegistrationEntry.entries.x509_svid_ttl of type int32"
        );
        assert_eq!(
            err(r#"{"entries":[{"x509_svid_ttl":1.5}]}"#),
            "json: cannot unmarshal number 1.5 into Go struct field RegistrationEntry.entries.x509_svid_ttl of type int32"
        );
        assert_eq!(
            err(r#"{"entries":{}}"#),
            "json: cannot unmarshal object into Go struct field RegistrationEntries.entries of type []*common.RegistrationEntry"
        );
        assert_eq!(err("[]"), "json: cannot unmarshal array into Go value of type common.RegistrationEntries");
        assert!(err(r#"{"entries":[{"parent_id":"spiffe://td/p"}]}"#).starts_with("invalid SPIFFE ID: "));
        assert!(
            err(r#"{"entries":[{"spiffe_id":"spiffe://td/a","parent_id":"nope"}]}"#).starts_with("invalid parent ID: ")
        );
        assert!(
            err(
                r#"{"entries":[{"spiffe_id":"spiffe://td/a","parent_id":"spiffe://td/p","federates_with":["Bad TD"]}]}"#
            )
            .starts_with("invalid federated trust domain: ")
        );
        assert_eq!(parse_entries(b"{}").unwrap(), Vec::new());
    }
}
