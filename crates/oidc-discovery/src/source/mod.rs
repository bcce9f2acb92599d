//! Where the JWT authorities come from, and the loop that polls it every `poll_interval`.
//!
//! Each source turns its answer into the JWKs the provider serves (key ID and public key only);
//! a failed poll keeps the previous keys, as SPIRE's sources do.

mod file;
mod server_api;
mod unix_channel;
mod workload_api;

use std::sync::Arc;
use std::time::Duration;

use spire_identity::jwk::Jwk;

use crate::config::SourceConfig;
use crate::keyset::KeySet;

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The gRPC call failed.
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    /// The Workload API answered without the configured trust domain's bundle.
    #[error("no bundle for trust domain {0:?} in Workload API response")]
    NoBundle(String),
    /// A JWKS or bundle could not be read.
    #[error("{0}")]
    Parse(String),
    /// The bundle file could not be read.
    #[error("unable to read SPIFFE bundle: {0}")]
    Read(#[from] std::io::Error),
    /// The call took longer than the poll deadline.
    #[error("timed out")]
    Timeout,
}

/// The longest a single poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// One configured source.
#[derive(Debug)]
enum Source {
    ServerApi(server_api::ServerApi),
    WorkloadApi(workload_api::WorkloadApi),
    File(file::FileSource),
}

impl Source {
    fn new(config: &SourceConfig) -> Self {
        match config {
            SourceConfig::ServerApi { socket_path, .. } => Self::ServerApi(server_api::ServerApi::new(socket_path)),
            SourceConfig::WorkloadApi { socket_path, trust_domain, .. } => {
                Self::WorkloadApi(workload_api::WorkloadApi::new(socket_path, trust_domain.clone()))
            }
            SourceConfig::File { path, .. } => Self::File(file::FileSource::new(path)),
        }
    }

    async fn fetch(&mut self) -> Result<Vec<Jwk>, SourceError> {
        let fetch = async {
            match self {
                Self::ServerApi(s) => s.fetch().await,
                Self::WorkloadApi(s) => s.fetch().await,
                Self::File(s) => s.fetch().await,
            }
        };
        tokio::time::timeout(POLL_TIMEOUT, fetch).await.map_err(|_| SourceError::Timeout)?
    }

    fn failure_message(&self) -> &'static str {
        match self {
            Self::ServerApi(_) => "Failed to fetch bundle",
            Self::WorkloadApi(_) => "Failed to fetch JWKS from the Workload API",
            Self::File(_) => "Failed to load SPIFFE trust bundle",
        }
    }
}

/// Starts polling `config`'s source into `keys`: once now, then every poll interval.
pub fn spawn(config: &SourceConfig, keys: Arc<KeySet>) -> tokio::task::JoinHandle<()> {
    let interval = config.poll_interval();
    let mut source = Source::new(config);
    tokio::spawn(async move {
        tracing::debug!(interval = ?interval, "Polling started");
        loop {
            match source.fetch().await {
                Ok(jwks) => keys.update(jwks),
                Err(e @ SourceError::NoBundle(_)) => {
                    tracing::error!(error = %e, "No bundle for trust domain in Workload API response")
                }
                Err(e) => tracing::warn!(error = %e, "{}", source.failure_message()),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// The JWK of a JWT authority's SubjectPublicKeyInfo, with its key ID; `None` (logged) if the key
/// cannot be represented.
fn authority_jwk(key_id: &str, spki_der: &[u8]) -> Option<Jwk> {
    match Jwk::from_spki(spki_der) {
        Ok(mut jwk) => {
            jwk.kid = Some(key_id.to_owned());
            Some(jwk)
        }
        Err(e) => {
            tracing::warn!(kid = key_id, error = %e, "Malformed public key in bundle");
            None
        }
    }
}
