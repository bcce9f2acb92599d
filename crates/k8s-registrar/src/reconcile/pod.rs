//! Pod entries: the pod's workload ID, parent its node's entry (`<root>/<spec.nodeName>`), selecting
//! the pod by namespace and name; none until the pod is scheduled.

use k8s_openapi::api::core::v1::{Endpoints, Pod};
use spire_proto::spire::api::types::Entry;

use super::dns;
use super::ids::Roots;
use super::plan::{Desired, Key};
use crate::spire_api::api_id;
use crate::workload_id::{federates_with, namespace_selector, pod_name_selector};

/// `add_pod_dns_names` and `cluster_dns_zone`.
#[derive(Debug, Clone)]
pub(crate) struct DnsNames {
    /// The cluster's DNS zone (`cluster.local`).
    pub(crate) zone: String,
}

/// What the pod `namespace/name` should have; `pod` is `None` when it no longer exists. With `dns`,
/// `endpoints` are the cluster's Endpoints objects, from which service names come.
pub(crate) fn desired<'a>(
    roots: &Roots,
    pod: Option<&Pod>,
    dns: Option<&DnsNames>,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
) -> Desired {
    let Some(pod) = pod else { return Desired::Nothing };
    if pod.metadata.deletion_timestamp.is_some() {
        return Desired::Nothing;
    }
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) else {
        return Desired::Nothing;
    };
    let id = match roots.ids().for_pod(pod) {
        Ok(Some(id)) => id,
        Ok(None) => return Desired::Nothing,
        Err(invalid) => return Desired::Invalid(invalid.to_string()),
    };
    let parent = match roots.node_id(node) {
        Ok(parent) => parent,
        Err(e) => return Desired::Invalid(e.to_string()),
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let dns_names = match dns {
        Some(dns) => {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            dns::pod_dns_names(namespace, name, ip, &dns.zone, endpoints)
        }
        None => Vec::new(),
    };
    Desired::Entry(Box::new(Entry {
        spiffe_id: Some(api_id(&id)),
        parent_id: Some(parent),
        selectors: vec![namespace_selector(namespace), pod_name_selector(name)],
        federates_with: federates_with(pod),
        dns_names,
        ..Default::default()
    }))
}

/// The pod an owned entry stands for: its selectors must be exactly `k8s:ns:<ns>` and
/// `k8s:pod-name:<name>` (the server's exact-match lookup finds no other).
pub(crate) fn key_of(entry: &Entry) -> Option<Key> {
    let [a, b] = entry.selectors.as_slice() else { return None };
    let value = |prefix: &str| {
        [a, b]
            .iter()
            .find(|s| s.r#type == "k8s" && s.value.starts_with(prefix))
            .map(|s| s.value[prefix.len()..].to_owned())
            .filter(|v| !v.is_empty())
    };
    Some(Key::Pod { namespace: value("ns:")?, name: value("pod-name:")? })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset, ObjectReference, PodSpec, PodStatus};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::reconcile::ids::tests::roots;
    use crate::spire_api::id_string;
    use crate::workload_id::{FEDERATION_ANNOTATION, selector};

    fn pod(ns: &str, name: &str, node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                annotations: Some(BTreeMap::from([(FEDERATION_ANNOTATION.to_owned(), "a.org,b.org".to_owned())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("web".into()),
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus { pod_ip: Some("10.0.0.7".into()), ..Default::default() }),
        }
    }

    fn entry_of(d: Desired) -> Entry {
        match d {
            Desired::Entry(e) => *e,
            other => panic!("not an entry: {other:?}"),
        }
    }

    #[test]
    fn pod_entry_shape() {
        let r = roots();
        let e = entry_of(desired(&r, Some(&pod("shop", "web-1", Some("n1"))), None, []));
        assert_eq!(id_string(&e.spiffe_id), "spiffe://example.org/ns/shop/sa/web");
        assert_eq!(id_string(&e.parent_id), "spiffe://example.org/spire-k8s-registrar/prod/node/n1");
        let sel: Vec<String> = e.selectors.iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect();
        assert_eq!(sel, ["k8s:ns:shop", "k8s:pod-name:web-1"]);
        assert_eq!(e.federates_with, ["a.org", "b.org"]);
        assert!(e.dns_names.is_empty());
        assert_eq!(key_of(&e), Some(Key::Pod { namespace: "shop".into(), name: "web-1".into() }));
    }

    #[test]
    fn no_entry_before_scheduling_nor_when_ignored() {
        let r = roots();
        assert_eq!(desired(&r, Some(&pod("shop", "web-1", None)), None, []), Desired::Nothing);
        assert_eq!(desired(&r, Some(&pod("shop", "web-1", Some(""))), None, []), Desired::Nothing);
        assert_eq!(desired(&r, Some(&pod("kube-system", "dns", Some("n1"))), None, []), Desired::Nothing);
        assert_eq!(desired(&r, None, None, []), Desired::Nothing);
    }

    #[test]
    fn invalid_ids_are_reported_not_written() {
        let r = roots();
        let mut p = pod("shop", "web-1", Some("n1"));
        if let Some(spec) = p.spec.as_mut() {
            spec.service_account_name = Some("a b".into());
        }
        assert!(matches!(desired(&r, Some(&p), None, []), Desired::Invalid(_)));
    }

    #[test]
    fn dns_names_when_enabled() {
        let r = roots();
        let eps = Endpoints {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("shop".into()), ..Default::default() },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress {
                    ip: "10.0.0.7".into(),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some("web-1".into()),
                        namespace: Some("shop".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
        };
        let dns = DnsNames { zone: "cluster.local".into() };
        let e = entry_of(desired(&r, Some(&pod("shop", "web-1", Some("n1"))), Some(&dns), [&eps]));
        assert_eq!(e.dns_names[..2], ["10-0-0-7.shop.pod.cluster.local".to_owned(), "10-0-0-7.shop.pod".to_owned()]);
        assert!(e.dns_names.contains(&"web.shop.svc".to_owned()), "{:?}", e.dns_names);
        assert_eq!(e.dns_names.len(), 14);
    }

    #[test]
    fn keys_need_both_pod_selectors() {
        let with = |sel| Entry { selectors: sel, ..Default::default() };
        assert_eq!(
            key_of(&with(vec![selector("k8s", "pod-name:p"), selector("k8s", "ns:a")])),
            Some(Key::Pod { namespace: "a".into(), name: "p".into() })
        );
        assert_eq!(key_of(&with(vec![selector("k8s", "ns:a")])), None);
        assert_eq!(key_of(&with(vec![selector("k8s", "ns:a"), selector("k8s", "sa:p")])), None);
        assert_eq!(
            key_of(&with(vec![selector("k8s", "ns:a"), selector("k8s", "pod-name:p"), selector("k8s", "sa:x")])),
            None
        );
    }
}
