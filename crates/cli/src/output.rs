//! SPIRE's `-output` formats and its JSON printing (`pkg/common/cliprinter`).
//!
//! JSON output is what Go prints: each protobuf message marshalled with protojson (`UseProtoNames`,
//! `EmitUnpopulated`; the serde code in `spire-proto` has that shape), several messages wrapped in a JSON
//! array, and the whole written by `json.Encoder`, which compacts it, escapes `<`, `>`, `&`, U+2028 and
//! U+2029, and ends it with a newline.

use std::io::{self, Write};

use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The command's own human-readable layout (the default).
    #[default]
    Pretty,
    /// protojson / encoding/json.
    Json,
}

impl OutputFormat {
    /// Parses an `-output` value; case-insensitive, and `prettyprint` is accepted as SPIRE does.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "prettyprint" => Ok(Self::Pretty),
            _ => Err(format!("unknown format option: {}", crate::flags::go_quote(text))),
        }
    }

    /// The canonical name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Pretty => "pretty",
            Self::Json => "json",
        }
    }
}

/// One value rendered as compact JSON, ready to be printed alone or in an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonValue(String);

impl JsonValue {
    /// Serializes a protobuf message (generated or shaped like one) as `cliprinter`'s `PrintProto`
    /// prints it: protojson, then through a Go map (see [`go_map_roundtrip`]).
    pub(crate) fn of<T: Serialize + ?Sized>(value: &T) -> Self {
        Self(go_map_roundtrip(&serde_json::to_string(value).expect("CLI output types always serialize")))
    }

    /// Serializes a command's own struct as `cliprinter`'s `PrintStruct` prints it: `json.Marshal`,
    /// members in declaration order.
    pub(crate) fn of_struct<T: Serialize + ?Sized>(value: &T) -> Self {
        Self(serde_json::to_string(value).expect("CLI output types always serialize"))
    }

    /// The compact JSON text.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes `values` the way `cliprinter` does: nothing for none, the value alone for one, an array for
/// several; HTML-escaped and newline-terminated like Go's `json.Encoder`.
pub(crate) fn write_json(out: &mut dyn Write, values: &[JsonValue]) -> io::Result<()> {
    let text = match values {
        [] => return Ok(()),
        [one] => one.0.clone(),
        many => format!("[{}]", many.iter().map(|v| v.0.as_str()).collect::<Vec<_>>().join(",")),
    };
    out.write_all(go_html_escape(&text).as_bytes())?;
    out.write_all(b"\n")
}

/// What SPIRE's `cliprinter` does to each protojson message before printing it
/// (`internal/protojson.parseJSONMessage`): unmarshals it into a Go `map[string]any`, drops null
/// members and null array items (`removeNulls`), and marshals it again with `encoding/json`, which
/// writes object keys sorted and every number as a float64. Text that is not a JSON object is kept.
pub(crate) fn go_map_roundtrip(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(value @ serde_json::Value::Object(_)) => {
            let mut out = String::with_capacity(json.len());
            write_go_value(&mut out, &value);
            out
        }
        _ => json.to_owned(),
    }
}

fn write_go_value(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
        Value::String(text) => out.push_str(&serde_json::to_string(text).expect("strings always serialize")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().filter(|v| !v.is_null()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("strings always serialize"));
                out.push(':');
                write_go_value(out, &members[key]);
            }
            out.push('}');
        }
    }
}

/// A float64 as `encoding/json` (and protojson) writes it: the shortest text that reads back the
/// same, in plain notation unless the magnitude is below 1e-6 or at least 1e21, exponents written
/// `e+21` and `e-7`.
pub(crate) fn go_float(n: f64) -> String {
    let abs = n.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{n:e}");
        return match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        };
    }
    // Rust's Display is the shortest round-trip text in plain notation, as Go's 'f' with precision -1.
    n.to_string()
}

/// The escaping `encoding/json` applies with `SetEscapeHTML(true)` (its default). These characters can
/// only appear inside JSON strings, so replacing them everywhere is safe.
fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_proto::spire::api::server::agent::v1::CountAgentsResponse;

    fn render(values: &[JsonValue]) -> String {
        let mut out = Vec::new();
        write_json(&mut out, values).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn like_cliprinter_protojson() {
        let one = JsonValue::of(&CountAgentsResponse { count: 42 });
        assert_eq!(render(std::slice::from_ref(&one)), "{\"count\":42}\n");
        assert_eq!(render(&[one.clone(), one]), "[{\"count\":42},{\"count\":42}]\n");
        assert_eq!(render(&[JsonValue::of(&CountAgentsResponse { count: 0 })]), "{\"count\":0}\n");
        assert_eq!(render(&[]), "");
    }

    /// SPIRE prints each message after a trip through a Go map: keys sorted, nulls gone.
    #[test]
    fn go_map_roundtrip_sorts_keys_and_drops_nulls() {
        assert_eq!(
            go_map_roundtrip(r#"{"b":1,"a":{"z":null,"y":[null,2.5,{"d":true,"c":"x"}]},"n":null,"e":[]}"#),
            r#"{"a":{"y":[2.5,{"c":"x","d":true}]},"b":1,"e":[]}"#
        );
        assert_eq!(
            go_map_roundtrip(r#"{"big":1e21,"small":0.0000001,"t":1796291516}"#),
            r#"{"big":1e+21,"small":1e-7,"t":1796291516}"#
        );
        assert_eq!(go_map_roundtrip("[1]"), "[1]");
    }

    #[test]
    fn structs_keep_their_member_order() {
        #[derive(serde::Serialize)]
        struct Minted {
            x509_svid: Vec<String>,
            private_key: String,
        }
        let v = JsonValue::of_struct(&[Minted { x509_svid: vec![], private_key: "k".into() }]);
        assert_eq!(v.as_str(), r#"[{"x509_svid":[],"private_key":"k"}]"#);
    }

    #[test]
    fn html_characters_are_escaped() {
        assert_eq!(render(&[JsonValue::of("a<b>&\u{2028}")]), "\"a\\u003cb\\u003e\\u0026\\u2028\"\n");
    }

    #[test]
    fn formats() {
        assert_eq!(OutputFormat::parse("JSON"), Ok(OutputFormat::Json));
        assert_eq!(OutputFormat::parse("prettyprint"), Ok(OutputFormat::Pretty));
        assert_eq!(OutputFormat::parse("xml"), Err("unknown format option: \"xml\"".into()));
    }
}

#[cfg(test)]
mod shape_tests {
    //! The JSON shape SPIRE's `-output json` has for the generated messages.

    use super::JsonValue;
    use spire_proto::spire::api::server::entry::v1::{BatchCreateEntryResponse, batch_create_entry_response};
    use spire_proto::spire::api::types::{
        Agent, Bundle, Entry, JoinToken, Selector, Spiffeid, Status, X509Certificate,
    };

    fn id(td: &str, path: &str) -> Option<Spiffeid> {
        Some(Spiffeid { trust_domain: td.into(), path: path.into() })
    }

    #[test]
    fn agent_uses_proto_names_and_emits_defaults() {
        let a = Agent { id: id("example.org", "/spire/agent/agent1"), can_reattest: true, ..Default::default() };
        assert_eq!(
            JsonValue::of(&a).as_str(),
            r#"{"agent_version":"","attestation_type":"","banned":false,"can_reattest":true,"id":{"path":"/spire/agent/agent1","trust_domain":"example.org"},"selectors":[],"x509svid_expires_at":"0","x509svid_serial_number":""}"#
        );
    }

    #[test]
    fn failed_create_result() {
        let resp = BatchCreateEntryResponse {
            results: vec![batch_create_entry_response::Result {
                status: Some(Status { code: 6, message: "similar entry already exists".into() }),
                entry: Some(Entry {
                    spiffe_id: id("example.org", "/already-exist"),
                    parent_id: id("example.org", "/spire/server"),
                    selectors: vec![Selector { r#type: "unix".into(), value: "uid:1".into() }],
                    ..Default::default()
                }),
            }],
        };
        assert_eq!(
            JsonValue::of(&resp).as_str(),
            concat!(
                r#"{"results":[{"entry":{"admin":false,"created_at":"0","dns_names":[],"downstream":false,"#,
                r#""expires_at":"0","federates_with":[],"hint":"","id":"","jwt_svid_ttl":0,"#,
                r#""parent_id":{"path":"/spire/server","trust_domain":"example.org"},"revision_number":"0","#,
                r#""selectors":[{"type":"unix","value":"uid:1"}],"#,
                r#""spiffe_id":{"path":"/already-exist","trust_domain":"example.org"},"store_svid":false,"#,
                r#""x509_svid_ttl":0},"status":{"code":6,"message":"similar entry already exists"}}]}"#
            )
        );
    }

    #[test]
    fn token_and_bytes() {
        assert_eq!(
            JsonValue::of(&JoinToken { value: "token".into(), expires_at: 0 }).as_str(),
            r#"{"expires_at":"0","value":"token"}"#
        );
        let b = Bundle {
            trust_domain: "example.org".into(),
            x509_authorities: vec![X509Certificate { asn1: vec![1, 2, 3, 250], ..Default::default() }],
            ..Default::default()
        };
        let text = JsonValue::of(&b).as_str().to_owned();
        assert!(
            text.ends_with(r#""trust_domain":"example.org","wit_authorities":[],"x509_authorities":[{"asn1":"AQID+g==","hint":"","tainted":false}]}"#),
            "{text}"
        );
        assert!(text.contains(r#""sequence_number":"0""#), "{text}");
    }
}
