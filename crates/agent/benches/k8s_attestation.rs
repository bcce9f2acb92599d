//! k8s workload attestation latency with a warm pod list, beside the unix attestor alone, measured in
//! the same run on the same process.
//!
//! The caller is a real process in a real Docker container whose cgroup is laid out as the kubelet
//! lays out a pod's (`/kubepods/besteffort/pod<uid>/<container id>`); the pod is in a real API server
//! (etcd, kube-apiserver 1.36.3, from `scripts/install-peers.sh`), and the stand-in kubelet serves
//! its `/pods` over HTTPS with bearer-token auth. The attestors run in-process through
//! `WorkloadAttestors::attest_pid`, as the Workload API runs them for each call:
//! - unix alone (the baseline): `/proc/<pid>/status`, user and group names;
//! - k8s alone: `/proc/<pid>/mountinfo` and `cgroup`, then the pod list (warm: fetched once, reused
//!   for half of `poll_retry_interval`, here one hour) and the selectors of the pod;
//! - k8s and unix together, as a Kubernetes agent is configured;
//! - k8s with `use_new_container_locator = false` (SPIRE's older locator: `/proc/<pid>/cgroup` only).
//!
//! The cases take turns in blocks; medians and p99 per case, and the ratios to unix alone.
//!
//! Run: `cargo bench -p spire-agent --bench k8s_attestation` (needs the etcd and kube-apiserver peers,
//! dockerd, busybox-static; prints that it is skipped otherwise).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use spire_agent::workload_attestor::k8s::{K8sAttestor, K8sConfig};
use spire_agent::workload_attestor::{UnixAttestor, UnixConfig, WorkloadAttestor, WorkloadAttestors};
use spire_testkit::docker::{Container, Dockerd};
use spire_testkit::kube::{Cluster, PodSpec};
use spire_testkit::kubelet::Kubelet;
use support::{quantile, us};

const ROUNDS: usize = 20;
const BLOCK: usize = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(cluster) = Cluster::start().await else { return };
    let Some(docker) = Dockerd::shared().await else { return };
    cluster.create_node("bench-node", &[]).await;
    let pod = cluster
        .create_pod(PodSpec {
            namespace: "default",
            name: "bench",
            service_account: "default",
            node: "bench-node",
            labels: &[("app", "bench")],
            containers: &[("main", "bench:latest")],
        })
        .await;
    let image = docker.import_image("bench:latest", &[]);
    let parent = format!("/kubepods/besteffort/pod{}", pod.metadata.uid.as_deref().expect("uid"));
    let id = docker.run_sleeping(&Container {
        image: "bench:latest",
        name: "k8s-attestation-bench",
        volumes: &[],
        cgroup_parent: Some(&parent),
        lifetime: Duration::from_secs(600),
    });
    cluster.set_pod_running(&pod, &[("main", &format!("docker://{id}"), &image)]).await;
    let pid: i32 = String::from_utf8_lossy(&docker.docker(&["inspect", "--format", "{{.State.Pid}}", &id]).stdout)
        .trim()
        .parse()
        .expect("the container's PID");
    let kubelet = Kubelet::start(&cluster, "bench-node").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, cluster.admin_token()).expect("token");

    let k8s_config = K8sConfig {
        kubelet_secure_port: kubelet.port,
        kubelet_ca_path: cluster.ca_path(),
        token_path: token,
        // A pod list is reused for half of this: an hour keeps it warm for the whole run.
        poll_retry_interval: Duration::from_secs(3600),
        ..K8sConfig::default()
    };
    let legacy_config = K8sConfig { use_new_container_locator: false, ..k8s_config.clone() };
    let k8s_alone = Arc::new(K8sAttestor::new(k8s_config).expect("k8s attestor"));
    let legacy: Arc<dyn WorkloadAttestor> = Arc::new(K8sAttestor::new(legacy_config).expect("k8s attestor"));
    let k8s: Arc<dyn WorkloadAttestor> = k8s_alone.clone();
    let unix: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::new(UnixConfig::default()));
    let cases = [
        ("unix alone (baseline)", WorkloadAttestors::new([unix.clone()])),
        ("k8s alone, warm pod list", WorkloadAttestors::new([k8s.clone()])),
        ("k8s + unix, warm pod list", WorkloadAttestors::new([k8s, unix])),
        ("k8s, legacy locator", WorkloadAttestors::new([legacy])),
    ];
    // Warm up, and check that k8s really attests the container.
    for (name, attestors) in &cases {
        let selectors = attestors.attest_pid(pid).await.expect("attest");
        let shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
        if name.starts_with("k8s") {
            assert!(shown.iter().any(|s| s == "k8s:pod-name:bench"), "{shown:?}");
        }
    }

    let samples = support::attest_in_turns(&cases, pid, ROUNDS, BLOCK).await;
    println!(
        "k8s workload attestation, {} calls per case, pod list fetched {} times",
        ROUNDS * BLOCK,
        kubelet.pod_lists_served()
    );
    let names: Vec<&str> = cases.iter().map(|(name, _)| *name).collect();
    support::print_cases(&names, &samples);

    // Where the k8s time goes: the cgroup step, then the pod-list step, each alone.
    let process = spire_agent::peer::Process::from_pid(pid);
    let location = k8s_alone.locate(process).expect("locate");
    let (mut locate, mut lookup) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS * BLOCK / 4 {
        let start = Instant::now();
        k8s_alone.locate(process).expect("locate");
        locate.push(start.elapsed());
        let start = Instant::now();
        k8s_alone.attest_location(&location).await.expect("attest_location");
        lookup.push(start.elapsed());
    }
    println!(
        "{:<28} {:>10.1} {:>10.1}",
        "  k8s: cgroups (locate)",
        us(quantile(&locate, 0.5)),
        us(quantile(&locate, 0.99))
    );
    println!(
        "{:<28} {:>10.1} {:>10.1}",
        "  k8s: pod list lookup",
        us(quantile(&lookup, 0.5)),
        us(quantile(&lookup, 0.99))
    );
    docker.remove(&id);
}
