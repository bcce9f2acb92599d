//! Runs SPIRE's external plugins, unchanged: executables built with spire-plugin-sdk (or any
//! HashiCorp go-plugin gRPC plugin serving the SDK's services), declared with `plugin_cmd`.
//!
//! What SPIRE's catalog does, step by step, and where it is here:
//! 1. `plugin_checksum` (SHA-256 of the executable) checked before it runs ([`checksum`]);
//! 2. the process started with go-plugin's environment (magic cookie `<Type>=<Type>`, protocol
//!    version 1) and its handshake line read from stdout ([`process`], [`handshake`]);
//! 3. gRPC over the plugin's Unix socket without TLS, the plugin's stderr logs forwarded into ours
//!    ([`logs`]), its stdio mirrored;
//! 4. the host services ([`HostServices`]) served on a socket announced on go-plugin's broker
//!    stream under ID 1, where the SDK dials them;
//! 5. the SDK's `Init`: which services each side has; the daemon then binds its facade to the
//!    plugin's service ([`ExternalPlugin::require`]) and `Configure`s it with its data;
//! 6. on shutdown `Deinit`, go-plugin's `Shutdown`, then a kill. A plugin that dies is reported
//!    and its calls fail (`Unavailable`); the daemon keeps running, as SPIRE's does.

mod catalog;
pub mod checksum;
pub mod handshake;
mod host;
pub mod keymanager;
pub mod logs;
mod metrics;
mod plugin;
pub mod process;

use std::time::Duration;

pub use catalog::{ExternalConfig, ExternalPlugins};
pub use host::HostServices;
pub use metrics::{MetricKey, PluginMetrics, Recorded};
pub use plugin::{ExternalPlugin, HOST_SERVICE_PROVIDER_ID, LoadError, Spec};

/// Why a plugin failed to load, bind, configure or validate. The messages are SPIRE's catalog's
/// and name the plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Starting, connecting, initialising.
    #[error("failed to load plugin {name:?}: {source}")]
    Load {
        /// The plugin's name.
        name: String,
        /// What failed.
        #[source]
        source: LoadError,
    },
    /// The plugin does not serve the service its type needs.
    #[error("failed to bind plugin {name:?}: {message}")]
    Bind {
        /// The plugin's name.
        name: String,
        /// What is missing.
        message: String,
    },
    /// `Configure` failed.
    #[error("failed to configure plugin {name:?}: {message}")]
    Configure {
        /// The plugin's name.
        name: String,
        /// The plugin's answer.
        message: String,
    },
    /// `Validate` failed or said the configuration is invalid.
    #[error("plugin {name:?} configuration is invalid: {message}")]
    Validate {
        /// The plugin's name.
        name: String,
        /// The plugin's answer or notes.
        message: String,
    },
}

/// How long the host waits for a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the handshake line (go-plugin's `StartTimeout`, one minute).
    pub start: Duration,
    /// For `Init`, `Configure` and `Validate` (SPIRE waits forever; a hung plugin would hang the
    /// daemon's start).
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { start: Duration::from_secs(60), call: Duration::from_secs(60) }
    }
}

impl Timeouts {
    /// The defaults, or both set to `SPIRE_PLUGIN_TIMEOUT` (a Go duration such as `5s`) when that
    /// variable is set: for operators whose plugins start slowly, and for tests of hung plugins.
    pub fn from_env() -> Self {
        std::env::var("SPIRE_PLUGIN_TIMEOUT")
            .ok()
            .and_then(|v| spire_config::parse_duration(&v).ok())
            .map(|d| Self { start: d, call: d })
            .unwrap_or_default()
    }
}

/// A gRPC status as Go's `status.Error` prints it, the form SPIRE's messages carry.
pub fn go_status(status: &tonic::Status) -> String {
    let code = match status.code() {
        tonic::Code::Ok => "OK".to_owned(),
        tonic::Code::Cancelled => "Canceled".to_owned(),
        other => format!("{other:?}"),
    };
    format!("rpc error: code = {code} desc = {}", status.message())
}

/// A plugin's error status with SPIRE's facade prefix, `<type>(<name>): ` (the type in lower case),
/// added to its message unless it is there already; a plugin's own `<name>: ` prefix is replaced
/// (SPIRE's `Facade.WrapErr`). Code and details are kept.
pub fn facade_status(plugin_type: &str, name: &str, status: &tonic::Status) -> tonic::Status {
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

/// A status of the facade itself (not the plugin's), prefixed as [`facade_status`] does.
pub fn facade_error(plugin_type: &str, name: &str, code: tonic::Code, message: &str) -> tonic::Status {
    tonic::Status::new(code, format!("{}({name}): {message}", plugin_type.to_lowercase()))
}
