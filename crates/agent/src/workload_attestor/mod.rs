//! Workload attestation: what the agent can vouch for about the process calling the Workload API.
//!
//! Each attestor plugin looks at a PID and returns selector *values*; the host prefixes the plugin's
//! name as the selector *type* (SPIRE's rule), so `unix` returning `uid:1000` gives `unix:uid:1000`
//! and a plugin cannot speak for another. [`WorkloadAttestors`] runs every configured plugin in
//! parallel, as SPIRE's `pkg/agent/attestor/workload` does, keeps the selectors of those that
//! succeed, and checks afterwards that the caller is still the process that connected.
//!
//! The Workload API answers any [`AttestError`] with `Unavailable "workload attestation failed"`.

pub mod cgroup;
pub mod docker;
pub mod k8s;
pub mod systemd;
pub mod unix;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use spire_identity::selector::SelectorError;
use spire_identity::{Selector, SelectorSet};
use tracing::Instrument;

use crate::peer::{PeerError, Process, Watcher};

pub use docker::{DockerAttestor, DockerConfig};

/// Refuses the `experimental.sigstore` block of a container attestor (`k8s`, `docker`): image
/// signature verification is not built, and ignoring it would admit unsigned images.
pub(crate) fn refuse_sigstore(r: &mut spire_config::Reader<'_, '_>) {
    if let Some(mut experimental) = r.object("experimental") {
        if experimental.take("sigstore").is_some() {
            let message = format!(
                "{}: Sigstore image signature verification is not supported by this build",
                experimental.key_path("sigstore")
            );
            let line = experimental.pos().line;
            experimental.diags().error(spire_config::ConfigError::invalid(message, line));
        }
        experimental.finish();
    }
}
pub use k8s::{K8sAttestor, K8sConfig};
pub use systemd::SystemdAttestor;
pub use unix::{UnixAttestor, UnixConfig};

/// A workload attestor plugin.
#[async_trait]
pub trait WorkloadAttestor: Send + Sync + 'static {
    /// The plugin name, which becomes the type of every selector it returns.
    fn name(&self) -> &str;

    /// The selector values (`uid:1000`, not `unix:uid:1000`) for `process`.
    async fn attest(&self, process: Process<'_>) -> Result<Vec<String>, AttestError>;
}

/// Why a workload could not be attested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// A plugin could not attest the process; the message is the plugin's own.
    #[error(transparent)]
    Plugin(Box<dyn std::error::Error + Send + Sync>),
    /// A plugin returned a value that makes no selector (e.g. an empty one).
    #[error("invalid selector: {0}")]
    InvalidSelector(#[from] SelectorError),
    /// Every configured attestor failed.
    #[error("all workload attestors failed: {}", join_failures(.0))]
    AllFailed(Vec<AttestorFailure>),
    /// The caller exited or its PID now names another process, so what was attested is not the caller.
    #[error("could not verify existence of the original caller: {0}")]
    CallerChanged(#[source] PeerError),
}

impl AttestError {
    /// A plugin failure from any error or message.
    pub fn plugin(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Plugin(error.into())
    }
}

/// One attestor's failure, as SPIRE logs it.
#[derive(Debug, thiserror::Error)]
#[error("workload attestor {attestor:?} failed: {error}")]
pub struct AttestorFailure {
    /// The plugin name.
    pub attestor: String,
    /// What went wrong.
    #[source]
    pub error: AttestError,
}

fn join_failures(failures: &[AttestorFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The configured workload attestors, run together for each caller.
#[derive(Clone, Default)]
pub struct WorkloadAttestors {
    attestors: Vec<Arc<dyn WorkloadAttestor>>,
}

impl fmt::Debug for WorkloadAttestors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl WorkloadAttestors {
    /// The given plugins, in configuration order.
    pub fn new(attestors: impl IntoIterator<Item = Arc<dyn WorkloadAttestor>>) -> Self {
        Self { attestors: attestors.into_iter().collect() }
    }

    /// The plugin names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.attestors.iter().map(|a| a.name())
    }

    /// Attests a Workload API caller: the selectors for its PID, kept only if, once every plugin is
    /// done, the caller is still the process that connected (a PID reused meanwhile would otherwise
    /// get the caller's identities, or the caller another's).
    pub async fn attest(&self, caller: &Watcher) -> Result<SelectorSet, AttestError> {
        let selectors = self.attest_process(Process::caller(caller)).await?;
        caller.check().map_err(AttestError::CallerChanged)?;
        Ok(selectors)
    }

    /// The selectors of every plugin for `pid`, run in parallel.
    ///
    /// A plugin that fails is logged and left out; the call fails only if all of them do. With no
    /// plugins the set is empty (SPIRE's agent refuses such a configuration before it gets here).
    /// Dropping the future aborts the plugins still running.
    pub async fn attest_pid(&self, pid: i32) -> Result<SelectorSet, AttestError> {
        self.attest_process(Process::from_pid(pid)).await
    }

    /// [`WorkloadAttestors::attest_pid`] for a process given by PID or as a Workload API caller.
    pub async fn attest_process(&self, process: Process<'_>) -> Result<SelectorSet, AttestError> {
        let pid = process.pid();
        let mut results: Vec<(String, Result<Vec<Selector>, AttestError>)> = Vec::new();
        if let [only] = self.attestors.as_slice() {
            // One plugin (the common case): no task to spawn and wake, which is most of the cost of a
            // Workload API call.
            results.push((only.name().to_owned(), attest_one(only.as_ref(), process).await));
        } else {
            // Concurrently in this task: the plugins borrow the caller's handles, and one that blocks
            // (hashing a file, say) does so on a blocking thread of its own.
            let runs = self.attestors.iter().map(|attestor| {
                let span = tracing::debug_span!("workload_attestor", attestor = %attestor.name(), pid);
                async move { (attestor.name().to_owned(), attest_one(attestor.as_ref(), process).await) }
                    .instrument(span)
            });
            results = futures_util::future::join_all(runs).await;
        }

        let mut selectors = SelectorSet::new();
        let mut failures = Vec::new();
        let mut succeeded = 0usize;
        for (attestor, result) in results {
            match result {
                Ok(found) => {
                    succeeded += 1;
                    for selector in found {
                        selectors.insert(selector);
                    }
                }
                Err(error) => {
                    let failure = AttestorFailure { attestor, error };
                    tracing::error!(pid, error = %failure, "Failed to collect all selectors for PID");
                    failures.push(failure);
                }
            }
        }

        if succeeded == 0 && !failures.is_empty() {
            return Err(AttestError::AllFailed(failures));
        }
        // The health check calls the Workload API often: the agent's own PID is not worth a log line.
        if u32::try_from(pid).ok() != Some(std::process::id()) {
            let shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
            tracing::debug!(pid, selectors = ?shown, "PID attested to have selectors");
        }
        Ok(selectors)
    }
}

/// Runs one plugin and types its values with its name.
async fn attest_one(attestor: &dyn WorkloadAttestor, process: Process<'_>) -> Result<Vec<Selector>, AttestError> {
    let values = attestor.attest(process).await?;
    let name = attestor.name();
    values.into_iter().map(|value| Selector::new(name, value).map_err(AttestError::from)).collect()
}
