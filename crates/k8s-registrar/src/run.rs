//! Starting the configured mode, and stopping it on SIGTERM or SIGINT.

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, Mode};
use crate::spire_api::Entries;
use crate::workload_id::WorkloadIds;

/// Where a pod finds its namespace when the downward API does not set `MY_POD_NAMESPACE`.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Runs the registrar until a signal stops it or a mode fails.
pub async fn run(config: Config) -> anyhow::Result<()> {
    spire_cli::logging::init(&config.common.log).map_err(|e| anyhow::anyhow!("error setting up logging: {e}"))?;
    let common = &config.common;
    tracing::info!(mode = config.mode.name(), cluster = %common.cluster, trust_domain = %common.trust_domain.as_str(), "Starting k8s-workload-registrar");
    let entries = Entries::connect(&common.server).await.context("failed to dial server")?;
    let ids =
        WorkloadIds::new(common.trust_domain.clone(), common.id_source.clone(), common.disabled_namespaces.clone())
            .reserving(&config.node_root_path());
    let work = async {
        match &config.mode {
            Mode::Webhook(webhook) => crate::webhook::run(common, webhook, entries, ids).await.map_err(Into::into),
            Mode::Reconcile(reconcile) => {
                let client = kube::Client::try_default().await.context("no Kubernetes API configuration")?;
                let namespace = if reconcile.leader_election { my_namespace()? } else { String::new() };
                crate::reconcile::run(common, reconcile, client, entries, ids, namespace).await.map_err(Into::into)
            }
            Mode::Crd(crd) => {
                let client = kube::Client::try_default().await.context("no Kubernetes API configuration")?;
                let namespace = my_namespace()?;
                crate::crd::run(common, crd, client, entries, ids, namespace).await.map_err(Into::into)
            }
        }
    };
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        result = work => result,
        _ = term.recv() => { tracing::info!("Stopping on SIGTERM"); Ok(()) }
        _ = tokio::signal::ctrl_c() => { tracing::info!("Stopping on SIGINT"); Ok(()) }
    }
}

/// The registrar's own namespace (for its Lease and, in crd mode, the node SpiffeIDs):
/// `MY_POD_NAMESPACE`, else the service account's namespace file.
pub fn my_namespace() -> anyhow::Result<String> {
    if let Ok(namespace) = std::env::var("MY_POD_NAMESPACE") {
        return Ok(namespace);
    }
    std::fs::read_to_string(NAMESPACE_FILE)
        .map(|s| s.trim().to_owned())
        .with_context(|| "unable to get MY_POD_NAMESPACE; ensure downward API is configured for this pod".to_owned())
}
