//! The kubelet's pod list as the k8s workload attestor reads it: never panics, and every container
//! the list names is found again, in its pod, with the pod's UID among its selectors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_agent::workload_attestor::k8s::selectors::{Pods, container_id_host};

fuzz_target!(|data: &[u8]| {
    let Ok(pods) = Pods::parse(data) else { return };
    for (uid, container_id) in pods.container_ids() {
        let Some(id) = container_id_host(container_id).filter(|id| !id.is_empty()) else { continue };
        let values = pods.workload_selectors(uid, id, false).unwrap().expect("the container is in its pod");
        assert!(values.contains(&format!("pod-uid:{uid}")), "{values:?}");
        assert!(values.iter().any(|v| v.starts_with("container-name:")), "{values:?}");
        let pod_only = pods.workload_selectors(uid, id, true).unwrap().expect("the pod is known");
        assert!(pod_only.iter().all(|v| !v.starts_with("container-")), "{pod_only:?}");
        // Searched across all pods the container is found too, unless two pods claim it.
        if let Ok(found) = pods.workload_selectors("", id, false) {
            assert!(found.is_some());
        }
    }
    let _ = pods.workload_selectors("", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true);
});
