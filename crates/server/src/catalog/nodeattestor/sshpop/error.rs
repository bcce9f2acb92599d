//! Why an `sshpop` attestation is refused, with SPIRE v1.13.3's messages and status codes: SPIRE's
//! handshake answers every refusal with `Internal`, a missing payload with `InvalidArgument`.

use spire_attestation::sshpop::{CheckError, NonceError, VerifyError};
use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// The payload is not `{"Certificate": ...}`.
    #[error("failed to unmarshal data: {0}")]
    BadPayload(String),
    /// The payload holds no certificate.
    #[error("no certificate in response")]
    NoCertificate,
    /// The certificate is not an SSH key.
    #[error("failed to parse public key: {0}")]
    BadCertificate(String),
    /// A plain key where a certificate should be.
    #[error("pubkey in response is not a certificate")]
    NotCertificate,
    /// The certificate names no principal.
    #[error("cert has no valid principals")]
    NoPrincipals,
    /// Not a host certificate of a trusted CA valid now.
    #[error("failed to check host key: {0}")]
    HostKey(#[from] CheckError),
    /// The first principal is outside `canonical_domain`.
    #[error("failed to decanonicalize hostname: cert principal is not in domain {0:?}")]
    Domain(String),
    /// No randomness for the nonce.
    #[error("failed to generate nonce: {0}")]
    Nonce(String),
    /// The response is not JSON of the expected shape.
    #[error("failed to unmarshal challenge response: {0}")]
    BadResponse(String),
    /// The response's nonce is not 32 bytes.
    #[error("failed to combine nonces: {0}")]
    Combine(#[from] NonceError),
    /// The signature is not the host key's over both nonces.
    #[error("failed to verify signature: {0}")]
    Signature(#[from] VerifyError),
    /// The agent path template made no valid agent ID.
    #[error("failed to create AgentID: {0}")]
    AgentId(String),
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::MissingPayload => Code::InvalidArgument,
            _ => Code::Internal,
        }
    }
}

impl From<AttestError> for Status {
    fn from(e: AttestError) -> Self {
        plugin_status(NAME, e.code(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_spire_codes_and_the_plugin_prefix() {
        let s = Status::from(AttestError::HostKey(CheckError::Expired));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "nodeattestor(sshpop): failed to check host key: ssh: cert has expired");
        assert_eq!(Status::from(AttestError::MissingPayload).code(), Code::InvalidArgument);
        assert_eq!(
            AttestError::Domain(".example.org".into()).to_string(),
            "failed to decanonicalize hostname: cert principal is not in domain \".example.org\""
        );
    }
}
