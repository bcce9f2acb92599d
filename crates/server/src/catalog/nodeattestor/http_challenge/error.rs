//! Why an `http_challenge` attestation is refused, with SPIRE v1.13.3's messages and status codes.

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// The payload is not `{"hostname": …, "agentname": …, "port": …}`.
    #[error("failed to unmarshal data: {0}")]
    BadPayload(String),
    /// The advertised port is not `required_port`.
    #[error("port {0} is not allowed to be used by this server")]
    PortNotRequired(i64),
    /// The advertised port is 1024 or more and `allow_non_root_ports` is false.
    #[error("port {0} is not allowed to be >= 1024")]
    NonRootPort(i64),
    /// The agent name does not match SPIRE's pattern or is longer than 32 bytes.
    #[error("agent name is not valid")]
    AgentName,
    /// The host name is `localhost`.
    #[error("you can not use localhost as a hostname")]
    Localhost,
    /// The host name matches none of `allowed_dns_patterns`.
    #[error("the requested hostname is not allowed to connect")]
    HostNotAllowed,
    /// The nonce could not be fetched back from the agent, or was not the one sent.
    #[error("challenge verification failed: {0}")]
    Verification(String),
    /// The host name does not make a valid agent ID.
    #[error("failed to make spiffe id: {0}")]
    AgentId(String),
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::MissingPayload
            | Self::BadPayload(_)
            | Self::PortNotRequired(_)
            | Self::NonRootPort(_)
            | Self::AgentName => Code::InvalidArgument,
            Self::Localhost | Self::HostNotAllowed | Self::Verification(_) => Code::PermissionDenied,
            Self::AgentId(_) => Code::Internal,
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
        let s = Status::from(AttestError::HostNotAllowed);
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(s.message(), "nodeattestor(http_challenge): the requested hostname is not allowed to connect");
        let s = Status::from(AttestError::NonRootPort(8080));
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "nodeattestor(http_challenge): port 8080 is not allowed to be >= 1024")
        );
        assert_eq!(Status::from(AttestError::AgentId("x".into())).code(), Code::Internal);
    }
}
