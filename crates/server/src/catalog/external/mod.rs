//! External plugins (`plugin_cmd`): spire-plugin-sdk plugins run by `spire-plugin-host`, each behind
//! the same trait as the built-in plugins of its type, so the rest of the server cannot tell them
//! apart.
//!
//! One module per plugin type (the facade translating our trait to the SDK's service, with SPIRE's
//! `<type>(<name>): ` prefix on the plugin's errors), and [`host_services`] for what plugins may call
//! back. [`ExternalPlugins`] owns the processes; shutting the server down stops them.

pub mod bundle;
pub mod bundlepublisher;
pub mod credentialcomposer;
pub mod host_services;
pub mod nodeattestor;
pub mod notifier;
pub mod upstreamauthority;

use spire_config::PluginConfig;
pub use spire_plugin_host::facade_status;
use spire_plugin_host::{ExternalPlugin, HostServices, PluginError, Spec, Timeouts};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// The server's running external plugins.
#[derive(Debug, Default)]
pub struct ExternalPlugins {
    running: Mutex<Vec<ExternalPlugin>>,
}

impl ExternalPlugins {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `config`'s plugin, binds it to `service` (the SDK service its type needs), configures
    /// it for `trust_domain`, and keeps it; returns the channel its facade uses. A plugin that fails
    /// any step is stopped and the error names it.
    pub async fn start(
        &self,
        config: &PluginConfig,
        trust_domain: &str,
        host: HostServices,
        service: &str,
    ) -> Result<Channel, PluginError> {
        let spec = Spec::from_config(config).expect("called for plugin_cmd blocks only");
        let data = config.data_text().map_err(|e| PluginError::Configure {
            name: config.name.clone(),
            message: format!("failed to load plugin data: {e}"),
        })?;
        let plugin = ExternalPlugin::start(&spec, host, Timeouts::from_env()).await?;
        let ready = async {
            plugin.require(&[service])?;
            plugin.configure(trust_domain, &data).await
        };
        if let Err(e) = ready.await {
            tracing::error!(plugin_type = %config.plugin_type, plugin_name = %config.name, error = %e, "Failed to load plugin");
            plugin.shutdown().await;
            return Err(e);
        }
        tracing::info!(plugin_type = %config.plugin_type, plugin_name = %config.name, external = true, "Plugin loaded");
        let channel = plugin.channel();
        self.running.lock().await.push(plugin);
        Ok(channel)
    }

    /// Starts `config`'s plugin only to ask it whether its data is valid (`spire-server validate`);
    /// returns its notes.
    pub async fn validate(
        config: &PluginConfig,
        trust_domain: &str,
        host: HostServices,
    ) -> Result<Vec<String>, PluginError> {
        let spec = Spec::from_config(config).expect("called for plugin_cmd blocks only");
        let data = config.data_text().map_err(|e| PluginError::Validate {
            name: config.name.clone(),
            message: format!("failed to load plugin data: {e}"),
        })?;
        let plugin = ExternalPlugin::start(&spec, host, Timeouts::from_env()).await?;
        let result = plugin.validate(trust_domain, &data).await;
        plugin.shutdown().await;
        result
    }

    /// Stops every plugin (SDK `Deinit`, go-plugin `Shutdown`, then a kill).
    pub async fn shutdown(&self) {
        let plugins = std::mem::take(&mut *self.running.lock().await);
        for plugin in plugins {
            plugin.shutdown().await;
        }
    }
}
