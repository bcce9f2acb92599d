//! The `plugin_data` of WorkloadAttestor `docker`: SPIRE v1.13's keys and defaults.
//!
//! ```hcl
//! plugin_data {
//!   docker_socket_path = "unix:///var/run/docker.sock"
//!   docker_version = "1.41"                # default: negotiated with the daemon
//!   use_new_container_locator = true
//!   # container_id_cgroup_matchers = ["/docker/<id>"]   # only with use_new_container_locator = false
//! }
//! ```
//!
//! Unknown keys are refused, and so is `experimental.sigstore` (image signature verification is not
//! implemented). SPIRE v1.13 has no Podman keys; `podman_socket_path` and
//! `podman_socket_path_template` are refused with a message saying Podman is not supported.

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::matcher::ContainerIdFinder;

/// The Engine API endpoint when none is configured.
pub const DEFAULT_DOCKER_SOCKET_PATH: &str = "unix:///var/run/docker.sock";

/// The plugin's configuration: SPIRE's HCL keys, with SPIRE's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// `docker_socket_path` (default `unix:///var/run/docker.sock`); `tcp://` and `http://` too.
    pub docker_socket_path: String,
    /// `docker_version`: the Engine API version (`1.41`); `None` to negotiate it.
    pub docker_version: Option<(usize, usize)>,
    /// `container_id_cgroup_matchers`: SPIRE's legacy patterns; only with the legacy locator.
    pub container_id_cgroup_matchers: Vec<String>,
    /// `use_new_container_locator` (default true).
    pub use_new_container_locator: bool,
    /// `verbose_container_locator_logs`: log every mount and cgroup looked at (debug level).
    pub verbose_container_locator_logs: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            docker_socket_path: DEFAULT_DOCKER_SOCKET_PATH.to_owned(),
            docker_version: None,
            container_id_cgroup_matchers: Vec::new(),
            use_new_container_locator: true,
            verbose_container_locator_logs: false,
        }
    }
}

impl DockerConfig {
    /// Decodes the plugin's data; unknown keys and contradicting settings are refused with SPIRE's
    /// messages.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, Self::read)
    }

    /// The container ID finder of `container_id_cgroup_matchers`, `None` with the new locator.
    pub fn finder(&self) -> Option<ContainerIdFinder> {
        if self.use_new_container_locator || self.container_id_cgroup_matchers.is_empty() {
            return None;
        }
        ContainerIdFinder::new(&self.container_id_cgroup_matchers).ok()
    }

    pub(crate) fn read(r: &mut Reader<'_, '_>) -> Self {
        let defaults = Self::default();
        let docker_socket_path = match r.string_at("docker_socket_path") {
            Some((path, _)) if path.is_empty() => defaults.docker_socket_path,
            Some((path, pos)) => {
                if !["unix://", "tcp://", "http://"].iter().any(|scheme| path.starts_with(scheme)) {
                    let message = format!(
                        "{}: unable to parse docker host {path:?}: use unix://<path> (or tcp://<host>:<port>)",
                        r.key_path("docker_socket_path")
                    );
                    r.diags().error(ConfigError::invalid(message, pos.line));
                }
                path
            }
            None => defaults.docker_socket_path,
        };
        let docker_version = match r.string_at("docker_version") {
            Some((v, _)) if v.is_empty() => None,
            Some((v, pos)) => {
                let parsed = v.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                if parsed.is_none() {
                    let message =
                        format!("{}: {v:?} is not an API version like \"1.41\"", r.key_path("docker_version"));
                    r.diags().error(ConfigError::invalid(message, pos.line));
                }
                parsed
            }
            None => None,
        };
        let matchers = r.string_list("container_id_cgroup_matchers").unwrap_or_default();
        let use_new = r.bool("use_new_container_locator");
        let verbose = r.bool("verbose_container_locator_logs").unwrap_or(false);
        for key in ["podman_socket_path", "podman_socket_path_template"] {
            if r.take(key).is_some() {
                let message = format!(
                    "{}: Podman is not supported by this build (nor by SPIRE v1.13's docker attestor)",
                    r.key_path(key)
                );
                let line = r.pos().line;
                r.diags().error(ConfigError::invalid(message, line));
            }
        }
        let use_new_container_locator = use_new.unwrap_or(true);
        if !matchers.is_empty() {
            let line = r.pos().line;
            if use_new_container_locator {
                r.diags().error(ConfigError::invalid(
                    "the new container locator and custom cgroup matchers cannot both be used; please open an issue \
                     if the new container locator fails to locate workload containers in your environment; to \
                     continue using custom matchers set use_new_container_locator=false",
                    line,
                ));
            } else if let Err(e) = ContainerIdFinder::new(&matchers) {
                r.diags().error(ConfigError::invalid(e, line));
            }
        }
        crate::workload_attestor::refuse_sigstore(r);
        Self {
            docker_socket_path,
            docker_version,
            container_id_cgroup_matchers: matchers,
            use_new_container_locator,
            verbose_container_locator_logs: verbose,
        }
    }
}
