//! The built-in `join_token` attestor: the agent presents a single-use secret an admin created with
//! CreateJoinToken (`spire-server token generate`).
//!
//! SPIRE runs this inside its Agent service rather than as a plugin, and it is always available
//! whether or not a `NodeAttestor "join_token"` block is configured; the Agent service registers it
//! the same way. The token is deleted *before* its expiry is checked, so an expired token is gone
//! after one try, like a used one.

use std::sync::Arc;
use std::time::SystemTime;

use spire_datastore::DataStore;
use spire_identity::{SpiffeId, TrustDomain};
use tonic::Status;

use super::{AttestResult, Challenger, NodeAttestor};
use crate::api::ds_status;

/// The attestation type and plugin name.
pub const NAME: &str = "join_token";

/// What the agent hears about a token that is unknown or already consumed (the two are not told
/// apart, so the answer does not reveal which tokens once existed).
pub const UNKNOWN_TOKEN: &str = "failed to attest: join token does not exist or has already been used";

/// Whether `token` can be the last segment of an agent ID: SPIFFE path segment characters only.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token != "."
        && token != ".."
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The agent ID a token attests to: `spiffe://<td>/spire/agent/join_token/<token>`.
pub fn agent_id(trust_domain: &TrustDomain, token: &str) -> Result<SpiffeId, String> {
    if !valid_token(token) {
        return Err(format!(
            "token {token:?} is not a valid SPIFFE ID path segment: use letters, digits, '.', '-' and '_'"
        ));
    }
    trust_domain.id_with_path(&format!("/spire/agent/{NAME}/{token}")).map_err(|e| e.to_string())
}

/// Attests agents by join token.
#[derive(Clone)]
pub struct JoinTokenAttestor {
    trust_domain: TrustDomain,
    ds: Arc<dyn DataStore>,
}

impl std::fmt::Debug for JoinTokenAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokenAttestor").field("trust_domain", &self.trust_domain).finish_non_exhaustive()
    }
}

impl JoinTokenAttestor {
    /// An attestor consuming tokens from `ds`.
    pub fn new(trust_domain: TrustDomain, ds: Arc<dyn DataStore>) -> Self {
        Self { trust_domain, ds }
    }
}

#[async_trait::async_trait]
impl NodeAttestor for JoinTokenAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], _challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        // A token that is not UTF-8 (or not a valid path segment) was never issued.
        let token = match std::str::from_utf8(payload) {
            Ok(t) if valid_token(t) => t,
            _ => return Err(Status::invalid_argument(UNKNOWN_TOKEN)),
        };
        let stored = self.ds.fetch_join_token(token).await.map_err(|e| internal("failed to fetch join token", e))?;
        let Some(stored) = stored else {
            return Err(Status::invalid_argument(UNKNOWN_TOKEN));
        };
        // Only the caller whose delete removed the row may use it: concurrent attempts with one token
        // see `false` here.
        let deleted = self.ds.delete_join_token(token).await.map_err(|e| internal("failed to delete join token", e))?;
        if !deleted {
            return Err(Status::invalid_argument(UNKNOWN_TOKEN));
        }
        if stored.expires_at < crate::ca::signer::unix(SystemTime::now()) {
            return Err(Status::invalid_argument("join token expired"));
        }
        let agent_id = agent_id(&self.trust_domain, token)
            .map_err(|m| Status::internal(format!("failed to create join token ID: {m}")))?;
        Ok(AttestResult { agent_id, selector_values: Vec::new(), can_reattest: false })
    }
}

fn internal(what: &str, e: spire_datastore::DataStoreError) -> Status {
    let s = ds_status(e);
    Status::new(s.code(), format!("{what}: {}", s.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_one_path_segment() {
        assert!(valid_token("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(valid_token("my_token.v1"));
        for bad in ["", ".", "..", "a/b", "a b", "tök"] {
            assert!(!valid_token(bad), "{bad:?}");
        }
        let td = TrustDomain::parse("example.org").unwrap();
        assert_eq!(agent_id(&td, "abc").unwrap().to_string(), "spiffe://example.org/spire/agent/join_token/abc");
        assert!(agent_id(&td, "a/b").unwrap_err().contains("path segment"));
    }
}
