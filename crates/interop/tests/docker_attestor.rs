//! The docker workload attestor end to end: our server, our agent with `WorkloadAttestor "docker"`
//! pointed at a real `dockerd` (started by the test kit) and the unix attestor, and workloads in
//! real containers asking for their SVIDs from inside (`spire-agent api fetch x509`).

mod agent_server;
mod k8s;

use std::time::{Duration, Instant};

use spire_testkit::agent::{AgentOptions, join_token_agent_id};
use spire_testkit::docker::Dockerd;
use spire_testkit::peers;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use k8s::{SOCKET_DIR, WORKLOAD_IMAGE, workload_image};

/// `spire-agent api fetch x509` in container `id` until it prints `want`, for up to 30 s.
async fn fetch_in(docker: &Dockerd, id: &str, socket: &str, want: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = docker.exec(id, &["/opt/spire/bin/spire-agent", "api", "fetch", "x509", "-socketPath", socket]);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() && said.contains(want) {
            return Ok(said);
        }
        if Instant::now() >= deadline {
            return Err(said);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Two containers with different labels get different SVIDs from one agent, each only its own; a
/// host process (our `spire-agent` binary, told apart by its path) gets only its unix identity.
#[tokio::test(flavor = "multi_thread")]
async fn containers_get_their_labels_identities_and_host_processes_their_unix_one() {
    let Some(docker) = Dockerd::shared().await else { return };
    workload_image(docker).await;
    let server_bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    let server = OurServer::start(&server_bin, &ServerSetup::default()).await;
    let token = server.generate_token();
    let attestors = format!(
        "    NodeAttestor \"join_token\" {{\n        plugin_data {{}}\n    }}\n    WorkloadAttestor \"docker\" {{\n        plugin_data {{\n            docker_socket_path = \"unix://{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{\n            discover_workload_path = true\n        }}\n    }}",
        docker.socket().display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AgentOptions { attestors: Some(attestors), ..AgentOptions::with_token(&token) };
    let agent_bin = <OurAgent as AgentUnderTest>::binary().expect("our agent");
    let agent = OurAgent::start(&agent_bin, &dir.path().join("agent"), server.port, &options).await;

    let parent = join_token_agent_id(&token);
    let host_binary = peers::workspace_binary("spire-agent");
    for (id, selector) in [
        ("spiffe://example.org/docker/a", "docker:label:app:a".to_owned()),
        ("spiffe://example.org/docker/b", "docker:label:app:b".to_owned()),
        ("spiffe://example.org/host", format!("unix:path:{}", host_binary.display())),
    ] {
        server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", id, "-selector", &selector]);
    }

    let socket_dir = agent.socket.parent().expect("socket dir").display().to_string();
    let socket = format!("{SOCKET_DIR}/{}", agent.socket.file_name().expect("socket").to_string_lossy());
    let mut containers = Vec::new();
    for app in ["a", "b"] {
        let name = format!("docker-attestor-{app}-{}", std::process::id());
        let out = docker.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &format!("app={app}"),
            "-e",
            &format!("APP={app}"),
            "-v",
            &format!("{socket_dir}:{SOCKET_DIR}"),
            WORKLOAD_IMAGE,
            "sleep",
            "600",
        ]);
        assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
        containers.push((app, String::from_utf8_lossy(&out.stdout).trim().to_owned()));
    }
    for (app, id) in &containers {
        let want = format!("spiffe://example.org/docker/{app}");
        let said = match fetch_in(docker, id, &socket, &want).await {
            Ok(said) => said,
            Err(said) => panic!("container {app} never got {want}: {said}\n--- agent ---\n{}", agent.log()),
        };
        let other = if *app == "a" { "b" } else { "a" };
        assert!(!said.contains(&format!("/docker/{other}")) && !said.contains("/host"), "{said}");
    }

    // The host process: its unix identity only.
    let out = std::process::Command::new(&host_binary)
        .args(["api", "fetch", "x509", "-socketPath"])
        .arg(&agent.socket)
        .output()
        .expect("run spire-agent api fetch");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("spiffe://example.org/host"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("/docker/"), "{said}");

    for (_, id) in &containers {
        docker.remove(id);
    }
}

/// Podman's containers are asked about on Podman's Docker-compatible socket, as SPIRE v1.15 does:
/// rootful Podman's for a cgroup path naming libpod, rootless Podman's of the UID in the path's
/// `user-<uid>.slice`. Podman itself cannot run here (its runtimes fail to set the container's
/// rlimits in this sandbox), so the "Podman" service is the real dockerd behind the configured
/// Podman sockets, with containers placed in libpod-looking cgroups (`--cgroup-parent`), and
/// Docker's own socket configured to a path where nothing listens: an SVID proves the routing.
#[tokio::test(flavor = "multi_thread")]
async fn podman_containers_are_asked_about_on_podman_sockets() {
    let Some(docker) = Dockerd::shared().await else { return };
    workload_image(docker).await;
    let server_bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    let server = OurServer::start(&server_bin, &ServerSetup::default()).await;
    let token = server.generate_token();
    let dir = tempfile::tempdir().expect("tempdir");
    let rootless = dir.path().join("user/4242");
    std::fs::create_dir_all(&rootless).expect("mkdir");
    std::os::unix::fs::symlink(docker.socket(), rootless.join("podman.sock")).expect("rootless socket");
    let attestors = format!(
        "    NodeAttestor \"join_token\" {{\n        plugin_data {{}}\n    }}\n    WorkloadAttestor \"docker\" {{\n        plugin_data {{\n            docker_socket_path = \"unix://{dir}/no-docker.sock\"\n            podman_socket_path = \"unix://{rootful}\"\n            podman_socket_path_template = \"unix://{dir}/user/%d/podman.sock\"\n        }}\n    }}",
        dir = dir.path().display(),
        rootful = docker.socket().display(),
    );
    let options = AgentOptions { attestors: Some(attestors), ..AgentOptions::with_token(&token) };
    let agent_bin = <OurAgent as AgentUnderTest>::binary().expect("our agent");
    let agent = OurAgent::start(&agent_bin, &dir.path().join("agent"), server.port, &options).await;
    let parent = join_token_agent_id(&token);
    let socket_dir = agent.socket.parent().expect("socket dir").display().to_string();
    let socket = format!("{SOCKET_DIR}/{}", agent.socket.file_name().expect("socket").to_string_lossy());
    let pid = std::process::id();
    for (kind, cgroup_parent) in [
        ("rootful", format!("/machine/libpod-pod-{pid}")),
        ("rootless", format!("/user.slice/user-4242.slice/user@4242.service/libpod-{pid}")),
        ("docker", format!("/docker-test-{pid}")),
    ] {
        let id = format!("spiffe://example.org/podman/{kind}");
        server.cli(&[
            "entry",
            "create",
            "-parentID",
            &parent,
            "-spiffeID",
            &id,
            "-selector",
            &format!("docker:label:kind:{kind}"),
        ]);
        let out = docker.docker(&[
            "run",
            "-d",
            "--cgroup-parent",
            &cgroup_parent,
            "--label",
            &format!("kind={kind}"),
            "-v",
            &format!("{socket_dir}:{SOCKET_DIR}"),
            WORKLOAD_IMAGE,
            "sleep",
            "600",
        ]);
        assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
        let container = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let result = fetch_in(docker, &container, &socket, &id).await;
        docker.remove(&container);
        match (kind, result) {
            ("docker", Ok(said)) => panic!("a Docker container was attested though Docker's socket is absent: {said}"),
            ("docker", Err(_)) => {
                let log = agent.log();
                assert!(log.contains("no-docker.sock"), "the agent does not say which socket failed:\n{log}");
            }
            (_, Ok(_)) => {}
            (_, Err(said)) => panic!("the {kind} Podman container got no SVID: {said}\n--- agent ---\n{}", agent.log()),
        }
    }
}
