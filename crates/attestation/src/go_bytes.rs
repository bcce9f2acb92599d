//! JSON as Go's `encoding/json` writes and reads the attestors' messages: `[]byte` fields as
//! standard base64 (`null` as empty, CR and LF ignored inside), unknown fields ignored.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A JSON body that is not what it should be; the message is serde_json's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DecodeError(#[from] serde_json::Error);

/// `to_json` and `from_json` for message types.
macro_rules! json_codec {
    ($($t:ty),*) => {$(
        impl $t {
            /// The JSON bytes.
            pub fn to_json(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("byte strings always serialize")
            }

            /// Reads JSON bytes; unknown fields are ignored, as Go does.
            pub fn from_json(bytes: &[u8]) -> Result<Self, crate::go_bytes::DecodeError> {
                Ok(serde_json::from_slice(bytes)?)
            }
        }
    )*};
}
pub(crate) use json_codec;

/// A `[]byte` field (`#[serde(with = "crate::go_bytes::bytes")]`).
pub(crate) mod bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{STANDARD, decode};
    use base64::Engine as _;

    /// Go writes a nil slice as null; ours are never nil, an empty one is "".
    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    /// `null` reads as empty.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        decode(text.as_deref().unwrap_or_default())
    }
}

/// A `[][]byte` field (`#[serde(with = "crate::go_bytes::list")]`).
pub(crate) mod list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{STANDARD, decode};
    use base64::Engine as _;

    pub(crate) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<String> = list.iter().map(|c| STANDARD.encode(c)).collect();
        encoded.serialize(s)
    }

    /// `null`, as the list or an item, reads as empty.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list: Option<Vec<Option<String>>> = Option::deserialize(d)?;
        list.unwrap_or_default().iter().map(|t| decode(t.as_deref().unwrap_or_default())).collect()
    }
}

fn decode<E: serde::de::Error>(text: &str) -> Result<Vec<u8>, E> {
    // Go's decoder drops CR and LF inside the string.
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    STANDARD.decode(cleaned).map_err(|e| E::custom(format!("illegal base64 data: {e}")))
}
