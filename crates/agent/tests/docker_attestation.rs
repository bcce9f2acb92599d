//! The docker workload attestor against a real `dockerd` (`spire_testkit::docker`): containers with
//! different labels get different selectors, a host process gets only its unix identity, and a
//! container that is gone gives no docker selectors (nor stale ones).

use std::sync::Arc;
use std::time::Duration;

use spire_agent::peer::Process;
use spire_agent::workload_attestor::docker::Container;
use spire_agent::workload_attestor::{
    DockerAttestor, DockerConfig, UnixAttestor, UnixConfig, WorkloadAttestor, WorkloadAttestors,
};
use spire_identity::Selector;
use spire_testkit::docker::Dockerd;

fn docker(kind_value: &str) -> Selector {
    Selector::new("docker", kind_value).unwrap()
}

/// Starts a sleeping container with `labels` and `env`; returns its ID and its process's host PID.
fn run(dockerd: &Dockerd, image: &str, name: &str, labels: &[&str], env: &[&str]) -> (String, i32) {
    let mut args = vec!["run", "-d", "--rm", "--network=none", "--name", name];
    for l in labels {
        args.extend(["--label", l]);
    }
    for e in env {
        args.extend(["-e", e]);
    }
    args.extend([image, "/bin/sleep", "120"]);
    let out = dockerd.docker(&args);
    assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = dockerd.docker(&["inspect", "--format", "{{.State.Pid}}", &id]);
    let pid = String::from_utf8_lossy(&out.stdout).trim().parse().expect("container pid");
    (id, pid)
}

#[tokio::test]
async fn labels_env_and_image_of_real_containers() {
    let Some(dockerd) = Dockerd::shared().await else { return };
    let image_id = dockerd.import_image("spire-docker-attestor:1", &[]);
    let (a, pid_a) = run(dockerd, "spire-docker-attestor:1", "wl-a", &["app=a"], &["ROLE=alpha"]);
    let (b, pid_b) = run(dockerd, "spire-docker-attestor:1", "wl-b", &["app=b"], &[]);

    let config =
        DockerConfig { docker_socket_path: format!("unix://{}", dockerd.socket().display()), ..Default::default() };
    let docker_attestor = Arc::new(DockerAttestor::new(config));
    let attestors = WorkloadAttestors::new([
        Arc::new(UnixAttestor::new(UnixConfig::default())) as Arc<dyn WorkloadAttestor>,
        docker_attestor.clone(),
    ]);

    let set_a = attestors.attest_pid(pid_a).await.unwrap();
    for want in
        ["label:app:a", "env:ROLE=alpha", "env:ROLE:alpha", "image_id:spire-docker-attestor:1", "container_name:wl-a"]
    {
        assert!(set_a.contains(&docker(want)), "{want} missing from {set_a:?}");
    }
    assert!(set_a.contains(&docker(&format!("image_config_digest:{image_id}"))), "{set_a:?}");
    assert!(!set_a.contains(&docker("label:app:b")));
    assert!(set_a.contains(&Selector::new("unix", format!("pid:{pid_a}")).unwrap()));

    let set_b = attestors.attest_pid(pid_b).await.unwrap();
    assert!(set_b.contains(&docker("label:app:b")) && !set_b.contains(&docker("label:app:a")), "{set_b:?}");
    assert!(!set_b.iter().any(|s| s.kind == "docker" && s.value.starts_with("env:ROLE")), "{set_b:?}");

    // A host process: unix selectors only, and no failure.
    let host = attestors.attest_pid(std::process::id() as i32).await.unwrap();
    assert!(host.iter().any(|s| s.kind == "unix"), "{host:?}");
    assert!(host.iter().all(|s| s.kind != "docker"), "{host:?}");

    // A container that is gone: its ID gets an error from the daemon, not its old selectors, and
    // its old PID (gone, or reused by another process) names no container.
    dockerd.remove(&a);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{pid_a}")).exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = docker_attestor
        .attest_container(&Container { id: a.clone(), podman_socket: None })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404") || err.contains("No such container"), "{err}");
    let after = docker_attestor.attest(Process::from_pid(pid_a)).await.unwrap();
    assert!(after.iter().all(|v| !v.starts_with("label:")), "{after:?}");
    dockerd.remove(&b);
}
