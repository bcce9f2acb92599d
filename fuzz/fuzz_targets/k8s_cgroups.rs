//! The k8s workload attestor's reading of `/proc/<pid>/mountinfo` and `/proc/<pid>/cgroup` (the
//! input is the two files, split at the first NUL byte; without one it is the cgroup file alone):
//! never panics, and a container ID or pod UID found is one the input spells out, in the shape
//! Kubernetes gives it. The container locator's pod UID is written in the input (with `-` or the
//! systemd driver's `_`), and comes from a path that names no other pod. The docker attestor's use
//! of the same locator (container IDs only, `Pods::Ignore`) is checked on the same input, and so are
//! its legacy `container_id_cgroup_matchers`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_agent::workload_attestor::cgroup::{Pods, locate_with};
use spire_agent::workload_attestor::docker::matcher::ContainerIdFinder;
use spire_agent::workload_attestor::k8s::cgroup::{self, Location};

fn check(text: &str, found: &Location) {
    if found.container_id.is_empty() {
        assert!(found.pod_uid.is_empty(), "a pod without a container: {found:?}");
        return;
    }
    assert_eq!(found.container_id.len(), 64);
    assert!(found.container_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(text.contains(&found.container_id));
    if !found.pod_uid.is_empty() {
        // 36 with its separators; the legacy expression also takes them out (32 to 36).
        assert!((32..=36).contains(&found.pod_uid.len()), "{found:?}");
        assert!(found.pod_uid.bytes().all(|b| b.is_ascii_hexdigit() || b"-$+<=>^`|~".contains(&b)), "{found:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (mountinfo, cgroups) = match text.split_once('\0') {
        Some((mountinfo, cgroups)) => (Some(mountinfo), cgroups),
        None => (None, text.as_ref()),
    };
    if let Ok(found) = cgroup::locate(mountinfo, "/proc/1/mountinfo", || Ok(Some(cgroups.to_owned()))) {
        check(&text, &found);
        if !found.pod_uid.is_empty() {
            // Spelled with `-` or `_` (systemd's form), in any mix: the locator reads both as `-`.
            let dashed = text.replace('_', "-");
            assert!(dashed.contains(&format!("pod{}", found.pod_uid)), "{found:?}");
        }
    }
    if let Ok(found) = locate_with(Pods::Ignore, mountinfo, "/proc/1/mountinfo", || Ok(Some(cgroups.to_owned()))) {
        assert!(found.pod_uid.is_empty(), "{found:?}");
        check(&text, &found);
    }
    if let Ok(paths) = cgroup::parse_cgroups(cgroups) {
        let finder = ContainerIdFinder::new(&["/docker/<id>".into(), "/my.slice/*/<id>/*".into()]).expect("patterns");
        if let Ok(id) = finder.container_id(paths.iter().copied()) {
            assert!(!id.contains('/') && cgroups.contains(&id), "{id:?}");
        }
    }
    if let Ok(found) = cgroup::legacy_locate(cgroups) {
        check(cgroups, &found);
    }
    if let Some(mountinfo) = mountinfo {
        let _ = cgroup::parse_mountinfo(mountinfo);
    }
});
