//! Where a process runs in Kubernetes: its pod UID and container ID, read from the cgroup paths the
//! kernel shows for it.
//!
//! Every container runtime puts a container in a cgroup named after its 64-hex-digit ID, under one
//! named after its pod (`pod<uid>`, with `_` for `-` under the systemd driver), but the layouts differ:
//! cgroupfs v1 (`/kubepods/burstable/pod<uid>/<id>`), systemd
//! (`/kubepods.slice/.../kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`), colon-joined
//! (`...pod<uid>.slice:cri-containerd:<id>`), kind's nested `/docker/<node>/kubepods/...`, paths
//! relative to a cgroup namespace (`/../../pod<uid>/<id>`), and CRI-O without a pod UID
//! (`/../crio-<id>.scope`). SPIRE has two ways to read them and so do we:
//!
//! - the *container locator* (SPIRE's default): the cgroup mount roots of `/proc/<pid>/mountinfo`,
//!   then the paths of `/proc/<pid>/cgroup` if those name no container, each path walked backwards
//!   for the last 64-hex segment and, before it, a `pod<uid>`. Unlike SPIRE, a path naming two
//!   different pods is refused: the layouts above name one (kind's node container adds a container
//!   ID above the pod, not a pod), so `.../pod<A>/<id>/pod<B>/<id>` is most likely a workload of pod
//!   A that can write its cgroupfs and has nested cgroups to be taken for pod B. (A kind cluster
//!   inside another cluster's pod, without cgroup namespaces, looks the same and is refused too.)
//! - the *legacy* matcher (`use_new_container_locator = false`): SPIRE's two regular expressions over
//!   the paths of `/proc/<pid>/cgroup`.
//!
//! The parsing here is pure (text in, answer out) so that it can be table-tested and fuzzed.

use std::sync::LazyLock;

use regex::Regex;

pub use crate::workload_attestor::cgroup::{
    LocateError, Location, Pods, locate, locate_in_cgroups, parse_cgroups, parse_mountinfo,
};

// --- the legacy matcher ---------------------------------------------------------------------------

/// SPIRE's legacy expressions. The first finds `pod<uid>` followed, after punctuation-separated
/// segments, by a 64-hex container ID ending the path; the second a CRI-O `crio-<id>` path that must
/// not hold a pod UID (KubeEdge's layout). Go's `[[:punct:]]`, `[[:xdigit:]]` and `$` mean the same
/// in the `regex` crate, and both engines pick the leftmost-first match.
static LEGACY: LazyLock<[Regex; 2]> = LazyLock::new(|| {
    const UID: &str = "[[:xdigit:]]{8}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{4}[[:punct:]]?\
                       [[:xdigit:]]{4}[[:punct:]]?[[:xdigit:]]{12}";
    [
        Regex::new(&format!(
            "[[:punct:]]pod(?P<poduid>{UID})[[:punct:]](?:[[:^punct:]]+[[:punct:]])*(?P<containerid>[[:xdigit:]]{{64}})$"
        ))
        .expect("legacy pod regex"),
        Regex::new(&format!(
            "(?P<poduid>)(?P<mustnotmatch>pod{UID}[[:punct:]])?(?:[[:^punct:]]*/*)*crio[[:punct:]](?P<containerid>[[:xdigit:]]{{64}})$"
        ))
        .expect("legacy cri-o regex"),
    ]
});

/// The legacy matcher over one cgroup path (after dropping a `.scope` suffix). `None` when no
/// expression matches, or both do (SPIRE logs that and ignores the path).
pub fn legacy_extract(path: &str) -> Option<Location> {
    let path = path.strip_suffix(".scope").unwrap_or(path);
    let mut found = None;
    for regex in LEGACY.iter() {
        let Some(caps) = regex.captures(path) else { continue };
        if caps.name("mustnotmatch").is_some_and(|m| !m.as_str().is_empty()) {
            continue;
        }
        if found.is_some() {
            tracing::warn!(cgroup = path, "More than one regex matches for cgroup");
            return None;
        }
        let pod_uid = caps.name("poduid").map_or("", |m| m.as_str());
        let container_id = caps.name("containerid").map_or("", |m| m.as_str());
        found = Some(Location { pod_uid: canonical_pod_uid(pod_uid), container_id: container_id.to_owned() });
    }
    found
}

/// The legacy matcher over the paths of a `/proc/<pid>/cgroup` file: the first container found,
/// and an error if another path names a different container or pod.
pub fn legacy_locate(text: &str) -> Result<Location, LocateError> {
    let mut found = Location::default();
    for path in parse_cgroups(text).map_err(LocateError::Cgroups)? {
        let Some(candidate) = legacy_extract(path) else { continue };
        if found.container_id.is_empty() {
            found = candidate;
        } else if found.container_id != candidate.container_id {
            return Err(LocateError::LegacyContainerIds(found.container_id, candidate.container_id));
        } else if found.pod_uid != candidate.pod_uid {
            return Err(LocateError::LegacyPodUids(found.pod_uid, candidate.pod_uid));
        }
    }
    Ok(found)
}

/// Go's `unicode.IsPunct` characters become dashes (the ASCII symbols `$+<=>^`|~` are not
/// punctuation there and stay).
fn canonical_pod_uid(uid: &str) -> String {
    uid.chars().map(|c| if c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c) { '-' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload_attestor::cgroup::extract;

    const UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
    const CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
    const TEST_UID: &str = "00000000-1111-2222-3333-444444444444";
    const TEST_CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn testdata(name: &str) -> String {
        let path = format!("{}/src/workload_attestor/k8s/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn loc(pod_uid: &str, container_id: &str) -> Location {
        Location { pod_uid: pod_uid.to_owned(), container_id: container_id.to_owned() }
    }

    /// One path through both matchers; `legacy` is `None` where the legacy matcher finds nothing.
    #[test]
    fn every_layout() {
        let kind_node = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";
        let kind_uid = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
        let kind_cid = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
        let crio_cid = "45490e76e0878aaa4d9808f7d2eefba37f093c3efbba9838b6d8ab804d9bd814";
        let cases: Vec<(&str, String, Location, Option<Location>)> = vec![
            ("cgroupfs, no QoS", format!("/kubepods/pod{UID}/{CID}"), loc(UID, CID), Some(loc(UID, CID))),
            ("cgroupfs, QoS", format!("/kubepods/burstable/pod{UID}/{CID}"), loc(UID, CID), Some(loc(UID, CID))),
            (
                "docker for desktop",
                format!("/kubepods/kubepods/besteffort/pod{UID}/{CID}"),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "kind",
                format!("/docker/{kind_node}/kubepods/besteffort/pod{kind_uid}/{kind_cid}"),
                loc(kind_uid, kind_cid),
                Some(loc(kind_uid, kind_cid)),
            ),
            (
                "systemd, docker",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice/docker-{CID}.scope"
                ),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "systemd, containerd, underscores",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
                    UID.replace('-', "_")
                ),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "systemd, CRI-O",
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{kind_cid}.scope",
                    kind_uid.replace('-', "_")
                ),
                loc(kind_uid, kind_cid),
                Some(loc(kind_uid, kind_cid)),
            ),
            (
                "colon-joined cri-containerd",
                "/kubepods-besteffort-pod72f7f152_440c_66ac_9084_e0fc1d8a910c.slice:cri-containerd:b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2".to_owned(),
                loc("72f7f152-440c-66ac-9084-e0fc1d8a910c", "b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2"),
                Some(loc("72f7f152-440c-66ac-9084-e0fc1d8a910c", "b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2")),
            ),
            (
                "another cgroup namespace",
                format!("/../../../burstable/pod{UID}/{CID}"),
                loc(UID, CID),
                Some(loc(UID, CID)),
            ),
            (
                "cgroup v2 mount root in a namespace",
                format!(
                    "/../../kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{}.slice/cri-containerd-{TEST_CID}.scope",
                    TEST_UID.replace('-', "_")
                ),
                loc(TEST_UID, TEST_CID),
                Some(loc(TEST_UID, TEST_CID)),
            ),
            ("not under kubepods", format!("/something/pod{kind_uid}/{kind_cid}"), loc(kind_uid, kind_cid), Some(loc(kind_uid, kind_cid))),
            ("pod and container only", format!("/pod{kind_uid}/{kind_cid}"), loc(kind_uid, kind_cid), Some(loc(kind_uid, kind_cid))),
            ("CRI-O without a pod (KubeEdge)", format!("/../crio-{crio_cid}.scope"), loc("", crio_cid), Some(loc("", crio_cid))),
            ("container alone", format!("/{kind_cid}"), loc("", kind_cid), None),
            ("no pod segment", format!("/kubepods/{kind_cid}"), loc("", kind_cid), None),
            ("plain docker", format!("/system.slice/docker-{kind_cid}.scope"), loc("", kind_cid), None),
            ("no container", format!("/kubepods/pod{kind_uid}"), loc("", ""), None),
            ("a user session", "/user.slice/user-1000.slice/session-2.scope".to_owned(), loc("", ""), None),
            ("the root", "/".to_owned(), loc("", ""), None),
            ("65 hex digits", format!("/kubepods/pod{UID}/{CID}0"), loc("", ""), None),
            // `_` is a word character for the locator, punctuation for the legacy expression.
            ("an underscore glued to the ID", format!("/kubepods/pod{UID}/x_{CID}"), loc("", ""), Some(loc(UID, CID))),
            ("a trailing slash ends the walk", format!("/kubepods/pod{UID}/{CID}/"), loc("", ""), None),
            (
                "a segment after the container",
                format!("/kubepods/pod{UID}/{CID}/init"),
                loc(UID, CID),
                None,
            ),
            (
                "a double slash stops the pod search",
                format!("/kubepods/pod{UID}//{CID}"),
                loc("", CID),
                None,
            ),
        ];
        for (name, path, want, want_legacy) in cases {
            let (pod_uid, container_id) = extract(&path).unwrap_or_else(|e| panic!("{name}: {path}: {e}"));
            assert_eq!(loc(&pod_uid, container_id), want, "{name}: {path}");
            assert_eq!(legacy_extract(&path), want_legacy, "{name} (legacy): {path}");
        }
    }

    #[test]
    fn spire_cgroup_fixtures() {
        let init_uid = "d488cae9-b2a0-11e7-9350-020968147796";
        let init_cid = "34a2062fd26c805aa8cf814cdfe479322b791f80afb9ea4db02d50375df14b41";
        let kind = loc(
            "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80",
            "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6",
        );
        let cases = [
            ("cgroups_pid_in_pod.txt", loc(UID, CID)),
            ("cgroups_init_pid_in_pod.txt", loc(init_uid, init_cid)),
            ("cgroups_pid_in_kind_pod.txt", kind.clone()),
            ("cgroups_pid_in_crio_pod.txt", loc("", &kind.container_id)),
            ("cgroups_pid_not_in_pod.txt", Location::default()),
            ("systemd_cgroups_pid_in_pod.txt", loc(UID, CID)),
            ("systemd_crio_cgroups_pid_in_pod.txt", kind.clone()),
        ];
        for (file, want) in cases.clone() {
            let text = testdata(file);
            assert_eq!(locate_in_cgroups(&text).unwrap(), want, "{file}");
            // Through `locate` without a mountinfo file, as SPIRE's plugin tests run it.
            assert_eq!(locate(None, "", || Ok(Some(text.clone()))).unwrap(), want, "{file}");
        }
        for (file, want) in cases {
            assert_eq!(legacy_locate(&testdata(file)).unwrap(), want, "{file} (legacy)");
        }
    }

    #[test]
    fn conflicts_are_errors() {
        let other_cid = "a55d9ac3b312d8a2627824b6d6dd8af66fbec439bf4e0ec22d6d9945ad337a38";
        let text =
            format!("1:a:/user.slice\n2:b:/kubepods/pod{UID}/{CID}\n3:c:/kubepods/besteffort/pod{UID}/{other_cid}\n");
        assert_eq!(
            legacy_locate(&text).unwrap_err().to_string(),
            format!("multiple container IDs found in cgroups ({CID}, {other_cid})")
        );
        assert_eq!(
            locate_in_cgroups(&text).unwrap_err().to_string(),
            format!("multiple container IDs found (\"{CID}\", \"{other_cid}\")")
        );
        let uid1 = "11111111-b29f-11e7-9350-020968147796";
        let uid2 = "22222222-b29f-11e7-9350-020968147796";
        let text =
            format!("1:a:/user.slice\n2:b:/kubepods/pod{uid1}/{CID}\n3:c:/kubepods/besteffort/pod{uid2}/{CID}\n");
        assert_eq!(
            legacy_locate(&text).unwrap_err().to_string(),
            format!("multiple pod UIDs found in cgroups ({uid1}, {uid2})")
        );
        assert_eq!(
            locate_in_cgroups(&text).unwrap_err().to_string(),
            format!("multiple pod UIDs found (\"{uid1}\", \"{uid2}\")")
        );
        // Legacy: the canonical form is compared, so `_` and `-` spellings agree.
        let text = format!("1:a:/kubepods/pod{UID}/{CID}\n2:b:/kubepods/pod{}/{CID}\n", UID.replace('-', "_"));
        assert_eq!(legacy_locate(&text).unwrap(), loc(UID, CID));
        assert_eq!(locate_in_cgroups(&text).unwrap(), loc(UID, CID));
    }

    /// Defence in depth: a workload that can write its cgroupfs (and hide its cgroup mount) could
    /// nest another pod's `pod<uid>/<id>` under its own; SPIRE would take the inner pair.
    #[test]
    fn a_path_naming_two_pods_is_refused() {
        let uid_b = "11111111-2222-3333-4444-555555555555";
        let cid_b = "a55d9ac3b312d8a2627824b6d6dd8af66fbec439bf4e0ec22d6d9945ad337a38";
        let (us, us_b) = (UID.replace('-', "_"), uid_b.replace('-', "_"));
        let refused = [
            ("cgroupfs", format!("/kubepods/burstable/pod{UID}/{CID}/pod{uid_b}/{cid_b}")),
            ("cgroupfs, inner without QoS", format!("/kubepods/pod{UID}/{CID}/kubepods/besteffort/pod{uid_b}/{cid_b}")),
            (
                "systemd",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice/cri-containerd-{CID}.scope\
                     /kubepods-burstable-pod{us_b}.slice/cri-containerd-{cid_b}.scope"
                ),
            ),
            ("mixed spellings", format!("/kubepods/pod{us}/{CID}/pod{uid_b}/{cid_b}")),
            ("in a namespace", format!("/../../pod{UID}/{CID}/pod{uid_b}/{cid_b}")),
            ("the other pod after the container", format!("/kubepods/pod{UID}/{CID}/pod{uid_b}")),
            ("two pods in one segment", format!("/kubepods/pod{UID}.pod{uid_b}/{cid_b}")),
            ("two pods, no container", format!("/kubepods/pod{UID}/pod{uid_b}")),
            ("kind, nested", format!("/docker/{cid_b}/kubepods/besteffort/pod{UID}/{CID}/kubepods/pod{uid_b}/{cid_b}")),
        ];
        for (name, path) in refused {
            let want = LocateError::NestedPodUids { path: path.clone(), first: UID.into(), second: uid_b.into() };
            assert_eq!(extract(&path), Err(want.clone()), "{name}: {path}");
            assert_eq!(
                want.to_string(),
                format!("multiple pod UIDs found in cgroup path {path:?} (\"{UID}\", \"{uid_b}\")")
            );
            // Whichever file it comes from, in whatever line: no location, hence no selectors.
            let cgroups = format!("12:pids:/user.slice\n11:memory:{path}\n0::/\n");
            assert_eq!(locate_in_cgroups(&cgroups), Err(want.clone()), "{name}");
            assert_eq!(locate(None, "", || Ok(Some(cgroups.clone()))), Err(want.clone()), "{name}");
            let mountinfo = format!("30 25 0:26 {path} /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n");
            assert_eq!(locate(Some(&mountinfo), "", || panic!("cgroup read")), Err(want), "{name}");
        }
        // One pod named twice (the same UID in either spelling) is one pod: kind's node container
        // and the systemd driver's slices, across cgroup v1 lines repeating one path.
        let kind_node = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";
        let allowed = [
            format!("/docker/{kind_node}/kubepods/besteffort/pod{UID}/{CID}"),
            format!("/kubepods/pod{UID}/pod{us}/{CID}"),
            format!("/kubepods.slice/kubepods-pod{us}.slice/pod{UID}/cri-containerd-{CID}.scope"),
            format!("/kubepods/pod{UID}/{CID}/pod{UID}"),
        ];
        for path in allowed {
            assert_eq!(extract(&path).map(|(uid, cid)| loc(&uid, cid)), Ok(loc(UID, CID)), "{path}");
            let cgroups = format!("3:cpu:{path}\n2:memory:{path}\n1:pids:{path}\n");
            assert_eq!(locate_in_cgroups(&cgroups), Ok(loc(UID, CID)), "{path}");
        }
        // The legacy matcher (SPIRE's expressions, unchanged) takes the outer pod, the workload's
        // own, with the inner container, which that pod does not have: nothing is gained there.
        let path = format!("/kubepods/pod{UID}/{CID}/pod{uid_b}/{cid_b}");
        assert_eq!(legacy_extract(&path), Some(loc(UID, cid_b)));
    }

    #[test]
    fn malformed_cgroup_files() {
        let err = locate_in_cgroups("0::/\nnonsense\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to obtain cgroups: invalid cgroup entry, contains 1 colon separated fields but expected at least 3: \"nonsense\""
        );
        assert!(legacy_locate("1:cpu\n").is_err());
        assert_eq!(locate_in_cgroups("").unwrap(), Location::default());
    }

    /// SPIRE's `containerinfo` cases, with its mountinfo fixtures.
    #[test]
    fn mountinfo_first_then_cgroup() {
        let run = |dir: &str, cgroup: Option<&str>| {
            let mountinfo = testdata(&format!("containerinfo/{dir}/mountinfo"));
            locate(Some(&mountinfo), "/proc/123/mountinfo", || Ok(cgroup.map(str::to_owned)))
        };
        assert_eq!(run("k8s-v1", None).unwrap(), loc(TEST_UID, TEST_CID));
        assert_eq!(run("k8s-v2", None).unwrap(), loc(TEST_UID, TEST_CID));
        assert_eq!(run("k8s-no-cgroup-mount", None).unwrap(), Location::default());
        assert_eq!(run("other-malformed", None).unwrap(), Location::default());
        assert_eq!(run("k8s-pod-uid-override", None).unwrap(), loc(TEST_UID, TEST_CID));
        assert!(run("k8s-pod-uid-conflict", None).unwrap_err().to_string().contains("multiple pod UIDs found"));
        assert!(
            run("k8s-container-id-conflict", None).unwrap_err().to_string().contains("multiple container IDs found")
        );
        let fallback = testdata("containerinfo/other-fallback/cgroup");
        assert_eq!(run("other-fallback", Some(&fallback)).unwrap(), loc("", TEST_CID));
        // No mountinfo at all: straight to the cgroup file; neither file: not in a container.
        assert_eq!(locate(None, "", || Ok(Some(fallback.clone()))).unwrap(), loc("", TEST_CID));
        assert_eq!(locate(None, "", || Ok(None)).unwrap(), Location::default());
        // The cgroup file is not read when the mounts answer.
        let mountinfo = testdata("containerinfo/k8s-v2/mountinfo");
        let found = locate(Some(&mountinfo), "", || panic!("cgroup read")).unwrap();
        assert_eq!(found, loc(TEST_UID, TEST_CID));
    }

    #[test]
    fn malformed_mountinfo() {
        let cases = [
            (
                "1 2 0:3 / /x rw - cgroup2",
                "wrong number of fields in (expected at least 10, got 8): 1 2 0:3 / /x rw - cgroup2",
            ),
            ("a 2 0:3 / /x rw shared:1 - cgroup2 cgroup rw", "strconv.Atoi: parsing \"a\": invalid syntax"),
            (
                "1 2 03 / /x rw shared:1 - cgroup2 cgroup rw",
                "parsing '1 2 03 / /x rw shared:1 - cgroup2 cgroup rw' failed: unexpected minor:major pair [03]",
            ),
            (
                "1 2 0:x / /x rw a b c d",
                "parsing 'x' failed: unable to parse minor device id, err:strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("1 2 0:3 / /x rw a b - c d", "expect 3 fields in 1 2 0:3 / /x rw a b - c d, got 2"),
            ("1 2 0:3 / /x rw a b c d", "expect 3 fields in 1 2 0:3 / /x rw a b c d, got -1"),
        ];
        for (line, want) in cases {
            let err = locate(Some(line), "/proc/1/mountinfo", || Ok(None)).unwrap_err();
            assert_eq!(err, LocateError::MountInfo { path: "/proc/1/mountinfo".into(), reason: want.into() }, "{line}");
            assert_eq!(err.to_string(), format!("failed to parse mount info at \"/proc/1/mountinfo\": {want}"));
        }
    }

    #[test]
    fn legacy_pod_uid_canonical_form() {
        assert_eq!(canonical_pod_uid("2c48913c_b29f.11e7:9350-020968147796"), UID);
        assert_eq!(canonical_pod_uid("2c48913c+b29f"), "2c48913c+b29f");
        // A CRI-O path that does hold a pod UID is the first expression's, not the second's.
        let path = format!("/kubepods/pod{UID}/crio-{CID}.scope");
        assert_eq!(legacy_extract(&path), Some(loc(UID, CID)));
    }
}
