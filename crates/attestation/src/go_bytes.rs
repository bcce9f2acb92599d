//! Byte strings in JSON as Go's `encoding/json` writes and reads them (`[]byte` as standard base64,
//! `null` as empty, CR and LF ignored inside), for the attestors whose messages are Go structs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `[]byte` field. Go writes a nil slice as null; ours are never nil, an empty one is "".
pub(crate) fn b64_out<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

/// A `[]byte` field; `null` reads as empty.
pub(crate) fn b64_in<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    decode_b64(text.as_deref().unwrap_or_default())
}

/// A `[][]byte` field.
pub(crate) fn b64_list_out<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    let encoded: Vec<String> = list.iter().map(|c| STANDARD.encode(c)).collect();
    encoded.serialize(s)
}

/// A `[][]byte` field; `null`, as the list or an item, reads as empty.
pub(crate) fn b64_list_in<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    let list: Option<Vec<Option<String>>> = Option::deserialize(d)?;
    list.unwrap_or_default().iter().map(|t| decode_b64(t.as_deref().unwrap_or_default())).collect()
}

fn decode_b64<E: serde::de::Error>(text: &str) -> Result<Vec<u8>, E> {
    // Go's decoder drops CR and LF inside the string.
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    STANDARD.decode(cleaned).map_err(|e| E::custom(format!("illegal base64 data: {e}")))
}
