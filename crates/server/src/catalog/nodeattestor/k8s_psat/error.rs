//! Why a `k8s_psat` attestation is refused, with SPIRE v1.13.3's messages and status codes.
//!
//! The agent prints the message it gets back, so each one says what was wrong: the payload, the
//! cluster, the token as the API server judged it, or the pod and node it is bound to. Failures to
//! talk to the API server are `Internal` (the agent may retry); a token the server will not accept is
//! `PermissionDenied`; a malformed payload is `InvalidArgument`.

use tonic::{Code, Status};

use super::NAME;
use crate::catalog::nodeattestor::plugin_status;

/// Go's `%q` of a string.
pub(crate) fn q(s: &str) -> String {
    spire_cli::flags::go_quote(s)
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn q_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// A refused attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The payload is empty.
    #[error("missing attestation payload")]
    MissingPayload,
    /// The payload is not the JSON `{"cluster": ..., "token": ...}`.
    #[error("failed to unmarshal data payload: {0}")]
    BadPayload(String),
    /// The payload names no cluster.
    #[error("missing cluster in attestation data")]
    MissingCluster,
    /// The payload carries no token.
    #[error("missing token in attestation data")]
    MissingToken,
    /// The payload names a cluster the configuration does not have.
    #[error("not configured for cluster {}", q(.0))]
    UnknownCluster(String),
    /// The TokenReview could not be made, reported an error, or did not validate our audience.
    #[error("unable to validate token with TokenReview API: {0}")]
    TokenReview(String),
    /// The API server does not accept the token (expired, revoked, its pod deleted, wrong audience
    /// for an audience-unaware authenticator...).
    #[error("token not authenticated according to TokenReview API")]
    NotAuthenticated,
    /// The token's user is not a service account.
    #[error("fail to parse username from token review status: {0}")]
    Username(String),
    /// The token's service account is not on the cluster's allow list.
    #[error("{} is not an allowed service account", q(.0))]
    ServiceAccountNotAllowed(String),
    /// The token is not bound to exactly one named pod.
    #[error("fail to get pod name from token review status: {0}")]
    PodName(String),
    /// The token is not bound to exactly one pod UID.
    #[error("fail to get pod UID from token review status: {0}")]
    PodUid(String),
    /// The token's pod could not be read (deleted, or the API server unreachable).
    #[error("fail to get pod from k8s API server: {0}")]
    GetPod(String),
    /// A pod of that name exists but is not the one the token was issued to (it was recreated).
    #[error("pod UID mismatch for pod {} in cluster {}: token bound to pod UID {}", q(.pod), q(.cluster), q(.token_pod_uid))]
    PodUidMismatch {
        /// The pod name from the token.
        pod: String,
        /// The cluster from the payload.
        cluster: String,
        /// The pod UID from the token.
        token_pod_uid: String,
    },
    /// The pod's node could not be read (not scheduled, deleted, or the API server unreachable).
    #[error("fail to get node from k8s API server: {0}")]
    GetNode(String),
    /// The node object has no UID, so there is nothing to name the agent by.
    #[error("node UID is empty")]
    EmptyNodeUid,
    /// The agent ID built from the cluster name and node UID is not a valid SPIFFE ID.
    #[error("failed to create agent ID: {0}")]
    AgentId(String),
}

impl AttestError {
    /// The gRPC code SPIRE's plugin returns for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::MissingPayload
            | Self::BadPayload(_)
            | Self::MissingCluster
            | Self::MissingToken
            | Self::UnknownCluster(_) => Code::InvalidArgument,
            Self::NotAuthenticated | Self::ServiceAccountNotAllowed(_) | Self::PodUidMismatch { .. } => {
                Code::PermissionDenied
            }
            Self::TokenReview(_)
            | Self::Username(_)
            | Self::PodName(_)
            | Self::PodUid(_)
            | Self::GetPod(_)
            | Self::GetNode(_)
            | Self::EmptyNodeUid
            | Self::AgentId(_) => Code::Internal,
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
    fn go_quoting() {
        assert_eq!(q("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(q_list(&[]), "[]");
        assert_eq!(q_list(&["a".into(), "b c".into()]), r#"["a" "b c"]"#);
    }

    #[test]
    fn statuses_carry_spire_codes_and_the_plugin_prefix() {
        let s = Status::from(AttestError::UnknownCluster("x".into()));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "nodeattestor(k8s_psat): not configured for cluster \"x\"");
        let s = Status::from(AttestError::PodUidMismatch {
            pod: "p".into(),
            cluster: "c".into(),
            token_pod_uid: "u".into(),
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(
            s.message(),
            "nodeattestor(k8s_psat): pod UID mismatch for pod \"p\" in cluster \"c\": token bound to pod UID \"u\""
        );
        assert_eq!(Status::from(AttestError::EmptyNodeUid).code(), Code::Internal);
    }
}
