//! Why an `azure_msi` attestation is refused, with SPIRE v1.13.3's messages and status codes.

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// Not `{"token": ...}`.
    #[error("failed to unmarshal data payload: {0}")]
    BadPayload(String),
    /// The token is empty.
    #[error("missing token from attestation data")]
    MissingToken,
    /// The tenant's keys could not be had.
    #[error("unable to obtain JWKS: {0}")]
    Keys(String),
    /// Not a compact JWS with an allowed algorithm.
    #[error("unable to parse token: {0}")]
    Parse(String),
    /// No `kid` in the header.
    #[error("token missing key id")]
    MissingKeyId,
    /// No published key has the token's `kid`.
    #[error("key id {0:?} not found")]
    UnknownKeyId(String),
    /// The signature does not verify, or the claims are not JSON.
    #[error("unable to verify token: {0}")]
    Verify(String),
    /// No `tid`.
    #[error("token missing tenant ID claim")]
    MissingTenant,
    /// No `sub`.
    #[error("token missing subject claim")]
    MissingSubject,
    /// The template made an invalid agent ID.
    #[error("unable to make agent ID: {0}")]
    AgentId(String),
    /// The tenant is not configured.
    #[error("tenant {0:?} is not authorized")]
    Tenant(String),
    /// Audience or times (5 minutes' leeway).
    #[error("unable to validate token claims: {0}")]
    Claims(String),
    /// The resolver could not find the principal's VM.
    #[error("unable to get resource for principal {principal:?}: {reason}")]
    Resource {
        /// The token's `sub`.
        principal: String,
        /// Why.
        reason: String,
    },
    /// A resource ID is not of the expected form (SPIRE's `malformed ... ID` texts).
    #[error("{0}")]
    MalformedId(String),
    /// The VM could not be read.
    #[error("unable to get virtual machine {name:?}: {reason}")]
    VirtualMachine {
        /// `<group>:<name>`.
        name: String,
        /// Why.
        reason: String,
    },
    /// A network interface could not be read.
    #[error("unable to get network interface {name:?}: {reason}")]
    NetworkInterface {
        /// `<group>:<name>`.
        name: String,
        /// Why.
        reason: String,
    },
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::MissingPayload
            | Self::BadPayload(_)
            | Self::MissingToken
            | Self::Parse(_)
            | Self::MissingKeyId
            | Self::UnknownKeyId(_)
            | Self::Verify(_) => Code::InvalidArgument,
            Self::Tenant(_) => Code::PermissionDenied,
            _ => Code::Internal,
        }
    }
}

impl From<AttestError> for Status {
    fn from(e: AttestError) -> Self {
        plugin_status(NAME, e.code(), e)
    }
}
