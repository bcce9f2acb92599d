//! SPIRE's `docker` workload attestor: the labels, environment and image of the container a process
//! runs in, as the Docker daemon describes it.
//!
//! Attesting a PID takes two steps. The process's cgroups name its container ([`super::cgroup`],
//! SPIRE's container locator, shared with the k8s attestor; or, with
//! `use_new_container_locator = false` and `container_id_cgroup_matchers`, SPIRE's legacy patterns
//! in [`matcher`]). A process in no container gets no selectors and no error, so the other
//! attestors still speak for it. Then the daemon is asked about the container over the Engine API
//! ([`client`]) and its configuration becomes the selectors ([`selectors`]). A container whose
//! cgroup path says Podman (`libpod-` or `/libpod/`, as SPIRE v1.15 reads it) is asked about on
//! Podman's Docker-compatible socket instead: rootless Podman's (`podman_socket_path_template` with
//! the UID of the path's `user-<uid>.slice`) or rootful Podman's (`podman_socket_path`).
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

pub use self::config::{
    DEFAULT_DOCKER_SOCKET_PATH, DEFAULT_PODMAN_SOCKET_PATH, DEFAULT_PODMAN_SOCKET_PATH_TEMPLATE, DockerConfig,
};
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

/// A container: its ID and, for Podman's, the socket of the Podman service that runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// 64 hex digits; empty for a process in no container.
    pub id: String,
    /// `None` for Docker's (the configured `docker_socket_path`).
    pub podman_socket: Option<String>,
}

/// The Podman socket for a container with cgroup `paths`, as SPIRE v1.15 picks it: the first path
/// naming libpod decides; a `user-<uid>.slice` in it means rootless Podman of that user.
pub fn podman_socket<'a>(config: &DockerConfig, paths: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let path = paths.into_iter().find(|p| p.contains("libpod-") || p.contains("/libpod/"))?;
    let uid = path.split("/user-").skip(1).find_map(|rest| {
        let (digits, _) = rest.split_once(".slice/")?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
    });
    match uid.map(|digits| (digits, digits.parse::<u32>())) {
        Some((_, Ok(uid))) => Some(config.podman_socket_for(uid)),
        Some((digits, Err(_))) => {
            tracing::warn!(
                uid = digits,
                cgroup_path = path,
                "Failed to parse rootless Podman UID from cgroup path, falling back to rootful Podman socket"
            );
            Some(config.podman_socket_path.clone())
        }
        None => Some(config.podman_socket_path.clone()),
    }
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

    /// The container `process` runs in (an empty ID if none), and whose it is.
    pub fn container(&self, process: Process<'_>) -> Result<Container, DockerError> {
        let files = ProcFiles { process, root: &self.proc_root, verbose: self.config.verbose_container_locator_logs };
        if let Some(finder) = &self.finder {
            // One reading of the cgroups names both the container and its engine, as SPIRE's.
            let Some(text) = files.cgroups()? else { return Ok(Container::default()) };
            let paths = super::cgroup::parse_cgroups(&text).map_err(LocateError::Cgroups)?;
            let id = finder.container_id(paths.iter().copied()).map_err(DockerError::Matchers)?;
            let podman_socket = if id.is_empty() { None } else { podman_socket(&self.config, paths) };
            return Ok(Container { id, podman_socket });
        }
        let id = files.locate(Pods::Ignore)?.container_id;
        if id.is_empty() {
            return Ok(Container::default());
        }
        // As SPIRE: cgroups that cannot be read now fall back to Docker's socket.
        let podman_socket = match files.cgroups() {
            Ok(Some(text)) => podman_socket(&self.config, super::cgroup::parse_cgroups(&text).unwrap_or_default()),
            Ok(None) | Err(_) => None,
        };
        Ok(Container { id, podman_socket })
    }

    /// The container `process` runs in, `""` if none.
    pub fn container_id(&self, process: Process<'_>) -> Result<String, DockerError> {
        Ok(self.container(process)?.id)
    }

    /// The selector values of `container` (none without an ID).
    pub async fn attest_container(&self, container: &Container) -> Result<Vec<String>, DockerError> {
        if container.id.is_empty() {
            return Ok(Vec::new());
        }
        let inspected = match &container.podman_socket {
            None => self.client.inspect(&container.id).await?,
            // A client per call, as SPIRE's: the socket comes from the workload's cgroup path, so
            // keeping one per path seen would let workloads grow the agent's memory. Its API
            // version is negotiated (SPIRE's Podman clients ignore `docker_version`).
            Some(socket) => Client::new(socket.clone(), None).inspect(&container.id).await?,
        };
        Ok(selectors::selector_values(&inspected))
    }
}

#[async_trait]
impl WorkloadAttestor for DockerAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError> {
        let container = self.container(process).map_err(AttestError::plugin)?;
        self.attest_container(&container).await.map_err(AttestError::plugin)
    }
}
