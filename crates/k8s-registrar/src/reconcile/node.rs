//! Node entries: `<root>/<node>`, parent the server, selecting the agent k8s_psat attests on that node
//! of this cluster. Pod entries hang off them, so a pod's SVID reaches only its node's agent.

use k8s_openapi::api::core::v1::Node;
use spire_proto::spire::api::types::{Entry, Selector};

use super::ids::Roots;
use super::plan::{Desired, Key};
use crate::workload_id::selector;

const NODE_NAME: &str = "agent_node_name:";
const CLUSTER: &str = "cluster:";

/// `k8s_psat:agent_node_name:<node>`, `k8s_psat:cluster:<cluster>`.
pub(crate) fn selectors(roots: &Roots, node: &str) -> Vec<Selector> {
    vec![
        selector("k8s_psat", format!("{NODE_NAME}{node}")),
        selector("k8s_psat", format!("{CLUSTER}{}", roots.cluster())),
    ]
}

/// What the node `name` should have; `node` is `None` when it no longer exists.
pub(crate) fn desired(roots: &Roots, name: &str, node: Option<&Node>) -> Desired {
    let Some(node) = node else { return Desired::Nothing };
    if node.metadata.deletion_timestamp.is_some() {
        return Desired::Nothing;
    }
    match roots.node_id(name) {
        Ok(id) => Desired::Entry(Box::new(Entry {
            spiffe_id: Some(id),
            parent_id: Some(roots.server().clone()),
            selectors: selectors(roots, name),
            ..Default::default()
        })),
        Err(e) => Desired::Invalid(e.to_string()),
    }
}

/// The node an owned entry stands for: its selectors must be exactly this cluster's node selectors
/// (the server's exact-match lookup finds no other).
pub(crate) fn key_of(roots: &Roots, entry: &Entry) -> Option<Key> {
    let [a, b] = entry.selectors.as_slice() else { return None };
    let name = [a, b]
        .iter()
        .find(|s| s.r#type == "k8s_psat" && s.value.starts_with(NODE_NAME))
        .map(|s| s.value[NODE_NAME.len()..].to_owned())?;
    (!name.is_empty() && selectors(roots, &name).iter().all(|want| entry.selectors.contains(want)))
        .then_some(Key::Node(name))
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::reconcile::ids::tests::roots;
    use crate::spire_api::id_string;

    fn node(name: &str) -> Node {
        Node { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn node_entry_shape() {
        let r = roots();
        let Desired::Entry(e) = desired(&r, "n1", Some(&node("n1"))) else { panic!("an entry") };
        assert_eq!(id_string(&e.spiffe_id), "spiffe://example.org/spire-k8s-registrar/prod/node/n1");
        assert_eq!(id_string(&e.parent_id), "spiffe://example.org/spire/server");
        let sel: Vec<String> = e.selectors.iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect();
        assert_eq!(sel, ["k8s_psat:agent_node_name:n1", "k8s_psat:cluster:prod"]);
        assert_eq!(key_of(&r, &e), Some(Key::Node("n1".into())));
    }

    #[test]
    fn gone_or_deleting_nodes_want_nothing() {
        let r = roots();
        assert_eq!(desired(&r, "n1", None), Desired::Nothing);
        let mut n = node("n1");
        n.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        assert_eq!(desired(&r, "n1", Some(&n)), Desired::Nothing);
    }

    #[test]
    fn keys_need_exactly_this_clusters_selectors() {
        let r = roots();
        let with = |sel: Vec<Selector>| Entry { selectors: sel, ..Default::default() };
        assert_eq!(
            key_of(&r, &with(vec![selector("k8s_psat", "cluster:prod"), selector("k8s_psat", "agent_node_name:x")])),
            Some(Key::Node("x".into()))
        );
        assert_eq!(
            key_of(&r, &with(vec![selector("k8s_psat", "agent_node_name:x"), selector("k8s_psat", "cluster:other")])),
            None
        );
        assert_eq!(key_of(&r, &with(vec![selector("k8s_psat", "agent_node_name:x")])), None);
    }
}
