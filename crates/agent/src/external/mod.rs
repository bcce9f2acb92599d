//! External plugins (`plugin_cmd`): spire-plugin-sdk plugins run by `spire-plugin-host`, each behind
//! the same trait as the agent's built-in plugins of its type, so the rest of the agent cannot tell
//! them apart.
//!
//! One module per plugin type, each a facade from our trait to the SDK's service with SPIRE's
//! `<type>(<name>): ` prefix on the plugin's errors ([`wrap_status`]):
//! - [`node_attestor`], `AidAttestation`: one plugin stream per attestation attempt;
//! - [`workload_attestor`], `Attest(pid)`;
//! - [`key_manager`], an agent KeyManager: `GenerateKey`, `GetPublicKey`, `SignData` for the agent
//!   SVID's key, which never leaves the plugin.
//!
//! [`ExternalPlugins`] owns the processes: the agent's start puts every plugin there, and stopping
//! the agent stops them. The host services offered are `Metrics` (SPIRE's agent offers no other).
//! A plugin that dies after start is logged by the host; its calls then fail with `Unavailable`
//! and the agent keeps running, as SPIRE's does.

pub mod key_manager;
pub mod node_attestor;
pub mod workload_attestor;

use spire_config::PluginConfig;
use spire_plugin_host::{ExternalPlugin, HostServices, PluginError, PluginMetrics, Spec, Timeouts};
use tokio::sync::Mutex;
use tonic::transport::Channel;

pub use key_manager::ExternalKeyManager;
pub use node_attestor::ExternalNodeAttestor;
pub use workload_attestor::ExternalWorkloadAttestor;

/// The SDK service an agent NodeAttestor plugin must serve.
pub const NODE_ATTESTOR_SERVICE: &str = "spire.plugin.agent.nodeattestor.v1.NodeAttestor";
/// The SDK service an agent WorkloadAttestor plugin must serve.
pub const WORKLOAD_ATTESTOR_SERVICE: &str = "spire.plugin.agent.workloadattestor.v1.WorkloadAttestor";
/// The SDK service an agent KeyManager plugin must serve.
pub const KEY_MANAGER_SERVICE: &str = "spire.plugin.agent.keymanager.v1.KeyManager";

/// A `plugin_cmd` block, decoded: its configuration and the data its `Configure` gets (read once,
/// with the rest of the configuration, so that `validate` and `run` read the same).
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    /// The block.
    pub config: PluginConfig,
    /// `plugin_data` as HCL text, or the content of `plugin_data_file`.
    pub data: String,
}

impl ExternalConfig {
    /// `config` if it declares an external plugin (`plugin_cmd`), whatever its name, as in SPIRE.
    pub fn from_plugin(config: &PluginConfig) -> Option<Result<Self, PluginError>> {
        config.plugin_cmd.as_ref()?;
        Some(config.data_text().map(|data| Self { config: config.clone(), data }).map_err(|e| PluginError::Configure {
            name: config.name.clone(),
            message: format!("failed to load plugin data: {e}"),
        }))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn spec(&self) -> Spec {
        Spec::from_config(&self.config).expect("an ExternalConfig has a plugin_cmd")
    }
}

/// The agent's running external plugins, stopped together.
#[derive(Debug, Default)]
pub struct ExternalPlugins {
    running: Mutex<Vec<ExternalPlugin>>,
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

    /// Starts `plugin`, binds it to `service` (the SDK service its type needs), configures it for
    /// `trust_domain`, and keeps it; returns the channel its facade uses. A plugin that fails any
    /// step is logged as SPIRE's catalog logs it, stopped, and the error names it.
    pub async fn start(
        &self,
        plugin: &ExternalConfig,
        trust_domain: &str,
        service: &str,
    ) -> Result<Channel, PluginError> {
        let config = &plugin.config;
        let host = HostServices::new().with(self.metrics.service());
        let running = match ExternalPlugin::start(&plugin.spec(), host, Timeouts::from_env()).await {
            Ok(running) => running,
            Err(e) => {
                log_failure(config, &e);
                return Err(e);
            }
        };
        let ready = async {
            running.require(&[service])?;
            running.configure(trust_domain, &plugin.data).await
        };
        if let Err(e) = ready.await {
            log_failure(config, &e);
            running.shutdown().await;
            return Err(e);
        }
        tracing::info!(plugin_type = %config.plugin_type, plugin_name = %config.name, external = true, "Plugin loaded");
        let channel = running.channel();
        self.running.lock().await.push(running);
        Ok(channel)
    }

    /// Starts `plugin` only to ask it whether its data is valid (`spire-agent validate`), then stops
    /// it; returns its notes. A plugin that does not start, or serves another type, is invalid too.
    pub async fn validate(
        plugin: &ExternalConfig,
        trust_domain: &str,
        service: &str,
    ) -> Result<Vec<String>, PluginError> {
        let host = HostServices::new().with(PluginMetrics::new().service());
        let running = ExternalPlugin::start(&plugin.spec(), host, Timeouts::from_env()).await?;
        let result = match running.require(&[service]) {
            Ok(_) => running.validate(trust_domain, &plugin.data).await,
            Err(e) => Err(e),
        };
        running.shutdown().await;
        result
    }

    /// Stops every plugin (the SDK's `Deinit`, go-plugin's `Shutdown`, then a kill), together.
    pub async fn shutdown(&self) {
        let plugins: Vec<ExternalPlugin> = std::mem::take(&mut *self.running.lock().await);
        futures_util::future::join_all(plugins.into_iter().map(ExternalPlugin::shutdown)).await;
    }
}

/// Logs a plugin that failed to come up with SPIRE's catalog's message and fields.
fn log_failure(config: &PluginConfig, error: &PluginError) {
    let (message, error) = match error {
        PluginError::Load { source, .. } => ("Failed to load plugin", source.to_string()),
        PluginError::Bind { message, .. } => ("Failed to bind plugin", message.clone()),
        PluginError::Configure { message, .. } => ("Failed to configure plugin", message.clone()),
        PluginError::Validate { message, .. } => ("Failed to validate plugin", message.clone()),
    };
    tracing::error!(plugin_type = %config.plugin_type, plugin_name = %config.name, error, "{message}");
}

/// A plugin's error status with SPIRE's facade prefix, `<type>(<name>): ` (the type in lower case),
/// added to its message unless it is there already; a plugin's own `<name>: ` prefix is replaced
/// (SPIRE's `Facade.WrapErr`). Code and details are kept.
pub fn wrap_status(plugin_type: &str, name: &str, status: &tonic::Status) -> tonic::Status {
    let prefix = format!("{}({name}): ", plugin_type.to_lowercase());
    let message = status.message();
    if message.starts_with(&prefix) {
        return status.clone();
    }
    let own = format!("{name}: ");
    let message = format!("{prefix}{}", message.strip_prefix(&own).unwrap_or(message));
    tonic::Status::with_details_and_metadata(
        status.code(),
        message,
        status.details().to_vec().into(),
        status.metadata().clone(),
    )
}

/// A status of the facade itself (not the plugin's), prefixed as [`wrap_status`] does.
pub fn facade_status(plugin_type: &str, name: &str, code: tonic::Code, message: &str) -> tonic::Status {
    tonic::Status::new(code, format!("{}({name}): {message}", plugin_type.to_lowercase()))
}

#[cfg(test)]
mod tests;
