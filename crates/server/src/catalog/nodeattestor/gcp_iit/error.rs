//! Why a `gcp_iit` attestation is refused, with SPIRE v1.13.3's messages and status codes.

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// Google's certificates could not be fetched (SPIRE returns the bare error: code Unknown).
    #[error("{0}")]
    Keys(String),
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// Not a compact JWS with an allowed algorithm.
    #[error("unable to parse the identity token: {0}")]
    Parse(String),
    /// The signature does not verify with Google's key of that `kid`.
    #[error("failed to validate the identity token signature: {0}")]
    Signature(String),
    /// Audience or times.
    #[error("failed to validate the identity token claims: {0}")]
    Claims(String),
    /// The project is not in `projectid_allow_list`.
    #[error("identity token project ID {0:?} is not in the allow list")]
    Project(String),
    /// The template made an invalid agent ID.
    #[error("failed to create agent ID: {0}")]
    AgentId(String),
    /// instances.get failed.
    #[error("failed to fetch instance metadata: {0}")]
    InstanceMetadata(String),
    /// A metadata value is over `max_metadata_value_size`.
    #[error("metadata {key:?} exceeded value limit ({len} > {max})")]
    MetadataTooLarge {
        /// The item's key.
        key: String,
        /// Its value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::Keys(_) => Code::Unknown,
            Self::MissingPayload | Self::Parse(_) | Self::Signature(_) => Code::InvalidArgument,
            Self::Claims(_) | Self::Project(_) => Code::PermissionDenied,
            Self::AgentId(_) | Self::InstanceMetadata(_) | Self::MetadataTooLarge { .. } => Code::Internal,
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
        let s = Status::from(AttestError::Project("other".into()));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(s.message(), "nodeattestor(gcp_iit): identity token project ID \"other\" is not in the allow list");
        let s = Status::from(AttestError::MetadataTooLarge { key: "k".into(), len: 9, max: 4 });
        assert_eq!(
            (s.code(), s.message()),
            (Code::Internal, "nodeattestor(gcp_iit): metadata \"k\" exceeded value limit (9 > 4)")
        );
    }
}
