//! `sshpop`: the agent sends its SSH host certificate; the server checks that a trusted CA signed
//! it for a host and that it is valid now, then challenges the agent to prove it holds the host
//! key (SPIRE's `pkg/common/plugin/sshpop`).
//!
//! The exchange: payload `{"Certificate":<cert>}`, challenge `{"Nonce":<32 bytes>}`, response
//! `{"Nonce":<32 bytes>,"Signature":{"Format","Blob","Rest"}}` where the signature is an SSH
//! signature by the host key over `SHA256(challenge nonce || response nonce)`. [`wire`] holds the
//! JSON, [`key`] the signatures, [`cert`] the certificate checks, [`ssh`] the SSH wire format.

pub mod cert;
pub mod key;
pub mod ssh;
pub mod wire;

pub use cert::{Authorities, AuthorityError, CheckError, HostCertificate, ParseError};
pub use key::{HostKey, KeyError, SignError, VerifyError};
pub use wire::{AttestationData, Challenge, DecodeError, Response, SshSignature};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "sshpop";

/// The length of both nonces.
pub const NONCE_LEN: usize = 32;

/// SPIRE's agent default for `host_key_path`.
pub const DEFAULT_HOST_KEY_PATH: &str = "/etc/ssh/ssh_host_rsa_key";

/// SPIRE's agent default for `host_cert_path`.
pub const DEFAULT_HOST_CERT_PATH: &str = "/etc/ssh/ssh_host_rsa_key-cert.pub";

/// A nonce of the wrong length (SPIRE's messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The challenger's nonce.
    #[error("invalid challenge nonce size")]
    Challenge,
    /// The responder's nonce.
    #[error("invalid response nonce size")]
    Response,
}

/// `SHA256(challenge || response)` after checking both lengths (SPIRE's `combineNonces`).
pub fn combine_nonces(challenge: &[u8], response: &[u8]) -> Result<[u8; 32], NonceError> {
    if challenge.len() != NONCE_LEN {
        return Err(NonceError::Challenge);
    }
    if response.len() != NONCE_LEN {
        return Err(NonceError::Response);
    }
    Ok(key::combined_digest(challenge, response))
}

/// A fresh random nonce.
pub fn new_nonce() -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let mut nonce = vec![0; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)?;
    Ok(nonce)
}

/// Why the agent could not answer a challenge (SPIRE's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// The challenge is not JSON of the expected shape.
    #[error("failed to unmarshal challenge request: {0}")]
    Decode(#[from] DecodeError),
    /// No randomness.
    #[error("failed to generate nonce")]
    Nonce,
    /// The server's nonce is not 32 bytes.
    #[error("failed to combine nonces: {0}")]
    Combine(#[from] NonceError),
    /// The key could not sign.
    #[error("failed to sign data: {0}")]
    Sign(#[from] SignError),
}

/// The agent's answer to a challenge body (SPIRE's `RespondToChallenge`).
pub fn respond(key: &HostKey, challenge: &[u8]) -> Result<Vec<u8>, RespondError> {
    let challenge = Challenge::from_json(challenge)?;
    let nonce = new_nonce().map_err(|_| RespondError::Nonce)?;
    let digest = combine_nonces(&challenge.nonce, &nonce)?;
    let signature = key.sign(&digest)?;
    Ok(Response { nonce, signature: Some(signature) }.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_checked_and_combined() {
        assert_eq!(combine_nonces(&[0; 31], &[0; 32]), Err(NonceError::Challenge));
        assert_eq!(combine_nonces(&[0; 32], &[0; 33]), Err(NonceError::Response));
        assert_eq!(NonceError::Response.to_string(), "invalid response nonce size");
        let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &[[1u8; 32], [2u8; 32]].concat());
        assert_eq!(&combine_nonces(&[1; 32], &[2; 32]).unwrap()[..], expected.as_ref());
        assert_eq!(new_nonce().unwrap().len(), NONCE_LEN);
    }

    #[test]
    fn a_response_verifies_against_the_key() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = HostKey::Ed25519(aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap());
        let challenge = Challenge { nonce: vec![9; 32] };
        let response = Response::from_json(&respond(&key, &challenge.to_json()).unwrap()).unwrap();
        let digest = combine_nonces(&challenge.nonce, &response.nonce).unwrap();
        key::verify(&key.public_key(), &digest, &response.signature.unwrap()).unwrap();
        let err = respond(&key, br#"{"Nonce":"AQ=="}"#).unwrap_err();
        assert_eq!(err.to_string(), "failed to combine nonces: invalid challenge nonce size");
        assert!(respond(&key, b"{").unwrap_err().to_string().starts_with("failed to unmarshal challenge request: "));
    }
}
