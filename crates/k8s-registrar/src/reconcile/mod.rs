//! `mode = "reconcile"`: Node and Pod controllers that keep SPIRE entries in step with the cluster,
//! SPIRE v1.3.6's shapes.
//!
//! - Per Node, `spiffe://<td>/<controller_name>/<cluster>/node/<node>`, parent the server, selecting
//!   the agent k8s_psat attests on that node ([`node`]).
//! - Per scheduled Pod with a workload ID, an entry parented to its node's, selecting the pod by
//!   namespace and name, with the federation annotation's trust domains and, with
//!   `add_pod_dns_names`, the pod's DNS names ([`pod`], [`dns`]).
//!
//! Watches feed caches and a work queue; workers reconcile one object at a time against the
//! entries with its selectors that lie under the root ([`controller`], [`plan`]); every 10 s the
//! whole server is compared with the caches, so hand edits, deletions and whatever happened while
//! the registrar was down converge. With `leader_election`, only the Lease holder does any of it.

mod controller;
mod dns;
mod ids;
mod node;
mod plan;
mod pod;
mod queue;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};

use crate::config::{Common, ReconcileConfig};
use crate::https::ListenError;
use crate::leader::{self, Elector, LeaderError};
use crate::metrics::Metrics;
use crate::spire_api::Entries;
use crate::workload_id::WorkloadIds;

pub use ids::InvalidSegment;

/// Why reconcile mode stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// `controller_name` or `cluster` cannot be part of the root ID.
    #[error("unable to determine root ID: {0}")]
    RootId(#[from] InvalidSegment),
    /// The metrics listener could not start.
    #[error("unable to serve metrics: {0}")]
    Metrics(#[from] ListenError),
    /// Leadership was lost: another replica may be writing now, so this one stops.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Runs the controllers until they fail; with `leader_election`, only once this replica holds the
/// Lease `<controller_name>-leader-election` in `namespace`, and until it loses it.
pub async fn run(
    common: &Common,
    config: &ReconcileConfig,
    client: Client,
    entries: Entries,
    ids: WorkloadIds,
    namespace: String,
) -> Result<(), ReconcileError> {
    let roots = ids::Roots::new(ids, &config.controller_name, &common.cluster)?;
    tracing::info!(root_id = %roots.root(), add_pod_dns_names = config.add_pod_dns_names, "Reconciling nodes and pods");
    let metrics = Metrics::default();
    let serve_metrics = async {
        metrics.clone().serve(&config.metrics_addr).await?;
        // The listener stopped on its own: keep reconciling without it.
        std::future::pending::<Result<(), ReconcileError>>().await
    };

    let (caches, writers) = controller::caches(config.add_pod_dns_names);
    let apis = controller::Apis {
        nodes: Api::<Node>::all(client.clone()),
        pods: Api::<Pod>::all(client.clone()),
        endpoints: config.add_pod_dns_names.then(|| Api::<Endpoints>::all(client.clone())),
    };
    let reporter = Reporter { controller: config.controller_name.clone(), instance: crate::events::host_name() };
    let reconciler = controller::Reconciler {
        entries,
        roots,
        caches,
        dns: config.add_pod_dns_names.then(|| pod::DnsNames { zone: config.cluster_dns_zone.clone() }),
        metrics: metrics.clone(),
        recorder: Some(Recorder::new(client.clone(), reporter)),
        reported_invalid: Default::default(),
    };

    let election = config.leader_election.then(|| {
        leader::note_resource_lock(&config.leader_election_resource_lock);
        Elector::new(client, &namespace, &format!("{}-leader-election", config.controller_name))
    });
    let work = async { leader::lead(election, reconciler.run(apis, writers)).await.map_err(ReconcileError::Leader) };
    tokio::select! {
        result = serve_metrics => result,
        result = work => result,
    }
}
