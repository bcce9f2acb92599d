//! External plugins (`plugin_cmd`): spire-plugin-sdk plugins run by `spire-plugin-host`, each behind
//! the same trait as the agent's built-in plugins of its type, so the rest of the agent cannot tell
//! them apart.
//!
//! One module per plugin type, each a facade from our trait to the SDK's service with SPIRE's
//! `<type>(<name>): ` prefix on the plugin's errors (`spire_plugin_host::facade_status`):
//! - [`node_attestor`], `AidAttestation`: one plugin stream per attestation attempt;
//! - [`workload_attestor`], `Attest(pid)`;
//! - an agent KeyManager (`spire_plugin_host::keymanager::AgentKeyManager`, shared with the
//!   server): `GenerateKey`, `GetPublicKey`, `SignData` for the agent SVID's key, which never leaves
//!   the plugin.
//!
//! [`ExternalPlugins`] owns the processes: the agent's start puts every plugin there, and stopping
//! the agent stops them. The host services offered are `Metrics` (SPIRE's agent offers no other).
//! A plugin that dies after start is logged by the host; its calls then fail with `Unavailable`
//! and the agent keeps running, as SPIRE's does.

pub mod node_attestor;
pub mod workload_attestor;

use spire_plugin_host::{HostServices, PluginError, PluginMetrics};
use tonic::transport::Channel;

pub use node_attestor::ExternalNodeAttestor;
pub use spire_plugin_host::ExternalConfig;
pub use spire_plugin_host::keymanager::AgentKeyManager as ExternalKeyManager;
pub use workload_attestor::ExternalWorkloadAttestor;

/// The SDK service an agent NodeAttestor plugin must serve.
pub const NODE_ATTESTOR_SERVICE: &str = "spire.plugin.agent.nodeattestor.v1.NodeAttestor";
/// The SDK service an agent WorkloadAttestor plugin must serve.
pub const WORKLOAD_ATTESTOR_SERVICE: &str = "spire.plugin.agent.workloadattestor.v1.WorkloadAttestor";
/// The SDK service an agent KeyManager plugin must serve.
pub const KEY_MANAGER_SERVICE: &str = spire_plugin_host::keymanager::AGENT_SERVICE;

/// The agent's running external plugins (spire-plugin-host's catalog), offered the one host
/// service SPIRE's agent has, `Metrics`; stopped together.
#[derive(Debug, Default)]
pub struct ExternalPlugins {
    running: spire_plugin_host::ExternalPlugins,
    metrics: PluginMetrics,
}

impl ExternalPlugins {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the plugins reported through the Metrics host service.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// Starts, binds and configures `plugin`; see [`spire_plugin_host::ExternalPlugins::start`].
    pub async fn start(
        &self,
        plugin: &ExternalConfig,
        trust_domain: &str,
        service: &str,
    ) -> Result<Channel, PluginError> {
        let host = HostServices::new().with(self.metrics.service());
        self.running.start(plugin, trust_domain, service, host).await
    }

    /// Runs `plugin`'s Validate (`spire-agent validate`); returns its notes.
    pub async fn validate(
        plugin: &ExternalConfig,
        trust_domain: &str,
        service: &str,
    ) -> Result<Vec<String>, PluginError> {
        let host = HostServices::new().with(PluginMetrics::new().service());
        spire_plugin_host::ExternalPlugins::validate(plugin, trust_domain, service, host).await
    }

    /// Stops every plugin.
    pub async fn shutdown(&self) {
        self.running.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
