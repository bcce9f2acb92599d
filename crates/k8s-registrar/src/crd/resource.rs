//! The `SpiffeID` custom resource (`spiffeid.spiffe.io/v1beta1`), field for field as SPIRE v1.3.6
//! defines it, and how its selector block becomes SPIRE selectors and its spec an entry.
//!
//! The schema is served by the CRD manifest in `deploy/k8s/registrar/crd/`, not generated here, so
//! that the wire format stays SPIRE's (`agent_node_uid` keeps its snake case).

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};
use spire_identity::SpiffeId;
use spire_proto::spire::api::types::{Entry, Selector};

use crate::spire_api::api_id;
use crate::workload_id::selector;

/// The finalizer the SpiffeID controller puts on every SpiffeID, so that its entry is deleted
/// before the object goes.
pub const FINALIZER: &str = "finalizers.spiffeid.spiffe.io";
/// The label naming the pod a SpiffeID was made for.
pub const POD_UID_LABEL: &str = "podUid";
/// The label naming the node a SpiffeID was made for.
pub const NODE_UID_LABEL: &str = "nodeUid";

/// Which workloads or agents an entry selects (SPIRE's `Selector`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpiffeIdSelector {
    /// `k8s_psat:cluster:<cluster>` (node SpiffeIDs only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// `k8s_psat:agent_node_uid:<uid>` (node SpiffeIDs only).
    #[serde(rename = "agent_node_uid", default, skip_serializing_if = "String::is_empty")]
    pub agent_node_uid: String,
    /// `k8s:pod-label:<key>:<value>` for each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_label: BTreeMap<String, String>,
    /// `k8s:pod-name:<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    /// `k8s:pod-uid:<uid>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    /// `k8s:ns:<namespace>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `k8s:sa:<service account>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// `k8s:container-image:<image>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_image: String,
    /// `k8s:container-name:<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    /// `k8s:node-name:<node>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// `k8s:<value>` for each: any other k8s selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arbitrary: Vec<String>,
}

/// The desired entry.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "spiffeid.spiffe.io",
    version = "v1beta1",
    kind = "SpiffeID",
    namespaced,
    status = "SpiffeIdStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct SpiffeIdSpec {
    /// The entry's parent ID.
    #[serde(default)]
    pub parent_id: String,
    /// The entry's SPIFFE ID.
    #[serde(default)]
    pub spiffe_id: String,
    /// The entry's selectors.
    #[serde(default)]
    pub selector: SpiffeIdSelector,
    /// Whether the entry is for a downstream SPIRE server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub downstream: bool,
    /// The SVIDs' DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Trust domains the entry federates with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
}

/// What the controller observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpiffeIdStatus {
    /// The ID of the entry kept in step with this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
}

/// A SpiffeID whose IDs cannot make an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedSpiffeId {
    /// `spec.parentId` is not a SPIFFE ID.
    #[error("malformed CRD parent ID {id:?}: {reason}")]
    ParentId {
        /// The value.
        id: String,
        /// Why.
        reason: String,
    },
    /// `spec.spiffeId` is not a SPIFFE ID.
    #[error("malformed CRD SPIFFE ID {id:?}: {reason}")]
    SpiffeId {
        /// The value.
        id: String,
        /// Why.
        reason: String,
    },
}

impl SpiffeIdSelector {
    /// The SPIRE selectors, in SPIRE's order (`spiffeid_utils.go`).
    pub fn selectors(&self) -> Vec<Selector> {
        let mut out = Vec::new();
        let mut push = |kind: &str, value: String| out.push(selector(kind, value));
        if !self.cluster.is_empty() {
            push("k8s_psat", format!("cluster:{}", self.cluster));
        }
        if !self.agent_node_uid.is_empty() {
            push("k8s_psat", format!("agent_node_uid:{}", self.agent_node_uid));
        }
        for (k, v) in &self.pod_label {
            push("k8s", format!("pod-label:{k}:{v}"));
        }
        let k8s = [
            ("pod-name", &self.pod_name),
            ("pod-uid", &self.pod_uid),
            ("ns", &self.namespace),
            ("sa", &self.service_account),
            ("container-name", &self.container_name),
            ("container-image", &self.container_image),
            ("node-name", &self.node_name),
        ];
        for (name, value) in k8s {
            if !value.is_empty() {
                push("k8s", format!("{name}:{value}"));
            }
        }
        for v in &self.arbitrary {
            push("k8s", v.clone());
        }
        out
    }
}

impl SpiffeIdSpec {
    /// The entry this spec asks for (without an ID).
    pub fn entry(&self) -> Result<Entry, MalformedSpiffeId> {
        let parent = SpiffeId::parse(&self.parent_id)
            .map_err(|e| MalformedSpiffeId::ParentId { id: self.parent_id.clone(), reason: e.to_string() })?;
        let id = SpiffeId::parse(&self.spiffe_id)
            .map_err(|e| MalformedSpiffeId::SpiffeId { id: self.spiffe_id.clone(), reason: e.to_string() })?;
        Ok(Entry {
            parent_id: Some(api_id(&parent)),
            spiffe_id: Some(api_id(&id)),
            selectors: self.selector.selectors(),
            dns_names: self.dns_names.clone(),
            federates_with: self.federates_with.clone(),
            downstream: self.downstream,
            ..Default::default()
        })
    }
}

/// An ownerReference making `kind` `name`/`uid` the SpiffeID's controller, which the garbage
/// collector follows to delete the SpiffeID with its owner; it does not block the owner's deletion.
pub fn owner_reference(
    kind: &str,
    name: &str,
    uid: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}

/// Whether `s` was made for an earlier `kind` of the same name than the one with `uid`: that owner
/// is gone (names are unique), so the SpiffeID is stale and may be deleted without waiting for the
/// garbage collector. A SpiffeID owned by nothing of that kind (written by hand) is never stale.
pub fn owned_by_previous(s: &SpiffeID, kind: &str, uid: &str) -> bool {
    s.metadata.owner_references.iter().flatten().any(|o| o.kind == kind && o.api_version == "v1" && o.uid != uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(selectors: &[Selector]) -> Vec<String> {
        selectors.iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect()
    }

    #[test]
    fn every_selector_field_maps_as_spire_does() {
        let s = SpiffeIdSelector {
            cluster: "c".into(),
            agent_node_uid: "n-1".into(),
            pod_label: [("app".to_owned(), "web".to_owned())].into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            namespace: "ns".into(),
            service_account: "sa".into(),
            container_image: "img".into(),
            container_name: "main".into(),
            node_name: "node".into(),
            arbitrary: vec!["custom:x".into()],
        };
        assert_eq!(
            strings(&s.selectors()),
            [
                "k8s_psat:cluster:c",
                "k8s_psat:agent_node_uid:n-1",
                "k8s:pod-label:app:web",
                "k8s:pod-name:p",
                "k8s:pod-uid:u",
                "k8s:ns:ns",
                "k8s:sa:sa",
                "k8s:container-name:main",
                "k8s:container-image:img",
                "k8s:node-name:node",
                "k8s:custom:x",
            ]
        );
        assert!(SpiffeIdSelector::default().selectors().is_empty());
    }

    #[test]
    fn wire_format_is_spires() {
        let json = r#"{"apiVersion":"spiffeid.spiffe.io/v1beta1","kind":"SpiffeID",
            "metadata":{"name":"n","namespace":"spire"},
            "spec":{"parentId":"spiffe://example.org/spire/server","spiffeId":"spiffe://example.org/x",
              "selector":{"cluster":"c","agent_node_uid":"u","podLabel":{"a":"b"}},"dnsNames":["x"],
              "federatesWith":["other.org"],"downstream":true},
            "status":{"entryId":"e-1"}}"#;
        let s: SpiffeID = serde_json::from_str(json).unwrap();
        assert_eq!(s.spec.selector.agent_node_uid, "u");
        assert_eq!(s.status.as_ref().and_then(|s| s.entry_id.as_deref()), Some("e-1"));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["spec"]["selector"]["agent_node_uid"], "u");
        assert_eq!(back["spec"]["selector"]["podLabel"]["a"], "b");
        assert!(back["spec"]["selector"].get("podName").is_none());
        let entry = s.spec.entry().unwrap();
        assert!(entry.downstream);
        assert_eq!(entry.federates_with, ["other.org"]);
        assert_eq!(entry.spiffe_id.unwrap().path, "/x");
    }

    #[test]
    fn malformed_ids_are_refused() {
        let spec =
            SpiffeIdSpec { parent_id: "nope".into(), spiffe_id: "spiffe://x.org/a".into(), ..Default::default() };
        assert!(matches!(spec.entry(), Err(MalformedSpiffeId::ParentId { .. })));
        let spec = SpiffeIdSpec {
            parent_id: "spiffe://x.org/p".into(),
            spiffe_id: "spiffe://x.org/a//b".into(),
            ..Default::default()
        };
        assert!(matches!(spec.entry(), Err(MalformedSpiffeId::SpiffeId { .. })));
    }
}
