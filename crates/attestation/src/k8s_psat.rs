//! `k8s_psat`: the agent sends its cluster name and a projected service-account token; the server
//! checks the token with a TokenReview against that cluster's API server. No challenge follows.

use serde::{Deserialize, Serialize};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "k8s_psat";

/// The payload, as JSON (SPIRE's `k8s.PSATAttestationData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationData {
    /// The cluster name the server's configuration knows the agent's cluster by.
    pub cluster: String,
    /// The projected service-account token (a JWT), as read from the agent's token file.
    pub token: String,
}

/// Why a payload is not an [`AttestationData`].
#[derive(Debug, thiserror::Error)]
#[error("failed to unmarshal data: {0}")]
pub struct PayloadError(#[from] serde_json::Error);

impl AttestationData {
    /// The payload bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("two strings always serialize")
    }

    /// Reads a payload. Fields SPIRE would ignore are ignored; missing ones are empty, as Go's
    /// `json.Unmarshal` leaves them, so the server can name what is missing.
    pub fn from_payload(payload: &[u8]) -> Result<Self, PayloadError> {
        #[derive(Deserialize)]
        struct Lenient {
            #[serde(default)]
            cluster: String,
            #[serde(default)]
            token: String,
        }
        let l: Lenient = serde_json::from_slice(payload)?;
        Ok(Self { cluster: l.cluster, token: l.token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_spire_field_names() {
        let d = AttestationData { cluster: "prod".into(), token: "a.b.c".into() };
        assert_eq!(String::from_utf8(d.to_payload()).unwrap(), r#"{"cluster":"prod","token":"a.b.c"}"#);
        assert_eq!(AttestationData::from_payload(&d.to_payload()).unwrap(), d);
        let partial = AttestationData::from_payload(br#"{"token":"t","extra":1}"#).unwrap();
        assert_eq!(partial.cluster, "");
        assert!(
            AttestationData::from_payload(b"not json").unwrap_err().to_string().starts_with("failed to unmarshal data")
        );
    }
}
