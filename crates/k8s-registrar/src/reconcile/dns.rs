//! `add_pod_dns_names`: the DNS names SPIRE v1.3.6's pod controller puts in a pod's entry.
//!
//! First the pod's IP forms (`<ip-dashed>.<ns>.pod.<zone>`, `<ip-dashed>.<ns>.pod`), then, sorted,
//! every name the pod answers to through Endpoints of its namespace that target it: the service name
//! and `<hostname or ip-dashed or pod name>.<service>`, each in the four forms of the search path
//! (`x.<ns>.svc.<zone>`, `x.<ns>.svc`, `x.<ns>`, `x`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};

/// Pods named by an Endpoints object's addresses (ready or not) as `(namespace, name)`; addresses
/// without a Pod `targetRef` are not pods.
pub(crate) fn targeted_pods(endpoints: &Endpoints) -> Vec<(String, String)> {
    let mut pods = Vec::new();
    for_each_pod_address(endpoints, |_, namespace, name| {
        pods.push((namespace.to_owned(), name.to_owned()));
    });
    pods
}

/// Calls `f` with every address whose `targetRef` is a Pod, with the target's namespace and name.
fn for_each_pod_address(endpoints: &Endpoints, mut f: impl FnMut(&EndpointAddress, &str, &str)) {
    for subset in endpoints.subsets.iter().flatten() {
        for address in subset.addresses.iter().flatten().chain(subset.not_ready_addresses.iter().flatten()) {
            if let Some(target) = &address.target_ref
                && target.kind.as_deref() == Some("Pod")
            {
                f(address, target.namespace.as_deref().unwrap_or_default(), target.name.as_deref().unwrap_or_default());
            }
        }
    }
}

/// `10.0.0.1` → `10-0-0-1`, `fd00::1` → `fd00--1`.
fn dashed(ip: &str) -> String {
    if ip.contains('.') { ip.replace('.', "-") } else { ip.replace(':', "-") }
}

/// A name usable as one DNS label of a search-path form (SPIRE's check: non-empty, no dot).
fn component(name: &str) -> bool {
    !name.is_empty() && !name.contains('.')
}

fn search_path_forms(prefix: &str, namespace: &str, zone: &str, names: &mut BTreeSet<String>) {
    names.insert(format!("{prefix}.{namespace}.svc.{zone}"));
    names.insert(format!("{prefix}.{namespace}.svc"));
    names.insert(format!("{prefix}.{namespace}"));
    names.insert(prefix.to_owned());
}

/// The DNS names of the pod `namespace/name` with IP `pod_ip` (`None` or empty: no names, as the pod
/// has no address yet), given the Endpoints objects of the cluster (only those of the pod's namespace
/// with an address targeting a pod of this name count).
pub(crate) fn pod_dns_names<'a>(
    namespace: &str,
    name: &str,
    pod_ip: Option<&str>,
    zone: &str,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
) -> Vec<String> {
    let Some(ip) = pod_ip.filter(|ip| !ip.is_empty()) else { return Vec::new() };
    let mut names = BTreeSet::new();
    for eps in endpoints {
        let eps_namespace = eps.metadata.namespace.as_deref().unwrap_or_default();
        let eps_name = eps.metadata.name.as_deref().unwrap_or_default();
        if eps_namespace != namespace || !targeted_pods(eps).iter().any(|(_, pod)| pod == name) {
            continue;
        }
        if !component(eps_name) || !component(eps_namespace) {
            continue;
        }
        search_path_forms(eps_name, eps_namespace, zone, &mut names);
        for_each_pod_address(eps, |address, target_ns, target_name| {
            if target_name != name || target_ns != namespace {
                return;
            }
            match address.hostname.as_deref().filter(|h| component(h)) {
                Some(hostname) => search_path_forms(&format!("{hostname}.{eps_name}"), eps_namespace, zone, &mut names),
                None => {
                    search_path_forms(&format!("{}.{eps_name}", dashed(&address.ip)), eps_namespace, zone, &mut names);
                    if component(target_name) {
                        search_path_forms(&format!("{target_name}.{eps_name}"), eps_namespace, zone, &mut names);
                    }
                }
            }
        });
    }
    let pod_ip = dashed(ip);
    let mut all = vec![format!("{pod_ip}.{namespace}.pod.{zone}"), format!("{pod_ip}.{namespace}.pod")];
    all.extend(names);
    all
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EndpointSubset, ObjectReference};
    use kube::api::ObjectMeta;

    use super::*;

    fn address(ip: &str, hostname: Option<&str>, pod: &str, ns: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            hostname: hostname.map(Into::into),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn endpoints(ns: &str, name: &str, ready: Vec<EndpointAddress>, not_ready: Vec<EndpointAddress>) -> Endpoints {
        Endpoints {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(ready),
                not_ready_addresses: Some(not_ready),
                ..Default::default()
            }]),
        }
    }

    #[test]
    fn no_ip_no_names() {
        assert!(pod_dns_names("ns", "p", None, "cluster.local", []).is_empty());
        assert!(pod_dns_names("ns", "p", Some(""), "cluster.local", []).is_empty());
    }

    #[test]
    fn pod_ip_forms_come_first() {
        assert_eq!(
            pod_dns_names("ns", "p", Some("10.1.2.3"), "cluster.local", []),
            ["10-1-2-3.ns.pod.cluster.local", "10-1-2-3.ns.pod"]
        );
        assert_eq!(pod_dns_names("ns", "p", Some("fd00::1"), "z", []), ["fd00--1.ns.pod.z", "fd00--1.ns.pod"]);
    }

    #[test]
    fn service_names_without_hostname_use_ip_and_pod_name() {
        let eps = endpoints("ns", "web", vec![address("10.1.2.3", None, "p", "ns")], vec![]);
        let names = pod_dns_names("ns", "p", Some("10.1.2.3"), "cluster.local", [&eps]);
        let mut rest = vec![
            "web.ns.svc.cluster.local",
            "web.ns.svc",
            "web.ns",
            "web",
            "10-1-2-3.web.ns.svc.cluster.local",
            "10-1-2-3.web.ns.svc",
            "10-1-2-3.web.ns",
            "10-1-2-3.web",
            "p.web.ns.svc.cluster.local",
            "p.web.ns.svc",
            "p.web.ns",
            "p.web",
        ];
        rest.sort();
        let mut want = vec!["10-1-2-3.ns.pod.cluster.local", "10-1-2-3.ns.pod"];
        want.extend(rest);
        assert_eq!(names, want);
    }

    #[test]
    fn hostnames_not_ready_addresses_and_other_namespaces() {
        let headless = endpoints("ns", "db", vec![], vec![address("10.0.0.9", Some("db-0"), "p", "ns")]);
        let other_pod = endpoints("ns", "api", vec![address("10.0.0.8", None, "q", "ns")], vec![]);
        let other_ns = endpoints("elsewhere", "web", vec![address("10.0.0.9", None, "p", "elsewhere")], vec![]);
        let names = pod_dns_names("ns", "p", Some("10.0.0.9"), "z", [&headless, &other_pod, &other_ns]);
        assert_eq!(
            names,
            [
                "10-0-0-9.ns.pod.z",
                "10-0-0-9.ns.pod",
                "db",
                "db-0.db",
                "db-0.db.ns",
                "db-0.db.ns.svc",
                "db-0.db.ns.svc.z",
                "db.ns",
                "db.ns.svc",
                "db.ns.svc.z",
            ]
        );
    }

    #[test]
    fn targeted_pods_ignore_non_pod_targets() {
        let mut eps = endpoints(
            "ns",
            "web",
            vec![address("1.1.1.1", None, "p", "ns")],
            vec![address("1.1.1.2", None, "q", "ns")],
        );
        if let Some(subsets) = eps.subsets.as_mut() {
            subsets[0]
                .addresses
                .get_or_insert_default()
                .push(EndpointAddress { ip: "1.1.1.3".into(), ..Default::default() });
        }
        assert_eq!(targeted_pods(&eps), vec![("ns".to_owned(), "p".to_owned()), ("ns".to_owned(), "q".to_owned())]);
    }
}
