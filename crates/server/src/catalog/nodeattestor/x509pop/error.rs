//! Why an `x509pop` attestation is refused, with SPIRE v1.13.3's messages and status codes.

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// The payload is not `{"certificates": [...]}`.
    #[error("failed to unmarshal data: {0}")]
    BadPayload(String),
    /// The payload holds no certificate.
    #[error("no certificate to attest")]
    NoCertificate,
    /// More intermediates than `max_intermediates`.
    #[error("too many intermediate certificates")]
    TooManyIntermediates,
    /// The leaf's RSA key is larger than `max_rsa_key_size`.
    #[error("leaf certificate key size too large")]
    LeafKeyTooLarge,
    /// An intermediate's RSA key is larger than `max_rsa_key_size` (index among the intermediates).
    #[error("intermediate certificate {0} key size too large")]
    IntermediateKeyTooLarge(usize),
    /// The first certificate is not X.509 DER.
    #[error("unable to parse leaf certificate: {0}")]
    BadLeaf(String),
    /// An intermediate is not X.509 DER (index among the intermediates).
    #[error("unable to parse intermediate certificate {0}: {1}")]
    BadIntermediate(usize, String),
    /// `spiffe` mode: the server's bundle could not be read.
    #[error("failed to get trust bundle: {0}")]
    TrustBundle(String),
    /// `spiffe` mode: the leaf has no SPIFFE ID.
    #[error("valid SVID x509 cert not found")]
    NoSvid,
    /// `spiffe` mode: the leaf's SPIFFE ID is of another trust domain (a check SPIRE lacks).
    #[error("x509 cert SPIFFE ID is not in trust domain {0:?}")]
    SvidTrustDomain(String),
    /// `spiffe` mode: the leaf's SPIFFE ID is not under the configured prefix.
    #[error("x509 cert doesnt match SVID prefix")]
    SvidPrefix,
    /// The chain does not lead to a trusted CA, or a certificate is expired or not yet valid.
    #[error("certificate verification failed: {0}")]
    Verification(String),
    /// The leaf cannot sign (no digitalSignature key usage) or has a key we cannot challenge.
    #[error("unable to generate challenge: {0}")]
    Challenge(String),
    /// The response is not JSON of the expected shape.
    #[error("unable to unmarshal challenge response: {0}")]
    BadResponse(String),
    /// The response does not prove possession of the leaf's key.
    #[error("challenge response verification failed: {0}")]
    ResponseVerification(String),
    /// The agent path template made an invalid agent ID.
    #[error("failed to make spiffe id: {0}")]
    AgentId(String),
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::MissingPayload
            | Self::BadPayload(_)
            | Self::NoCertificate
            | Self::BadLeaf(_)
            | Self::BadIntermediate(..)
            | Self::BadResponse(_)
            | Self::TooManyIntermediates
            | Self::LeafKeyTooLarge
            | Self::IntermediateKeyTooLarge(_) => Code::InvalidArgument,
            Self::Verification(_)
            | Self::ResponseVerification(_)
            | Self::NoSvid
            | Self::SvidPrefix
            | Self::SvidTrustDomain(_) => Code::PermissionDenied,
            Self::Challenge(_) | Self::AgentId(_) | Self::TrustBundle(_) => Code::Internal,
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
        let s = Status::from(AttestError::Verification("x509: certificate signed by unknown authority".into()));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(
            s.message(),
            "nodeattestor(x509pop): certificate verification failed: x509: certificate signed by unknown authority"
        );
        assert_eq!(Status::from(AttestError::NoCertificate).code(), Code::InvalidArgument);
        assert_eq!(Status::from(AttestError::AgentId("x".into())).code(), Code::Internal);
    }
}
