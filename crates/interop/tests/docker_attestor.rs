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
