//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several registrar
//! replicas writes entries (`leader_election`).
//!
//! client-go's algorithm with controller-runtime's timings: a candidate takes the Lease when it is
//! free or its holder has not renewed it for `leaseDurationSeconds` (15 s), the leader renews every
//! 2 s, and a leader that cannot renew for 10 s stops (the process exits, as controller-runtime's
//! manager does, so that a restarted replica starts from a clean state). SPIRE's
//! `leader_election_resource_lock = "configmaps"` no longer works on Kubernetes 1.24+; a Lease is
//! what every supported cluster has.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Error as KubeError};

const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Leadership was lost or could not be sought.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be renewed within the renew deadline.
    #[error("leader election lost: the Lease {name} could not be renewed for {secs} s")]
    Lost {
        /// The Lease's name.
        name: String,
        /// The renew deadline.
        secs: u64,
    },
}

/// Runs `work` when this process may: at once without an `election`, else once the Lease is held,
/// and stops it with an error the moment the Lease is lost (the process then exits, as
/// controller-runtime's manager does, so that no write happens after another replica took over).
pub async fn lead<T, F: Future<Output = T>>(election: Option<Elector>, work: F) -> Result<T, LeaderError> {
    let Some(elector) = election else {
        return Ok(work.await);
    };
    elector.acquire().await;
    tokio::select! {
        lost = elector.hold() => {
            tracing::error!("{lost}");
            Err(lost)
        }
        done = work => Ok(done),
    }
}

/// Says, once at start, that `leader_election_resource_lock` is not what decides the lock.
pub fn note_resource_lock(lock: &str) {
    if lock != "leases" {
        tracing::info!(lock, "leader_election_resource_lock is ignored: leader election always uses a Lease");
    }
}

/// One candidate for one Lease.
#[derive(Debug, Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The other holder's record as last seen, and when (on our clock): as client-go does, a Lease
    /// is judged expired by how long its record has not changed here, never by comparing its
    /// `renewTime` with our wall clock, which may disagree with the holder's.
    observed: Arc<Mutex<Option<(String, Instant)>>>,
}

impl Elector {
    /// A candidate for the Lease `namespace/name`, identified by host name and a random suffix.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        let host = crate::events::host_name().unwrap_or_default();
        let identity = format!("{host}_{}", uuid_suffix());
        Self { api: Api::namespaced(client, namespace), name: name.to_owned(), identity, observed: Arc::default() }
    }

    /// This candidate's holder identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) {
        tracing::info!(lease = %self.name, identity = %self.identity, "attempting to acquire leader lease");
        loop {
            match tokio::time::timeout(RENEW_DEADLINE, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => {
                    tracing::info!(lease = %self.name, "successfully acquired lease");
                    return;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "error retrieving resource lock"),
                Err(_) => tracing::warn!(lease = %self.name, "the API server did not answer about the Lease in time"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Keeps renewing the Lease; returns when it could not be renewed for the renew deadline,
    /// counted from the start of the last successful renewal (the `renewTime` others see), and a
    /// renewal still in flight at the deadline is abandoned: a leader must stop before another
    /// candidate may consider the Lease expired.
    pub async fn hold(&self) -> LeaderError {
        let mut renewed_at = Instant::now();
        loop {
            tokio::time::sleep(RETRY_PERIOD).await;
            let deadline = renewed_at + RENEW_DEADLINE;
            let attempt = Instant::now();
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => renewed_at = attempt,
                Ok(Ok(false)) => return self.lost(),
                Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "failed to renew lease"),
                Err(_) => return self.lost(),
            }
            if Instant::now() >= deadline {
                return self.lost();
            }
        }
    }

    /// Whether another holder's Lease record `version` has stayed unchanged, as seen here, for its
    /// lease duration.
    fn expired(&self, version: &str, spec: &LeaseSpec) -> bool {
        let duration =
            spec.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).map_or(LEASE_DURATION, Duration::from_secs);
        let mut observed = self.observed.lock().expect("observed lease record");
        match observed.as_ref() {
            Some((seen, since)) if seen == version => since.elapsed() > duration,
            _ => {
                *observed = Some((version.to_owned(), Instant::now()));
                false
            }
        }
    }

    fn lost(&self) -> LeaderError {
        LeaderError::Lost { name: self.name.clone(), secs: RENEW_DEADLINE.as_secs() }
    }

    /// Takes or renews the Lease if it is ours, free or expired; `false` if someone else holds it
    /// (or won a race for it).
    async fn try_acquire_or_renew(&self) -> Result<bool, KubeError> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let current = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !self.expired(&version, spec) {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
        spec.renew_time = Some(now);
        // The resourceVersion makes this a compare-and-swap: a concurrent taker gets a conflict.
        conflict_is_false(self.api.replace(&self.name, &PostParams::default(), &lease).await)
    }
}

fn conflict_is_false(result: Result<Lease, KubeError>) -> Result<bool, KubeError> {
    match result {
        Ok(_) => Ok(true),
        Err(KubeError::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn uuid_suffix() -> String {
    uuid::Uuid::new_v4().to_string()
}
