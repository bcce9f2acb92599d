//! From the kubelet's pod list to a workload's selectors.
//!
//! The kubelet answers `GET /pods` with a v1 `PodList`. Only a few fields matter here, so the list is
//! read into small types of our own rather than the full Kubernetes ones: decoding is cheaper (a pod
//! list of a busy node is megabytes), and as lenient as SPIRE's Go decoding: absent or `null` fields
//! are empty, unknown ones ignored.
//!
//! The selector values and their order are SPIRE's: `sa`, `ns`, `node-name`, `pod-uid`, `pod-name`,
//! `pod-image-count`, `pod-init-image-count`, then each distinct `pod-image` and `pod-init-image`
//! (image and image ID of every container, resp. init container), each `pod-label:<k>:<v>`, each
//! owner's `pod-owner:<Kind>:<name>` and `pod-owner-uid:<Kind>:<uid>`; then, unless container
//! selectors are disabled, `container-name` and each distinct `container-image`. Where SPIRE walks a
//! Go map (images, labels) the order here is sorted, which SPIRE's random order allows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Deserializer};

/// A parsed pod list, indexed by pod UID as SPIRE indexes it (pods without a UID are dropped, and
/// of two pods with one UID the later wins).
#[derive(Debug, Default)]
pub struct Pods {
    by_uid: HashMap<String, Pod>,
}

impl Pods {
    /// Parses the kubelet's answer.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let list: PodList = serde_json::from_slice(body)?;
        let mut by_uid = HashMap::with_capacity(list.items.len());
        for pod in list.items.into_iter().flatten() {
            if pod.metadata.uid.is_empty() {
                tracing::warn!(pod = %pod.metadata.name, namespace = %pod.metadata.namespace, "Pod has no UID");
                continue;
            }
            by_uid.insert(pod.metadata.uid.clone(), pod);
        }
        Ok(Self { by_uid })
    }

    /// How many pods (with a UID) the list holds.
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Whether the list holds no pod.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// Each pod's UID with the `containerID` of each of its (init) container statuses, as written
    /// (`containerd://<id>`; empty before the container starts).
    pub fn container_ids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_uid.iter().flat_map(|(uid, pod)| {
            let status = &pod.status;
            status
                .container_statuses
                .iter()
                .chain(&status.init_container_statuses)
                .map(move |c| (uid.as_str(), c.container_id.as_str()))
        })
    }

    /// The selector values of the workload in container `container_id` of pod `pod_uid` (empty if
    /// the cgroups did not name the pod: then every pod is searched), or `None` if it is not (yet)
    /// in the list. With `disable_container_selectors`, a known pod is enough, even before its
    /// container has an ID (a `postStart` hook still running, say), and no container selectors are
    /// added.
    pub fn workload_selectors(
        &self,
        pod_uid: &str,
        container_id: &str,
        disable_container_selectors: bool,
    ) -> Result<Option<Vec<String>>, DuplicateContainer> {
        let pod_known = !pod_uid.is_empty();
        let candidates: Box<dyn Iterator<Item = &Pod>> =
            if pod_known { Box::new(self.by_uid.get(pod_uid).into_iter()) } else { Box::new(self.by_uid.values()) };
        let mut found = None;
        for pod in candidates {
            let values = match pod.status.find_container(container_id) {
                Some(status) => {
                    let mut values = pod_selectors(pod);
                    if !disable_container_selectors {
                        values.extend(container_selectors(status));
                    }
                    values
                }
                None if pod_known && disable_container_selectors => pod_selectors(pod),
                None => continue,
            };
            if found.is_some() {
                tracing::warn!(container_id, "Two pods found with same container Id");
                return Err(DuplicateContainer);
            }
            found = Some(values);
        }
        Ok(found)
    }
}

/// Two pods claim the workload's container: attesting either could give it the other's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("two pods found with same container Id")]
pub struct DuplicateContainer;

/// Null-tolerant decoding: Go leaves a field at its zero value for `null`, serde would fail.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodList {
    /// `null` items are skipped like pods without a UID (SPIRE reads the UID of each with a
    /// path lookup that finds none).
    #[serde(deserialize_with = "nullable")]
    items: Vec<Option<Pod>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pod {
    #[serde(deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(deserialize_with = "nullable")]
    spec: PodSpec,
    #[serde(deserialize_with = "nullable")]
    status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ObjectMeta {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    namespace: String,
    #[serde(deserialize_with = "nullable")]
    uid: String,
    #[serde(deserialize_with = "nullable")]
    labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OwnerReference {
    #[serde(deserialize_with = "nullable")]
    kind: String,
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    uid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PodSpec {
    #[serde(deserialize_with = "nullable")]
    service_account_name: String,
    #[serde(deserialize_with = "nullable")]
    node_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PodStatus {
    #[serde(deserialize_with = "nullable")]
    container_statuses: Vec<ContainerStatus>,
    #[serde(deserialize_with = "nullable")]
    init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContainerStatus {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    image: String,
    #[serde(rename = "imageID", deserialize_with = "nullable")]
    image_id: String,
    #[serde(rename = "containerID", deserialize_with = "nullable")]
    container_id: String,
}

impl PodStatus {
    /// The status of container `id`, among the containers then the init containers (not the
    /// ephemeral ones, as in SPIRE). A status without an ID (not started yet) never matches.
    fn find_container(&self, id: &str) -> Option<&ContainerStatus> {
        self.container_statuses.iter().chain(&self.init_container_statuses).find(|status| {
            if status.container_id.is_empty() {
                return false;
            }
            match container_id_host(&status.container_id) {
                Some(host) => host == id,
                None => {
                    tracing::error!(container_id = %status.container_id, "Malformed container id");
                    false
                }
            }
        })
    }
}

/// The runtime's ID in a status's `containerID` (`containerd://<id>`, `docker://<id>`,
/// `cri-o://<id>`): the host part of it read as a URL, as SPIRE compares it. `None` if Go's URL
/// parser would refuse it; the empty string if it has no `//` authority.
pub fn container_id_host(url: &str) -> Option<&str> {
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let (has_scheme, rest) = match scheme_end(url)? {
        Some(colon) => (true, &url[colon + 1..]),
        None => (false, url),
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    if !has_scheme && !rest.starts_with('/') && rest.split('/').next().is_some_and(|first| first.contains(':')) {
        return None; // "first path segment in URL cannot contain colon"
    }
    let Some(authority) = rest.strip_prefix("//") else { return Some("") };
    let authority = authority.split_once('/').map_or(authority, |(before, _)| before);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    // A port must be digits; escapes in a host are refused in most forms, and no runtime writes one.
    let port_ok = match host.rsplit_once(':') {
        Some((name, port)) if !name.starts_with('[') || name.ends_with(']') => port.bytes().all(|b| b.is_ascii_digit()),
        Some(_) => true,
        None => true,
    };
    (port_ok && !host.contains('%')).then_some(host)
}

/// Where a URL's scheme ends (Go's `getScheme`): `Some(Some(i))` for a colon at `i` after a valid
/// scheme, `Some(None)` for no scheme, `None` for a URL starting with a colon (an error in Go).
fn scheme_end(url: &str) -> Option<Option<usize>> {
    for (i, c) in url.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return None,
            ':' => return Some(Some(i)),
            _ => return Some(None),
        }
    }
    Some(None)
}

/// The pod's own selector values.
fn pod_selectors(pod: &Pod) -> Vec<String> {
    let (meta, status) = (&pod.metadata, &pod.status);
    let mut values = vec![
        format!("sa:{}", pod.spec.service_account_name),
        format!("ns:{}", meta.namespace),
        format!("node-name:{}", pod.spec.node_name),
        format!("pod-uid:{}", meta.uid),
        format!("pod-name:{}", meta.name),
        format!("pod-image-count:{}", status.container_statuses.len()),
        format!("pod-init-image-count:{}", status.init_container_statuses.len()),
    ];
    values.extend(images(&status.container_statuses).map(|image| format!("pod-image:{image}")));
    values.extend(images(&status.init_container_statuses).map(|image| format!("pod-init-image:{image}")));
    values.extend(meta.labels.iter().map(|(key, value)| format!("pod-label:{key}:{value}")));
    for owner in &meta.owner_references {
        values.push(format!("pod-owner:{}:{}", owner.kind, owner.name));
        values.push(format!("pod-owner-uid:{}:{}", owner.kind, owner.uid));
    }
    values
}

/// The workload container's selector values.
fn container_selectors(status: &ContainerStatus) -> Vec<String> {
    let mut values = vec![format!("container-name:{}", status.name)];
    values.extend(images(std::slice::from_ref(status)).map(|image| format!("container-image:{image}")));
    values
}

/// Each distinct image and image ID. Both are kept: the ID (`...@sha256:...`) pins the content, the
/// image (`...:v1.16.0`) is what registrations written before the pull can name (SPIRE issue 2026).
/// An empty one (not pulled yet) is kept too, as SPIRE keeps it.
fn images(statuses: &[ContainerStatus]) -> impl Iterator<Item = &str> {
    let set: BTreeSet<&str> = statuses.iter().flat_map(|s| [s.image_id.as_str(), s.image.as_str()]).collect();
    set.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOG_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
    const BLOG_CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";

    fn fixture(name: &str) -> Pods {
        let path = format!("{}/src/workload_attestor/k8s/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        Pods::parse(&std::fs::read(&path).unwrap()).unwrap()
    }

    fn sorted(mut values: Vec<String>) -> Vec<String> {
        values.sort();
        values
    }

    fn blog_pod_selectors() -> Vec<&'static str> {
        vec![
            "node-name:k8s-node-1",
            "ns:default",
            "pod-image-count:2",
            "pod-image:docker-pullable://localhost/spiffe/blog@sha256:0cfdaced91cb46dd7af48309799a3c351e4ca2d5e1ee9737ca0cbd932cb79898",
            "pod-image:docker-pullable://localhost/spiffe/ghostunnel@sha256:b2fc20676c92a433b9a91f3f4535faddec0c2c3613849ac12f02c1d5cfcd4c3a",
            "pod-image:localhost/spiffe/blog:latest",
            "pod-image:localhost/spiffe/ghostunnel:latest",
            "pod-init-image-count:0",
            "pod-label:k8s-app:blog",
            "pod-label:version:v0",
            "pod-name:blog-24ck7",
            "pod-owner-uid:ReplicationController:2c401175-b29f-11e7-9350-020968147796",
            "pod-owner:ReplicationController:blog",
            "pod-uid:2c48913c-b29f-11e7-9350-020968147796",
            "sa:default",
        ]
    }

    fn blog_container_selectors() -> Vec<&'static str> {
        vec![
            "container-image:docker-pullable://localhost/spiffe/blog@sha256:0cfdaced91cb46dd7af48309799a3c351e4ca2d5e1ee9737ca0cbd932cb79898",
            "container-image:localhost/spiffe/blog:latest",
            "container-name:blog",
        ]
    }

    /// SPIRE's expected selectors for its pod list fixture, in its order.
    #[test]
    fn pod_and_container_selectors_in_spire_order() {
        let pods = fixture("pod_list.json");
        assert_eq!(pods.len(), 4);
        let values = pods.workload_selectors(BLOG_UID, BLOG_CID, false).unwrap().unwrap();
        assert_eq!(
            values,
            [
                "sa:default",
                "ns:default",
                "node-name:k8s-node-1",
                "pod-uid:2c48913c-b29f-11e7-9350-020968147796",
                "pod-name:blog-24ck7",
                "pod-image-count:2",
                "pod-init-image-count:0",
                "pod-image:docker-pullable://localhost/spiffe/blog@sha256:0cfdaced91cb46dd7af48309799a3c351e4ca2d5e1ee9737ca0cbd932cb79898",
                "pod-image:docker-pullable://localhost/spiffe/ghostunnel@sha256:b2fc20676c92a433b9a91f3f4535faddec0c2c3613849ac12f02c1d5cfcd4c3a",
                "pod-image:localhost/spiffe/blog:latest",
                "pod-image:localhost/spiffe/ghostunnel:latest",
                "pod-label:k8s-app:blog",
                "pod-label:version:v0",
                "pod-owner:ReplicationController:blog",
                "pod-owner-uid:ReplicationController:2c401175-b29f-11e7-9350-020968147796",
                "container-name:blog",
                "container-image:docker-pullable://localhost/spiffe/blog@sha256:0cfdaced91cb46dd7af48309799a3c351e4ca2d5e1ee9737ca0cbd932cb79898",
                "container-image:localhost/spiffe/blog:latest",
            ]
        );
        // Without the pod UID (CRI-O's layout) every pod is searched, with the same answer.
        assert_eq!(pods.workload_selectors("", BLOG_CID, false).unwrap().unwrap(), values);
        // Container selectors disabled: the pod's alone.
        let pod_only = pods.workload_selectors(BLOG_UID, BLOG_CID, true).unwrap().unwrap();
        assert_eq!(sorted(pod_only), blog_pod_selectors());
        let mut all = blog_pod_selectors();
        all.extend(blog_container_selectors());
        assert_eq!(sorted(values), sorted(all.into_iter().map(String::from).collect()));
    }

    #[test]
    fn init_container() {
        let pods = fixture("pod_list.json");
        let uid = "d488cae9-b2a0-11e7-9350-020968147796";
        let cid = "34a2062fd26c805aa8cf814cdfe479322b791f80afb9ea4db02d50375df14b41";
        let values = sorted(pods.workload_selectors(uid, cid, false).unwrap().unwrap());
        let flannel = "docker-pullable://quay.io/coreos/flannel@sha256:1b401bf0c30bada9a539389c3be652b58fe38463361edf488e6543c8761d4970";
        let want = [
            format!("container-image:{flannel}"),
            "container-image:quay.io/coreos/flannel:v0.9.0-amd64".into(),
            "container-name:install-cni".into(),
            "node-name:k8s-node-1".into(),
            "ns:kube-system".into(),
            "pod-image-count:1".into(),
            format!("pod-image:{flannel}"),
            "pod-image:quay.io/coreos/flannel:v0.9.0-amd64".into(),
            "pod-init-image-count:1".into(),
            format!("pod-init-image:{flannel}"),
            "pod-init-image:quay.io/coreos/flannel:v0.9.0-amd64".into(),
            "pod-label:app:flannel".into(),
            "pod-label:controller-revision-hash:1846323910".into(),
            "pod-label:pod-template-generation:1".into(),
            "pod-label:tier:node".into(),
            "pod-name:kube-flannel-ds-gp1g9".into(),
            "pod-owner-uid:DaemonSet:2f0350fc-b29d-11e7-9350-020968147796".into(),
            "pod-owner:DaemonSet:kube-flannel-ds".into(),
            "pod-uid:d488cae9-b2a0-11e7-9350-020968147796".into(),
            "sa:flannel".into(),
        ];
        assert_eq!(values, want);
    }

    #[test]
    fn kind_and_crio_lists() {
        let uid = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
        let cid = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
        let agent = "gcr.io/spiffe-io/spire-agent";
        let digest = "sha256:1e4c481d76e9ecbd3d8684891e0e46aa021a30920ca04936e1fdcc552747d941";
        for (file, node, ns) in [
            ("kind_pod_list.json", "kind-control-plane", "default"),
            ("crio_pod_list.json", "a37b7d23-d32a-4932-8f33-40950ac16ee9", "sfh-199"),
        ] {
            let pods = fixture(file);
            let want = [
                format!("container-image:{agent}:0.8.1"),
                format!("container-image:{agent}@{digest}"),
                "container-name:workload-api-client".into(),
                format!("node-name:{node}"),
                format!("ns:{ns}"),
                "pod-image-count:1".into(),
                format!("pod-image:{agent}:0.8.1"),
                format!("pod-image:{agent}@{digest}"),
                "pod-init-image-count:0".into(),
                "pod-label:app:sample-workload".into(),
                "pod-label:pod-template-hash:6658cb9566".into(),
                "pod-name:sample-workload-6658cb9566-5n4b4".into(),
                "pod-owner-uid:ReplicaSet:349d135e-3781-43e3-bc25-c900aedf1d0c".into(),
                "pod-owner:ReplicaSet:sample-workload-6658cb9566".into(),
                format!("pod-uid:{uid}"),
                "sa:default".into(),
            ];
            assert_eq!(sorted(pods.workload_selectors(uid, cid, false).unwrap().unwrap()), want, "{file}");
            assert_eq!(sorted(pods.workload_selectors("", cid, false).unwrap().unwrap()), want, "{file}");
        }
    }

    #[test]
    fn two_pods_with_one_container_is_an_error() {
        let pods = fixture("crio_pod_list_duplicate_containerId.json");
        let cid = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
        let err = pods.workload_selectors("", cid, false).unwrap_err();
        assert_eq!(err.to_string(), "two pods found with same container Id");
        // Knowing the pod settles it.
        let known = pods.workload_selectors("a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80", cid, false).unwrap();
        assert!(known.unwrap().contains(&"ns:sfh-199".to_owned()));
    }

    #[test]
    fn not_running_yet() {
        let pods = fixture("pod_list_not_running.json");
        // The blog container has no ID yet.
        assert_eq!(pods.workload_selectors(BLOG_UID, BLOG_CID, false).unwrap(), None);
        assert_eq!(pods.workload_selectors("", BLOG_CID, false).unwrap(), None);
        // A known pod is enough once container selectors are disabled; an unknown one is not.
        let values = pods.workload_selectors(BLOG_UID, BLOG_CID, true).unwrap().unwrap();
        assert_eq!(sorted(values), blog_pod_selectors());
        assert_eq!(pods.workload_selectors("", BLOG_CID, true).unwrap(), None);
        // Another pod's container under the wrong pod UID.
        let other = "2d64c78289951810fc0362ef4f25b72ac2cfde1886d8c64246a0000157eee258";
        assert_eq!(pods.workload_selectors(BLOG_UID, other, false).unwrap(), None);
        assert_eq!(pods.workload_selectors("no-such-pod", BLOG_CID, true).unwrap(), None);
    }

    #[test]
    fn lenient_decoding() {
        let body = br#"{"kind":"PodList","items":[
            {"metadata":{"uid":"u1","name":"p","namespace":null,"labels":null,"ownerReferences":null,"extra":1},
             "spec":null,
             "status":{"containerStatuses":[{"name":"c","containerID":"cri-o://abc","image":"i","imageID":null}],
                       "initContainerStatuses":null}},
            {"metadata":{"name":"no-uid"}},
            null
        ]}"#;
        let pods = Pods::parse(body).unwrap();
        assert_eq!(pods.len(), 1);
        let values = pods.workload_selectors("u1", "abc", false).unwrap().unwrap();
        assert_eq!(
            values,
            [
                "sa:",
                "ns:",
                "node-name:",
                "pod-uid:u1",
                "pod-name:p",
                "pod-image-count:1",
                "pod-init-image-count:0",
                "pod-image:",
                "pod-image:i",
                "container-name:c",
                "container-image:",
                "container-image:i",
            ]
        );
        assert!(Pods::parse(b"{}").unwrap().is_empty());
        assert!(Pods::parse(b"{\"items\":null}").unwrap().is_empty());
        assert!(Pods::parse(b"not json").is_err());
        assert!(Pods::parse(br#"{"items":[{"metadata":{"uid":7}}]}"#).is_err());
    }

    #[test]
    fn container_ids_as_urls() {
        let id = BLOG_CID;
        for (url, host) in [
            (format!("docker://{id}"), Some(id)),
            (format!("containerd://{id}"), Some(id)),
            (format!("cri-o://{id}"), Some(id)),
            (format!("containerd://{id}/more?q#f"), Some(id)),
            (format!("containerd://user@{id}"), Some(id)),
            (format!("//{id}"), Some(id)),
            (id.to_owned(), Some("")),
            (format!("containerd:{id}"), Some("")),
            (format!("1containerd://{id}"), None),
            (format!("1containerd/{id}"), Some("")),
            (format!("://{id}"), None),
            (format!("containerd://{id}:port"), None),
            (format!("containerd://{id}\n"), None),
            (format!("containerd://{id}%41"), None),
        ] {
            assert_eq!(container_id_host(&url), host, "{url}");
        }
    }
}
