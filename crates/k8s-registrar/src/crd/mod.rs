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
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::config::{Common, CrdConfig};
use crate::leader::{self, Elector, LeaderError};
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
/// A failure count not touched for this long is forgotten: an object that keeps failing is retried
/// within [`MAX_BACKOFF`], so the count belongs to an object that is gone (or to a retry that lost
/// its way, which then starts again from [`FIRST_BACKOFF`]).
const FORGET_AFTER: Duration = Duration::from_secs(300);

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
    failures: Backoffs,
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
            failures: Backoffs::default(),
            recorder,
        }
    }

    /// Records a Warning Event on `obj` (best effort: failing to record is only logged).
    pub async fn warn<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: &str) {
        crate::events::warn(&self.recorder, obj, reason, note).await;
    }
}

/// Per-object failure counts for the retry backoff. A count goes when its object reconciles, when
/// the controller finds the object gone, or when it has not been touched for [`FORGET_AFTER`], so
/// objects deleted while failing do not stay in the map.
#[derive(Debug)]
struct Backoffs(Mutex<BackoffCounts>);

#[derive(Debug)]
struct BackoffCounts {
    /// Failures in a row and when the last one was, per object key.
    counts: HashMap<String, (u32, Instant)>,
    /// When counts were last swept for stale ones.
    swept: Instant,
}

impl Default for Backoffs {
    fn default() -> Self {
        Self(Mutex::new(BackoffCounts { counts: HashMap::new(), swept: Instant::now() }))
    }
}

impl Backoffs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BackoffCounts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next delay for `key` after one more failure at `now`.
    fn next(&self, key: String, now: Instant) -> Duration {
        let mut inner = self.lock();
        // At most one sweep per FORGET_AFTER, so that many objects failing together (the server is
        // down) do not each walk the whole map.
        if now.saturating_duration_since(inner.swept) >= FORGET_AFTER {
            inner.counts.retain(|_, (_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
            inner.swept = now;
        }
        let (n, last) = inner.counts.entry(key).or_insert((0, now));
        *n = (*n + 1).min(16);
        *last = now;
        delay(*n)
    }

    /// Forgets `key`'s failures (it reconciled, or is gone).
    fn forget(&self, key: &str) {
        self.lock().counts.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().counts.len()
    }
}

/// The retry delay after `failures` failures in a row.
fn delay(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << (failures.max(1) - 1)).min(MAX_BACKOFF)
}

fn key(controller: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{controller}/{}/{name}", namespace.unwrap_or_default())
}

fn key_of<K: Resource>(controller: &str, obj: &K) -> String {
    key(controller, obj.meta().namespace.as_deref(), &obj.name_any())
}

/// `K`'s resource as `kubectl` and RBAC rules name it: `pods`, `spiffeids.spiffeid.spiffe.io`.
fn resource_name<K: Resource<DynamicType = ()>>() -> String {
    let (plural, group) = (K::plural(&()), K::group(&()));
    if group.is_empty() { plural.into_owned() } else { format!("{plural}.{group}") }
}

/// What an operator should look at when watching `resource` fails with `error`.
fn watch_failure_hint(resource: &str, error: &watcher::Error) -> Option<String> {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::WatchError(status) => status.code,
        _ => return None,
    };
    let hint = match code {
        404 => format!("the API server does not serve {resource}: is its CustomResourceDefinition installed?"),
        403 => format!(
            "the registrar's service account may not list and watch {resource}: check its ClusterRole and binding"
        ),
        401 => "the API server does not accept the registrar's credentials".to_owned(),
        _ => return None,
    };
    Some(hint)
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
            let k = key_of(name, obj.as_ref());
            let result = reconcile(obj, Arc::clone(&ctx)).await;
            let outcome = match &result {
                Ok(_) => {
                    ctx.failures.forget(&k);
                    Outcome::Success
                }
                Err(_) => Outcome::Error,
            };
            ctx.metrics.reconciled(name, outcome, started.elapsed());
            result
        }
    };
    let error_policy = move |obj: Arc<K>, error: &E, ctx: Arc<Context>| {
        let delay = ctx.failures.next(key_of(name, obj.as_ref()), Instant::now());
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
    let resource = resource_name::<K>();
    Controller::new(api, watcher::Config::default())
        .run(timed, error_policy, Arc::clone(&ctx))
        .for_each(|result| {
            match result {
                Ok(_) => {}
                // Logged by the error policy.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                // Deleted before its turn came (usual): it will not fail again.
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(controller = name, object = %obj, "Object gone before it was reconciled");
                    ctx.failures.forget(&key(name, obj.namespace.as_deref(), &obj.name));
                }
                // The watch failed: nothing of this kind is reconciled until it works again.
                Err(controller::Error::QueueError(e)) => match watch_failure_hint(&resource, &e) {
                    Some(hint) => tracing::warn!(
                        controller = name,
                        %resource,
                        error = %e,
                        "Unable to watch {resource}; retrying: {hint}"
                    ),
                    None => {
                        tracing::warn!(controller = name, %resource, error = %e, "Unable to watch {resource}; retrying")
                    }
                },
                Err(e @ controller::Error::RunnerError(_)) => {
                    tracing::warn!(controller = name, %resource, error = %e, "Controller failure");
                }
            }
            std::future::ready(())
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

    let election = config.leader_election.then(|| {
        leader::note_resource_lock(&config.leader_election_resource_lock);
        Elector::new(client.clone(), &namespace, LEASE_NAME)
    });
    let controllers = async {
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
        let stopped = async {
            tokio::select! {
                () = spiffeids => CrdError::Stopped("spiffeid"),
                () = nodes => CrdError::Stopped("pod"),
                () = services => CrdError::Stopped("endpoints"),
            }
        };
        match leader::lead(election, stopped).await {
            Ok(stopped) => Err(stopped),
            Err(lost) => Err(CrdError::Leader(lost)),
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
    use k8s_openapi::api::core::v1::Pod;
    use kube::core::Status;

    use super::*;
    use crate::crd::resource::SpiffeID;

    #[test]
    fn backoff_doubles_and_resets() {
        let backoffs = Backoffs::default();
        let now = Instant::now();
        let delays: Vec<_> = (0..10).map(|_| backoffs.next("pod/ns/a".into(), now)).collect();
        assert_eq!(delays[0].as_millis(), 200);
        assert_eq!(delays[1].as_millis(), 400);
        assert_eq!(delays[9], MAX_BACKOFF);
        // Many more failures do not overflow.
        for _ in 0..100 {
            assert_eq!(backoffs.next("pod/ns/a".into(), now), MAX_BACKOFF);
        }
        backoffs.forget("pod/ns/a");
        assert_eq!(backoffs.next("pod/ns/a".into(), now).as_millis(), 200);
    }

    #[test]
    fn counts_of_objects_no_longer_retried_are_forgotten() {
        let backoffs = Backoffs::default();
        let start = Instant::now();
        for i in 0..100 {
            backoffs.next(format!("pod/ns/gone-{i}"), start);
        }
        // Deleted: the controller reports it gone.
        backoffs.forget(&key("pod", Some("ns"), "gone-0"));
        assert_eq!(backoffs.len(), 99);
        // One object keeps failing, retried within MAX_BACKOFF; the others are never seen again.
        let mut now = start;
        while now < start + FORGET_AFTER * 2 {
            now += MAX_BACKOFF;
            backoffs.next("pod/ns/failing".into(), now);
        }
        assert_eq!(backoffs.len(), 1, "only the object still failing keeps its count");
        assert_eq!(backoffs.next("pod/ns/failing".into(), now), MAX_BACKOFF, "and its backoff");
    }

    #[test]
    fn keys_from_objects_and_refs_agree() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("prod".into());
        let r = kube::runtime::reflector::ObjectRef::from_obj(&pod).erase();
        assert_eq!(key_of("pod", &pod), key("pod", r.namespace.as_deref(), &r.name));
        assert_eq!(key_of("pod", &pod), "pod/prod/web");
    }

    #[test]
    fn watch_failures_say_what_to_fix() {
        assert_eq!(resource_name::<Pod>(), "pods");
        assert_eq!(resource_name::<SpiffeID>(), "spiffeids.spiffeid.spiffe.io");
        let api = |code: u16| kube::Error::Api(Box::new(Status { code, ..Status::failure("x", "y") }));
        let resource = "spiffeids.spiffeid.spiffe.io";
        let missing = watch_failure_hint(resource, &watcher::Error::InitialListFailed(api(404))).unwrap();
        assert!(missing.contains("spiffeids.spiffeid.spiffe.io") && missing.contains("CustomResourceDefinition"));
        let forbidden = watch_failure_hint(resource, &watcher::Error::WatchStartFailed(api(403))).unwrap();
        assert!(forbidden.contains("list and watch spiffeids.spiffeid.spiffe.io") && forbidden.contains("ClusterRole"));
        assert!(watch_failure_hint(resource, &watcher::Error::WatchFailed(api(401))).is_some());
        assert!(watch_failure_hint(resource, &watcher::Error::InitialListFailed(api(500))).is_none());
        assert!(watch_failure_hint(resource, &watcher::Error::NoResourceVersion).is_none());
    }
}
