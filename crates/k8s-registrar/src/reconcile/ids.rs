//! The IDs reconcile mode writes under, and which entries it therefore owns.
//!
//! Everything hangs off one root, `spiffe://<td>/<controller_name>/<cluster>/node`: node entries are
//! `<root>/<node>` (parent the server), pod entries have parent `<root>/<node>`. Entries are not
//! tagged in SPIRE, so ownership is read back from these IDs: an entry whose parent or SPIFFE ID lies
//! under the root is ours to update or delete, anything else is left alone.

use spire_identity::SpiffeId;
use spire_proto::spire::api::types::{Entry, Spiffeid};

use crate::spire_api::api_id;
use crate::workload_id::WorkloadIds;

/// A path segment that cannot be used (SPIRE's `JoinPathSegments` refuses it too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} does not make a valid SPIFFE ID path segment: {reason}")]
pub struct InvalidSegment {
    /// What the value is (`controller_name`, `cluster`, `node name`).
    pub what: &'static str,
    /// The value.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// The root, the server's ID and the cluster name.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    ids: WorkloadIds,
    root: SpiffeId,
    server: Spiffeid,
    cluster: String,
}

impl Roots {
    /// The root for `controller_name` and `cluster`.
    pub(crate) fn new(ids: WorkloadIds, controller_name: &str, cluster: &str) -> Result<Self, InvalidSegment> {
        segment("controller_name", controller_name)?;
        segment("cluster", cluster)?;
        let root = ids.id(&format!("/{controller_name}/{cluster}/node")).map_err(|reason| InvalidSegment {
            what: "controller_name/cluster",
            value: format!("{controller_name}/{cluster}"),
            reason,
        })?;
        let server = api_id(&ids.server_id());
        Ok(Self { ids, root, server, cluster: cluster.to_owned() })
    }

    /// The workload IDs.
    pub(crate) fn ids(&self) -> &WorkloadIds {
        &self.ids
    }

    /// `spiffe://<td>/<controller_name>/<cluster>/node`.
    pub(crate) fn root(&self) -> &SpiffeId {
        &self.root
    }

    /// `spiffe://<td>/spire/server`.
    pub(crate) fn server(&self) -> &Spiffeid {
        &self.server
    }

    /// The cluster name (`k8s_psat:cluster:` selector).
    pub(crate) fn cluster(&self) -> &str {
        &self.cluster
    }

    /// `<root>/<node>`: a node's entry ID and its pods' parent.
    pub(crate) fn node_id(&self, node: &str) -> Result<Spiffeid, InvalidSegment> {
        segment("node name", node)?;
        let id = self.ids.id(&format!("{}/{node}", self.root.path())).map_err(|reason| InvalidSegment {
            what: "node name",
            value: node.to_owned(),
            reason,
        })?;
        Ok(api_id(&id))
    }

    /// Whether `id` lies strictly under the root.
    fn under_root(&self, id: &Option<Spiffeid>) -> bool {
        id.as_ref().is_some_and(|id| {
            id.trust_domain == self.root.trust_domain().as_str()
                && id.path.strip_prefix(self.root.path()).is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Whether this controller owns `entry` (its parent or SPIFFE ID lies under the root, as SPIRE's
    /// base controller decides).
    pub(crate) fn owns(&self, entry: &Entry) -> bool {
        self.under_root(&entry.parent_id) || self.under_root(&entry.spiffe_id)
    }
}

/// Refuses what SPIRE's `JoinPathSegments` refuses: empty, `.`, `..`, or a `/` inside.
fn segment(what: &'static str, value: &str) -> Result<(), InvalidSegment> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value == "." || value == ".." {
        "it is a dot segment"
    } else if value.contains('/') {
        "it contains a slash"
    } else {
        return Ok(());
    };
    Err(InvalidSegment { what, value: value.to_owned(), reason: reason.to_owned() })
}

#[cfg(test)]
pub(crate) mod tests {
    use spire_identity::TrustDomain;

    use super::*;
    use crate::config::IdSource;

    pub(crate) fn roots() -> Roots {
        let ids = WorkloadIds::new(
            TrustDomain::parse("example.org").expect("td"),
            IdSource::ServiceAccount,
            vec!["kube-system".into(), "kube-public".into()],
        );
        Roots::new(ids, "spire-k8s-registrar", "prod").expect("roots")
    }

    fn id(path: &str) -> Option<Spiffeid> {
        Some(Spiffeid { trust_domain: "example.org".into(), path: path.into() })
    }

    #[test]
    fn root_and_node_ids() {
        let r = roots();
        assert_eq!(r.root().to_string(), "spiffe://example.org/spire-k8s-registrar/prod/node");
        assert_eq!(r.node_id("n1").expect("id"), id("/spire-k8s-registrar/prod/node/n1").expect("id"));
        assert!(r.node_id("a/b").is_err());
        assert!(r.node_id("").is_err());
        let ids = r.ids().clone();
        assert!(Roots::new(ids.clone(), "a/b", "prod").is_err());
        assert!(Roots::new(ids, "x", "..").is_err());
    }

    #[test]
    fn ownership_is_by_the_root_prefix() {
        let r = roots();
        let entry =
            |parent: &str, spiffe: &str| Entry { parent_id: id(parent), spiffe_id: id(spiffe), ..Default::default() };
        assert!(r.owns(&entry("/spire/server", "/spire-k8s-registrar/prod/node/n1")));
        assert!(r.owns(&entry("/spire-k8s-registrar/prod/node/n1", "/ns/a/sa/b")));
        assert!(!r.owns(&entry("/spire/server", "/spire-k8s-registrar/prod/node")));
        assert!(!r.owns(&entry("/spire-k8s-registrar/prod/nodes/n1", "/ns/a/sa/b")));
        assert!(!r.owns(&entry("/spire-k8s-registrar/production/node/n1", "/ns/a/sa/b")));
        let mut other_td = entry("/spire-k8s-registrar/prod/node/n1", "/ns/a/sa/b");
        other_td.parent_id =
            Some(Spiffeid { trust_domain: "other.org".into(), path: "/spire-k8s-registrar/prod/node/n1".into() });
        assert!(!r.owns(&other_td));
    }
}
