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
//! The configuration ([`config`]) keys, defaults and messages are SPIRE v1.13's. Its experimental
//! Sigstore image verification is not implemented: a configuration asking for it is refused rather
//! than run without it.

pub mod cache;
pub mod cgroup;
pub mod config;
pub mod kubelet;
pub mod selectors;

#[cfg(test)]
mod tests;

use async_trait::async_trait;

pub use self::config::{
    DEFAULT_KUBELET_CA_PATH, DEFAULT_MAX_POLL_ATTEMPTS, DEFAULT_NODE_NAME_ENV, DEFAULT_POLL_RETRY_INTERVAL,
    DEFAULT_RELOAD_INTERVAL, DEFAULT_SECURE_PORT, DEFAULT_TOKEN_PATH, K8sConfig,
};
use super::cgroup::{Pods, ProcFiles};
use super::{AttestError, WorkloadAttestor};
use crate::peer::{ProcRoot, Process};
use cache::{FetchError, PodListCache};
use cgroup::{LocateError, Location};
use kubelet::{Endpoint, Kubelet, KubeletError, KubeletSettings};
use selectors::DuplicateContainer;

/// The plugin name, hence the selector type.
pub const PLUGIN_NAME: &str = "k8s";

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
        let files = ProcFiles { process, root: &self.proc_root, verbose: self.config.verbose_container_locator_logs };
        if !self.config.use_new_container_locator {
            return Ok(files.cgroups()?.map(|text| cgroup::legacy_locate(&text)).transpose()?.unwrap_or_default());
        }
        Ok(files.locate(Pods::Find)?)
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
