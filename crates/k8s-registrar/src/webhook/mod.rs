//! `mode = "webhook"`: a validating admission webhook that registers pods as the API server admits
//! them. Every pod entry hangs off one node entry matching every agent of the cluster
//! (`k8s_psat:cluster:<cluster>`), so every agent gets every pod's SVID: SPIRE's shape, kept for
//! compatibility; reconcile and crd modes parent entries to nodes.

pub mod admission;
pub mod tls;

use std::sync::Arc;

use hyper::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use spire_identity::SpiffeId;
use spire_proto::spire::api::types::Entry;

use crate::config::{Common, WebhookConfig};
use crate::https::{self, ListenError, SimpleRequest, SimpleResponse, error};
use crate::spire_api::{Entries, SpireError, api_id, id_string};
use crate::workload_id::{WorkloadIds, federates_with, namespace_selector, pod_name_selector, selector};
use admission::{PodEvent, ReviewError};

/// Why webhook mode stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// `cluster` does not make a valid path segment.
    #[error("cluster {cluster:?} does not make a valid SPIFFE ID: {reason}")]
    Cluster {
        /// The cluster name.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// The cluster's node entry could not be created.
    #[error("unable to create the node entry: {0}")]
    NodeEntry(SpireError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The listener could not start.
    #[error(transparent)]
    Listen(#[from] ListenError),
}

/// Registers pods on admission.
#[derive(Debug, Clone)]
pub struct Registrar {
    entries: Entries,
    ids: WorkloadIds,
    node_id: SpiffeId,
    cluster: String,
}

impl Registrar {
    /// A registrar for `cluster`.
    pub fn new(entries: Entries, ids: WorkloadIds, cluster: &str) -> Result<Self, WebhookError> {
        let node_id = ids
            .id(&format!("/k8s-workload-registrar/{cluster}/node"))
            .map_err(|reason| WebhookError::Cluster { cluster: cluster.to_owned(), reason })?;
        Ok(Self { entries, ids, node_id, cluster: cluster.to_owned() })
    }

    /// Makes sure the cluster's node entry exists (SPIRE's `Initialize`).
    pub async fn initialize(&self) -> Result<(), SpireError> {
        let entry = Entry {
            parent_id: Some(api_id(&self.ids.server_id())),
            spiffe_id: Some(api_id(&self.node_id)),
            selectors: vec![selector("k8s_psat", format!("cluster:{}", self.cluster))],
            ..Default::default()
        };
        let created = self.entries.create(entry).await?;
        tracing::info!(spiffe_id = %self.node_id, existed = created.existed, "Node entry ready");
        Ok(())
    }

    /// Answers one HTTP request.
    pub async fn handle(&self, request: SimpleRequest) -> SimpleResponse {
        if let Err(refusal) = admission::check_http(&request) {
            return refusal;
        }
        let review = match admission::parse_review(&request.body) {
            Ok(review) => review,
            Err(e) => return bad_request(e),
        };
        let event = match admission::pod_event(&review) {
            Ok(event) => event,
            Err(e) => return bad_request(e),
        };
        tracing::debug!(namespace = ?review.namespace, name = %review.name, operation = ?review.operation, "ReviewAdmission called");
        // A dry run (`kubectl ... --dry-run=server`) changes nothing in the cluster, so it must not
        // change SPIRE either: deleting a live pod's entry, or leaving one for a pod that never was.
        if review.dry_run {
            return (StatusCode::OK, "application/json", admission::allow(&review));
        }
        let done = match event {
            PodEvent::Create(pod) => self.create(&pod).await,
            PodEvent::Delete { namespace, name } => self.delete(&namespace, &name).await,
            PodEvent::Ignore(what) => {
                tracing::warn!("Admission request received for {what}; check filters");
                Ok(())
            }
        };
        match done {
            Ok(()) => (StatusCode::OK, "application/json", admission::allow(&review)),
            Err(e) => {
                let message = format!("Internal error occurred: {e}");
                tracing::error!("{message}");
                error(StatusCode::INTERNAL_SERVER_ERROR, &message)
            }
        }
    }

    async fn create(&self, pod: &Pod) -> Result<(), SpireError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let id = match self.ids.for_pod(pod) {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(()),
            Err(invalid) => {
                // Not the server's fault and not the pod's to fix: admit it, and say why it has no entry.
                tracing::error!("{invalid}");
                return Ok(());
            }
        };
        let entry = Entry {
            parent_id: Some(api_id(&self.node_id)),
            spiffe_id: Some(api_id(&id)),
            selectors: vec![namespace_selector(namespace), pod_name_selector(name)],
            federates_with: federates_with(pod),
            ..Default::default()
        };
        let created = self.entries.create(entry).await?;
        tracing::info!(spiffe_id = %id, namespace, pod = name, existed = created.existed, "Created pod entry");
        Ok(())
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), SpireError> {
        if self.ids.namespace_disabled(namespace) {
            return Ok(());
        }
        // Only entries under this registrar's node entry: another cluster's registrar on the same
        // server, or an operator, may have entries with the same two selectors.
        let node_id = self.node_id.to_string();
        let found: Vec<Entry> = self
            .entries
            .list_by_selectors(vec![namespace_selector(namespace), pod_name_selector(name)])
            .await?
            .into_iter()
            .filter(|e| id_string(&e.parent_id) == node_id)
            .collect();
        if found.len() > 1 {
            tracing::warn!(namespace, pod = name, count = found.len(), "Multiple pod entries found to delete");
        }
        tracing::info!(namespace, pod = name, count = found.len(), "Deleting pod entries");
        self.entries.delete(found.into_iter().map(|e| e.id).collect()).await
    }
}

fn bad_request(e: ReviewError) -> SimpleResponse {
    tracing::error!("{e}");
    error(StatusCode::BAD_REQUEST, &e.to_string())
}

/// Creates the node entry, then serves the webhook until the listener fails.
pub async fn run(
    common: &Common,
    config: &WebhookConfig,
    entries: Entries,
    ids: WorkloadIds,
) -> Result<(), WebhookError> {
    tracing::warn!("The webhook mode is deprecated in SPIRE; prefer reconcile or crd mode");
    let registrar = Arc::new(Registrar::new(entries, ids, &common.cluster)?);
    registrar.initialize().await.map_err(WebhookError::NodeEntry)?;
    let client_ca = (!config.insecure_skip_client_verification).then_some(config.cacert_path.as_str());
    let tls = tls::server_config(&config.cert_path, &config.key_path, client_ca)?;
    let listener = https::bind(&config.addr).await?;
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        skip_client_verification = config.insecure_skip_client_verification,
        "Serving HTTPS"
    );
    https::serve(listener, Some(tls), move |request| {
        let registrar = Arc::clone(&registrar);
        async move { registrar.handle(request).await }
    })
    .await;
    Ok(())
}
