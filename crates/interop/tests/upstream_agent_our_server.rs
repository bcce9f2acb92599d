//! The real SPIRE agent (v1.13.3) against our server: it attests with one of our join tokens, syncs
//! the entries our server authorizes, and serves their X509- and JWT-SVIDs (signed by our CA) to a
//! workload (rust-spiffe, and SPIRE's own `spire-agent api fetch`); with short TTLs it renews both
//! the workload's SVID and its own through our server; killed and restarted without a token it
//! resumes from its data directory. The peer is built by scripts/install-peers.sh.

mod agent_server;

use std::time::{Duration, Instant};

use agent_server::{
    bundle_from_pem, check_jwt, check_x509, disk_upstream_authority, field, filler_entries, names_dns,
    served_trust_domains, tail, uid_selector, wait_for_ca_rotation, wait_for_x509, write_file,
};
use spire_testkit::agent::{AgentOptions, generate_token, join_token_agent_id, server_cli};
use spire_testkit::peers;
use spire_testkit::process::TestServer;
use spire_testkit::upstream::UpstreamAgent;

const WORKLOAD: &str = "spiffe://example.org/upstream-agent/workload";
const LATER: &str = "spiffe://example.org/upstream-agent/later";

#[tokio::test]
async fn spire_agent_attests_syncs_renews_and_resumes_against_our_server() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let started = Instant::now();
    let server_bin = peers::workspace_binary("spire-server");
    // Agents' own SVIDs live 30 s, so SPIRE's agent renews its SVID within the test.
    let server = TestServer::start(&server_bin, "agent_ttl = \"30s\"").await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);
    let token = generate_token(&server_bin, &server);
    let agent_id = join_token_agent_id(&token);
    let selector = uid_selector();
    // A foreign trust domain the workload's entry federates with, its bundle set with the admin CLI
    // (any CA will do: the server's own).
    let files = tempfile::tempdir().expect("tempdir");
    let foreign = cli(&["bundle", "show", "-format", "pem"]);
    let foreign = write_file(files.path(), "other.pem", &foreign);
    cli(&["bundle", "set", "-id", "spiffe://other.org", "-path", &foreign, "-format", "pem"]);
    cli(&[
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
    let mut agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    let endpoint = agent.endpoint();
    let logs = || format!("--- SPIRE agent ---\n{}\n--- our server ---\n{}", tail(&agent.log()), tail(&server.log()));

    // Attested: our server knows the agent by its join-token ID.
    let shown = cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert_eq!(field(&shown, "Attestation type"), "join_token", "{shown}");
    let first_agent_serial = field(&shown, "Serial number").to_owned();

    // The workload gets its X509-SVID (chaining to our server's bundle) and a JWT-SVID.
    let svid = wait_for_x509(&endpoint, WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    let server_bundle = bundle_from_pem(&cli(&["bundle", "show", "-format", "pem"]));
    let checked = check_x509(&endpoint, WORKLOAD, &server_bundle).await;
    assert_eq!(checked.cert_chain()[0].as_bytes(), svid.cert_chain()[0].as_bytes());
    assert_eq!(checked.hint(), Some("front"));
    assert!(names_dns(checked.cert_chain()[0].as_bytes(), "workload.example.org"), "no DNS SAN");
    assert_eq!(served_trust_domains(&endpoint).await, ["example.org", "other.org"]);
    check_jwt(&endpoint, WORKLOAD, "upstream-agent-audience").await;

    // SPIRE's own Workload API client agrees.
    let out = agent.cli(&["api", "fetch", "x509", "-output", "json"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), logs());
    assert!(String::from_utf8_lossy(&out.stdout).contains(WORKLOAD), "{}", String::from_utf8_lossy(&out.stdout));

    // Sync: an entry created now reaches the workload.
    cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", LATER, "-selector", &selector]);
    wait_for_x509(&endpoint, LATER, Duration::from_secs(20), |_| true, logs).await;

    // Rotation: past half of its 30 s, the workload's SVID is replaced by a new one from our server.
    let first = svid.cert_chain()[0].as_bytes().to_vec();
    let rotated =
        wait_for_x509(&endpoint, WORKLOAD, Duration::from_secs(40), |s| s.cert_chain()[0].as_bytes() != first, logs)
            .await;
    check_x509(&endpoint, WORKLOAD, &server_bundle).await;
    assert_ne!(rotated.cert_chain()[0].as_bytes(), first.as_slice());

    // The agent renewed its own SVID too (our server records the new serial).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = cli(&["agent", "show", "-spiffeID", &agent_id]);
        if field(&shown, "Serial number") != first_agent_serial {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not renew its SVID\n{shown}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Killed and restarted without a token, it resumes from its data directory.
    agent.stop();
    let resumed = AgentOptions { join_token: None, ..options };
    let agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &resumed).await;
    let logs = || format!("--- SPIRE agent ---\n{}\n--- our server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    check_x509(&agent.endpoint(), WORKLOAD, &server_bundle).await;
    check_jwt(&agent.endpoint(), LATER, "after-restart").await;
    let listed = cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "still one agent: {listed}");
    eprintln!("took {:?}", started.elapsed());
}

/// Evicted (`agent evict`) or banned (`agent ban`) on our server, SPIRE's agent learns why from the
/// PermissionDenied details of its next sync, removes its SVID and shuts down (a join-token agent
/// cannot re-attest).
#[tokio::test]
async fn spire_agent_shuts_down_when_our_server_evicts_or_bans_it() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let server = TestServer::start(&server_bin, "").await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);

    for (action, expected) in [
        ("evict", "Agent failed re-attestation; removing SVID and shutting down"),
        ("ban", "Agent is banned: removing SVID and shutting down"),
    ] {
        let token = generate_token(&server_bin, &server);
        let agent_id = join_token_agent_id(&token);
        let dir = tempfile::tempdir().expect("tempdir");
        let options = AgentOptions { sync_interval: "500ms".into(), ..AgentOptions::with_token(&token) };
        let mut agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
        cli(&["agent", action, "-spiffeID", &agent_id]);
        let status = agent.wait_exit(Duration::from_secs(20)).await;
        let log = agent.log();
        assert!(
            status.is_some_and(|s| !s.success()),
            "{action}: SPIRE's agent kept running ({status:?})\n{}",
            tail(&log)
        );
        assert!(log.contains(expected), "{action}: no {expected:?} in\n{}", tail(&log));
        let data: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("data/agent-data.json")).expect("agent-data.json"))
                .expect("JSON");
        assert!(data["svid"].is_null(), "{action}: the SVID is still stored: {data}");
    }
}

/// Without insecure bootstrap, SPIRE's agent trusts our server through `trust_bundle_path` (our
/// server's bundle, as `bundle show -format pem` prints it), and refuses a server its bundle does not
/// vouch for.
#[tokio::test]
async fn spire_agent_bootstraps_from_our_servers_bundle_and_refuses_another() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let server = TestServer::start(&server_bin, "").await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);
    let files = tempfile::tempdir().expect("tempdir");
    let good = write_file(files.path(), "good.pem", &cli(&["bundle", "show", "-format", "pem"]));
    let other = spire_testkit::pki::Pki::new(spire_identity::KeyType::EcP256).bundle().to_pem();
    let bad = write_file(files.path(), "bad.pem", &other);
    let secure = |token: &str, path: &str| AgentOptions {
        insecure_bootstrap: false,
        extra_config: format!("    trust_bundle_path = \"{path}\"\n"),
        discover_workload_path: false,
        ..AgentOptions::with_token(token)
    };

    let token = generate_token(&server_bin, &server);
    cli(&[
        "entry",
        "create",
        "-parentID",
        &join_token_agent_id(&token),
        "-spiffeID",
        WORKLOAD,
        "-selector",
        &uid_selector(),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &secure(&token, &good)).await;
    let logs = || tail(&agent.log());
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    assert!(!agent.log().contains("Insecure bootstrap"), "{}", logs());

    // SPIRE 1.13 retries a failed bootstrap rather than exiting; it never gets an SVID.
    let token = generate_token(&server_bin, &server);
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = UpstreamAgent::launch(&spire_agent, dir.path(), server.port, &secure(&token, &bad));
    assert!(
        refused.wait_for_log("certificate signed by unknown authority", 0, Duration::from_secs(20)).await,
        "{}",
        tail(&refused.log())
    );
    assert!(!refused.socket.exists(), "the Workload API opened without attestation");
}

/// The agent binary replaced in place: SPIRE's agent attests to our server and stops; our agent, on
/// the same configuration and data directory (`agent-data.json`, the disk KeyManager's `keys.json`),
/// resumes without a token; then SPIRE's agent takes the directory back, again without a token.
#[tokio::test]
async fn our_agent_and_spire_agent_take_over_each_others_data_dir() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let agent_bin = peers::workspace_binary("spire-agent");
    let server = TestServer::start(&server_bin, "").await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);
    let token = generate_token(&server_bin, &server);
    let agent_id = join_token_agent_id(&token);
    cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let resume = AgentOptions { join_token: None, ..options.clone() };

    let mut spire = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    wait_for_x509(&spire.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, || tail(&spire.log())).await;
    spire.stop();

    let mut ours = spire_testkit::agent::TestAgent::start(&agent_bin, dir.path(), server.port, &resume).await;
    wait_for_x509(&ours.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, || tail(&ours.log())).await;
    assert!(ours.log().contains("resuming with the stored agent SVID"), "{}", tail(&ours.log()));
    ours.stop();

    let spire = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &resume).await;
    wait_for_x509(&spire.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, || tail(&spire.log())).await;
    assert!(spire.log().matches("SVID loaded").count() >= 1, "{}", tail(&spire.log()));
    let listed = cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "still one agent: {listed}");
}

/// More authorized entries than one SyncAuthorizedEntries page (500): our server sends revisions
/// first and SPIRE's agent asks for the entries it lacks; an update to one of them still reaches the
/// workload.
#[tokio::test]
async fn spire_agent_syncs_more_entries_than_a_page_from_our_server() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let server = TestServer::start(&server_bin, "").await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);
    let token = generate_token(&server_bin, &server);
    let agent_id = join_token_agent_id(&token);
    let files = tempfile::tempdir().expect("tempdir");
    let data = write_file(files.path(), "entries.json", &filler_entries(&agent_id, 600));
    cli(&["entry", "create", "-data", &data]);
    let created =
        cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", WORKLOAD, "-selector", &uid_selector()]);
    let entry_id = field(&created, "Entry ID").to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    let logs = || format!("--- SPIRE agent ---\n{}\n--- our server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(60), |_| true, logs).await;

    cli(&[
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

/// Our server's CA rotates (`ca_ttl` 36 s: the next CA is prepared at half its life and activated
/// at 5/6): SPIRE's agent gets the new authority in its bundle before it signs anything, then
/// SVIDs from it, and keeps talking to our server, whose own certificate the new CA now signs.
#[tokio::test]
async fn spire_agent_follows_our_servers_ca_rotation() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let server = TestServer::start(&server_bin, "ca_ttl = \"36s\"").await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);
    let token = generate_token(&server_bin, &server);
    cli(&[
        "entry",
        "create",
        "-parentID",
        &join_token_agent_id(&token),
        "-spiffeID",
        WORKLOAD,
        "-selector",
        &uid_selector(),
    ]);
    let first_ca = bundle_from_pem(&cli(&["bundle", "show", "-format", "pem"])).x509_authorities()[0].clone();

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    let logs = || format!("--- SPIRE agent ---\n{}\n--- our server ---\n{}", tail(&agent.log()), tail(&server.log()));
    let bundle = wait_for_ca_rotation(&agent.endpoint(), WORKLOAD, &first_ca, Duration::from_secs(60), logs).await;
    check_x509(&agent.endpoint(), WORKLOAD, &bundle).await;
    check_jwt(&agent.endpoint(), WORKLOAD, "after-rotation").await;
}

/// Our server restarts (same database and keys): SPIRE's agent keeps serving its cache meanwhile,
/// reconnects, and syncs what changed.
#[tokio::test]
async fn spire_agent_reconnects_after_our_server_restarts() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let mut server = TestServer::start(&server_bin, "").await;
    let token = generate_token(&server_bin, &server);
    let agent_id = join_token_agent_id(&token);
    server_cli(
        &server_bin,
        &server,
        &["entry", "create", "-parentID", &agent_id, "-spiffeID", WORKLOAD, "-selector", &uid_selector()],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, || tail(&agent.log())).await;

    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(5), |_| true, || tail(&agent.log())).await;
    server.restart().await;
    server_cli(
        &server_bin,
        &server,
        &["entry", "create", "-parentID", &agent_id, "-spiffeID", LATER, "-selector", &uid_selector()],
    );
    let logs = || format!("--- SPIRE agent ---\n{}\n--- our server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), LATER, Duration::from_secs(30), |_| true, logs).await;
}

/// Our server's CA signed by an upstream CA (`UpstreamAuthority "disk"`, an intermediate under a
/// root): SPIRE's agent hands the workload the whole chain (leaf, our CA, the upstream
/// intermediate), which chains to the root alone, the trust domain's bundle.
#[tokio::test]
async fn spire_agent_serves_chains_of_our_server_under_an_upstream_authority() {
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let server_bin = peers::workspace_binary("spire-server");
    let files = tempfile::tempdir().expect("tempdir");
    let (plugin, root) = disk_upstream_authority(files.path());
    let server = TestServer::start_with_config(&server_bin, |dir, port| {
        let conf = spire_testkit::process::server_conf(dir, port, "");
        let end = conf.rfind('}').expect("the plugins block");
        format!("{}{plugin}{}", &conf[..end], &conf[end..])
    })
    .await;
    let cli = |args: &[&str]| server_cli(&server_bin, &server, args);
    let bundle = bundle_from_pem(&cli(&["bundle", "show", "-format", "pem"]));
    assert_eq!(bundle.x509_authorities(), [root], "the bundle is the upstream root");
    let token = generate_token(&server_bin, &server);
    cli(&[
        "entry",
        "create",
        "-parentID",
        &join_token_agent_id(&token),
        "-spiffeID",
        WORKLOAD,
        "-selector",
        &uid_selector(),
    ]);

    let dir = tempfile::tempdir().expect("tempdir");
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    let logs = || format!("--- SPIRE agent ---\n{}\n--- our server ---\n{}", tail(&agent.log()), tail(&server.log()));
    wait_for_x509(&agent.endpoint(), WORKLOAD, Duration::from_secs(30), |_| true, logs).await;
    let svid = check_x509(&agent.endpoint(), WORKLOAD, &bundle).await;
    assert_eq!(svid.cert_chain().len(), 3, "leaf, our CA, the upstream intermediate");
    check_jwt(&agent.endpoint(), WORKLOAD, "upstream-authority").await;
}
