//! A real `spire-server` and a real `spire-agent`, as processes: the agent attests with a join token,
//! syncs an entry for this test's uid, and the independent rust-spiffe client fetches X509- and
//! JWT-SVIDs through the Workload API; restarted, the agent resumes without a new token.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spire_testkit::process::{TestServer, free_port};

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

/// `spire-server` is built next to `spire-agent` by `cargo test --workspace`.
fn server_binary() -> PathBuf {
    let path = Path::new(AGENT).with_file_name("spire-server");
    assert!(path.exists(), "{} is missing: run the tests with `cargo test --workspace`", path.display());
    path
}

fn cli(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new(server_binary()).args(args).arg("-socketPath").arg(&server.socket).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

struct TestAgent {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl TestAgent {
    fn config(dir: &Path, server_port: u16, socket: &Path) -> String {
        format!(
            r#"agent {{
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{socket}"
    data_dir = "{data}"
    log_level = "DEBUG"
    insecure_bootstrap = true
    experimental {{
        sync_interval = "200ms"
    }}
}}
plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            directory = "{data}"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{
            discover_workload_path = true
        }}
    }}
}}
"#,
            socket = socket.display(),
            data = dir.join("data").display(),
        )
    }

    async fn start(dir: &Path, server_port: u16, token: Option<&str>) -> Self {
        let socket = dir.join("agent.sock");
        std::fs::write(dir.join("agent.conf"), Self::config(dir, server_port, &socket)).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("agent.log")).unwrap();
        let mut cmd = Command::new(AGENT);
        cmd.args(["run", "-config"]).arg(dir.join("agent.conf"));
        if let Some(t) = token {
            cmd.args(["-joinToken", t]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let mut agent = Self { child, dir: dir.to_path_buf(), socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::UnixStream::connect(&agent.socket).await.is_ok() {
                return agent;
            }
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("spire-agent exited with {status}: {}", agent.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("spire-agent did not open its socket: {}", agent.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn agent_serves_svids_to_a_workload_and_resumes_after_restart() {
    let server = TestServer::start(server_binary(), "").await;
    let token = cli(&server, &["token", "generate"]).lines().next().unwrap().trim_start_matches("Token: ").to_owned();
    let uid = nix_uid();
    cli(
        &server,
        &[
            "entry",
            "create",
            "-parentID",
            &format!("spiffe://example.org/spire/agent/join_token/{token}"),
            "-spiffeID",
            "spiffe://example.org/workload",
            "-selector",
            &format!("unix:uid:{uid}"),
            "-dns",
            "workload.example.org",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let _ = free_port();
    let mut agent = TestAgent::start(dir.path(), server.port, Some(&token)).await;

    let endpoint = format!("unix:{}", agent.socket.display());
    let client = spiffe::WorkloadApiClient::connect_to(&endpoint).await.unwrap();
    let svid = client.fetch_x509_svid().await.unwrap_or_else(|e| panic!("{e}: {}", agent.log()));
    assert_eq!(svid.spiffe_id().to_string(), "spiffe://example.org/workload");
    let bundles = client.fetch_x509_bundles().await.unwrap();
    assert!(bundles.get(&spiffe::TrustDomain::new("example.org").unwrap()).is_some());
    let jwt = client.fetch_jwt_svid(&["service-a"], None).await.unwrap();
    assert_eq!(jwt.spiffe_id().to_string(), "spiffe://example.org/workload");
    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    let validated = spiffe::JwtSvid::parse_and_validate(jwt.token(), &jwt_bundles, &["service-a"]).unwrap();
    assert_eq!(validated.spiffe_id().to_string(), "spiffe://example.org/workload");

    // Restarted without a token, the agent resumes from its data directory.
    agent.stop();
    let agent = TestAgent::start(dir.path(), server.port, None).await;
    let client = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", agent.socket.display())).await.unwrap();
    let again = client.fetch_x509_svid().await.unwrap_or_else(|e| panic!("{e}: {}", agent.log()));
    assert_eq!(again.spiffe_id().to_string(), "spiffe://example.org/workload");
}

fn nix_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
