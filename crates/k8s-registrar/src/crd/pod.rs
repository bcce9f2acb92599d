//! The Pod controller (`pod_controller`): a SpiffeID per scheduled pod, named after the pod in its
//! namespace and owned by it, for the pod's workload ID under its node's ID.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};

use super::resource::{POD_UID_LABEL, SpiffeID, SpiffeIdSelector, SpiffeIdSpec, owned_by_previous, owner_reference};
use super::{Context, RESYNC};
use crate::workload_id::{InvalidWorkloadId, WorkloadIds, federates_with};

/// How soon to look again at a pod whose SpiffeID name is still taken by a previous pod's.
const STALE_RETRY: std::time::Duration = std::time::Duration::from_millis(300);

/// A pod whose SpiffeID cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodIdError {
    /// Its workload ID is not valid.
    #[error(transparent)]
    Workload(#[from] InvalidWorkloadId),
    /// Its node's ID is not valid (the cluster name, or the node name).
    #[error("pod {namespace}/{pod}: node {node:?} of cluster {cluster:?} does not make a valid SPIFFE ID: {reason}")]
    Parent {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// Its node.
        node: String,
        /// `cluster`.
        cluster: String,
        /// Why.
        reason: String,
    },
}

/// Why a pod could not be reconciled (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The Kubernetes API failed.
    #[error("SpiffeID for pod: {0}")]
    Kube(#[from] kube::Error),
}

/// `spiffe://<td>/k8s-workload-registrar/<cluster>/node/<node>`: a node's ID, the parent of its
/// pods' entries.
pub fn node_id(ids: &WorkloadIds, cluster: &str, node: &str) -> Result<String, String> {
    ids.id(&format!("/k8s-workload-registrar/{cluster}/node/{node}")).map(|id| id.to_string())
}

/// The SpiffeID the registrar keeps for `pod`; `None` until the pod is scheduled, or when it gets no
/// ID (disabled namespace, no label or annotation).
pub fn pod_spiffe_id(pod: &Pod, ids: &WorkloadIds, cluster: &str) -> Result<Option<SpiffeID>, PodIdError> {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let Some(id) = ids.for_pod(pod)? else { return Ok(None) };
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let parent = node_id(ids, cluster, &node).map_err(|reason| PodIdError::Parent {
        namespace: namespace.clone(),
        pod: name.clone(),
        node: node.clone(),
        cluster: cluster.to_owned(),
        reason,
    })?;
    let mut s = SpiffeID::new(
        &name,
        SpiffeIdSpec {
            parent_id: parent,
            spiffe_id: id.to_string(),
            selector: SpiffeIdSelector {
                pod_uid: uid.clone(),
                namespace: namespace.clone(),
                node_name: node,
                ..Default::default()
            },
            downstream: false,
            // SPIRE's default `dns_name_templates`: `{{.Pod.Name}}`.
            dns_names: vec![name.clone()],
            federates_with: federates_with(pod),
        },
    );
    s.metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace),
        labels: Some(BTreeMap::from([(POD_UID_LABEL.to_owned(), uid.clone())])),
        owner_references: Some(vec![owner_reference("Pod", &name, &uid)]),
        ..Default::default()
    };
    Ok(Some(s))
}

/// Reconciles one pod.
pub async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, PodError> {
    let desired = match pod_spiffe_id(&pod, &ctx.ids, &ctx.cluster) {
        Ok(Some(desired)) => desired,
        Ok(None) => return Ok(Action::await_change()),
        Err(e) => {
            // Logged and recorded on the pod, never written: retrying cannot help until the pod
            // (or the configuration) changes.
            tracing::error!(error = %e, "Not registering pod");
            ctx.warn(pod.as_ref(), "InvalidSpiffeID", &e.to_string()).await;
            return Ok(Action::await_change());
        }
    };
    let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    let uid = desired.spec.selector.pod_uid.clone();
    let api: Api<SpiffeID> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(mut existing) = api.get_opt(&name).await? else {
        return match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                tracing::info!(%namespace, %name, spiffe_id = %desired.spec.spiffe_id, "Created SpiffeID for pod");
                Ok(Action::requeue(RESYNC))
            }
            // Created meanwhile (or still being deleted): look again soon.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Action::requeue(STALE_RETRY)),
            Err(e) => Err(e.into()),
        };
    };
    if existing.spec.selector.pod_uid != uid {
        // A previous pod of the same name (a StatefulSet's pod recreated): its SpiffeID must go first.
        if existing.metadata.deletion_timestamp.is_none() && owned_by_previous(&existing, "Pod", &uid) {
            tracing::info!(%namespace, %name, "Deleting the SpiffeID of a previous pod of the same name");
            if let Err(e) = api.delete(&name, &DeleteParams::default()).await
                && !matches!(&e, kube::Error::Api(s) if s.code == 404)
            {
                return Err(e.into());
            }
        } else if existing.metadata.deletion_timestamp.is_none() {
            tracing::warn!(%namespace, %name, "A SpiffeID of the pod's name exists for another pod; not replacing it");
            return Ok(Action::requeue(RESYNC));
        }
        return Ok(Action::requeue(STALE_RETRY));
    }
    if existing.spec.spiffe_id != desired.spec.spiffe_id {
        existing.spec.spiffe_id = desired.spec.spiffe_id.clone();
        api.replace(&name, &PostParams::default(), &existing).await?;
        tracing::info!(%namespace, %name, spiffe_id = %desired.spec.spiffe_id, "Updated SpiffeID for pod");
    }
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use spire_identity::TrustDomain;

    use super::*;
    use crate::config::IdSource;

    fn ids() -> WorkloadIds {
        WorkloadIds::new(
            TrustDomain::parse("example.org").unwrap(),
            IdSource::ServiceAccount,
            vec!["kube-system".into()],
        )
    }

    fn pod(ns: &str, node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some(ns.into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("blog".into()),
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_scheduled_pod_gets_spires_shape() {
        let s = pod_spiffe_id(&pod("prod", Some("n1")), &ids(), "demo").unwrap().unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("web-0"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(s.labels().get("podUid").map(String::as_str), Some("uid-1"));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Pod", "uid-1", Some(true)));
        assert_eq!(s.spec.spiffe_id, "spiffe://example.org/ns/prod/sa/blog");
        assert_eq!(s.spec.parent_id, "spiffe://example.org/k8s-workload-registrar/demo/node/n1");
        assert_eq!(s.spec.dns_names, ["web-0"]);
        let selectors: Vec<_> =
            s.spec.selector.selectors().into_iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect();
        assert_eq!(selectors, ["k8s:pod-uid:uid-1", "k8s:ns:prod", "k8s:node-name:n1"]);
    }

    #[test]
    fn unscheduled_and_disabled_pods_get_none() {
        assert!(matches!(pod_spiffe_id(&pod("prod", None), &ids(), "demo"), Ok(None)));
        assert!(matches!(pod_spiffe_id(&pod("prod", Some("")), &ids(), "demo"), Ok(None)));
        assert!(matches!(pod_spiffe_id(&pod("kube-system", Some("n1")), &ids(), "demo"), Ok(None)));
    }

    #[test]
    fn invalid_ids_are_errors() {
        let ids = WorkloadIds::new(TrustDomain::parse("example.org").unwrap(), IdSource::Label("id".into()), vec![]);
        let mut p = pod("prod", Some("n1"));
        p.metadata.labels = Some([("id".to_owned(), "a//b".to_owned())].into());
        assert!(matches!(pod_spiffe_id(&p, &ids, "demo"), Err(PodIdError::Workload(_))));
        assert!(matches!(
            pod_spiffe_id(&pod("prod", Some("n1")), &super::tests::ids(), "bad cluster"),
            Err(PodIdError::Parent { .. })
        ));
    }

    #[test]
    fn a_previous_pods_spiffeid_is_stale() {
        let s = pod_spiffe_id(&pod("prod", Some("n1")), &ids(), "demo").unwrap().unwrap();
        assert!(owned_by_previous(&s, "Pod", "uid-2"));
        assert!(!owned_by_previous(&s, "Pod", "uid-1"));
        let mut by_hand = s.clone();
        by_hand.metadata.owner_references = None;
        assert!(!owned_by_previous(&by_hand, "Pod", "uid-2"));
    }
}
