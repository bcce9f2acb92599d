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
    /// Serializes `value` (a generated protobuf message or a command's own struct).
    pub(crate) fn of<T: Serialize + ?Sized>(value: &T) -> Self {
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
            r#"{"id":{"trust_domain":"example.org","path":"/spire/agent/agent1"},"attestation_type":"","x509svid_serial_number":"","x509svid_expires_at":"0","selectors":[],"banned":false,"can_reattest":true,"agent_version":""}"#
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
                r#"{"results":[{"status":{"code":6,"message":"similar entry already exists"},"entry":{"id":"","#,
                r#""spiffe_id":{"trust_domain":"example.org","path":"/already-exist"},"#,
                r#""parent_id":{"trust_domain":"example.org","path":"/spire/server"},"#,
                r#""selectors":[{"type":"unix","value":"uid:1"}],"x509_svid_ttl":0,"federates_with":[],"admin":false,"#,
                r#""downstream":false,"expires_at":"0","dns_names":[],"revision_number":"0","store_svid":false,"#,
                r#""jwt_svid_ttl":0,"hint":"","created_at":"0","additional_attributes":null}}]}"#
            )
        );
    }

    #[test]
    fn token_and_bytes() {
        assert_eq!(
            JsonValue::of(&JoinToken { value: "token".into(), expires_at: 0 }).as_str(),
            r#"{"value":"token","expires_at":"0"}"#
        );
        let b = Bundle {
            trust_domain: "example.org".into(),
            x509_authorities: vec![X509Certificate { asn1: vec![1, 2, 3, 250], ..Default::default() }],
            ..Default::default()
        };
        let text = JsonValue::of(&b).as_str().to_owned();
        assert!(
            text.starts_with(r#"{"trust_domain":"example.org","x509_authorities":[{"asn1":"AQID+g==","tainted":false"#),
            "{text}"
        );
        assert!(text.contains(r#""sequence_number":"0""#), "{text}");
    }
}
