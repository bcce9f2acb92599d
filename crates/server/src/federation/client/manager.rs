//! The bundle client's manager (SPIRE's `bundle/client.Manager`): one updater task per federated
//! trust domain, started, reconfigured and stopped as relationships come and go.
//!
//! Relationships come from two sources merged as SPIRE merges them: the `federates_with` entries of
//! the configuration, and those of the datastore (`spire-server federation create`); a trust domain
//! in both takes the configuration's. The sources are reread every 10 seconds (which also picks up
//! relationships written by other servers sharing the datastore) and at once after the TrustDomain
//! API changes one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use spire_datastore::{DataStore, DataStoreError};
use spire_identity::TrustDomain;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::schedule::{self, MINIMUM_REFRESH_HINT};
use super::updater::{Endpoint, UpdateError, Updater};

/// How often the relationships are reread (SPIRE's `configRefreshInterval`).
const CONFIG_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Timings, shortened by tests.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The smallest refresh hint honoured.
    pub minimum_refresh_hint: Duration,
    /// How often the relationships are reread.
    pub config_refresh_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self { minimum_refresh_hint: MINIMUM_REFRESH_HINT, config_refresh_interval: CONFIG_REFRESH_INTERVAL }
    }
}

/// A running updater.
#[derive(Debug)]
struct Managed {
    updater: Arc<Updater>,
    task: JoinHandle<()>,
}

/// The manager of the federated trust domains' updaters.
pub struct Manager {
    /// The server's own trust domain, never managed.
    own: TrustDomain,
    ds: Arc<dyn DataStore>,
    configured: RwLock<HashMap<TrustDomain, Endpoint>>,
    /// Serialises rereads of the sources (SPIRE's `configRefreshMtx`).
    refreshing: tokio::sync::Mutex<()>,
    updaters: Mutex<HashMap<TrustDomain, Managed>>,
    reload: Notify,
    timing: Timing,
    web_roots: Option<Arc<RootCertStore>>,
}

impl Manager {
    /// A manager of the relationships stored in `ds` (and, see [`Manager::with_configured`], of the
    /// configuration's).
    pub fn new(own: TrustDomain, ds: Arc<dyn DataStore>) -> Self {
        Self {
            own,
            ds,
            configured: RwLock::default(),
            refreshing: tokio::sync::Mutex::new(()),
            updaters: Mutex::default(),
            reload: Notify::new(),
            timing: Timing::default(),
            web_roots: None,
        }
    }

    /// The manager with the configuration's `federates_with` relationships.
    pub fn with_configured(self, configured: HashMap<TrustDomain, Endpoint>) -> Self {
        *self.configured.write().expect("configured lock") = configured;
        self
    }

    /// The manager with other timings (tests).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The manager authenticating `https_web` endpoints with `roots` instead of the system's (tests).
    pub fn with_web_roots(mut self, roots: Arc<RootCertStore>) -> Self {
        self.web_roots = Some(roots);
        self
    }

    /// Runs the manager until the returned task is aborted; the updaters stop with it.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            let _stop = StopUpdaters(manager.clone());
            loop {
                if let Err(e) = manager.refresh_configs().await {
                    tracing::error!(error = %e, "Failed to reload configs");
                }
                tokio::select! {
                    () = manager.reload.notified() => {}
                    () = tokio::time::sleep(manager.timing.config_refresh_interval) => {}
                }
            }
        })
    }

    /// Asks for the relationships to be reread now (after the API changed one).
    pub fn trigger_config_reload(&self) {
        self.reload.notify_one();
    }

    /// Rereads the relationships, then fetches `trust_domain`'s bundle now. `Ok(false)` when no
    /// relationship names it.
    pub async fn refresh_bundle_for(&self, trust_domain: &TrustDomain) -> Result<bool, UpdateError> {
        if let Err(e) = self.refresh_configs().await {
            tracing::error!(error = %e, "Failed to reload configs");
        }
        let updater = self.updaters.lock().expect("updaters lock").get(trust_domain).map(|m| m.updater.clone());
        let Some(updater) = updater else { return Ok(false) };
        match updater.update().await.error {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    /// The trust domains managed now, sorted.
    pub fn managed(&self) -> Vec<TrustDomain> {
        let mut out: Vec<_> = self.updaters.lock().expect("updaters lock").keys().cloned().collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out
    }

    /// The merged relationships: the datastore's, overridden by the configuration's. One for our own
    /// trust domain (the configuration and the API refuse it, but a shared datastore may hold one
    /// written by other software) is left out: fetching our own bundle from elsewhere would let that
    /// endpoint replace our roots.
    pub(super) async fn sources(&self) -> Result<HashMap<TrustDomain, Endpoint>, DataStoreError> {
        let (stored, _) = self.ds.list_federation_relationships(None).await?;
        let mut merged: HashMap<_, _> = stored
            .into_iter()
            .map(|r| (r.trust_domain, Endpoint { url: r.bundle_endpoint_url, profile: r.profile }))
            .collect();
        merged.extend(self.configured.read().expect("configured lock").iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged.remove(&self.own).is_some() {
            tracing::error!(
                trust_domain = %self.own,
                "Ignoring a federation relationship for the server's own trust domain; delete it"
            );
        }
        Ok(merged)
    }

    /// Starts, reconfigures and stops updaters to match the sources.
    async fn refresh_configs(&self) -> Result<(), DataStoreError> {
        let _serialised = self.refreshing.lock().await;
        let mut wanted = self.sources().await?;
        let mut updaters = self.updaters.lock().expect("updaters lock");
        updaters.retain(|td, managed| match wanted.remove(td) {
            Some(endpoint) => {
                if managed.updater.set_endpoint(endpoint.clone()) {
                    tracing::info!(
                        entry = %td,
                        bundle_endpoint_url = %endpoint.url,
                        bundle_endpoint_profile = endpoint.profile_name(),
                        "Updated configuration for managed trust domain"
                    );
                }
                true
            }
            None => {
                tracing::info!(entry = %td, "Trust domain no longer managed");
                managed.task.abort();
                false
            }
        });
        for (td, endpoint) in wanted {
            tracing::info!(
                bundle_endpoint_url = %endpoint.url,
                bundle_endpoint_profile = endpoint.profile_name(),
                trust_domain = %td,
                "Trust domain is now managed"
            );
            let updater = Arc::new(Updater::new(td.clone(), self.ds.clone(), endpoint, self.web_roots.clone()));
            let task = tokio::spawn(run_updater(td.clone(), updater.clone(), self.timing.minimum_refresh_hint));
            updaters.insert(td, Managed { updater, task });
        }
        Ok(())
    }
}

/// Stops every updater when the manager's task ends (it is aborted at shutdown).
struct StopUpdaters(Arc<Manager>);

impl Drop for StopUpdaters {
    fn drop(&mut self) {
        let mut updaters = self.0.updaters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, managed) in updaters.drain() {
            managed.task.abort();
        }
    }
}

/// Fetches at once, then whenever the bundle held says to.
async fn run_updater(trust_domain: TrustDomain, updater: Arc<Updater>, minimum: Duration) {
    loop {
        tracing::debug!(trust_domain = %trust_domain, "Polling for bundle update");
        let outcome = updater.update().await;
        if let Some(e) = &outcome.error {
            tracing::error!(trust_domain = %trust_domain, error = %e, "Error updating bundle");
        }
        let next = match (&outcome.stored, &outcome.local) {
            (Some(stored), _) => {
                tracing::info!(trust_domain = %trust_domain, "Bundle refreshed");
                schedule::next_update(stored, minimum)
            }
            (None, Some(local)) => schedule::next_update(local, minimum),
            // Nothing to take a hint from: an https_spiffe endpoint waits for its bundle to be
            // bootstrapped, so retry soon.
            (None, None) => minimum,
        };
        tracing::debug!(trust_domain = %trust_domain, in_secs = next.as_secs_f64(), "Scheduling next bundle refresh");
        tokio::time::sleep(next).await;
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("managed", &self.managed()).finish_non_exhaustive()
    }
}
