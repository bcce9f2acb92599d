//! `mode = "crd"`: SpiffeID custom resources, each kept in step with one SPIRE entry.

use kube::Client;

use crate::config::{Common, CrdConfig};
use crate::spire_api::Entries;
use crate::workload_id::WorkloadIds;

/// Why crd mode stopped.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// Not built yet.
    #[error("crd mode is not implemented yet")]
    Unimplemented,
}

/// Runs the controllers until they fail.
pub async fn run(
    _common: &Common,
    _config: &CrdConfig,
    _client: Client,
    _entries: Entries,
    _ids: WorkloadIds,
    _namespace: String,
) -> Result<(), CrdError> {
    Err(CrdError::Unimplemented)
}
