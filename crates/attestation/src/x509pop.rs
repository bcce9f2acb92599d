//! `x509pop`: the agent sends its certificate chain; the server checks it against its trusted CAs,
//! then challenges the agent to prove it holds the leaf's private key (SPIRE's
//! `pkg/common/plugin/x509pop`).
//!
//! Every byte string is standard base64 with padding, as Go's `encoding/json` writes a `[]byte`;
//! `null` and absent fields read as empty, as Go leaves them. The challenge and the response are
//! objects with one of `rsa_signature` and `ecdsa_signature` set and the other `null`.
//!
//! The agent signs `SHA256(challenge nonce || response nonce)`, both nonces [`NONCE_LEN`] bytes:
//! RSA-PSS with SHA-256, or ECDSA over that digest, `r` and `s` as minimal big-endian integers.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "x509pop";

/// The length of both nonces.
pub const NONCE_LEN: usize = 32;

/// The payload (SPIRE's `x509pop.AttestationData`): DER certificates, leaf first, then the
/// intermediates that lead to one of the server's trusted CAs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationData {
    /// The DER certificates.
    #[serde(with = "crate::go_bytes::list", default)]
    pub certificates: Vec<Vec<u8>>,
}

/// The server's nonce, for either algorithm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceChallenge {
    /// The challenger's nonce.
    #[serde(with = "crate::go_bytes::bytes", default)]
    pub nonce: Vec<u8>,
}

/// The challenge: the nonce under the name of the algorithm the leaf's key is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Set when the leaf's key is RSA.
    #[serde(default)]
    pub rsa_signature: Option<NonceChallenge>,
    /// Set when the leaf's key is ECDSA.
    #[serde(default)]
    pub ecdsa_signature: Option<NonceChallenge>,
}

/// An RSA answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsaSignatureResponse {
    /// The responder's nonce.
    #[serde(with = "crate::go_bytes::bytes", default)]
    pub nonce: Vec<u8>,
    /// The RSA-PSS (SHA-256) signature.
    #[serde(with = "crate::go_bytes::bytes", default)]
    pub signature: Vec<u8>,
}

/// An ECDSA answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcdsaSignatureResponse {
    /// The responder's nonce.
    #[serde(with = "crate::go_bytes::bytes", default)]
    pub nonce: Vec<u8>,
    /// The signature's `r`, big-endian.
    #[serde(with = "crate::go_bytes::bytes", default)]
    pub r: Vec<u8>,
    /// The signature's `s`, big-endian.
    #[serde(with = "crate::go_bytes::bytes", default)]
    pub s: Vec<u8>,
}

/// The agent's answer to a [`Challenge`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Set for an RSA challenge.
    #[serde(default)]
    pub rsa_signature: Option<RsaSignatureResponse>,
    /// Set for an ECDSA challenge.
    #[serde(default)]
    pub ecdsa_signature: Option<EcdsaSignatureResponse>,
}

pub use crate::go_bytes::DecodeError;

/// A nonce of the wrong length (SPIRE's messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The challenger's nonce.
    #[error("invalid challenge nonce")]
    Challenge,
    /// The responder's nonce.
    #[error("invalid response nonce")]
    Response,
}

crate::go_bytes::json_codec!(AttestationData, Challenge, Response);

/// `challenge || response`, the message both signatures are made over (each algorithm hashes it
/// with SHA-256), after checking both nonces' lengths.
pub fn signed_message(challenge: &[u8], response: &[u8]) -> Result<Vec<u8>, NonceError> {
    if challenge.len() != NONCE_LEN {
        return Err(NonceError::Challenge);
    }
    if response.len() != NONCE_LEN {
        return Err(NonceError::Response);
    }
    Ok([challenge, response].concat())
}

/// `SHA256(challenge || response)`, what SPIRE calls the combined nonces.
pub fn combine_nonces(challenge: &[u8], response: &[u8]) -> Result<[u8; 32], NonceError> {
    let message = signed_message(challenge, response)?;
    let d = digest::digest(&digest::SHA256, &message);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    Ok(out)
}

/// A certificate's fingerprint: the lowercase hex SHA-1 of its DER.
pub fn fingerprint(der: &[u8]) -> String {
    hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

/// A serial number (big-endian magnitude) as SPIRE writes it: lowercase hex, leading zeros dropped,
/// then one put back if the length is odd (`0` for zero).
pub fn serial_number_hex(magnitude: &[u8]) -> String {
    let full = hex(magnitude);
    let trimmed = full.trim_start_matches('0');
    if trimmed.is_empty() {
        return "00".into();
    }
    if trimmed.len() % 2 == 1 { format!("0{trimmed}") } else { trimmed.to_owned() }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A private key that can answer challenges.
#[derive(Debug)]
pub enum SigningKey {
    /// RSA (answers with RSA-PSS, SHA-256, the longest salt as Go uses).
    Rsa(aws_lc_rs::rsa::KeyPair),
    /// ECDSA on P-256, P-384 or P-521.
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
}

/// Why a challenge could not be answered (SPIRE's messages where it has them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// An RSA key was challenged for ECDSA or not at all.
    #[error("expecting RSA challenge")]
    ExpectingRsa,
    /// An ECDSA key was challenged for RSA or not at all.
    #[error("expecting ECDSA challenge")]
    ExpectingEcdsa,
    /// The server's nonce is not 32 bytes.
    #[error(transparent)]
    Nonce(#[from] NonceError),
    /// The signing failed.
    #[error("signing failed")]
    Sign,
}

impl SigningKey {
    /// Reads a PKCS#8 key (RSA, or ECDSA on any supported curve).
    pub fn from_pkcs8(der: &[u8]) -> Option<Self> {
        use aws_lc_rs::signature as sig;
        if let Ok(k) = aws_lc_rs::rsa::KeyPair::from_pkcs8(der) {
            return Some(Self::Rsa(k));
        }
        for alg in [
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
        ] {
            if let Ok(k) = sig::EcdsaKeyPair::from_pkcs8(alg, der) {
                return Some(Self::Ecdsa(k));
            }
        }
        None
    }

    /// Reads a PKCS#1 RSA key or a SEC1 EC key.
    pub fn from_legacy_der(der: &[u8]) -> Option<Self> {
        use aws_lc_rs::signature as sig;
        if let Ok(k) = aws_lc_rs::rsa::KeyPair::from_der(der) {
            return Some(Self::Rsa(k));
        }
        for alg in [
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
        ] {
            if let Ok(k) = sig::EcdsaKeyPair::from_private_key_der(alg, der) {
                return Some(Self::Ecdsa(k));
            }
        }
        None
    }

    /// The public key as a certificate's SubjectPublicKeyInfo holds it (the DER `RSAPublicKey`, or
    /// the uncompressed point), to check the key is the certificate's.
    pub fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        match self {
            Self::Rsa(k) => k.public_key().as_ref().to_vec(),
            Self::Ecdsa(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Answers `challenge` with a fresh nonce (SPIRE's `CalculateResponse`).
    pub fn respond(&self, challenge: &Challenge) -> Result<Response, RespondError> {
        let mut nonce = vec![0; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| RespondError::Sign)?;
        match self {
            Self::Rsa(key) => {
                let c = challenge.rsa_signature.as_ref().ok_or(RespondError::ExpectingRsa)?;
                let message = signed_message(&c.nonce, &nonce)?;
                const PSS_MAX: aws_lc_rs::signature::RsaSignatureEncoding = aws_lc_rs::signature::RSA_PSS_SHA256
                    .with_pss_salt_length(aws_lc_rs::signature::RsaPssSaltLength::Max);
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&PSS_MAX, &aws_lc_rs::rand::SystemRandom::new(), &message, &mut signature)
                    .map_err(|_| RespondError::Sign)?;
                Ok(Response { rsa_signature: Some(RsaSignatureResponse { nonce, signature }), ecdsa_signature: None })
            }
            Self::Ecdsa(key) => {
                let c = challenge.ecdsa_signature.as_ref().ok_or(RespondError::ExpectingEcdsa)?;
                let combined = combine_nonces(&c.nonce, &nonce)?;
                // Go signs the 32-byte digest as it is; zero-padded to the key's own digest length it
                // is the same integer.
                let alg = match self.public_key().len() {
                    65 => &digest::SHA256,
                    97 => &digest::SHA384,
                    _ => &digest::SHA512,
                };
                let mut padded = vec![0; alg.output_len() - combined.len()];
                padded.extend_from_slice(&combined);
                let d = digest::Digest::import_less_safe(&padded, alg).map_err(|_| RespondError::Sign)?;
                let fixed = key.sign_digest(&d).map_err(|_| RespondError::Sign)?;
                let (r, s) = fixed.as_ref().split_at(fixed.as_ref().len() / 2);
                let minimal = |v: &[u8]| v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..].to_vec();
                Ok(Response {
                    rsa_signature: None,
                    ecdsa_signature: Some(EcdsaSignatureResponse { nonce, r: minimal(r), s: minimal(s) }),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_spire_field_names() {
        let d = AttestationData { certificates: vec![vec![1, 2, 3], vec![0xff]] };
        assert_eq!(String::from_utf8(d.to_json()).unwrap(), r#"{"certificates":["AQID","/w=="]}"#);
        assert_eq!(AttestationData::from_json(&d.to_json()).unwrap(), d);
        assert!(AttestationData::from_json(br#"{"certificates":null}"#).unwrap().certificates.is_empty());
        assert!(AttestationData::from_json(br#"{"other":1}"#).unwrap().certificates.is_empty());
        assert!(AttestationData::from_json(br#"{"certificates":["!!"]}"#).is_err());
        assert!(AttestationData::from_json(b"nope").is_err());
    }

    #[test]
    fn challenge_and_response_are_spire_json() {
        let c = Challenge { rsa_signature: Some(NonceChallenge { nonce: vec![0; 2] }), ecdsa_signature: None };
        assert_eq!(
            String::from_utf8(c.to_json()).unwrap(),
            r#"{"rsa_signature":{"nonce":"AAA="},"ecdsa_signature":null}"#
        );
        // What SPIRE's server sends.
        let go = br#"{"rsa_signature":null,"ecdsa_signature":{"nonce":"AQ=="}}"#;
        assert_eq!(Challenge::from_json(go).unwrap().ecdsa_signature.unwrap().nonce, vec![1]);
        let r = Response {
            rsa_signature: None,
            ecdsa_signature: Some(EcdsaSignatureResponse { nonce: vec![1], r: vec![2], s: vec![3] }),
        };
        assert_eq!(
            String::from_utf8(r.to_json()).unwrap(),
            r#"{"rsa_signature":null,"ecdsa_signature":{"nonce":"AQ==","r":"Ag==","s":"Aw=="}}"#
        );
        assert_eq!(Response::from_json(&r.to_json()).unwrap(), r);
        let rsa = br#"{"rsa_signature":{"nonce":"AQ==","signature":"Ag=="}}"#;
        assert_eq!(Response::from_json(rsa).unwrap().rsa_signature.unwrap().signature, vec![2]);
    }

    #[test]
    fn nonces_are_checked_and_combined() {
        assert_eq!(signed_message(&[0; 31], &[0; 32]), Err(NonceError::Challenge));
        assert_eq!(signed_message(&[0; 32], &[0; 33]), Err(NonceError::Response));
        assert_eq!(NonceError::Challenge.to_string(), "invalid challenge nonce");
        let combined = combine_nonces(&[1; 32], &[2; 32]).unwrap();
        let expected = digest::digest(&digest::SHA256, &[[1u8; 32], [2u8; 32]].concat());
        assert_eq!(&combined[..], expected.as_ref());
    }

    #[test]
    fn fingerprints_and_serial_numbers() {
        // SHA-1 of "abc".
        assert_eq!(fingerprint(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(serial_number_hex(&[0x00, 0x0a, 0xbc]), "0abc");
        assert_eq!(serial_number_hex(&[0x01, 0x02]), "0102");
        assert_eq!(serial_number_hex(&[0x00]), "00");
        assert_eq!(serial_number_hex(&[0x7f, 0xff]), "7fff");
    }
}
