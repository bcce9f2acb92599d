//! docker workload attestation latency, beside the unix attestor alone, measured in the same run on
//! the same process.
//!
//! The caller is a real process in a real Docker container (a `dockerd` started by the test kit);
//! the attestors run in-process through `WorkloadAttestors::attest_pid`, as the Workload API runs
//! them for each call:
//! - unix alone (the baseline): `/proc/<pid>/status`, user and group names;
//! - docker alone: `/proc/<pid>/mountinfo` and `cgroup` for the container ID, then the Engine API's
//!   container inspect over its Unix socket (as SPIRE, no cache: labels and env are read each time);
//! - docker and unix together, as an agent on a Docker host is configured.
//!
//! The cases take turns in blocks; medians and p99 per case, and the ratios to unix alone.
//!
//! Run: `cargo bench -p spire-agent --bench docker_attestation` (needs dockerd and busybox-static;
//! prints that it is skipped otherwise).

mod support;

use std::sync::Arc;

use spire_agent::workload_attestor::docker::{DockerAttestor, DockerConfig};
use spire_agent::workload_attestor::{UnixAttestor, UnixConfig, WorkloadAttestor, WorkloadAttestors};
use spire_testkit::docker::Dockerd;

const ROUNDS: usize = 10;
const BLOCK: usize = 200;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(docker) = Dockerd::shared().await else { return };
    docker.import_image("bench-docker:latest", &[]);
    let name = format!("docker-attestation-bench-{}", std::process::id());
    let out = docker.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "app=bench",
        "-e",
        "APP=bench",
        "bench-docker:latest",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let pid: i32 = String::from_utf8_lossy(&docker.docker(&["inspect", "--format", "{{.State.Pid}}", &id]).stdout)
        .trim()
        .parse()
        .expect("the container's PID");

    let config =
        DockerConfig { docker_socket_path: format!("unix://{}", docker.socket().display()), ..DockerConfig::default() };
    let docker_attestor: Arc<dyn WorkloadAttestor> = Arc::new(DockerAttestor::new(config));
    let unix: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::new(UnixConfig::default()));
    let cases = [
        ("unix alone (baseline)", WorkloadAttestors::new([unix.clone()])),
        ("docker alone", WorkloadAttestors::new([docker_attestor.clone()])),
        ("docker + unix", WorkloadAttestors::new([docker_attestor, unix])),
    ];
    // Warm up (the Engine API client connects on first use), and check that docker really attests.
    for (name, attestors) in &cases {
        let selectors = attestors.attest_pid(pid).await.expect("attest");
        let shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
        if name.starts_with("docker") {
            assert!(shown.iter().any(|s| s == "docker:label:app:bench"), "{shown:?}");
        }
    }

    let samples = support::attest_in_turns(&cases, pid, ROUNDS, BLOCK).await;
    println!("docker workload attestation, {} calls per case", ROUNDS * BLOCK);
    let names: Vec<&str> = cases.iter().map(|(name, _)| *name).collect();
    support::print_cases(&names, &samples);
    docker.remove(&id);
}
