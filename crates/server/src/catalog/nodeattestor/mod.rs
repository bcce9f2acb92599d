//! NodeAttestor plugins: how the server decides which agent is calling AttestAgent, before that agent
//! has any SVID.
//!
//! Each attestor turns the agent's attestation payload (and, for challenge-response attestors, its
//! answers to challenges) into an agent ID, node selectors and whether the agent may re-attest. The
//! Agent service owns the gRPC stream and the SVID; attestors only judge evidence, one module per
//! plugin, as in SPIRE's `pkg/server/plugin/nodeattestor/<name>`.

pub mod agent_path_template;
pub mod agent_store;
pub mod aws_iid;
pub mod azure_msi;
pub mod cloud_http;
pub mod gcp_iit;
pub mod http_challenge;
pub mod join_token;
pub mod jose;
pub mod k8s_psat;
pub mod sshpop;
pub mod tpm_devid;
pub mod x509pop;

pub use agent_store::{AgentStore, DataStoreAgentStore, ensure_not_attested};
pub use aws_iid::AwsIidAttestor;
pub use azure_msi::AzureMsiAttestor;
pub use gcp_iit::GcpIitAttestor;
pub use http_challenge::HttpChallengeAttestor;
pub use join_token::JoinTokenAttestor;
pub use k8s_psat::K8sPsatAttestor;
pub use sshpop::SshPopAttestor;
pub use tpm_devid::TpmDevIdAttestor;
pub use x509pop::X509PopAttestor;

use std::collections::BTreeMap;
use std::sync::Arc;

use spire_identity::SpiffeId;
use tonic::Status;

/// What a successful attestation establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestResult {
    /// The agent's SPIFFE ID, normally `spiffe://<td>/spire/agent/<plugin>/...`.
    pub agent_id: SpiffeId,
    /// Selector *values*; the host adds the plugin name as their type, as SPIRE does, so a plugin
    /// cannot mint selectors in another plugin's namespace.
    pub selector_values: Vec<String>,
    /// Whether the agent renews its SVID by attesting again (otherwise with RenewAgent).
    pub can_reattest: bool,
}

/// The agent's side of a challenge-response exchange, as the Agent service relays it on the
/// AttestAgent stream.
#[async_trait::async_trait]
pub trait Challenger: Send {
    /// Sends `challenge` to the agent and returns its response.
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status>;
}

/// A server-side node attestor. Errors are gRPC statuses because SPIRE hands the plugin's status
/// (code and message) back to the agent unchanged.
#[async_trait::async_trait]
pub trait NodeAttestor: Send + Sync + std::fmt::Debug {
    /// The plugin name: the `AttestationData.type` it handles and the type of the selectors it
    /// produces.
    fn name(&self) -> &str;

    /// Judges `payload`, challenging the agent through `challenger` if the plugin needs to.
    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status>;
}

/// A plugin's refusal as SPIRE's plugin facade hands it to the Agent service: the code kept and the
/// message prefixed with `nodeattestor(<plugin>): `, so that the agent's log says which attestor
/// refused. (`join_token` lives inside SPIRE's Agent service and has no prefix.)
pub fn plugin_status(plugin: &str, code: tonic::Code, message: impl std::fmt::Display) -> Status {
    Status::new(code, format!("nodeattestor({plugin}): {message}"))
}

/// The configured attestors, by name.
#[derive(Debug, Clone, Default)]
pub struct NodeAttestors {
    by_name: BTreeMap<String, Arc<dyn NodeAttestor>>,
}

impl NodeAttestors {
    /// No attestors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an attestor under its name.
    pub fn register(&mut self, attestor: Arc<dyn NodeAttestor>) {
        self.by_name.insert(attestor.name().to_owned(), attestor);
    }

    /// The attestor for an `AttestationData.type`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeAttestor>> {
        self.by_name.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// A `NodeAttestor "<name>"` block with `data` as its `plugin_data`, for the plugins' tests.
#[cfg(test)]
pub(crate) fn test_plugin(name: &str, data: &str) -> spire_config::PluginConfig {
    spire_config::PluginConfig::built_in("NodeAttestor", name, data).expect("test plugin data parses")
}
