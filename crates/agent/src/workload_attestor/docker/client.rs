//! The Engine API client: [`bollard`] over the configured socket, created on first use (SPIRE's
//! Configure does not connect either, so an agent starts while dockerd is down), with the API
//! version negotiated unless `docker_version` is set.

use std::time::Duration;

use bollard::errors::Error::DockerResponseServerError;
use bollard::models::ContainerInspectResponse;
use bollard::{ClientVersion, Docker};
use tokio::sync::OnceCell;

/// Seconds a request may take (bollard's timeout).
const TIMEOUT_SECS: u64 = 30;
/// SPIRE's retryer: 3 retries after the first try, 100ms doubling.
const RETRIES: u32 = 3;
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Why the daemon could not tell about a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client could not be created (the socket does not exist, say).
    #[error("docker client for {host}: {source}")]
    Connect {
        /// The daemon's address (Docker's or Podman's socket).
        host: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The inspection failed, after retries.
    #[error("{0}")]
    Inspect(#[source] bollard::errors::Error),
}

/// A lazily connected Engine API client.
#[derive(Debug)]
pub struct Client {
    host: String,
    version: Option<(usize, usize)>,
    docker: OnceCell<Docker>,
}

impl Client {
    /// A client for `host` (`unix://...`, `tcp://...`), at `version` or negotiating it.
    pub fn new(host: String, version: Option<(usize, usize)>) -> Self {
        Self { host, version, docker: OnceCell::new() }
    }

    async fn docker(&self) -> Result<&Docker, ClientError> {
        self.docker
            .get_or_try_init(|| async {
                let version = match self.version {
                    Some((major_version, minor_version)) => ClientVersion { major_version, minor_version },
                    None => *bollard::API_DEFAULT_VERSION,
                };
                let docker = match self.host.strip_prefix("unix://") {
                    Some(path) => Docker::connect_with_unix(path, TIMEOUT_SECS, &version),
                    None => Docker::connect_with_http(&self.host, TIMEOUT_SECS, &version),
                }
                .map_err(|source| ClientError::Connect { host: self.host.clone(), source })?;
                match self.version {
                    Some(_) => Ok(docker),
                    None => docker
                        .negotiate_version()
                        .await
                        .map_err(|source| ClientError::Connect { host: self.host.clone(), source }),
                }
            })
            .await
    }

    /// `GET /containers/<id>/json`, retried as SPIRE does, but for a 404 (the container is gone:
    /// waiting will not bring it back).
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, ClientError> {
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            let result = match self.docker().await {
                Ok(docker) => docker.inspect_container(id, None).await.map_err(ClientError::Inspect),
                Err(e) => Err(e),
            };
            match result {
                Ok(found) => return Ok(found),
                Err(e @ ClientError::Inspect(DockerResponseServerError { status_code: 404, .. })) => return Err(e),
                Err(e) if attempt >= RETRIES => return Err(e),
                Err(e) => tracing::debug!(container_id = id, error = %e, attempt, "Docker inspect failed; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}
