//! The `plugin_data` of WorkloadAttestor `docker`: SPIRE v1.13's keys and defaults.
//!
//! ```hcl
//! plugin_data {
//!   docker_socket_path = "unix:///var/run/docker.sock"
//!   docker_version = "1.41"                # default: negotiated with the daemon
//!   use_new_container_locator = true
//!   # container_id_cgroup_matchers = ["/docker/<id>"]   # only with use_new_container_locator = false
//!   podman_socket_path = "unix:///run/podman/podman.sock"
//!   podman_socket_path_template = "unix:///run/user/%d/podman/podman.sock"
//! }
//! ```
//!
//! The Podman keys are SPIRE v1.15's (v1.13 has none); a v1.13 configuration never sets them, so
//! accepting them changes nothing for it. Unknown keys are refused, and so is
//! `experimental.sigstore` (image signature verification is not implemented).

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::matcher::ContainerIdFinder;

/// The Engine API endpoint when none is configured.
pub const DEFAULT_DOCKER_SOCKET_PATH: &str = "unix:///var/run/docker.sock";
/// Rootful Podman's API socket when none is configured.
pub const DEFAULT_PODMAN_SOCKET_PATH: &str = "unix:///run/podman/podman.sock";
/// Rootless Podman's API socket, `%d` standing for the container owner's UID.
pub const DEFAULT_PODMAN_SOCKET_PATH_TEMPLATE: &str = "unix:///run/user/%d/podman/podman.sock";

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
    /// `podman_socket_path`: asked about containers whose cgroup says rootful Podman.
    pub podman_socket_path: String,
    /// `podman_socket_path_template`: asked about containers of rootless Podman, with the UID of
    /// the cgroup's `user-<uid>.slice` in place of its one `%d`.
    pub podman_socket_path_template: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            docker_socket_path: DEFAULT_DOCKER_SOCKET_PATH.to_owned(),
            docker_version: None,
            container_id_cgroup_matchers: Vec::new(),
            use_new_container_locator: true,
            verbose_container_locator_logs: false,
            podman_socket_path: DEFAULT_PODMAN_SOCKET_PATH.to_owned(),
            podman_socket_path_template: DEFAULT_PODMAN_SOCKET_PATH_TEMPLATE.to_owned(),
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
        let podman_socket_path =
            r.non_empty_string("podman_socket_path").unwrap_or_else(|| defaults.podman_socket_path.clone());
        let podman_socket_path_template = match r.string_at("podman_socket_path_template") {
            Some((t, _)) if t.is_empty() => defaults.podman_socket_path_template,
            Some((t, pos)) => {
                if let Err(e) = validate_podman_template(&t) {
                    let message = format!("{}: invalid podman_socket_path_template: {e}", r.path());
                    r.diags().error(ConfigError::invalid(message, pos.line));
                }
                t
            }
            None => defaults.podman_socket_path_template,
        };
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
            podman_socket_path,
            podman_socket_path_template,
        }
    }

    /// The rootless Podman socket of `uid`.
    pub fn podman_socket_for(&self, uid: u32) -> String {
        let mut out = String::new();
        let mut chars = self.podman_socket_path_template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('d') => out.push_str(&uid.to_string()),
                Some(other) => out.push(other),
                None => out.push('%'),
            }
        }
        out
    }
}

/// SPIRE's check: one `%d`, and `%` otherwise only as `%%`.
fn validate_podman_template(template: &str) -> Result<(), &'static str> {
    let mut placeholders = 0;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            None => return Err("trailing % at end of template"),
            Some('%') => {}
            Some('d') => placeholders += 1,
            Some(_) => return Err("template only supports escaped %% or the %d UID placeholder"),
        }
    }
    if placeholders != 1 {
        return Err("template must contain exactly one %d UID placeholder");
    }
    Ok(())
}
