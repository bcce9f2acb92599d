//! Which SPIFFE ID a pod gets, the same in every mode, and the selectors the modes share.

use k8s_openapi::api::core::v1::Pod;
use spire_identity::{SpiffeId, TrustDomain};
use spire_proto::spire::api::types::Selector;

use crate::config::IdSource;

/// The annotation listing the trust domains a pod's entry federates with (comma separated).
pub const FEDERATION_ANNOTATION: &str = "spiffe.io/federatesWith";

/// Derives workload SPIFFE IDs from pods.
#[derive(Debug, Clone)]
pub struct WorkloadIds {
    trust_domain: TrustDomain,
    source: IdSource,
    disabled_namespaces: Vec<String>,
    /// Paths no workload may have, nor anything under them.
    reserved: Vec<String>,
}

/// A pod whose label or annotation does not make a valid SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod {namespace}/{pod}: {value:?} does not make a valid SPIFFE ID path: {reason}")]
pub struct InvalidWorkloadId {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The path that was refused.
    pub value: String,
    /// Why.
    pub reason: String,
}

impl WorkloadIds {
    /// IDs in `trust_domain` from `source`; pods in `disabled_namespaces` get none.
    ///
    /// `/spire` (the server's and the agents' IDs) is reserved from the start; see
    /// [`WorkloadIds::reserving`].
    pub fn new(trust_domain: TrustDomain, source: IdSource, disabled_namespaces: Vec<String>) -> Self {
        Self { trust_domain, source, disabled_namespaces, reserved: vec!["/spire".to_owned()] }
    }

    /// Also refuses workload IDs at or under `path` (the registrar's node entries).
    ///
    /// A label or annotation names any path it likes, and an entry whose SPIFFE ID is a node's ID
    /// (or an agent's) makes the agent that gets it an agent of that node too: every pod entry
    /// parented there would follow. SPIRE's registrar let that through; we refuse it like any
    /// invalid ID.
    pub fn reserving(mut self, path: &str) -> Self {
        self.reserved.push(path.trim_end_matches('/').to_owned());
        self
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Whether pods in `namespace` are left alone.
    pub fn namespace_disabled(&self, namespace: &str) -> bool {
        self.disabled_namespaces.iter().any(|n| n == namespace)
    }

    /// The pod's SPIFFE ID; `Ok(None)` when the pod is ignored (disabled namespace, or without the
    /// configured label or annotation).
    pub fn for_pod(&self, pod: &Pod) -> Result<Option<SpiffeId>, InvalidWorkloadId> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        if self.namespace_disabled(namespace) {
            return Ok(None);
        }
        let path = match &self.source {
            IdSource::ServiceAccount => {
                let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
                format!("/ns/{namespace}/sa/{sa}")
            }
            IdSource::Label(key) => match pod.metadata.labels.as_ref().and_then(|l| l.get(key)) {
                Some(value) => format!("/{value}"),
                None => return Ok(None),
            },
            IdSource::Annotation(key) => match pod.metadata.annotations.as_ref().and_then(|a| a.get(key)) {
                Some(value) => format!("/{value}"),
                None => return Ok(None),
            },
        };
        let invalid = |value: String, reason: String| InvalidWorkloadId {
            namespace: namespace.to_owned(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            value,
            reason,
        };
        let id = self.id(&path).map_err(|reason| invalid(path.clone(), reason))?;
        // Checked on the parsed path, so that no spelling of it slips past.
        if let Some(prefix) =
            self.reserved.iter().find(|p| id.path() == p.as_str() || id.path().starts_with(&format!("{p}/")))
        {
            let reason = format!("paths under {prefix} are reserved for SPIRE's servers, agents and node entries");
            return Err(invalid(path, reason));
        }
        Ok(Some(id))
    }

    /// `spiffe://<td><path>`, or why the path is not valid.
    pub fn id(&self, path: &str) -> Result<SpiffeId, String> {
        SpiffeId::from_parts(&self.trust_domain, path).map_err(|e| e.to_string())
    }

    /// `spiffe://<td>/spire/server`: the parent of node entries.
    pub fn server_id(&self) -> SpiffeId {
        self.id("/spire/server").expect("a valid path")
    }
}

/// The trust domains of the pod's `spiffe.io/federatesWith` annotation, as the server stores them
/// (`a.org`, whether written `a.org` or `spiffe://a.org`), blanks around commas and empty items
/// dropped, so that a comparison with the stored entry is stable.
pub fn federates_with(pod: &Pod) -> Vec<String> {
    match pod.metadata.annotations.as_ref().and_then(|a| a.get(FEDERATION_ANNOTATION)) {
        Some(value) => normalize_trust_domains(value.split(',')),
        None => Vec::new(),
    }
}

/// Trust domain names as the server returns them: without `spiffe://`, trimmed, no empty ones.
pub fn normalize_trust_domains<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .map(|n| n.trim())
        .map(|n| n.strip_prefix("spiffe://").unwrap_or(n))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A selector `type:value`.
pub fn selector(kind: &str, value: impl Into<String>) -> Selector {
    Selector { r#type: kind.to_owned(), value: value.into() }
}

/// `k8s:ns:<namespace>`.
pub fn namespace_selector(namespace: &str) -> Selector {
    selector("k8s", format!("ns:{namespace}"))
}

/// `k8s:pod-name:<name>`.
pub fn pod_name_selector(name: &str) -> Selector {
    selector("k8s", format!("pod-name:{name}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    use super::*;

    fn pod(ns: &str, sa: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
        let map = |kv: &[(&str, &str)]| -> Option<BTreeMap<String, String>> {
            (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some(ns.into()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            },
            spec: Some(PodSpec { service_account_name: Some(sa.into()), ..Default::default() }),
            status: None,
        }
    }

    fn ids(source: IdSource) -> WorkloadIds {
        WorkloadIds::new(
            TrustDomain::parse("example.org").unwrap(),
            source,
            vec!["kube-system".into(), "kube-public".into()],
        )
    }

    #[test]
    fn service_account_ids() {
        let id = ids(IdSource::ServiceAccount).for_pod(&pod("prod", "blog", &[], &[])).unwrap().unwrap();
        assert_eq!(id.to_string(), "spiffe://example.org/ns/prod/sa/blog");
    }

    #[test]
    fn disabled_namespaces_are_ignored() {
        assert_eq!(ids(IdSource::ServiceAccount).for_pod(&pod("kube-system", "x", &[], &[])), Ok(None));
    }

    #[test]
    fn label_ids_and_pods_without_the_label() {
        let ids = ids(IdSource::Label("spire-workload".into()));
        let id = ids.for_pod(&pod("prod", "blog", &[("spire-workload", "example-workload")], &[])).unwrap();
        assert_eq!(id.unwrap().to_string(), "spiffe://example.org/example-workload");
        assert_eq!(ids.for_pod(&pod("prod", "blog", &[("other", "x")], &[])), Ok(None));
    }

    #[test]
    fn annotation_ids_keep_slashes() {
        let ids = ids(IdSource::Annotation("spiffe.io/spiffe-id".into()));
        let p = pod("prod", "blog", &[], &[("spiffe.io/spiffe-id", "production/example-workload")]);
        assert_eq!(ids.for_pod(&p).unwrap().unwrap().to_string(), "spiffe://example.org/production/example-workload");
    }

    #[test]
    fn invalid_ids_are_reported() {
        let ids = ids(IdSource::Annotation("id".into()));
        for bad in ["a//b", "../x", "a/", "sp ace", "é"] {
            let err = ids.for_pod(&pod("prod", "blog", &[], &[("id", bad)])).unwrap_err();
            assert_eq!(err.value, format!("/{bad}"), "{err}");
        }
    }

    #[test]
    fn federation_annotation() {
        let p = pod("prod", "blog", &[], &[(FEDERATION_ANNOTATION, "a.org,b.org")]);
        assert_eq!(federates_with(&p), vec!["a.org".to_owned(), "b.org".to_owned()]);
        let p = pod("prod", "blog", &[], &[(FEDERATION_ANNOTATION, " spiffe://a.org, b.org,,")]);
        assert_eq!(federates_with(&p), vec!["a.org".to_owned(), "b.org".to_owned()]);
        assert!(federates_with(&pod("prod", "blog", &[], &[])).is_empty());
    }

    #[test]
    fn node_and_agent_ids_are_not_for_workloads() {
        let ids = ids(IdSource::Annotation("id".into())).reserving("/spire-k8s-registrar/c1/node");
        for taken in [
            "spire-k8s-registrar/c1/node",
            "spire-k8s-registrar/c1/node/other-node",
            "spire/agent/k8s_psat/c1/uid",
            "spire/server",
            "spire",
        ] {
            let err = ids.for_pod(&pod("prod", "blog", &[], &[("id", taken)])).unwrap_err();
            assert!(err.reason.contains("reserved"), "{taken}: {err}");
        }
        for fine in ["spire-k8s-registrar/c1/nodes", "spire-agent", "spire-k8s-registrar/c2/node/x", "app/spire"] {
            assert!(ids.for_pod(&pod("prod", "blog", &[], &[("id", fine)])).unwrap().is_some(), "{fine}");
        }
    }
}
