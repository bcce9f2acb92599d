//! How long a new pod waits for its identity with the Kubernetes workload registrar:
//! `cargo bench -p spire-interop --bench registrar_latency` (needs the cluster peers, Docker and
//! `cargo build -p spire-server -p spire-agent -p spire-k8s-registrar` first; `BENCH_PODS` pods per
//! mode, default 100).
//!
//! For each pod: the pod is created unscheduled, its container started under the pod's cgroup with
//! a loop asking our agent for an X509-SVID every 20 ms, and then (t0) the pod is bound to the node,
//! as the scheduler binds it. Measured from t0: until the SPIRE server holds the pod's entry
//! (polled over its admin socket every 5 ms), and until the workload holds its SVID. Modes:
//! - `baseline`: no registrar; the bench writes the entry itself at t0 (what the registrar does at
//!   best), so `baseline` is the agent's share: its sync (interval 500 ms here; SPIRE's default is
//!   5 s), the kubelet poll of the k8s workload attestor, and signing;
//! - `reconcile` and `crd`: our registrar in that mode writes it.
//!
//! Medians and 99th percentiles, and each mode's ratio to the baseline.

#[allow(unused, clippy::all)]
#[path = "../tests/agent_server/mod.rs"]
mod agent_server;
#[allow(unused, clippy::all)]
#[path = "../tests/k8s/mod.rs"]
mod k8s;
#[allow(unused, clippy::all)]
#[path = "../tests/registrar/mod.rs"]
mod registrar;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_server::{OurAgent, OurServer, ServerUnderTest};
use k8s::World;
use registrar::Registrar;
use spire_k8s_registrar::config::ServerAddress;
use spire_k8s_registrar::spire_api::Entries;
use spire_k8s_registrar::workload_id::{namespace_selector, pod_name_selector, selector};
use spire_testkit::kube::PodSpec;

/// One pod's wait, from binding.
struct Sample {
    entry: Duration,
    svid: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(samples: &[Sample]) -> (Duration, Duration, Duration, Duration) {
    let mut entry: Vec<Duration> = samples.iter().map(|s| s.entry).collect();
    let mut svid: Vec<Duration> = samples.iter().map(|s| s.svid).collect();
    entry.sort();
    svid.sort();
    (percentile(&entry, 0.5), percentile(&entry, 0.99), percentile(&svid, 0.5), percentile(&svid, 0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let pods: usize = std::env::var("BENCH_PODS").ok().and_then(|n| n.parse().ok()).unwrap_or(100);
    let mut results = Vec::new();
    for mode in ["baseline", "reconcile", "crd"] {
        let Some(samples) = run_mode(mode, pods).await else {
            println!("registrar_latency: skipped (the cluster peers or Docker are missing)");
            return;
        };
        let (e50, e99, s50, s99) = summary(&samples);
        println!(
            "{mode:>9}: pod bound -> entry p50 {} p99 {}; -> SVID served p50 {} p99 {} ({} pods)",
            ms(e50),
            ms(e99),
            ms(s50),
            ms(s99),
            samples.len()
        );
        results.push((mode, s50, s99));
    }
    let (_, base50, base99) = results[0];
    for (mode, s50, s99) in &results[1..] {
        println!(
            "{mode:>9}: SVID served vs baseline: p50 x{:.2}, p99 x{:.2}",
            s50.as_secs_f64() / base50.as_secs_f64(),
            s99.as_secs_f64() / base99.as_secs_f64()
        );
    }
}

async fn run_mode(mode: &str, pods: usize) -> Option<Vec<Sample>> {
    let tag = format!("bench-{mode}");
    let mut world = World::new(&tag).await?;
    let (server, agent, _) = world.start_pair::<OurServer, OurAgent>(&tag, "").await?;
    let namespace = format!("bench-{mode}");
    let _registrar = match mode {
        "reconcile" => {
            Some(Registrar::start(&world, &server, &namespace, "mode = \"reconcile\"\nmetrics_addr = \"0\"\n").await)
        }
        "crd" => {
            registrar::crd::install_crd(world.cluster).await;
            let config = "mode = \"crd\"\nmetrics_bind_addr = \"0\"\nadd_svc_dns_name = false\n";
            Some(Registrar::start(&world, &server, &namespace, config).await)
        }
        _ => None,
    };
    world.cluster.ensure_namespace(&namespace).await;
    let entries = Entries::connect(&ServerAddress::Unix(server.socket.display().to_string())).await.expect("connect");
    let socket = format!("/run/spire/sockets/{}", agent.socket.file_name().expect("socket").to_string_lossy());
    // Node entries first, so that the first pod does not wait for the registrar's start.
    let parent = match mode {
        "reconcile" => format!("spiffe://example.org/spire-k8s-registrar/{}/node/{}", world.name, world.node_name()),
        "crd" => format!("spiffe://example.org/k8s-workload-registrar/{}/node/{}", world.name, world.node_name()),
        _ => world.node_alias(&server),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.cli(&["entry", "show", "-spiffeID", &parent]).contains(&parent) {
        assert!(Instant::now() < deadline, "no node entry {parent}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut samples = Vec::with_capacity(pods);
    for i in 0..pods {
        let name = format!("bench-{i}");
        let pod = world
            .cluster
            .create_pod(PodSpec {
                namespace: &namespace,
                name: &name,
                service_account: "default",
                node: "",
                labels: &[],
                containers: &[("main", "spire-rs-workload:test")],
            })
            .await;
        let container = world.container_in(&pod, &format!("{mode}-{i}"), &agent.socket);
        world.cluster.set_pod_running(&pod, &[("main", &format!("docker://{container}"), world.image_id())]).await;
        let mut watcher = Command::new("docker")
            .arg(format!("--host=unix://{}", world.docker.socket().display()))
            .args(["exec", &container, "sh", "-c"])
            .arg(format!(
                "until /opt/spire/bin/spire-agent api fetch x509 -socketPath {socket} >/dev/null 2>&1; do usleep 20000; done; echo ok"
            ))
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker exec");
        let stdout = watcher.stdout.take().expect("stdout");
        let served = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).expect("read the watcher");
            Instant::now()
        });

        let t0 = Instant::now();
        world.cluster.bind_pod(&pod, world.node_name()).await;
        if mode == "baseline" {
            server.cli(&[
                "entry",
                "create",
                "-parentID",
                &parent,
                "-spiffeID",
                &format!("spiffe://example.org/ns/{namespace}/sa/default"),
                "-selector",
                &format!("k8s:ns:{namespace}"),
                "-selector",
                &format!("k8s:pod-name:{name}"),
            ]);
        }
        // crd mode selects by pod UID and node (SPIRE's SpiffeID of a pod), the others by name.
        let selectors = if mode == "crd" {
            let uid = pod.metadata.uid.clone().expect("pod uid");
            vec![
                selector("k8s", format!("pod-uid:{uid}")),
                namespace_selector(&namespace),
                selector("k8s", format!("node-name:{}", world.node_name())),
            ]
        } else {
            vec![namespace_selector(&namespace), pod_name_selector(&name)]
        };
        let entry = loop {
            if !entries.list_by_selectors(selectors.clone()).await.expect("list entries").is_empty() {
                break t0.elapsed();
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{mode}: no entry for {name}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let served = tokio::time::timeout(Duration::from_secs(60), served)
            .await
            .unwrap_or_else(|_| panic!("{mode}: {name} never got its SVID\n{}", agent.log()))
            .expect("watcher");
        let _ = watcher.wait();
        samples.push(Sample { entry, svid: served.duration_since(t0) });
        world.cluster.delete_pod(&pod).await;
        world.docker.remove(&container);
    }
    Some(samples)
}
