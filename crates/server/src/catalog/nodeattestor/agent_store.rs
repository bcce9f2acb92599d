//! SPIRE's `AgentStore` host service, as the trust-on-first-use attestors use it: a cloud instance
//! identity document (`aws_iid`, `gcp_iit`, `azure_msi`) or an `http_challenge` with `tofu` can be
//! replayed by anyone who saw it once, so such an attestor refuses an agent ID that is already
//! attested, and the operator must evict the agent (`spire-server agent evict`) before the node
//! attests again.

use std::sync::Arc;

use spire_datastore::DataStore;
use spire_identity::SpiffeId;
use tonic::Status;

/// SPIRE's refusal of a second attestation with the same evidence (`agentstore.EnsureNotAttested`).
pub const ALREADY_ATTESTED: &str = "attestation data has already been used to attest an agent";

/// What the attestors may ask about agents already attested.
#[async_trait::async_trait]
pub trait AgentStore: Send + Sync + std::fmt::Debug {
    /// Whether an attested node with this ID exists (banned or not).
    async fn is_attested(&self, agent_id: &SpiffeId) -> Result<bool, Status>;
}

/// Refuses (PermissionDenied, SPIRE's words) an agent ID that is already attested.
pub async fn ensure_not_attested(store: &dyn AgentStore, agent_id: &SpiffeId) -> Result<(), Status> {
    if store.is_attested(agent_id).await? { Err(Status::permission_denied(ALREADY_ATTESTED)) } else { Ok(()) }
}

/// The store backed by the server's datastore.
pub struct DataStoreAgentStore(pub Arc<dyn DataStore>);

impl std::fmt::Debug for DataStoreAgentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataStoreAgentStore")
    }
}

#[async_trait::async_trait]
impl AgentStore for DataStoreAgentStore {
    async fn is_attested(&self, agent_id: &SpiffeId) -> Result<bool, Status> {
        match self.0.fetch_attested_node(agent_id).await {
            Ok(node) => Ok(node.is_some()),
            Err(e) => Err(Status::internal(format!("unable to get agent info: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_datastore::{AttestedNode, SqlStore, SqliteOptions};

    #[tokio::test]
    async fn a_second_attestation_of_the_same_agent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.sqlite3");
        let ds: Arc<dyn DataStore> =
            Arc::new(SqlStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
        let store = DataStoreAgentStore(ds.clone());
        let id = SpiffeId::parse("spiffe://example.org/spire/agent/aws_iid/1/r/i-1").unwrap();
        ensure_not_attested(&store, &id).await.unwrap();
        ds.create_attested_node(AttestedNode::new(id.clone(), String::from("aws_iid"))).await.unwrap();
        let refused = ensure_not_attested(&store, &id).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(refused.message(), ALREADY_ATTESTED);
    }
}
