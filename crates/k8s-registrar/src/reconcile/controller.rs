//! The controllers at work: watches feeding caches and the work queue, workers reconciling one
//! object at a time against the server, and the periodic resync that catches what no watch event
//! shows (entries deleted or changed by hand, objects deleted while the registrar was down).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kube::Api;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use spire_proto::spire::api::server::entry::v1::list_entries_request;
use spire_proto::spire::api::types::Entry;
use tokio::sync::Notify;

use super::ids::Roots;
use super::plan::{self, Desired, Key};
use super::pod::DnsNames;
use super::queue::WorkQueue;
use super::{dns, node, pod};
use crate::metrics::{Metrics, Outcome};
use crate::spire_api::{Entries, SpireError, id_string};
use crate::workload_id::{namespace_selector, pod_name_selector};

/// How often the whole of SPIRE is compared with the cluster (SPIRE's base controller polls every
/// 10 s too).
pub(crate) const RESYNC_INTERVAL: Duration = Duration::from_secs(10);
/// After a failed resync (the server is down), the next attempt comes sooner.
const RESYNC_RETRY: Duration = Duration::from_secs(2);
/// Objects reconciled at once.
const WORKERS: usize = 4;

/// The caches the controllers read objects from.
#[derive(Debug, Clone)]
pub(crate) struct Caches {
    pub(crate) nodes: Store<Node>,
    pub(crate) pods: Store<Pod>,
    /// Only with `add_pod_dns_names`.
    pub(crate) endpoints: Option<Store<Endpoints>>,
}

impl Caches {
    /// Waits until every cache holds a complete listing: before that, a missing object may only be
    /// not listed yet, and reconciling would delete its entry.
    async fn ready(&self) {
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        if let Some(endpoints) = &self.endpoints {
            let _ = endpoints.wait_until_ready().await;
        }
    }

    fn endpoints_in(&self, namespace: &str) -> Vec<Arc<Endpoints>> {
        match &self.endpoints {
            Some(store) => store.state_filter(|e| e.metadata.namespace.as_deref() == Some(namespace)),
            None => Vec::new(),
        }
    }
}

/// Reconciles objects with the server.
#[derive(Clone)]
pub(crate) struct Reconciler {
    pub(crate) entries: Entries,
    pub(crate) roots: Roots,
    pub(crate) caches: Caches,
    pub(crate) dns: Option<DnsNames>,
    pub(crate) metrics: Metrics,
    /// Publishes a Warning Event on pods whose ID is invalid.
    pub(crate) recorder: Option<Recorder>,
    /// Objects whose invalid ID has been reported: a resync reports the others (a pod that was
    /// already there when the registrar started is seen only through a resync, and an invalid ID
    /// is otherwise never out of step, having no entry to fix).
    pub(crate) reported_invalid: Arc<std::sync::Mutex<std::collections::HashSet<Key>>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("root", &self.roots.root().to_string()).finish_non_exhaustive()
    }
}

impl Reconciler {
    /// What `key` should have, from the caches.
    fn desired(&self, key: &Key) -> Desired {
        match key {
            Key::Node(name) => {
                node::desired(&self.roots, name, self.caches.nodes.get(&ObjectRef::new(name)).as_deref())
            }
            Key::Pod { namespace, name } => {
                let pod = self.caches.pods.get(&ObjectRef::new(name).within(namespace));
                let endpoints = self.caches.endpoints_in(namespace);
                pod::desired(&self.roots, pod.as_deref(), self.dns.as_ref(), endpoints.iter().map(AsRef::as_ref))
            }
        }
    }

    /// Whether `key` is left alone (a pod in `disabled_namespaces`).
    fn ignored(&self, key: &Key) -> bool {
        matches!(key, Key::Pod { namespace, .. } if self.roots.ids().namespace_disabled(namespace))
    }

    /// Brings the entries of `key` in step: the object's current state against the entries with its
    /// selectors that this controller owns.
    pub(crate) async fn reconcile(&self, key: &Key) -> Result<(), SpireError> {
        if self.ignored(key) {
            return Ok(());
        }
        let desired = self.desired(key);
        if let Desired::Invalid(why) = &desired {
            tracing::error!(object = %key, "Not registering: {why}");
            self.reported_invalid.lock().expect("reported set").insert(key.clone());
            self.warn_invalid(key, why).await;
            return Ok(());
        }
        self.reported_invalid.lock().expect("reported set").remove(key);
        let selectors = match key {
            Key::Node(name) => node::selectors(&self.roots, name),
            Key::Pod { namespace, name } => vec![namespace_selector(namespace), pod_name_selector(name)],
        };
        let actual: Vec<Entry> =
            self.entries.list_by_selectors(selectors).await?.into_iter().filter(|e| self.roots.owns(e)).collect();
        let plan = plan::plan(&desired, &actual);
        if let Some(entry) = plan.create {
            let created = self.entries.create(entry).await?;
            let (id, spiffe_id) = (&created.entry.id, id_string(&created.entry.spiffe_id));
            if created.existed {
                tracing::debug!(object = %key, entry_id = %id, %spiffe_id, "Found existing identical spire entry");
            } else {
                tracing::info!(object = %key, entry_id = %id, %spiffe_id, "Created new spire entry");
            }
        }
        if let Some(entry) = plan.update {
            let updated = self.entries.update(entry).await?;
            tracing::info!(object = %key, entry_id = %updated.id, spiffe_id = %id_string(&updated.spiffe_id), "Updated spire entry to match desired state");
        }
        if !plan.delete.is_empty() {
            tracing::info!(object = %key, entry_ids = ?plan.delete, "Deleting entries");
            self.entries.delete(plan.delete).await?;
        }
        Ok(())
    }

    /// A Warning Event on the pod whose ID is invalid, so that `kubectl describe pod` says why it
    /// has no identity.
    async fn warn_invalid(&self, key: &Key, why: &str) {
        let (Some(recorder), Key::Pod { namespace, name }) = (&self.recorder, key) else { return };
        let Some(pod) = self.caches.pods.get(&ObjectRef::new(name).within(namespace)) else { return };
        crate::events::warn(recorder, pod.as_ref(), "InvalidSpiffeID", why).await;
    }

    /// The objects whose entries are out of step, comparing every owned entry of the server with
    /// every cached object.
    pub(crate) async fn out_of_step(&self) -> Result<Vec<Key>, SpireError> {
        let all = self.entries.list(list_entries_request::Filter::default()).await?;
        let found = all.len();
        let mut actual: BTreeMap<Key, Vec<Entry>> = BTreeMap::new();
        for entry in all.into_iter().filter(|e| self.roots.owns(e)) {
            let Some(key) = node::key_of(&self.roots, &entry).or_else(|| pod::key_of(&entry)) else { continue };
            if !self.ignored(&key) {
                actual.entry(key).or_default().push(entry);
            }
        }
        let mut desired = BTreeMap::new();
        for node in self.caches.nodes.state() {
            let name = node.metadata.name.clone().unwrap_or_default();
            let want = node::desired(&self.roots, &name, Some(&node));
            desired.insert(Key::Node(name), want);
        }
        let mut endpoints: HashMap<String, Vec<Arc<Endpoints>>> = HashMap::new();
        if let Some(store) = &self.caches.endpoints {
            for eps in store.state() {
                endpoints.entry(eps.metadata.namespace.clone().unwrap_or_default()).or_default().push(eps);
            }
        }
        for pod in self.caches.pods.state() {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let key = Key::Pod { name: pod.metadata.name.clone().unwrap_or_default(), namespace };
            if self.ignored(&key) {
                continue;
            }
            let Key::Pod { namespace, .. } = &key else { continue };
            let eps = endpoints.get(namespace).map(Vec::as_slice).unwrap_or_default();
            let want = pod::desired(&self.roots, Some(&pod), self.dns.as_ref(), eps.iter().map(AsRef::as_ref));
            desired.insert(key, want);
        }
        let mut stale = plan::out_of_step(&desired, actual);
        {
            let mut reported = self.reported_invalid.lock().expect("reported set");
            reported.retain(|key| matches!(desired.get(key), Some(Desired::Invalid(_))));
            let unreported = desired
                .iter()
                .filter(|(key, want)| matches!(want, Desired::Invalid(_)) && !reported.contains(*key))
                .map(|(key, _)| key.clone());
            stale.extend(unreported);
        }
        tracing::debug!(found, objects = desired.len(), queued = stale.len(), "Synced spire entries");
        Ok(stale)
    }

    /// One worker: reconciles queued keys forever.
    async fn work(&self, queue: Arc<WorkQueue<Key>>) {
        self.caches.ready().await;
        loop {
            let key = queue.next().await;
            let start = Instant::now();
            let result = self.reconcile(&key).await;
            let outcome = match &result {
                Ok(()) => Outcome::Success,
                Err(e) => {
                    tracing::warn!(object = %key, error = %e, "Reconciliation failed; will retry");
                    Outcome::Error
                }
            };
            self.metrics.reconciled(key.controller(), outcome, start.elapsed());
            queue.done(key, result.is_ok());
        }
    }

    /// Queues what a comparison with the server finds out of step, every [`RESYNC_INTERVAL`] and
    /// whenever `now` is notified (a watch has listed everything again).
    async fn resync(&self, queue: Arc<WorkQueue<Key>>, now: Arc<Notify>) {
        self.caches.ready().await;
        loop {
            let wait = match self.out_of_step().await {
                Ok(stale) => {
                    if !stale.is_empty() {
                        tracing::info!(count = stale.len(), "Resync found entries out of step");
                    }
                    for key in stale {
                        queue.add(key);
                    }
                    RESYNC_INTERVAL
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Unable to fetch entries; will retry");
                    RESYNC_RETRY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = now.notified() => {}
            }
        }
    }

    /// Runs watches, workers and the resync until dropped.
    pub(crate) async fn run(self, api: Apis, writers: Writers) {
        let queue = WorkQueue::new();
        let relisted = Arc::new(Notify::new());
        let nodes = watch(api.nodes, writers.nodes, {
            let (queue, relisted) = (Arc::clone(&queue), Arc::clone(&relisted));
            move |event: &watcher::Event<Node>| match event {
                watcher::Event::Apply(n) | watcher::Event::Delete(n) => {
                    queue.add(Key::Node(n.metadata.name.clone().unwrap_or_default()));
                }
                watcher::Event::InitDone => relisted.notify_one(),
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            }
        });
        let pods = watch(api.pods, writers.pods, {
            let (queue, relisted) = (Arc::clone(&queue), Arc::clone(&relisted));
            let ids = self.roots.ids().clone();
            move |event: &watcher::Event<Pod>| match event {
                watcher::Event::Apply(p) | watcher::Event::Delete(p) => {
                    let namespace = p.metadata.namespace.clone().unwrap_or_default();
                    if !ids.namespace_disabled(&namespace) {
                        queue.add(Key::Pod { namespace, name: p.metadata.name.clone().unwrap_or_default() });
                    }
                }
                watcher::Event::InitDone => relisted.notify_one(),
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            }
        });
        let endpoints = {
            let handler = endpoints_handler(Arc::clone(&queue), Arc::clone(&relisted));
            async move {
                match (api.endpoints, writers.endpoints) {
                    (Some(api), Some(writer)) => watch(api, writer, handler).await,
                    _ => std::future::pending().await,
                }
            }
        };
        let workers = futures_util::future::join_all((0..WORKERS).map(|_| self.work(Arc::clone(&queue))));
        let resync = self.resync(Arc::clone(&queue), relisted);
        tokio::join!(nodes, pods, endpoints, workers, resync);
    }
}

/// Queues the pods an Endpoints object targets, now and before its change (a pod dropped from a
/// service loses the service's names).
fn endpoints_handler(queue: Arc<WorkQueue<Key>>, relisted: Arc<Notify>) -> impl FnMut(&watcher::Event<Endpoints>) {
    let mut targets: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    move |event| {
        let id = |e: &Endpoints| {
            (e.metadata.namespace.clone().unwrap_or_default(), e.metadata.name.clone().unwrap_or_default())
        };
        let queue_pods = |pods: Vec<(String, String)>| {
            for (namespace, name) in pods {
                queue.add(Key::Pod { namespace, name });
            }
        };
        match event {
            watcher::Event::Apply(e) => {
                let now = dns::targeted_pods(e);
                queue_pods(now.clone());
                queue_pods(targets.insert(id(e), now).unwrap_or_default());
            }
            watcher::Event::Delete(e) => {
                queue_pods(dns::targeted_pods(e));
                queue_pods(targets.remove(&id(e)).unwrap_or_default());
            }
            watcher::Event::InitApply(e) => {
                targets.insert(id(e), dns::targeted_pods(e));
            }
            watcher::Event::InitDone => relisted.notify_one(),
            watcher::Event::Init => {}
        }
    }
}

/// The APIs watched.
#[derive(Debug)]
pub(crate) struct Apis {
    pub(crate) nodes: Api<Node>,
    pub(crate) pods: Api<Pod>,
    pub(crate) endpoints: Option<Api<Endpoints>>,
}

/// The writing sides of [`Caches`].
#[derive(Debug)]
pub(crate) struct Writers {
    pub(crate) nodes: reflector::store::Writer<Node>,
    pub(crate) pods: reflector::store::Writer<Pod>,
    pub(crate) endpoints: Option<reflector::store::Writer<Endpoints>>,
}

/// Caches and their writers; endpoints only if `with_endpoints`.
pub(crate) fn caches(with_endpoints: bool) -> (Caches, Writers) {
    let (nodes, nodes_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store();
    let (endpoints, endpoints_writer) = if with_endpoints {
        let (store, writer) = reflector::store();
        (Some(store), Some(writer))
    } else {
        (None, None)
    };
    (Caches { nodes, pods, endpoints }, Writers { nodes: nodes_writer, pods: pods_writer, endpoints: endpoints_writer })
}

/// Watches `api` into `writer` forever (reconnecting with backoff), calling `on_event` once the
/// cache holds the event's change.
async fn watch<K>(api: Api<K>, writer: reflector::store::Writer<K>, mut on_event: impl FnMut(&watcher::Event<K>))
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let kind = K::kind(&());
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => on_event(&event),
            Err(e) => tracing::warn!(%kind, error = %e, "Watch failed; retrying"),
        }
    }
}
