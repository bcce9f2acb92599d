//! `tpm_devid`: the agent proves that its DevID key (certified by a DevID CA) lives in a TPM whose
//! endorsement key is certified by a trusted manufacturer (SPIRE's `pkg/common/plugin/tpmdevid`).
//!
//! The messages are Go structs without JSON tags, so their keys are the Go field names; every byte
//! string is standard base64 as Go's `encoding/json` writes a `[]byte` (`null` and absent read as
//! empty). The TPM structures inside them are in TPM wire format without a `TPM2B` size prefix:
//! [`tpm`] reads and names them.

pub mod tpm;

use serde::{Deserialize, Serialize};

/// The TPM 2.0 marshaling crate the agent also builds its commands with.
pub use tpm2_protocol;

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "tpm_devid";

/// The length of the nonce the DevID key signs.
pub const DEVID_NONCE_LEN: usize = 32;

/// The payload (SPIRE's `AttestationRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationRequest {
    /// The DevID certificate chain, DER, leaf first.
    #[serde(rename = "DevIDCert", with = "crate::go_bytes::list", default)]
    pub devid_cert: Vec<Vec<u8>>,
    /// The DevID key's `TPMT_PUBLIC`.
    #[serde(rename = "DevIDPub", with = "crate::go_bytes::bytes", default)]
    pub devid_pub: Vec<u8>,
    /// The endorsement certificate, DER.
    #[serde(rename = "EKCert", with = "crate::go_bytes::bytes", default)]
    pub ek_cert: Vec<u8>,
    /// The endorsement key's `TPMT_PUBLIC`, as the TPM regenerated it from the default RSA template.
    #[serde(rename = "EKPub", with = "crate::go_bytes::bytes", default)]
    pub ek_pub: Vec<u8>,
    /// The attestation key's `TPMT_PUBLIC` (an RSA signing key made for this attestation).
    #[serde(rename = "AKPub", with = "crate::go_bytes::bytes", default)]
    pub ak_pub: Vec<u8>,
    /// The `TPMS_ATTEST` of TPM2_Certify: the AK vouching for the DevID key.
    #[serde(rename = "CertifiedDevID", with = "crate::go_bytes::bytes", default)]
    pub certified_devid: Vec<u8>,
    /// The AK's `TPMT_SIGNATURE` over [`Self::certified_devid`].
    #[serde(rename = "CertificationSignature", with = "crate::go_bytes::bytes", default)]
    pub certification_signature: Vec<u8>,
}

/// The server's two challenges (SPIRE's `ChallengeRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// The nonce the DevID key must sign (proof of possession).
    #[serde(rename = "DevID", with = "crate::go_bytes::bytes", default)]
    pub devid: Vec<u8>,
    /// The credential only the TPM holding both the EK and the AK can open (proof of residency).
    #[serde(rename = "CredActivation", default)]
    pub cred_activation: Option<CredActivation>,
}

/// A TPM2_MakeCredential result, both parts without their `TPM2B` size prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredActivation {
    /// The `TPM2B_ID_OBJECT` contents: integrity HMAC and encrypted credential.
    #[serde(rename = "Credential", with = "crate::go_bytes::bytes", default)]
    pub credential: Vec<u8>,
    /// The `TPM2B_ENCRYPTED_SECRET` contents: the seed encrypted to the EK.
    #[serde(rename = "Secret", with = "crate::go_bytes::bytes", default)]
    pub secret: Vec<u8>,
}

/// The agent's answers (SPIRE's `ChallengeResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The DevID key's signature over the nonce: PKCS#1 v1.5 for RSA, ASN.1 `(r, s)` for ECDSA.
    #[serde(rename = "DevID", with = "crate::go_bytes::bytes", default)]
    pub devid: Vec<u8>,
    /// The credential TPM2_ActivateCredential recovered.
    #[serde(rename = "CredActivation", with = "crate::go_bytes::bytes", default)]
    pub cred_activation: Vec<u8>,
}

pub use crate::go_bytes::DecodeError;

crate::go_bytes::json_codec!(AttestationRequest, ChallengeRequest, ChallengeResponse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_go_field_names() {
        let req = AttestationRequest {
            devid_cert: vec![vec![1], vec![2]],
            devid_pub: vec![3],
            ek_cert: vec![4],
            ek_pub: vec![5],
            ak_pub: vec![6],
            certified_devid: vec![7],
            certification_signature: vec![8],
        };
        let json: serde_json::Value = serde_json::from_slice(&req.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"DevIDCert": ["AQ==", "Ag=="], "DevIDPub": "Aw==", "EKCert": "BA==", "EKPub": "BQ==",
                "AKPub": "Bg==", "CertifiedDevID": "Bw==", "CertificationSignature": "CA=="})
        );
        assert_eq!(AttestationRequest::from_json(&req.to_json()).unwrap(), req);
    }

    #[test]
    fn challenge_and_response_as_go_writes_them() {
        let go = br#"{"DevID":"AAE=","CredActivation":{"Credential":"AgM=","Secret":"BA=="}}"#;
        let c = ChallengeRequest::from_json(go).unwrap();
        assert_eq!(c.devid, [0, 1]);
        assert_eq!(c.cred_activation, Some(CredActivation { credential: vec![2, 3], secret: vec![4] }));
        let none = ChallengeRequest::from_json(br#"{"DevID":null,"CredActivation":null}"#).unwrap();
        assert_eq!(none, ChallengeRequest::default());
        let r = ChallengeResponse::from_json(br#"{"DevID":"AQ==","CredActivation":"Ag=="}"#).unwrap();
        assert_eq!((r.devid.as_slice(), r.cred_activation.as_slice()), (&[1u8][..], &[2u8][..]));
        assert!(ChallengeResponse::from_json(br#"{"DevID":"!"}"#).unwrap_err().to_string().contains("illegal base64"));
    }
}
