//! The `plugin_data` of WorkloadAttestor `k8s`: SPIRE v1.13's keys and defaults.
//!
//! ```hcl
//! plugin_data {
//!   kubelet_secure_port = 10250            # or kubelet_read_only_port, not both
//!   kubelet_ca_path = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
//!   token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"
//!   node_name_env = "MY_NODE_NAME"
//!   max_poll_attempts = 60
//!   poll_retry_interval = "500ms"
//!   reload_interval = "1m"
//! }
//! ```
//!
//! As in SPIRE, zero or negative numbers and durations mean the default. Unknown keys are refused,
//! and so is `experimental.sigstore` (image signature verification is not implemented).

use std::path::PathBuf;
use std::time::Duration;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

/// The kubelet's secure port.
pub const DEFAULT_SECURE_PORT: u16 = 10250;
/// The service account's CA bundle, which signs the kubelet's serving certificate in most clusters.
pub const DEFAULT_KUBELET_CA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// The service account's token.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The environment variable holding the node name (set from `spec.nodeName` by the downward API).
pub const DEFAULT_NODE_NAME_ENV: &str = "MY_NODE_NAME";
/// How many pod lists are searched for a container before giving up.
pub const DEFAULT_MAX_POLL_ATTEMPTS: u32 = 60;
/// The pause between two searches.
pub const DEFAULT_POLL_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How often the CA, token and client certificate are read again.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// The plugin's configuration: SPIRE's HCL keys, with SPIRE's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sConfig {
    /// `kubelet_read_only_port`: if set, plain HTTP to `127.0.0.1:<port>` instead of the secure port.
    pub kubelet_read_only_port: Option<u16>,
    /// `kubelet_secure_port` (default 10250).
    pub kubelet_secure_port: u16,
    /// `max_poll_attempts` (default 60).
    pub max_poll_attempts: u32,
    /// `poll_retry_interval` (default 500ms); pod lists are reused for half of it.
    pub poll_retry_interval: Duration,
    /// `kubelet_ca_path`: the CA the kubelet's certificate must chain to.
    pub kubelet_ca_path: PathBuf,
    /// `skip_kubelet_verification`: accept any kubelet certificate.
    pub skip_kubelet_verification: bool,
    /// `token_path`: the bearer token, used unless a client certificate or anonymous access is set.
    pub token_path: PathBuf,
    /// `certificate_path`: a client certificate (with `private_key_path`).
    pub certificate_path: Option<PathBuf>,
    /// `private_key_path`: the client certificate's key.
    pub private_key_path: Option<PathBuf>,
    /// `use_anonymous_authentication`: send no credentials.
    pub use_anonymous_authentication: bool,
    /// `node_name_env` (default `MY_NODE_NAME`): where to find the node name if `node_name` is unset.
    pub node_name_env: String,
    /// `node_name`: the kubelet's host name; without one (and without the variable) 127.0.0.1.
    pub node_name: Option<String>,
    /// `reload_interval` (default 1m).
    pub reload_interval: Duration,
    /// `disable_container_selectors`: pod selectors only, available as soon as the pod is known.
    pub disable_container_selectors: bool,
    /// `use_new_container_locator` (default true): mountinfo then cgroups; false for SPIRE's legacy
    /// cgroup expressions.
    pub use_new_container_locator: bool,
    /// `verbose_container_locator_logs`: log every mount and cgroup looked at (debug level).
    pub verbose_container_locator_logs: bool,
}

impl Default for K8sConfig {
    fn default() -> Self {
        Self {
            kubelet_read_only_port: None,
            kubelet_secure_port: DEFAULT_SECURE_PORT,
            max_poll_attempts: DEFAULT_MAX_POLL_ATTEMPTS,
            poll_retry_interval: DEFAULT_POLL_RETRY_INTERVAL,
            kubelet_ca_path: PathBuf::from(DEFAULT_KUBELET_CA_PATH),
            skip_kubelet_verification: false,
            token_path: PathBuf::from(DEFAULT_TOKEN_PATH),
            certificate_path: None,
            private_key_path: None,
            use_anonymous_authentication: false,
            node_name_env: DEFAULT_NODE_NAME_ENV.to_owned(),
            node_name: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            disable_container_selectors: false,
            use_new_container_locator: true,
            verbose_container_locator_logs: false,
        }
    }
}

impl K8sConfig {
    /// Decodes the plugin's data. As in SPIRE, zero or negative numbers and durations mean the
    /// default; unknown keys are refused.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, Self::read)
    }

    fn read(r: &mut Reader<'_, '_>) -> Self {
        let defaults = Self::default();
        let read_only = port(r, "kubelet_read_only_port");
        let secure = port(r, "kubelet_secure_port");
        if read_only.is_some() && secure.is_some() {
            let line = r.pos().line;
            r.diags().error(ConfigError::invalid("cannot use both the read-only and secure port", line));
        }
        let positive = |d: Option<Duration>, default| d.filter(|d| !d.is_zero()).unwrap_or(default);
        let config = Self {
            kubelet_read_only_port: read_only,
            kubelet_secure_port: secure.unwrap_or(DEFAULT_SECURE_PORT),
            max_poll_attempts: r
                .int::<i64>("max_poll_attempts")
                .filter(|n| *n > 0)
                .map_or(DEFAULT_MAX_POLL_ATTEMPTS, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            poll_retry_interval: positive(r.duration("poll_retry_interval"), DEFAULT_POLL_RETRY_INTERVAL),
            kubelet_ca_path: r.non_empty_string("kubelet_ca_path").map_or(defaults.kubelet_ca_path, PathBuf::from),
            skip_kubelet_verification: r.bool("skip_kubelet_verification").unwrap_or(false),
            token_path: r.non_empty_string("token_path").map_or(defaults.token_path, PathBuf::from),
            certificate_path: r.non_empty_string("certificate_path").map(PathBuf::from),
            private_key_path: r.non_empty_string("private_key_path").map(PathBuf::from),
            use_anonymous_authentication: r.bool("use_anonymous_authentication").unwrap_or(false),
            node_name_env: r.non_empty_string("node_name_env").unwrap_or(defaults.node_name_env),
            node_name: r.non_empty_string("node_name"),
            reload_interval: positive(r.duration("reload_interval"), DEFAULT_RELOAD_INTERVAL),
            disable_container_selectors: r.bool("disable_container_selectors").unwrap_or(false),
            use_new_container_locator: r.bool("use_new_container_locator").unwrap_or(true),
            verbose_container_locator_logs: r.bool("verbose_container_locator_logs").unwrap_or(false),
        };
        crate::workload_attestor::refuse_sigstore(r);
        config
    }

    /// The node name, as SPIRE finds it: `node_name`, else the variable `node_name_env` names
    /// (looked up with `getenv`); `None` (meaning 127.0.0.1) if both are empty.
    pub fn resolve_node_name(&self, getenv: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.node_name.clone().or_else(|| getenv(&self.node_name_env)).filter(|name| !name.is_empty())
    }
}

/// A port key: unset, zero or negative is `None` (SPIRE's "not set").
fn port(r: &mut Reader<'_, '_>, key: &str) -> Option<u16> {
    let value = r.int::<i64>(key).filter(|n| *n > 0)?;
    match u16::try_from(value) {
        Ok(port) => Some(port),
        Err(_) => {
            let (message, line) = (format!("{}: {value} is not a port", r.key_path(key)), r.pos().line);
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
    }
}
