//! `http_challenge`: the agent names the host it runs on, the agent name and a port; the server
//! sends it a nonce and fetches that nonce back over plain HTTP from
//! `http://<hostname>:<port>/.well-known/spiffe/nodeattestor/http_challenge/<agentname>/challenge`,
//! proving the agent answers on that name (SPIRE's `pkg/common/plugin/httpchallenge`).
//!
//! The payload is `{"hostname":"…","agentname":"…","port":N}` and the challenge `{"nonce":"…"}`,
//! both read as Go's `encoding/json` reads them: keys matched case-insensitively (the last of
//! duplicates wins), `null` leaves a field empty, unknown keys are ignored, a port must be an
//! integer. The agent's challenge response carries nothing (SPIRE's agent sends a newline because
//! the plugin framework refuses an empty response); the server ignores it. The nonce is 32 random
//! bytes in URL-safe base64 with padding; the agent serves it followed by a newline and the server
//! compares the first [`MAX_BODY`] bytes, trimmed of white space.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "http_challenge";

/// Random bytes in a nonce, before encoding.
pub const NONCE_LEN: usize = 32;

/// How much of the agent's HTTP answer the server reads (SPIRE's limit).
pub const MAX_BODY: usize = 64;

/// What the agent sends as its challenge response: a newline, as SPIRE's agent does.
pub const RESPONSE: &[u8] = b"\n";

/// The payload (SPIRE's `httpchallenge.AttestationData`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttestationData {
    /// The name the server fetches the challenge from; also the agent ID's last segment.
    pub hostname: String,
    /// Which agent on that host (a path segment of the challenge URL).
    pub agentname: String,
    /// The port the server fetches from (Go's `int`: any value reads, the server judges it).
    pub port: i64,
}

/// The challenge (SPIRE's `httpchallenge.Challenge`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// The text the agent must serve.
    pub nonce: String,
}

/// A payload or challenge that is not JSON of the expected shape; the message follows Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl AttestationData {
    /// The JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and an integer always serialize")
    }

    /// Reads a payload as Go's `json.Unmarshal` would.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut data = Self::default();
        for (key, value) in go_object(bytes, "httpchallenge.AttestationData")? {
            match fold(&key).as_str() {
                "hostname" => set_string(&mut data.hostname, value, "AttestationData.hostname")?,
                "agentname" => set_string(&mut data.agentname, value, "AttestationData.agentname")?,
                "port" => set_int(&mut data.port, value, "AttestationData.port")?,
                _ => {}
            }
        }
        Ok(data)
    }

    /// SPIRE's checks before the server fetches anything (`VerifyChallenge`), in its order and
    /// words: each of these would make the URL name something other than what was attested.
    pub fn check_fetchable(&self) -> Result<(), &'static str> {
        if self.hostname.is_empty() {
            return Err("hostname must be set");
        }
        if self.agentname.is_empty() {
            return Err("agentname must be set");
        }
        if self.port <= 0 {
            return Err("port is invalid");
        }
        if self.hostname.contains('/') {
            return Err("hostname can not contain a slash");
        }
        if self.hostname.contains(':') {
            return Err("hostname can not contain a colon");
        }
        if self.agentname.contains('.') {
            return Err("agentname can not contain a dot");
        }
        Ok(())
    }
}

impl Challenge {
    /// A fresh challenge: [`NONCE_LEN`] random bytes, URL-safe base64 with padding.
    pub fn generate() -> Self {
        let mut bytes = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
        Self { nonce: URL_SAFE.encode(bytes) }
    }

    /// The JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a string always serializes")
    }

    /// Reads a challenge as Go's `json.Unmarshal` would.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut challenge = Self::default();
        for (key, value) in go_object(bytes, "httpchallenge.Challenge")? {
            if fold(&key) == "nonce" {
                set_string(&mut challenge.nonce, value, "Challenge.nonce")?;
            }
        }
        Ok(challenge)
    }

    /// Whether `body` (the first [`MAX_BODY`] bytes the agent served) is this nonce, surrounding
    /// white space aside; the error is SPIRE's, quoting what was served.
    pub fn check_answer(&self, body: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(body);
        if text.trim() == self.nonce {
            Ok(())
        } else {
            Err(format!("expected nonce {} but got {}", go_quote(&self.nonce), go_quote(&text)))
        }
    }
}

/// The path the agent serves its nonce under and the server fetches, with the agent name escaped
/// as Go's `url.URL` escapes a path (only the characters a path may not hold).
pub fn challenge_path(agentname: &str) -> String {
    let mut path = String::from("/.well-known/spiffe/nodeattestor/http_challenge/");
    for b in agentname.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path.push_str("/challenge");
    path
}

/// Undoes `%XX` escapes in a request path, as Go's server does before routing; `None` for a
/// malformed escape or a result that is not UTF-8.
pub fn unescape_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A Go `%q` of `text`, enough for the error messages here.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's key folding for matching JSON keys to fields: case-insensitive, with the Kelvin sign and
/// the long s folding to `k` and `s` as Go's simple folding has them.
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii() {
                return c.to_ascii_lowercase();
            }
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => {
                    let mut lower = u.to_lowercase();
                    match (lower.next(), lower.next()) {
                        (Some(l), None) => l,
                        _ => c,
                    }
                }
                _ => c,
            }
        })
        .collect()
}

/// The entries of a JSON object in document order; `null` at the top is no entries, as Go leaves
/// the value untouched. Invalid UTF-8 inside strings reads as U+FFFD, as in Go.
fn go_object(bytes: &[u8], type_name: &str) -> Result<Vec<(String, Value)>, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    let top: Top = serde_json::from_str(&text).map_err(|e| DecodeError(e.to_string()))?;
    match top {
        Top::Null => Ok(Vec::new()),
        Top::Object(entries) => Ok(entries),
        Top::Other(kind) => {
            Err(DecodeError(format!("json: cannot unmarshal {kind} into Go value of type {type_name}")))
        }
    }
}

fn set_string(field: &mut String, value: Value, name: &str) -> Result<(), DecodeError> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => {
            *field = s;
            Ok(())
        }
        other => Err(type_error(&other, name, "string")),
    }
}

fn set_int(field: &mut i64, value: Value, name: &str) -> Result<(), DecodeError> {
    match value {
        Value::Null => Ok(()),
        Value::Number(n) => match n.as_i64() {
            Some(v) => {
                *field = v;
                Ok(())
            }
            None => {
                Err(DecodeError(format!("json: cannot unmarshal number {n} into Go struct field {name} of type int")))
            }
        },
        other => Err(type_error(&other, name, "int")),
    }
}

fn type_error(value: &Value, field: &str, go_type: &str) -> DecodeError {
    DecodeError(format!("json: cannot unmarshal {} into Go struct field {field} of type {go_type}", kind(value)))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A top-level JSON value, keeping an object's entries in order and duplicates.
enum Top {
    Null,
    Object(Vec<(String, Value)>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Top, E> {
                Ok(Top::Null)
            }
            fn visit_none<E>(self) -> Result<Top, E> {
                Ok(Top::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
                Ok(Top::Other("bool"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
                Ok(Top::Other("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
                Ok(Top::Other("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
                Ok(Top::Other("number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Top, E> {
                Ok(Top::Other("string"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Top::Other("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Top::Object(entries))
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_with_spire_field_names() {
        let d = AttestationData { hostname: "node1.example.com".into(), agentname: "default".into(), port: 80 };
        assert_eq!(
            String::from_utf8(d.to_json()).unwrap(),
            r#"{"hostname":"node1.example.com","agentname":"default","port":80}"#
        );
        assert_eq!(AttestationData::from_json(&d.to_json()).unwrap(), d);
    }

    #[test]
    fn payload_reads_as_go_does() {
        let d = AttestationData::from_json(br#"{"HostName":"a","AGENTNAME":"b","Port":-3,"x":[1]}"#).unwrap();
        assert_eq!((d.hostname.as_str(), d.agentname.as_str(), d.port), ("a", "b", -3));
        // The last duplicate wins; null leaves the field as it was.
        let d = AttestationData::from_json(br#"{"hostname":"a","hostname":"b","port":1,"port":null}"#).unwrap();
        assert_eq!((d.hostname.as_str(), d.port), ("b", 1));
        // The Kelvin sign folds to k, the long s to s.
        let d = AttestationData::from_json("{\"ho\u{17f}tname\":\"h\"}".as_bytes()).unwrap();
        assert_eq!(d.hostname, "h");
        assert_eq!(AttestationData::from_json(b"null").unwrap(), AttestationData::default());
        for (bad, message) in [
            (
                &br#"{"port":80.0}"#[..],
                "json: cannot unmarshal number 80.0 into Go struct field AttestationData.port of type int",
            ),
            (
                br#"{"port":"80"}"#,
                "json: cannot unmarshal string into Go struct field AttestationData.port of type int",
            ),
            (
                br#"{"hostname":1}"#,
                "json: cannot unmarshal number into Go struct field AttestationData.hostname of type string",
            ),
            (b"[1]", "json: cannot unmarshal array into Go value of type httpchallenge.AttestationData"),
        ] {
            assert_eq!(AttestationData::from_json(bad).unwrap_err().to_string(), message);
        }
        assert!(AttestationData::from_json(b"{").is_err());
        assert!(AttestationData::from_json(br#"{"port":99999999999999999999}"#).is_err());
        // Invalid UTF-8 in a string is replaced, not refused.
        let d = AttestationData::from_json(b"{\"hostname\":\"a\xffb\"}").unwrap();
        assert_eq!(d.hostname, "a\u{fffd}b");
    }

    #[test]
    fn fetchability_checks_in_spire_order() {
        let ok = AttestationData { hostname: "h".into(), agentname: "default".into(), port: 80 };
        assert_eq!(ok.check_fetchable(), Ok(()));
        let with = |f: fn(&mut AttestationData)| {
            let mut d = ok.clone();
            f(&mut d);
            d.check_fetchable().unwrap_err()
        };
        assert_eq!(with(|d| d.hostname.clear()), "hostname must be set");
        assert_eq!(with(|d| d.agentname.clear()), "agentname must be set");
        assert_eq!(with(|d| d.port = 0), "port is invalid");
        assert_eq!(with(|d| d.hostname = "a/b".into()), "hostname can not contain a slash");
        assert_eq!(with(|d| d.hostname = "a:1".into()), "hostname can not contain a colon");
        assert_eq!(with(|d| d.agentname = "a.b".into()), "agentname can not contain a dot");
    }

    #[test]
    fn challenges_are_fresh_and_checked_trimmed() {
        let c = Challenge::generate();
        assert_eq!(c.nonce.len(), 44);
        assert_ne!(c.nonce, Challenge::generate().nonce);
        assert_eq!(Challenge::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(Challenge::from_json(br#"{"Nonce":"n"}"#).unwrap().nonce, "n");
        c.check_answer(format!("{}\n", c.nonce).as_bytes()).unwrap();
        c.check_answer(format!("  {}\r\n", c.nonce).as_bytes()).unwrap();
        let err = Challenge { nonce: "abc".into() }.check_answer(b"404 page not found\n").unwrap_err();
        assert_eq!(err, r#"expected nonce "abc" but got "404 page not found\n""#);
    }

    #[test]
    fn paths_escape_as_go_does() {
        assert_eq!(challenge_path("default"), "/.well-known/spiffe/nodeattestor/http_challenge/default/challenge");
        assert_eq!(challenge_path("a^"), "/.well-known/spiffe/nodeattestor/http_challenge/a%5E/challenge");
        let odd = "a[]`\\^_%";
        let escaped = challenge_path(odd);
        assert!(escaped.contains("/a%5B%5D%60%5C%5E_%25/"), "{escaped}");
        assert_eq!(
            unescape_path(&escaped).unwrap(),
            format!("/.well-known/spiffe/nodeattestor/http_challenge/{odd}/challenge")
        );
        assert_eq!(unescape_path("/a%2"), None);
        assert_eq!(unescape_path("/a%zz"), None);
        assert_eq!(unescape_path("/a%+1"), None);
    }
}
