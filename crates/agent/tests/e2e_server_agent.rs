//! A real `spire-server` and a real `spire-agent`, as processes: the agent attests with a join token,
//! syncs an entry for this test's uid, and the independent rust-spiffe client fetches X509- and
//! JWT-SVIDs through the Workload API; restarted, the agent resumes without a new token.

use std::path::{Path, PathBuf};

use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id, server_cli};
use spire_testkit::process::TestServer;

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

fn server_binary() -> PathBuf {
    spire_testkit::agent::server_binary(Path::new(AGENT))
}

fn cli(server: &TestServer, args: &[&str]) -> String {
    server_cli(&server_binary(), server, args)
}

#[tokio::test]
async fn agent_serves_svids_to_a_workload_and_resumes_after_restart() {
    let server = TestServer::start(server_binary(), "").await;
    let token = generate_token(&server_binary(), &server);
    let uid = nix_uid();
    cli(
        &server,
        &[
            "entry",
            "create",
            "-parentID",
            &join_token_agent_id(&token),
            "-spiffeID",
            "spiffe://example.org/workload",
            "-selector",
            &format!("unix:uid:{uid}"),
            "-dns",
            "workload.example.org",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // The agent inherits a soft limit on open files below the hard one (this test binary runs only
    // this test, so lowering its own limit affects nothing else).
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.maximum.is_none_or(|max| max > 512) {
        limit.current = Some(512);
        rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
    }
    let mut agent = TestAgent::start(AGENT, dir.path(), server.port, &AgentOptions::with_token(&token)).await;

    // Like a Go program, the agent runs with its open-file soft limit raised to the hard one.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.pid().unwrap())).unwrap();
    let files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().collect();
    assert_eq!(files[3], files[4], "{limits}");
    assert_ne!(files[3], "512", "{limits}");

    // World-connectable from the start, as SPIRE's Workload API socket.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&agent.socket).unwrap().permissions().mode() & 0o7777, 0o777);

    let client = spiffe::WorkloadApiClient::connect_to(agent.endpoint()).await.unwrap();
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
    let agent = TestAgent::start(AGENT, dir.path(), server.port, &AgentOptions::default()).await;
    let client = spiffe::WorkloadApiClient::connect_to(agent.endpoint()).await.unwrap();
    let again = client.fetch_x509_svid().await.unwrap_or_else(|e| panic!("{e}: {}", agent.log()));
    assert_eq!(again.spiffe_id().to_string(), "spiffe://example.org/workload");
}

fn nix_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
