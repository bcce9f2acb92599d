//! `mode = "reconcile"`: Node and Pod controllers that keep SPIRE entries in step with the cluster.

use kube::Client;

use crate::config::{Common, ReconcileConfig};
use crate::spire_api::Entries;
use crate::workload_id::WorkloadIds;

/// Why reconcile mode stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Not built yet.
    #[error("reconcile mode is not implemented yet")]
    Unimplemented,
}

/// Runs the controllers until they fail.
pub async fn run(
    _common: &Common,
    _config: &ReconcileConfig,
    _client: Client,
    _entries: Entries,
    _ids: WorkloadIds,
) -> Result<(), ReconcileError> {
    Err(ReconcileError::Unimplemented)
}
