//! A daemon's running external plugins: each started, bound to the SDK service its type needs,
//! configured, and logged as SPIRE's catalog logs it (`Plugin loaded`; `Failed to load plugin`,
//! `Failed to bind plugin`, `Failed to configure plugin` with the plugin's name and type); all
//! stopped together.

use spire_config::PluginConfig;
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::{ExternalPlugin, HostServices, PluginError, Spec, Timeouts};

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

/// The running external plugins of a daemon, stopped together.
#[derive(Debug, Default)]
pub struct ExternalPlugins {
    running: Mutex<Vec<ExternalPlugin>>,
}

impl ExternalPlugins {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `plugin` offering it `host`, binds it to `service` (the SDK service its type needs),
    /// configures it for `trust_domain`, and keeps it; returns the channel its facade uses. A plugin
    /// that fails any step is logged as SPIRE's catalog logs it, stopped, and the error names it.
    pub async fn start(
        &self,
        plugin: &ExternalConfig,
        trust_domain: &str,
        service: &str,
        host: HostServices,
    ) -> Result<Channel, PluginError> {
        let config = &plugin.config;
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

    /// Starts `plugin` only to ask it whether its data is valid (`validate` commands), then stops
    /// it; returns its notes. A plugin that does not start, or serves another type, is invalid too.
    pub async fn validate(
        plugin: &ExternalConfig,
        trust_domain: &str,
        service: &str,
        host: HostServices,
    ) -> Result<Vec<String>, PluginError> {
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
        let mut stopping = tokio::task::JoinSet::new();
        for plugin in plugins {
            stopping.spawn(plugin.shutdown());
        }
        while stopping.join_next().await.is_some() {}
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
