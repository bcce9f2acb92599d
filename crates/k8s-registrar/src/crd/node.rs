//! The Node controller (`pod_controller`): a SpiffeID per Node in the registrar's namespace, owned
//! by the Node, for the node alias its pods' entries hang off: every agent attested on that node
//! (`k8s_psat:agent_node_uid`) of this cluster (`k8s_psat:cluster`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};

use super::pod::node_id;
use super::resource::{NODE_UID_LABEL, SpiffeID, SpiffeIdSelector, SpiffeIdSpec, owned_by_previous, owner_reference};
use super::{Context, RESYNC};
use crate::workload_id::WorkloadIds;

/// Why a node could not be reconciled (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Kubernetes API failed.
    #[error("SpiffeID for node: {0}")]
    Kube(#[from] kube::Error),
}

/// The SpiffeID of `node`, in `namespace`; or why its ID is not valid.
pub fn node_spiffe_id(node: &Node, ids: &WorkloadIds, cluster: &str, namespace: &str) -> Result<SpiffeID, String> {
    let name = node.name_any();
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let id = node_id(ids, cluster, &name)?;
    let mut s = SpiffeID::new(
        &name,
        SpiffeIdSpec {
            parent_id: ids.server_id().to_string(),
            spiffe_id: id,
            selector: SpiffeIdSelector {
                cluster: cluster.to_owned(),
                agent_node_uid: uid.clone(),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    s.metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(NODE_UID_LABEL.to_owned(), uid.clone())])),
        owner_references: Some(vec![owner_reference("Node", &name, &uid)]),
        ..Default::default()
    };
    Ok(s)
}

/// Reconciles one node: creates its SpiffeID if missing (replacing one of a previous node of the
/// same name).
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, NodeError> {
    let desired = match node_spiffe_id(&node, &ctx.ids, &ctx.cluster, &ctx.namespace) {
        Ok(desired) => desired,
        Err(reason) => {
            tracing::error!(node = node.name_any(), cluster = %ctx.cluster, %reason, "Node does not make a valid SPIFFE ID");
            return Ok(Action::await_change());
        }
    };
    let name = node.name_any();
    let api: Api<SpiffeID> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match api.get_opt(&name).await? {
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => tracing::info!(node = %name, spiffe_id = %desired.spec.spiffe_id, "Created SpiffeID for node"),
            Err(kube::Error::Api(status)) if status.code == 409 => return Ok(Action::requeue(super::FIRST_BACKOFF)),
            Err(e) => return Err(e.into()),
        },
        Some(existing) if existing.spec.selector.agent_node_uid != desired.spec.selector.agent_node_uid => {
            if existing.metadata.deletion_timestamp.is_none()
                && owned_by_previous(&existing, "Node", &desired.spec.selector.agent_node_uid)
            {
                tracing::info!(node = %name, "Deleting the SpiffeID of a previous node of the same name");
                if let Err(e) = api.delete(&name, &DeleteParams::default()).await
                    && !matches!(&e, kube::Error::Api(s) if s.code == 404)
                {
                    return Err(e.into());
                }
            }
            return Ok(Action::requeue(super::FIRST_BACKOFF));
        }
        Some(_) => {}
    }
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use spire_identity::TrustDomain;

    use super::*;
    use crate::config::IdSource;

    #[test]
    fn a_node_gets_spires_shape() {
        let ids = WorkloadIds::new(TrustDomain::parse("example.org").unwrap(), IdSource::ServiceAccount, vec![]);
        let node = Node {
            metadata: ObjectMeta { name: Some("n1".into()), uid: Some("nu".into()), ..Default::default() },
            ..Default::default()
        };
        let s = node_spiffe_id(&node, &ids, "demo", "spire").unwrap();
        assert_eq!(s.metadata.namespace.as_deref(), Some("spire"));
        assert_eq!(s.labels().get("nodeUid").map(String::as_str), Some("nu"));
        assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].kind, "Node");
        assert_eq!(s.spec.spiffe_id, "spiffe://example.org/k8s-workload-registrar/demo/node/n1");
        assert_eq!(s.spec.parent_id, "spiffe://example.org/spire/server");
        let selectors: Vec<_> =
            s.spec.selector.selectors().into_iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect();
        assert_eq!(selectors, ["k8s_psat:cluster:demo", "k8s_psat:agent_node_uid:nu"]);
        assert!(s.spec.dns_names.is_empty());
        assert!(node_spiffe_id(&node, &ids, "a b", "spire").is_err());
    }
}
