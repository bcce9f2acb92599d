//! `mode = "crd"`: SpiffeID custom resources, each kept in step with one SPIRE entry.
//!
//! Four controllers, as in SPIRE v1.3.6: the SpiffeID controller ([`spiffeid`]) owns entries; with
//! `pod_controller` the Node ([`node`]) and Pod ([`pod`]) controllers write SpiffeIDs for nodes and
//! pods; with `add_svc_dns_name` the Endpoints controller ([`endpoints`]) adds service names to pod
//! SpiffeIDs. With `webhook_enabled` a validating webhook ([`validate`]) checks SpiffeIDs written by
//! hand. Unlike controller-runtime's ten-hour default, every object is looked at again every
//! [`RESYNC`], so entries deleted or edited behind the registrar's back converge quickly.
//!
//! Not done: SPIRE v1.3.6 mints the webhook's serving certificate from the server when
//! `webhook_cert_dir` is not mounted; here the directory must hold `tls.crt` and `tls.key`.

pub mod endpoints;
pub mod node;
pub mod pod;
pub mod resource;
pub mod spiffeid;
pub mod validate;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::config::{Common, CrdConfig};
use crate::leader::{Elector, LeaderError};
use crate::metrics::{Metrics, Outcome};
use crate::spire_api::Entries;
use crate::workload_id::WorkloadIds;

/// How often every object is reconciled again without a change.
pub const RESYNC: Duration = Duration::from_secs(10);
/// The Lease of leader election (SPIRE's `LeaderElectionID`).
pub const LEASE_NAME: &str = "spire-k8s-registrar-leader-election";
/// The first retry after a failure; doubled on each further failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why crd mode stopped.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// Leadership was lost.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The metrics or webhook listener failed.
    #[error(transparent)]
    Listen(#[from] crate::https::ListenError),
    /// The webhook's TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::webhook::tls::TlsError),
    /// A controller's watch ended (it never should).
    #[error("the {0} controller stopped")]
    Stopped(&'static str),
}

/// What every controller shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The server's Entry API.
    pub entries: Entries,
    /// Workload IDs.
    pub ids: WorkloadIds,
    /// `cluster`.
    pub cluster: String,
    /// The registrar's namespace (node SpiffeIDs, the Lease).
    pub namespace: String,
    metrics: Metrics,
    failures: Mutex<HashMap<String, u32>>,
    recorder: Recorder,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cluster", &self.cluster)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for the controllers.
    pub fn new(client: Client, entries: Entries, ids: WorkloadIds, cluster: &str, namespace: &str) -> Self {
        let reporter = Reporter { controller: "spire-k8s-registrar".into(), instance: crate::events::host_name() };
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            client,
            entries,
            ids,
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            metrics: Metrics::default(),
            failures: Mutex::new(HashMap::new()),
            recorder,
        }
    }

    /// Records a Warning Event on `obj` (best effort: failing to record is only logged).
    pub async fn warn<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: &str) {
        crate::events::warn(&self.recorder, obj, reason, note).await;
    }

    /// The next delay for `key` after one more failure.
    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = (*n + 1).min(16);
        FIRST_BACKOFF.saturating_mul(1 << (*n - 1)).min(MAX_BACKOFF)
    }

    fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

fn key<K: Resource>(controller: &str, obj: &K) -> String {
    format!("{controller}/{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Runs one controller over every `K` of the cluster: `reconcile` per object, failures retried with
/// per-object exponential backoff, each pass counted in the metrics. Returns if the watch stream
/// ends (it does not: watch errors are retried with backoff, so an API server outage is survived).
async fn run_controller<K, F, Fut, E>(name: &'static str, ctx: Arc<Context>, reconcile: F)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    let reconcile = Arc::new(reconcile);
    let timed = move |obj: Arc<K>, ctx: Arc<Context>| {
        let reconcile = Arc::clone(&reconcile);
        async move {
            let started = Instant::now();
            let k = key(name, obj.as_ref());
            let result = reconcile(obj, Arc::clone(&ctx)).await;
            let outcome = match &result {
                Ok(_) => {
                    ctx.succeeded(&k);
                    Outcome::Success
                }
                Err(_) => Outcome::Error,
            };
            ctx.metrics.reconciled(name, outcome, started.elapsed());
            result
        }
    };
    let error_policy = move |obj: Arc<K>, error: &E, ctx: Arc<Context>| {
        let delay = ctx.backoff(key(name, obj.as_ref()));
        tracing::warn!(
            controller = name,
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            error = %spire_cli::goerror::chain(error),
            retry_in_ms = delay.as_millis() as u64,
            "Reconcile failed"
        );
        Action::requeue(delay)
    };
    Controller::new(api, watcher::Config::default())
        .run(timed, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller = name, error = %e, "controller event");
            }
        })
        .await;
}

/// Runs the controllers (and the webhook, metrics and leader election as configured) until one
/// fails.
pub async fn run(
    common: &Common,
    config: &CrdConfig,
    client: Client,
    entries: Entries,
    ids: WorkloadIds,
    namespace: String,
) -> Result<(), CrdError> {
    tracing::info!(namespace = %namespace, "Initializing SPIFFE ID CRD Mode");
    if config.leader_election && config.leader_election_resource_lock != "leases" {
        tracing::info!(
            resource_lock = %config.leader_election_resource_lock,
            "leader election always uses a Lease (the configmaps lock no longer works on Kubernetes 1.24+)"
        );
    }
    let ctx = Arc::new(Context::new(client.clone(), entries.clone(), ids, &common.cluster, &namespace));

    // Webhooks and metrics serve on every replica, as controller-runtime's manager does.
    let metrics = ctx.metrics.clone();
    let metrics_addr = config.metrics_bind_addr.clone();
    let metrics_task = async move { metrics.serve(&metrics_addr).await };
    let webhook_task = async {
        if !config.webhook_enabled {
            return std::future::pending::<Result<(), CrdError>>().await;
        }
        let validator = validate::Validator::new(entries.clone(), &namespace, common.trust_domain.as_str());
        validator.serve(&config.webhook_cert_dir, config.webhook_port).await
    };

    let controllers = async {
        let elector = Elector::new(client.clone(), &namespace, LEASE_NAME);
        if config.leader_election {
            elector.acquire().await;
        }
        let hold = async { if config.leader_election { elector.hold().await } else { std::future::pending().await } };
        let spiffeids = run_controller("spiffeid", Arc::clone(&ctx), spiffeid::reconcile);
        let nodes = async {
            if config.pod_controller {
                tokio::join!(
                    run_controller("node", Arc::clone(&ctx), node::reconcile),
                    run_controller("pod", Arc::clone(&ctx), pod::reconcile),
                );
            } else {
                std::future::pending::<()>().await;
            }
        };
        let services = async {
            if config.add_svc_dns_name {
                tokio::join!(
                    run_controller("endpoints", Arc::clone(&ctx), endpoints::reconcile),
                    endpoints::remove_on_delete(Arc::clone(&ctx)),
                );
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            lost = hold => Err(CrdError::Leader(lost)),
            () = spiffeids => Err(CrdError::Stopped("spiffeid")),
            () = nodes => Err(CrdError::Stopped("pod")),
            () = services => Err(CrdError::Stopped("endpoints")),
        }
    };
    tokio::select! {
        r = metrics_task => r.map_err(CrdError::from).and(Err(CrdError::Stopped("metrics"))),
        r = webhook_task => r.and(Err(CrdError::Stopped("webhook"))),
        r = controllers => r,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_resets() {
        // Context needs a client; the arithmetic is checked through the same formula.
        let delays: Vec<_> =
            (1u32..=10).map(|n| super::FIRST_BACKOFF.saturating_mul(1 << (n - 1)).min(super::MAX_BACKOFF)).collect();
        assert_eq!(delays[0].as_millis(), 200);
        assert_eq!(delays[1].as_millis(), 400);
        assert_eq!(delays[9], super::MAX_BACKOFF);
    }
}
