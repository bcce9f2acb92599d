//! Our agent against the real SPIRE server (v1.13.3): it attests with a join token SPIRE generated,
//! syncs the entries created with SPIRE's own CLI, and serves their X509- and JWT-SVIDs (signed by
//! SPIRE's CA) to a workload (rust-spiffe, and SPIRE's own `spire-agent api fetch`); with short TTLs
//! it renews both the workload's SVID and its own through SPIRE's server; killed and restarted
//! without a token it resumes from its data directory. The peer is built by scripts/install-peers.sh.

mod agent_server;

use std::time::{Duration, Instant};

use agent_server::{
    bundle_from_pem, check_jwt, check_x509, disk_upstream_authority, field, filler_entries, names_dns,
    served_trust_domains, tail, uid_selector, wait_for_ca_rotation, wait_for_x509, write_file,
};
use spire_testkit::agent::{AgentOptions, TestAgent, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::upstream::{KeyManager, ServerOptions, UpstreamServer};

const WORKLOAD: &str = "spiffe://example.org/our-agent/workload";
const LATER: &str = "spiffe://example.org/our-agent/later";

#[tokio::test]
async fn our_agent_attests_syncs_renews_and_resumes_against_spire_server() {
    let Some([spire_server, spire_agent]) = peers::require_all(["upstream-spire-server", "upstream-spire-agent"])
    else {
        return;
    };
    let started = Instant::now();
    let agent_bin = peers::workspace_binary("spire-agent");
    // Agents' own SVIDs live 30 s, so our agent renews its SVID within the test.
    let options = ServerOptions { extra_config: "    agent_ttl = \"30s\"\n".into(), ..ServerOptions::default() };
    let server = UpstreamServer::start(&spire_server, &options).await;
    let token = server.generate_token();
    let agent_id = join_token_agent_id(&token);
    let selector = uid_selector();
    // A foreign trust domain the workload's entry federates with, its bundle set with the admin CLI
    // (any CA will do: the server's own).
    let files = tempfile::tempdir().expect("tempdir");
    let foreign = server.cli(&["bundle", "show", "-format", "pem"]);
    let foreign = write_file(files.path(), "other.pem", &foreign);
    server.cli(&["bundle", "set", "-id", "spiffe://other.org", "-path", &foreign, "-format", "pem"]);
    server.cli(&[
        "entry",
        "create",
        "-parentID",
        &agent_id,
        "-spiffeID",
        WORKLOAD,
        "-selector",
        &selector,
        "-x509SVIDTTL",
        "30",
        "-jwtSVIDTTL",
        "60",
        "-dns",
        "workload.example.org",
        "-hint",
        "front",
        "-federatesWith",
        "spiffe://other.org",
    ]);

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let mut agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
    let endpoint = agent.endpoint();
    let logs = || format!("--- our agent ---\n{}\n--- SPIRE server ---\n{}", tail(&agent.log()), tail(&server.log()));

    // Attested: SPIRE's server knows the agent by its join-token ID.
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert_eq!(field(&shown, "Attestation type"), "join_token", "{shown}");
    let first_agent_serial = field(&shown, "Serial number").to_owned();

    // The workload gets its X509-SVID (chaining to SPIRE's bundle) and a JWT-SVID.
    let svid = wait_for_x509(&endpoint, WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    let server_bundle = bundle_from_pem(&server.cli(&["bundle", "show", "-format", "pem"]));
    let checked = check_x509(&endpoint, WORKLOAD, &server_bundle).await;
    assert_eq!(checked.cert_chain()[0].as_bytes(), svid.cert_chain()[0].as_bytes());
    assert_eq!(checked.hint(), Some("front"));
    assert!(names_dns(checked.cert_chain()[0].as_bytes(), "workload.example.org"), "no DNS SAN");
    assert_eq!(served_trust_domains(&endpoint).await, ["example.org", "other.org"]);
    check_jwt(&endpoint, WORKLOAD, "our-agent-audience").await;

    // SPIRE's own Workload API client (go-spiffe underneath) agrees: X509, JWT, and the agent
    // validating a JWT-SVID.
    let spire_api = |args: &[&str]| {
        let out = std::process::Command::new(&spire_agent)
            .arg("api")
            .args(args)
            .arg("-socketPath")
            .arg(&agent.socket)
            .output()
            .expect("run spire-agent api");
        assert!(out.status.success(), "api {args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), logs());
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    assert!(spire_api(&["fetch", "x509", "-output", "json"]).contains(WORKLOAD));
    let jwt: serde_json::Value =
        serde_json::from_str(&spire_api(&["fetch", "jwt", "-audience", "spire-cli", "-output", "json"])).expect("JSON");
    let token = jwt[0]["svids"][0]["svid"].as_str().unwrap_or_else(|| panic!("no token in {jwt}"));
    let validated = spire_api(&["validate", "jwt", "-audience", "spire-cli", "-svid", token]);
    assert!(validated.contains("SVID is valid.") && validated.contains(WORKLOAD), "{validated}");

    // Sync: an entry created now reaches the workload.
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", LATER, "-selector", &selector]);
    wait_for_x509(&endpoint, LATER, Duration::from_secs(20), |_| true, logs).await;

    // Rotation: past half of its lifetime, the workload's SVID is replaced by a new one from SPIRE.
    let first = svid.cert_chain()[0].as_bytes().to_vec();
    let rotated =
        wait_for_x509(&endpoint, WORKLOAD, Duration::from_secs(40), |s| s.cert_chain()[0].as_bytes() != first, logs)
            .await;
    check_x509(&endpoint, WORKLOAD, &server_bundle).await;
    assert_ne!(rotated.cert_chain()[0].as_bytes(), first.as_slice());

    // The agent renewed its own SVID too (SPIRE's server records the new serial).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
        if field(&shown, "Serial number") != first_agent_serial {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not renew its SVID\n{shown}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Killed and restarted without a token, it resumes from its data directory.
    agent.stop();
    let resumed = AgentOptions { join_token: None, ..options };
    let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &resumed).await;
    let logs = || format!("--- our agent ---\n{}\n--- SPIRE server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    check_x509(&agent.endpoint(), WORKLOAD, &server_bundle).await;
    check_jwt(&agent.endpoint(), LATER, "after-restart").await;
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "still one agent: {listed}");
    eprintln!("took {:?}", started.elapsed());
}

/// Evicted (`agent evict`) or banned (`agent ban`) on SPIRE's server, our agent exits at its next
/// sync, as SPIRE's agent does, and having forgotten its SVID cannot resume without a new token.
#[tokio::test]
async fn our_agent_shuts_down_when_spire_server_evicts_or_bans_it() {
    let Some(spire_server) = peers::require("upstream-spire-server") else { return };
    let agent_bin = peers::workspace_binary("spire-agent");
    // Memory keys: the CA need not outlive this server.
    let options = ServerOptions { key_manager: KeyManager::Memory, ..ServerOptions::default() };
    let server = UpstreamServer::start(&spire_server, &options).await;

    for action in ["evict", "ban"] {
        let token = server.generate_token();
        let agent_id = join_token_agent_id(&token);
        let dir = tempfile::tempdir().expect("tempdir");
        let options = AgentOptions { sync_interval: "500ms".into(), ..AgentOptions::with_token(&token) };
        let mut agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
        server.cli(&["agent", action, "-spiffeID", &agent_id]);
        let status = agent.wait_exit(Duration::from_secs(20)).await;
        let log = agent.log();
        assert!(status.is_some_and(|s| !s.success()), "{action}: our agent kept running ({status:?})\n{}", tail(&log));
        assert!(log.contains("no longer authorized"), "{action}:\n{}", tail(&log));
        // As SPIRE's agent: the SVID is gone from agent-data.json, the bundle kept.
        let data: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("data/agent-data.json")).expect("agent-data.json"))
                .expect("JSON");
        assert!(data["svid"].as_array().is_none_or(Vec::is_empty), "{action}: {data}");
        assert!(data["bundle"].as_array().is_some_and(|b| !b.is_empty()), "{action}: {data}");

        let mut again = TestAgent::launch(&agent_bin, dir.path(), server.port, &AgentOptions::default());
        let status = again.wait_exit(Duration::from_secs(10)).await;
        assert!(status.is_some_and(|s| !s.success()), "{action}: restarted without a token, it runs ({status:?})");
        assert!(again.log().contains("no join token"), "{action}:\n{}", tail(&again.log()));
    }
}

/// Without insecure bootstrap, our agent trusts SPIRE's server through `trust_bundle_path` (SPIRE's
/// bundle, as its `bundle show -format pem` prints it), and refuses a server its bundle does not
/// vouch for.
#[tokio::test]
async fn our_agent_bootstraps_from_spire_servers_bundle_and_refuses_another() {
    let Some(spire_server) = peers::require("upstream-spire-server") else { return };
    let agent_bin = peers::workspace_binary("spire-agent");
    let server = UpstreamServer::start(&spire_server, &ServerOptions::default()).await;
    let files = tempfile::tempdir().expect("tempdir");
    let good = write_file(files.path(), "good.pem", &server.cli(&["bundle", "show", "-format", "pem"]));
    let other = spire_testkit::pki::Pki::new(spire_identity::KeyType::EcP256).bundle().to_pem();
    let bad = write_file(files.path(), "bad.pem", &other);
    let secure = |token: &str, path: &str| AgentOptions {
        insecure_bootstrap: false,
        extra_config: format!("    trust_bundle_path = \"{path}\"\n"),
        discover_workload_path: false,
        ..AgentOptions::with_token(token)
    };

    let token = server.generate_token();
    let parent = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &secure(&token, &good)).await;
    let logs = || tail(&agent.log());
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, logs).await;

    // Our agent does not retry a failed first attestation: it exits.
    let token = server.generate_token();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut refused = TestAgent::launch(&agent_bin, dir.path(), server.port, &secure(&token, &bad));
    let status = refused.wait_exit(Duration::from_secs(20)).await;
    assert!(status.is_some_and(|s| !s.success()), "{status:?}\n{}", tail(&refused.log()));
    assert!(!refused.socket.exists(), "the Workload API opened without attestation");
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "only the first agent attested: {listed}");
}

/// More authorized entries than one SyncAuthorizedEntries page (500): SPIRE's server sends revisions
/// first and our agent asks for the entries it lacks; an update to one of them still reaches the
/// workload.
#[tokio::test]
async fn our_agent_syncs_more_entries_than_a_page_from_spire_server() {
    let Some(spire_server) = peers::require("upstream-spire-server") else { return };
    let agent_bin = peers::workspace_binary("spire-agent");
    let server = UpstreamServer::start(&spire_server, &ServerOptions::default()).await;
    let token = server.generate_token();
    let agent_id = join_token_agent_id(&token);
    let files = tempfile::tempdir().expect("tempdir");
    let data = write_file(files.path(), "entries.json", &filler_entries(&agent_id, 600));
    server.cli(&["entry", "create", "-data", &data]);
    let created =
        server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);
    let entry_id = field(&created, "Entry ID").to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
    let logs = || format!("--- our agent ---\n{}\n--- SPIRE server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(60), |_| true, logs).await;

    server.cli(&[
        "entry",
        "update",
        "-entryID",
        &entry_id,
        "-parentID",
        &agent_id,
        "-spiffeID",
        WORKLOAD,
        "-selector",
        &uid_selector(),
        "-dns",
        "paged.example.org",
    ]);
    let dns = |s: &spiffe::X509Svid| names_dns(s.cert_chain()[0].as_bytes(), "paged.example.org");
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), dns, logs).await;
}

/// SPIRE's server's CA rotates (`ca_ttl` 36 s: the next CA is prepared at half its life and
/// activated at 5/6): our agent gets the new authority in its bundle before it signs anything, then
/// SVIDs from it, and keeps talking to SPIRE's server, whose own certificate the new CA now signs.
#[tokio::test]
async fn our_agent_follows_spire_servers_ca_rotation() {
    let Some(spire_server) = peers::require("upstream-spire-server") else { return };
    let agent_bin = peers::workspace_binary("spire-agent");
    let options = ServerOptions { ca_ttl: Some("36s".into()), ..ServerOptions::default() };
    let server = UpstreamServer::start(&spire_server, &options).await;
    let token = server.generate_token();
    let parent = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);
    let first_ca = bundle_from_pem(&server.cli(&["bundle", "show", "-format", "pem"])).x509_authorities()[0].clone();

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
    let logs = || format!("--- our agent ---\n{}\n--- SPIRE server ---\n{}", tail(&agent.log()), tail(&server.log()));
    let bundle = wait_for_ca_rotation(&agent.endpoint(), WORKLOAD, &first_ca, Duration::from_secs(60), logs).await;
    check_x509(&agent.endpoint(), WORKLOAD, &bundle).await;
    check_jwt(&agent.endpoint(), WORKLOAD, "after-rotation").await;
}

/// SPIRE's server restarts (same database and keys): our agent keeps serving its cache meanwhile,
/// reconnects, and syncs what changed.
#[tokio::test]
async fn our_agent_reconnects_after_spire_server_restarts() {
    let Some(spire_server) = peers::require("upstream-spire-server") else { return };
    let agent_bin = peers::workspace_binary("spire-agent");
    let mut server = UpstreamServer::start(&spire_server, &ServerOptions::default()).await;
    let token = server.generate_token();
    let agent_id = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, || tail(&agent.log())).await;

    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(5), |_| true, || tail(&agent.log())).await;
    server.restart().await;
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", LATER, "-selector", &uid_selector()]);
    let logs = || format!("--- our agent ---\n{}\n--- SPIRE server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), LATER, Duration::from_secs(30), |_| true, logs).await;
}

/// SPIRE's server's CA signed by an upstream CA (`UpstreamAuthority "disk"`, an intermediate under a
/// root): our agent hands the workload the whole chain (leaf, SPIRE's CA, the upstream
/// intermediate), which chains to the root alone, the trust domain's bundle.
#[tokio::test]
async fn our_agent_serves_chains_of_spire_server_under_an_upstream_authority() {
    let Some(spire_server) = peers::require("upstream-spire-server") else { return };
    let agent_bin = peers::workspace_binary("spire-agent");
    let files = tempfile::tempdir().expect("tempdir");
    let (plugin, root) = disk_upstream_authority(files.path());
    let options = ServerOptions { extra_plugins: plugin, ..ServerOptions::default() };
    let server = UpstreamServer::start(&spire_server, &options).await;
    let bundle = bundle_from_pem(&server.cli(&["bundle", "show", "-format", "pem"]));
    assert_eq!(bundle.x509_authorities(), [root], "the bundle is the upstream root");
    let token = server.generate_token();
    let parent = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);

    let dir = tempfile::tempdir().expect("tempdir");
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
    let logs = || format!("--- our agent ---\n{}\n--- SPIRE server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    let svid = check_x509(&agent.endpoint(), WORKLOAD, &bundle).await;
    assert_eq!(svid.cert_chain().len(), 3, "leaf, SPIRE's CA, the upstream intermediate");
    check_jwt(&agent.endpoint(), WORKLOAD, "upstream-authority").await;
}
