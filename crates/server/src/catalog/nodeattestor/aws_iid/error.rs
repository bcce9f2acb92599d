//! Why an `aws_iid` attestation is refused, with SPIRE v1.13.3's messages and status codes.
//!
//! A payload or signature that does not hold is `InvalidArgument`; failures of the AWS lookups,
//! and what they find wrong with the instance, are `Internal` (SPIRE's choice, kept so agents and
//! scripts see the same codes); a replayed document is `PermissionDenied`.

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

fn q(s: &str) -> String {
    spire_cli::flags::go_quote(s)
}

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// The payload is not `{"document": ..., "signature": ..., "rsa2048": ...}`.
    #[error("failed to unmarshal the attestation data: {0}")]
    BadPayload(String),
    /// The document is not an instance identity document.
    #[error("failed to unmarshal the IID: {0}")]
    BadDocument(String),
    /// Neither signature was sent.
    #[error("instance identity cryptographic signature is required")]
    MissingSignature,
    /// No AWS certificate for the document's region (or the test certificates do not read).
    #[error("failed to load the AWS CA certificate for region {}: {reason}", q(.region))]
    CaCertificate {
        /// The document's region.
        region: String,
        /// Why.
        reason: String,
    },
    /// The RSA-1024 signature is not base64 or does not verify. SPIRE wraps a gRPC status in
    /// another here, so its message starts with `rpc error: code = InvalidArgument desc = `; kept.
    #[error("rpc error: code = InvalidArgument desc = {0}")]
    Rsa1024(String),
    /// The RSA-2048 signature is not base64.
    #[error("failed to decode the instance identity cryptographic signature")]
    Pkcs7Decode,
    /// The RSA-2048 signature is not a PKCS#7 SignedData.
    #[error("failed to parse the instance identity cryptographic signature: {0}")]
    Pkcs7Parse(String),
    /// The RSA-2048 signature does not verify with AWS's certificate.
    #[error("failed verification of instance identity cryptographic signature: {0}")]
    Pkcs7Verify(String),
    /// The PKCS#7 signature verifies, but over another document than the one sent (ours: SPIRE
    /// does not compare them).
    #[error("the instance identity document is not the one the signature covers")]
    DocumentMismatch,
    /// The AWS clients for the document's account and region could not be made.
    #[error("failed to get client: {0}")]
    Client(String),
    /// DescribeInstances failed (the instance is unknown to EC2 in that account and region, or EC2
    /// is unreachable).
    #[error("failed to describe instance: {0}")]
    DescribeInstance(String),
    /// DescribeInstances found no pending or running instance.
    #[error("failed to query AWS via describe-instances: returned no {0}")]
    NoInstance(&'static str),
    /// The root volume check failed.
    #[error("failed aws ec2 attestation: {0}")]
    BlockDevice(String),
    /// The agent path template gave no valid agent ID.
    #[error("failed to create spiffe ID: {0}")]
    AgentId(String),
    /// The instance profile ARN does not parse.
    #[error("failed to parse {0}")]
    ProfileArn(String),
    /// The ARN is not an instance profile's.
    #[error("arn is not for an instance profile")]
    NotInstanceProfile,
    /// GetInstanceProfile failed (SPIRE's spelling).
    #[error("failed to get intance profile: {0}")]
    GetInstanceProfile(String),
    /// The agent ID is already attested: the document was used before.
    #[error("{}", crate::catalog::nodeattestor::agent_store::ALREADY_ATTESTED)]
    AlreadyAttested,
    /// The datastore could not say whether the agent is attested.
    #[error("{0}")]
    Store(String),
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::MissingPayload
            | Self::BadPayload(_)
            | Self::BadDocument(_)
            | Self::MissingSignature
            | Self::Rsa1024(_)
            | Self::Pkcs7Decode
            | Self::Pkcs7Parse(_)
            | Self::Pkcs7Verify(_)
            | Self::DocumentMismatch => Code::InvalidArgument,
            Self::AlreadyAttested => Code::PermissionDenied,
            Self::CaCertificate { .. }
            | Self::Client(_)
            | Self::DescribeInstance(_)
            | Self::NoInstance(_)
            | Self::BlockDevice(_)
            | Self::AgentId(_)
            | Self::ProfileArn(_)
            | Self::NotInstanceProfile
            | Self::GetInstanceProfile(_)
            | Self::Store(_) => Code::Internal,
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
        let s = Status::from(AttestError::AlreadyAttested);
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(s.message(), "nodeattestor(aws_iid): attestation data has already been used to attest an agent");
        let s = Status::from(AttestError::CaCertificate {
            region: "mars-1".into(),
            reason: "unsupported region \"mars-1\"".into(),
        });
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(
            s.message(),
            "nodeattestor(aws_iid): failed to load the AWS CA certificate for region \"mars-1\": unsupported region \"mars-1\""
        );
        assert_eq!(Status::from(AttestError::Pkcs7Decode).code(), Code::InvalidArgument);
    }
}
