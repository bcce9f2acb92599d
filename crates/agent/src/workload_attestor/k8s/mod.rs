//! SPIRE's `k8s` workload attestor: the pod and container a process runs in, as its node's kubelet
//! describes them.
//!
//! Attesting a PID takes two steps. The process's cgroups name its container and usually its pod
//! ([`cgroup`]); a process in no container gets no selectors (and no error), as in SPIRE. Then the
//! kubelet's pod list ([`kubelet`], cached briefly by [`cache`]) is searched for that container, and
//! the pod's and container's properties become the selectors ([`selectors`]). A container that is
//! not in the list yet (just started) is polled for: up to `max_poll_attempts` lists,
//! `poll_retry_interval` apart, after which the attestation fails with SPIRE's "no selectors found
//! after max poll attempts".
//!
//! The configuration keys, defaults and messages are SPIRE v1.13's. Its experimental Sigstore image
//! verification is not implemented: a configuration asking for it is refused rather than run
//! without it.

pub mod cache;
pub mod cgroup;
pub mod kubelet;
pub mod selectors;

#[cfg(test)]
mod tests;

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use spire_cli::goerror::errno_text;
use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::{AttestError, WorkloadAttestor};
use crate::peer::{ProcRoot, Process};
use cache::{FetchError, PodListCache};
use cgroup::{LocateError, Location};
use kubelet::{Endpoint, Kubelet, KubeletError, KubeletSettings};
use selectors::DuplicateContainer;

/// The plugin name, hence the selector type.
pub const PLUGIN_NAME: &str = "k8s";
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
        if let Some(mut experimental) = r.object("experimental") {
            if experimental.take("sigstore").is_some() {
                let message = format!(
                    "{}: Sigstore image signature verification is not supported by this build",
                    experimental.key_path("sigstore")
                );
                let line = experimental.pos().line;
                experimental.diags().error(ConfigError::invalid(message, line));
            }
            experimental.finish();
        }
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

/// Why the k8s attestor failed; messages are SPIRE's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// The process's cgroups could not be read, or contradict each other.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// The kubelet client could not be set up (at configuration).
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    /// No pod list could be had.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Two pods claim the container.
    #[error(transparent)]
    Duplicate(#[from] DuplicateContainer),
    /// The container never showed up in the kubelet's pod list.
    #[error("no selectors found after max poll attempts")]
    NotFound,
}

/// The k8s workload attestor.
#[derive(Debug)]
pub struct K8sAttestor {
    config: K8sConfig,
    proc_root: ProcRoot,
    kubelet: Kubelet,
    pods: PodListCache,
}

impl K8sAttestor {
    /// An attestor reading `/proc` (or `$HOST_PROC`), with the node name from the configuration or
    /// the environment. Fails, as SPIRE's Configure does, if the kubelet's CA or the agent's
    /// credentials cannot be loaded.
    pub fn new(config: K8sConfig) -> Result<Self, K8sError> {
        Self::with_proc_root(config, ProcRoot::from_env())
    }

    /// An attestor reading process information under `proc_root`.
    pub fn with_proc_root(config: K8sConfig, proc_root: ProcRoot) -> Result<Self, K8sError> {
        let node_name = config.resolve_node_name(|key| std::env::var(key).ok());
        let endpoint = match config.kubelet_read_only_port {
            Some(port) => Endpoint::ReadOnly { port },
            None => Endpoint::Secure { node_name, port: config.kubelet_secure_port },
        };
        let settings = KubeletSettings {
            endpoint,
            skip_verification: config.skip_kubelet_verification,
            ca_path: config.kubelet_ca_path.clone(),
            token_path: config.token_path.clone(),
            certificate_path: config.certificate_path.clone(),
            private_key_path: config.private_key_path.clone(),
            anonymous: config.use_anonymous_authentication,
        };
        let kubelet = Kubelet::new(settings, config.reload_interval)?;
        if config.use_new_container_locator {
            tracing::info!("Using the new container locator");
        } else {
            tracing::warn!("Using the legacy container locator. This option will removed in a future release.");
        }
        let pods = PodListCache::new(config.poll_retry_interval / 2);
        Ok(Self { config, proc_root, kubelet, pods })
    }

    /// The kubelet's `/pods` URL this attestor asks.
    pub fn kubelet_url(&self) -> String {
        self.kubelet.client().url().to_owned()
    }

    /// Where `process` runs, from its cgroups.
    pub fn locate(&self, process: Process<'_>) -> Result<Location, K8sError> {
        let root = &self.proc_root;
        let verbose = self.config.verbose_container_locator_logs;
        let cgroup_path = root.pid_file(process.pid(), "cgroup").display().to_string();
        let read_cgroups = || {
            let text = read_proc_file(process, root, "cgroup")
                .map_err(|e| LocateError::Cgroups(format!("open {cgroup_path}: {}", errno_text(&e))))?;
            if verbose && let Some(text) = &text {
                for (i, path) in cgroup::parse_cgroups(text).unwrap_or_default().iter().enumerate() {
                    tracing::debug!(index = i + 1, path, "PID cgroup enumerated");
                }
            }
            Ok(text)
        };
        if !self.config.use_new_container_locator {
            return Ok(read_cgroups()?.map(|text| cgroup::legacy_locate(&text)).transpose()?.unwrap_or_default());
        }
        let mountinfo_path = root.pid_file(process.pid(), "mountinfo").display().to_string();
        let mountinfo = read_proc_file(process, root, "mountinfo").map_err(|e| LocateError::MountInfo {
            path: mountinfo_path.clone(),
            reason: format!("open {mountinfo_path}: {}", errno_text(&e)),
        })?;
        if verbose && let Some(text) = &mountinfo {
            for (i, (fs_type, mount_root)) in cgroup::parse_mountinfo(text).unwrap_or_default().iter().enumerate() {
                tracing::debug!(index = i + 1, r#type = fs_type, root = mount_root, "PID mount enumerated");
            }
        }
        Ok(cgroup::locate(mountinfo.as_deref(), &mountinfo_path, read_cgroups)?)
    }

    /// The selector values of the workload at `location`, polling the kubelet until its container
    /// shows up. A location outside any container has none.
    pub async fn attest_location(&self, location: &Location) -> Result<Vec<String>, K8sError> {
        if !location.in_container() {
            return Ok(Vec::new());
        }
        let (pod_uid, container_id) = (location.pod_uid.as_str(), location.container_id.as_str());
        let mut attempt = 1;
        loop {
            let pods = self.pods.get(|| self.kubelet.client()).await?;
            if let Some(values) =
                pods.workload_selectors(pod_uid, container_id, self.config.disable_container_selectors)?
            {
                return Ok(values);
            }
            if attempt >= self.config.max_poll_attempts {
                tracing::warn!(pod_uid, container_id, attempt, "Container id not found; giving up");
                return Err(K8sError::NotFound);
            }
            let retry_interval = self.config.poll_retry_interval;
            tracing::debug!(pod_uid, container_id, attempt, ?retry_interval, "Container id not found");
            tokio::time::sleep(retry_interval).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl WorkloadAttestor for K8sAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError> {
        let location = self.locate(process).map_err(AttestError::plugin)?;
        self.attest_location(&location).await.map_err(AttestError::plugin)
    }
}

/// `<root>/<pid>/<name>` read whole, `None` if it does not exist. Bytes that are not UTF-8 (cgroup
/// names may hold any) are replaced, which cannot create a container ID or pod UID.
fn read_proc_file(process: Process<'_>, root: &ProcRoot, name: &str) -> io::Result<Option<String>> {
    let file = match process.open(root, name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Positioned reads from 0, without asking procfs for a size it reports as 0.
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(Some(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())))
}
