//! The three JSON bodies, read and written as Go's `encoding/json` does for SPIRE's structs
//! (`attestationData`, `challengeRequest`, `challengeResponse` with an `ssh.Signature`).
//!
//! Go names the keys after the fields (`Certificate`, `Nonce`, `Signature`, `Format`, `Blob`,
//! `Rest`), matches them case-insensitively when reading, lets the last of duplicate keys win,
//! ignores unknown keys, and reads `null` as "not set". Byte strings are standard base64 with
//! padding.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

/// The payload: the host certificate in SSH wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationData {
    /// The certificate as `ssh.Certificate.Marshal` writes it.
    pub certificate: Vec<u8>,
}

/// The server's challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// The server's nonce.
    pub nonce: Vec<u8>,
}

/// An SSH signature as Go's `ssh.Signature` marshals to JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSignature {
    /// The signature algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`...).
    pub format: String,
    /// The signature blob.
    pub blob: Vec<u8>,
    /// Security-key fields; `None` (JSON `null`) for every key an agent can hold.
    pub rest: Option<Vec<u8>>,
}

/// The agent's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The agent's nonce.
    pub nonce: Vec<u8>,
    /// The signature over `SHA256(challenge nonce || response nonce)`; `None` when `null`.
    pub signature: Option<SshSignature>,
}

/// A body that is not what it should be, worded as Go's decoder words it where we can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl AttestationData {
    /// `{"Certificate":"<base64>"}`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "Certificate": STANDARD.encode(&self.certificate) }))
            .expect("strings serialize")
    }

    /// Reads a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(obj) = parse_top(bytes, "sshpop.attestationData")? else { return Ok(Self::default()) };
        Ok(Self { certificate: obj.bytes("attestationData", "Certificate")? })
    }
}

impl Challenge {
    /// `{"Nonce":"<base64>"}`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "Nonce": STANDARD.encode(&self.nonce) })).expect("strings serialize")
    }

    /// Reads a challenge.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(obj) = parse_top(bytes, "sshpop.challengeRequest")? else { return Ok(Self::default()) };
        Ok(Self { nonce: obj.bytes("challengeRequest", "Nonce")? })
    }
}

impl Response {
    /// `{"Nonce":"...","Signature":{"Format":"...","Blob":"...","Rest":null}}`, key order and
    /// all, as SPIRE's agent writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = format!("{{\"Nonce\":\"{}\",\"Signature\":", STANDARD.encode(&self.nonce));
        match &self.signature {
            None => out.push_str("null"),
            Some(s) => {
                let rest = s.rest.as_ref().map_or_else(|| "null".to_owned(), |r| format!("\"{}\"", STANDARD.encode(r)));
                out.push_str(&format!(
                    "{{\"Format\":{},\"Blob\":\"{}\",\"Rest\":{rest}}}",
                    serde_json::to_string(&s.format).expect("strings serialize"),
                    STANDARD.encode(&s.blob)
                ));
            }
        }
        out.push('}');
        out.into_bytes()
    }

    /// Reads a response.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(obj) = parse_top(bytes, "sshpop.challengeResponse")? else { return Ok(Self::default()) };
        let nonce = obj.bytes("challengeResponse", "Nonce")?;
        let signature = match obj.get("Signature") {
            None | Some(GoValue::Null) => None,
            Some(GoValue::Object(sig)) => Some(SshSignature {
                format: sig.string("Signature", "Format")?,
                blob: sig.bytes("Signature", "Blob")?,
                rest: match sig.get("Rest") {
                    None | Some(GoValue::Null) => None,
                    Some(_) => Some(sig.bytes("Signature", "Rest")?),
                },
            }),
            Some(other) => return Err(type_error(other, "challengeResponse.Signature", "ssh.Signature")),
        };
        Ok(Self { nonce, signature })
    }
}

/// A JSON value as far as Go's decoding of these structs cares: objects keep their members in
/// document order, duplicates included, so that lookups can follow Go.
#[derive(Debug, Clone)]
enum GoValue {
    Null,
    Other(&'static str),
    String(String),
    Object(GoObject),
}

#[derive(Debug, Clone)]
struct GoObject(Vec<(String, GoValue)>);

impl<'de> Deserialize<'de> for GoValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<GoValue, E> {
                Ok(GoValue::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<GoValue, E> {
                Ok(GoValue::Other("bool"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<GoValue, E> {
                Ok(GoValue::Other("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<GoValue, E> {
                Ok(GoValue::Other("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<GoValue, E> {
                Ok(GoValue::Other("number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<GoValue, E> {
                Ok(GoValue::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<GoValue, E> {
                Ok(GoValue::String(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<GoValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(GoValue::Other("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoValue, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, GoValue>()? {
                    members.push((k, v));
                }
                Ok(GoValue::Object(GoObject(members)))
            }
        }
        d.deserialize_any(V)
    }
}

impl GoValue {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Other(k) => k,
            Self::String(_) => "string",
            Self::Object(_) => "object",
        }
    }
}

impl GoObject {
    /// The value of the last member whose key equals `field` ignoring case, as Go picks it.
    fn get(&self, field: &str) -> Option<&GoValue> {
        self.0.iter().rev().find(|(k, _)| go_fold_eq(k, field)).map(|(_, v)| v)
    }

    fn bytes(&self, owner: &str, field: &str) -> Result<Vec<u8>, DecodeError> {
        match self.get(field) {
            None | Some(GoValue::Null) => Ok(Vec::new()),
            Some(GoValue::String(s)) => decode_b64(s),
            Some(other) => Err(type_error(other, &format!("{owner}.{field}"), "[]uint8")),
        }
    }

    fn string(&self, owner: &str, field: &str) -> Result<String, DecodeError> {
        match self.get(field) {
            None | Some(GoValue::Null) => Ok(String::new()),
            Some(GoValue::String(s)) => Ok(s.clone()),
            Some(other) => Err(type_error(other, &format!("{owner}.{field}"), "string")),
        }
    }
}

/// The top-level object, or `None` for `null` (Go leaves the struct empty).
fn parse_top(bytes: &[u8], go_type: &str) -> Result<Option<GoObject>, DecodeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError("unexpected end of JSON input".into()));
    }
    match serde_json::from_slice::<GoValue>(bytes).map_err(|e| DecodeError(e.to_string()))? {
        GoValue::Null => Ok(None),
        GoValue::Object(obj) => Ok(Some(obj)),
        other => Err(DecodeError(format!("json: cannot unmarshal {} into Go value of type {go_type}", other.kind()))),
    }
}

fn type_error(v: &GoValue, field: &str, go_type: &str) -> DecodeError {
    DecodeError(format!("json: cannot unmarshal {} into Go struct field {field} of type {go_type}", v.kind()))
}

/// Go's key matching: equal under Unicode simple case folding (ASCII case, the Kelvin sign and
/// the long s included).
fn go_fold_eq(a: &str, b: &str) -> bool {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .flat_map(char::to_lowercase)
            .map(|c| match c {
                'ſ' => 's',
                other => other,
            })
            .collect()
    };
    a.eq_ignore_ascii_case(b) || fold(a) == fold(b)
}

/// Go's `base64.StdEncoding`: padding required, CR and LF skipped, non-zero trailing bits allowed.
fn decode_b64(text: &str) -> Result<Vec<u8>, DecodeError> {
    const LAX: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    LAX.decode(cleaned).map_err(|e| DecodeError(format!("illegal base64 data: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spire_byte_for_byte() {
        let d = AttestationData { certificate: vec![1, 2, 3] };
        assert_eq!(d.to_json(), br#"{"Certificate":"AQID"}"#);
        assert_eq!(AttestationData::from_json(&d.to_json()).unwrap(), d);
        let c = Challenge { nonce: vec![0xff] };
        assert_eq!(c.to_json(), br#"{"Nonce":"/w=="}"#);
        assert_eq!(Challenge::from_json(&c.to_json()).unwrap(), c);
        let r = Response {
            nonce: vec![1],
            signature: Some(SshSignature { format: "ssh-ed25519".into(), blob: vec![2], rest: None }),
        };
        assert_eq!(r.to_json(), br#"{"Nonce":"AQ==","Signature":{"Format":"ssh-ed25519","Blob":"Ag==","Rest":null}}"#);
        assert_eq!(Response::from_json(&r.to_json()).unwrap(), r);
        let with_rest = Response { signature: Some(SshSignature { rest: Some(vec![3]), ..Default::default() }), ..r };
        assert_eq!(Response::from_json(&with_rest.to_json()).unwrap(), with_rest);
        let none = Response { nonce: vec![], signature: None };
        assert_eq!(none.to_json(), br#"{"Nonce":"","Signature":null}"#);
        assert_eq!(Response::from_json(&none.to_json()).unwrap(), none);
    }

    #[test]
    fn go_decoding_rules() {
        // Case-insensitive keys, the last duplicate wins, unknown keys and null ignored.
        let d = AttestationData::from_json(br#"{"certificate":"AQ==","CERTIFICATE":"Ag==","x":1}"#).unwrap();
        assert_eq!(d.certificate, [2]);
        assert_eq!(AttestationData::from_json(b"null").unwrap(), AttestationData::default());
        assert_eq!(AttestationData::from_json(br#"{"Certificate":null}"#).unwrap(), AttestationData::default());
        let r = Response::from_json(br#"{"nonce":"AQ==","signature":{"format":"f","blob":"Ag=="}}"#).unwrap();
        assert_eq!(r.signature.unwrap().format, "f");
        // Go's base64: CR/LF skipped, trailing bits tolerated.
        assert_eq!(Challenge::from_json(b"{\"Nonce\":\"AQ\\r\\n==\"}").unwrap().nonce, [1]);
        assert_eq!(Challenge::from_json(br#"{"Nonce":"AR=="}"#).unwrap().nonce, [1]);
    }

    #[test]
    fn go_decoding_errors() {
        for (input, expected) in [
            (&b""[..], "unexpected end of JSON input"),
            (b"[]", "json: cannot unmarshal array into Go value of type sshpop.attestationData"),
            (
                br#"{"Certificate":1}"#,
                "json: cannot unmarshal number into Go struct field attestationData.Certificate of type []uint8",
            ),
            (br#"{"Certificate":"!!"}"#, "illegal base64 data"),
        ] {
            let err = AttestationData::from_json(input).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{input:?}: {err}");
        }
        let err = Response::from_json(br#"{"Signature":"x"}"#).unwrap_err().to_string();
        assert_eq!(
            err,
            "json: cannot unmarshal string into Go struct field challengeResponse.Signature of type ssh.Signature"
        );
        assert!(Response::from_json(br#"{"Signature":{"Format":2}}"#).is_err());
        assert!(Challenge::from_json(b"{").is_err());
    }
}
