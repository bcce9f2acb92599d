//! SPIRE's `docker` workload attestor: the labels, environment and image of the container a process
//! runs in, as the Docker daemon describes it.
//!
//! Attesting a PID takes two steps. The process's cgroups name its container ([`super::cgroup`],
//! SPIRE's container locator, shared with the k8s attestor; or, with
//! `use_new_container_locator = false` and `container_id_cgroup_matchers`, SPIRE's legacy patterns
//! in [`matcher`]). A process in no container gets no selectors and no error, so the other
//! attestors still speak for it. Then the daemon is asked about the container over the Engine API
//! ([`client`]) and its configuration becomes the selectors ([`selectors`]).
//!
//! A container that is gone by then (404) fails the attestation rather than giving selectors; a
//! PID reused by a host process has host cgroups and gets none. The host checks after every
//! attestor has run that the caller is still the process that connected.

pub mod client;
pub mod config;
pub mod matcher;
pub mod selectors;

#[cfg(test)]
mod tests;

use async_trait::async_trait;

pub use self::config::{DEFAULT_DOCKER_SOCKET_PATH, DockerConfig};
use super::cgroup::{LocateError, Pods, ProcFiles};
use super::{AttestError, WorkloadAttestor};
use crate::peer::{ProcRoot, Process};
use client::{Client, ClientError};
use matcher::ContainerIdFinder;

/// The plugin name, hence the selector type.
pub const PLUGIN_NAME: &str = "docker";

/// Why the docker attestor failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerError {
    /// The process's cgroups could not be read, or contradict each other.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// The legacy matchers found contradicting container IDs.
    #[error("{0}")]
    Matchers(String),
    /// The daemon could not be asked, or does not know the container.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The docker workload attestor.
#[derive(Debug)]
pub struct DockerAttestor {
    config: DockerConfig,
    finder: Option<ContainerIdFinder>,
    proc_root: ProcRoot,
    client: Client,
}

impl DockerAttestor {
    /// An attestor reading `/proc` (or `$HOST_PROC`). Does not connect to the daemon yet.
    pub fn new(config: DockerConfig) -> Self {
        Self::with_proc_root(config, ProcRoot::from_env())
    }

    /// An attestor reading process information under `proc_root`.
    pub fn with_proc_root(config: DockerConfig, proc_root: ProcRoot) -> Self {
        let finder = config.finder();
        if finder.is_some() {
            tracing::warn!(
                "Using the legacy container locator with custom cgroup matchers. This feature will be removed in a future release."
            );
        } else {
            tracing::info!("Using the new container locator");
        }
        let client = Client::new(config.docker_socket_path.clone(), config.docker_version);
        Self { config, finder, proc_root, client }
    }

    /// The container `process` runs in, `""` if none.
    pub fn container_id(&self, process: Process<'_>) -> Result<String, DockerError> {
        let files = ProcFiles { process, root: &self.proc_root, verbose: self.config.verbose_container_locator_logs };
        match &self.finder {
            Some(finder) => {
                let Some(text) = files.cgroups()? else { return Ok(String::new()) };
                let paths = super::cgroup::parse_cgroups(&text).map_err(LocateError::Cgroups)?;
                finder.container_id(paths).map_err(DockerError::Matchers)
            }
            None => Ok(files.locate(Pods::Ignore)?.container_id),
        }
    }

    /// The selector values of container `id` (none for `""`).
    pub async fn attest_container(&self, id: &str) -> Result<Vec<String>, DockerError> {
        if id.is_empty() {
            return Ok(Vec::new());
        }
        let container = self.client.inspect(id).await?;
        Ok(selectors::selector_values(&container))
    }
}

#[async_trait]
impl WorkloadAttestor for DockerAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError> {
        let id = self.container_id(process).map_err(AttestError::plugin)?;
        self.attest_container(&id).await.map_err(AttestError::plugin)
    }
}
