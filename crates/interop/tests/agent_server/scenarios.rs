//! The agent ⇄ server scenarios, each written once and run both ways: SPIRE's agent on our server
//! (`upstream_agent_our_server.rs`) and our agent on SPIRE's server (`our_agent_upstream_server.rs`).
//! `S` is the server under test and `A` the agent; a step where ours and SPIRE's differ by design
//! says so and matches on their [`Side`].

use std::time::{Duration, Instant};

use spire_testkit::agent::{AgentOptions, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::upstream::UpstreamAgent;

use super::{
    AgentUnderTest, OurAgent, ServerSetup, ServerUnderTest, Side, binaries, both_logs, bundle_from_pem, check_jwt,
    check_x509, disk_upstream_authority, field, filler_entries, names_dns, served_trust_domains, tail, uid_selector,
    wait_for_ca_rotation, wait_for_x509, write_file,
};

/// The agent attests with a join token from the server, syncs the entries the server authorizes,
/// and serves their X509- and JWT-SVIDs (signed by the server's CA) to a workload (rust-spiffe, and
/// SPIRE's own `spire-agent api`); with short TTLs it renews both the workload's SVID and its own
/// through the server; killed and restarted without a token it resumes from its data directory.
pub(crate) async fn attests_syncs_renews_and_resumes<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    // SPIRE's `spire-agent api`: a Workload API client of its own, whichever agent serves.
    let Some(spire_agent) = peers::require("upstream-spire-agent") else { return };
    let started = Instant::now();
    let (workload, later) = (A::id("workload"), A::id("later"));
    // Agents' own SVIDs live 30 s, so the agent renews its SVID within the test.
    let server = S::start(&server_bin, &ServerSetup::with_config("    agent_ttl = \"30s\"\n")).await;
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
        &workload,
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
    let mut agent = A::start(&agent_bin, dir.path(), server.port, &options).await;
    let endpoint = agent.endpoint();
    let logs = || both_logs(&server, &agent);

    // Attested: the server knows the agent by its join-token ID.
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert_eq!(field(&shown, "Attestation type"), "join_token", "{shown}");
    let first_agent_serial = field(&shown, "Serial number").to_owned();

    // The workload gets its X509-SVID (chaining to the server's bundle) and a JWT-SVID.
    let svid = wait_for_x509(&endpoint, &workload, Duration::from_secs(30), |_| true, logs).await;
    let server_bundle = bundle_from_pem(&server.cli(&["bundle", "show", "-format", "pem"]));
    let checked = check_x509(&endpoint, &workload, &server_bundle).await;
    assert_eq!(checked.cert_chain()[0].as_bytes(), svid.cert_chain()[0].as_bytes());
    assert_eq!(checked.hint(), Some("front"));
    assert!(names_dns(checked.cert_chain()[0].as_bytes(), "workload.example.org"), "no DNS SAN");
    assert_eq!(served_trust_domains(&endpoint).await, ["example.org", "other.org"]);
    check_jwt(&endpoint, &workload, &format!("{}-audience", A::PATH)).await;

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
    let x509 = spire_api(&["fetch", "x509", "-output", "json"]);
    assert!(x509.contains(&workload), "{x509}");
    let jwt: serde_json::Value =
        serde_json::from_str(&spire_api(&["fetch", "jwt", "-audience", "spire-cli", "-output", "json"])).expect("JSON");
    let jwt = jwt[0]["svids"][0]["svid"].as_str().unwrap_or_else(|| panic!("no token in {jwt}"));
    let validated = spire_api(&["validate", "jwt", "-audience", "spire-cli", "-svid", jwt]);
    assert!(validated.contains("SVID is valid.") && validated.contains(&workload), "{validated}");

    // Sync: an entry created now reaches the workload.
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", &later, "-selector", &selector]);
    wait_for_x509(&endpoint, &later, Duration::from_secs(20), |_| true, logs).await;

    // Rotation: past half of its 30 s, the workload's SVID is replaced by a new one from the server.
    let first = svid.cert_chain()[0].as_bytes().to_vec();
    let rotated =
        wait_for_x509(&endpoint, &workload, Duration::from_secs(40), |s| s.cert_chain()[0].as_bytes() != first, logs)
            .await;
    check_x509(&endpoint, &workload, &server_bundle).await;
    assert_ne!(rotated.cert_chain()[0].as_bytes(), first.as_slice());

    // The agent renewed its own SVID too (the server records the new serial).
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
    let agent = A::start(&agent_bin, dir.path(), server.port, &resumed).await;
    let logs = || both_logs(&server, &agent);
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(30), |_| true, logs).await;
    check_x509(&agent.endpoint(), &workload, &server_bundle).await;
    check_jwt(&agent.endpoint(), &later, "after-restart").await;
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "still one agent: {listed}");
    eprintln!("took {:?}", started.elapsed());
}

/// Evicted (`agent evict`) or banned (`agent ban`) with the server's own CLI, the agent learns it at
/// its next sync, removes its SVID (keeping the bundle) and shuts down; a join-token agent cannot
/// re-attest, and restarted without a new token it does not attest again.
pub(crate) async fn shuts_down_when_evicted_or_banned<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    let server = S::start(&server_bin, &ServerSetup { throwaway_keys: true, ..ServerSetup::default() }).await;

    for action in ["evict", "ban"] {
        let token = server.generate_token();
        let agent_id = join_token_agent_id(&token);
        let dir = tempfile::tempdir().expect("tempdir");
        let options = AgentOptions { sync_interval: "500ms".into(), ..AgentOptions::with_token(&token) };
        let mut agent = A::start(&agent_bin, dir.path(), server.port, &options).await;
        server.cli(&["agent", action, "-spiffeID", &agent_id]);
        let status = agent.wait_exit(Duration::from_secs(20)).await;
        let log = agent.log();
        assert!(
            status.is_some_and(|s| !s.success()),
            "{action}: {} kept running ({status:?})\n{}",
            A::NAME,
            tail(&log)
        );
        // Agent-specific: SPIRE's agent tells eviction from a ban by the PermissionDenied details;
        // ours says it is no longer authorized (banned or evicted).
        let expected = match (A::SIDE, action) {
            (Side::Spire, "evict") => "Agent failed re-attestation; removing SVID and shutting down",
            (Side::Spire, _) => "Agent is banned: removing SVID and shutting down",
            (Side::Ours, _) => "no longer authorized",
        };
        assert!(log.contains(expected), "{action}: no {expected:?} in\n{}", tail(&log));
        // The SVID is gone from agent-data.json, the bundle kept.
        let data: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("data/agent-data.json")).expect("agent-data.json"))
                .expect("JSON");
        assert!(data["svid"].as_array().is_none_or(Vec::is_empty), "{action}: the SVID is still stored: {data}");
        if A::SIDE == Side::Spire {
            // Agent-specific: SPIRE's agent writes a null SVID (ours an empty list).
            assert!(data["svid"].is_null(), "{action}: the SVID is still stored: {data}");
        }
        assert!(data["bundle"].as_array().is_some_and(|b| !b.is_empty()), "{action}: {data}");

        // Restarted without a token, it cannot attest again.
        let mut again = A::launch(&agent_bin, dir.path(), server.port, &AgentOptions::default());
        match A::SIDE {
            // Agent-specific: SPIRE's agent keeps retrying the attestation, and logs why the server
            // refuses it.
            Side::Spire => assert!(
                again.wait_for_log("join token was not provided", log.len(), Duration::from_secs(10)).await,
                "{action}:\n{}",
                tail(&again.log())
            ),
            // Agent-specific: our agent exits, in its own words.
            Side::Ours => {
                let status = again.wait_exit(Duration::from_secs(10)).await;
                assert!(
                    status.is_some_and(|s| !s.success()),
                    "{action}: restarted without a token, it runs ({status:?})"
                );
                assert!(again.log().contains("no join token"), "{action}:\n{}", tail(&again.log()));
            }
        }
        assert!(!again.socket.exists(), "{action}: the Workload API opened without attestation");
    }
}

/// Without insecure bootstrap, the agent trusts the server through `trust_bundle_path` (the server's
/// bundle, as its `bundle show -format pem` prints it), and refuses a server its bundle does not
/// vouch for.
pub(crate) async fn bootstraps_from_the_servers_bundle_and_refuses_another<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    let workload = A::id("workload");
    let server = S::start(&server_bin, &ServerSetup::default()).await;
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
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", &workload, "-selector", &uid_selector()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = A::start(&agent_bin, dir.path(), server.port, &secure(&token, &good)).await;
    let logs = || tail(&agent.log());
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(30), |_| true, logs).await;
    // SPIRE's agent logs this when it bootstraps insecurely (ours never does).
    assert!(!agent.log().contains("Insecure bootstrap"), "{}", logs());

    let token = server.generate_token();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut refused = A::launch(&agent_bin, dir.path(), server.port, &secure(&token, &bad));
    match A::SIDE {
        // Agent-specific: SPIRE 1.13 retries a failed bootstrap rather than exiting; it never gets
        // an SVID.
        Side::Spire => assert!(
            refused.wait_for_log("certificate signed by unknown authority", 0, Duration::from_secs(20)).await,
            "{}",
            tail(&refused.log())
        ),
        // Agent-specific: our agent does not retry a failed first attestation: it exits.
        Side::Ours => {
            let status = refused.wait_exit(Duration::from_secs(20)).await;
            assert!(status.is_some_and(|s| !s.success()), "{status:?}\n{}", tail(&refused.log()));
        }
    }
    assert!(!refused.socket.exists(), "the Workload API opened without attestation");
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "only the first agent attested: {listed}");
}

/// The agent binary replaced in place: SPIRE's agent attests to the server `S` and stops; our agent,
/// on the same configuration and data directory (`agent-data.json`, the disk KeyManager's
/// `keys.json`), resumes without a token; then SPIRE's agent takes the directory back, again without
/// a token. Both agents run in either direction; only the server differs.
pub(crate) async fn agents_take_over_each_others_data_dir<S: ServerUnderTest>() {
    let Some((server_bin, spire_agent)) = binaries::<S, UpstreamAgent>() else { return };
    let Some(agent_bin) = OurAgent::binary() else { return };
    let workload = UpstreamAgent::id("workload");
    let server = S::start(&server_bin, &ServerSetup::default()).await;
    let token = server.generate_token();
    let agent_id = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", &workload, "-selector", &uid_selector()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let resume = AgentOptions { join_token: None, ..options.clone() };

    let mut spire = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &options).await;
    wait_for_x509(&spire.endpoint(), &workload, Duration::from_secs(30), |_| true, || both_logs(&server, &spire)).await;
    spire.stop();

    let mut ours = OurAgent::start(&agent_bin, dir.path(), server.port, &resume).await;
    wait_for_x509(&ours.endpoint(), &workload, Duration::from_secs(30), |_| true, || both_logs(&server, &ours)).await;
    assert!(ours.log().contains("resuming with the stored agent SVID"), "{}", tail(&ours.log()));
    ours.stop();

    let spire = UpstreamAgent::start(&spire_agent, dir.path(), server.port, &resume).await;
    wait_for_x509(&spire.endpoint(), &workload, Duration::from_secs(30), |_| true, || both_logs(&server, &spire)).await;
    assert!(spire.log().matches("SVID loaded").count() >= 1, "{}", tail(&spire.log()));
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("SPIFFE ID").count(), 1, "still one agent: {listed}");
}

/// More authorized entries than one SyncAuthorizedEntries page (500): the server sends revisions
/// first and the agent asks for the entries it lacks; an update to one of them still reaches the
/// workload.
pub(crate) async fn syncs_more_entries_than_a_page<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    let workload = A::id("workload");
    let server = S::start(&server_bin, &ServerSetup::default()).await;
    let token = server.generate_token();
    let agent_id = join_token_agent_id(&token);
    let files = tempfile::tempdir().expect("tempdir");
    let data = write_file(files.path(), "entries.json", &filler_entries(&agent_id, 600));
    server.cli(&["entry", "create", "-data", &data]);
    let created =
        server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", &workload, "-selector", &uid_selector()]);
    let entry_id = field(&created, "Entry ID").to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = A::start(&agent_bin, dir.path(), server.port, &options).await;
    let logs = || both_logs(&server, &agent);
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(60), |_| true, logs).await;

    server.cli(&[
        "entry",
        "update",
        "-entryID",
        &entry_id,
        "-parentID",
        &agent_id,
        "-spiffeID",
        &workload,
        "-selector",
        &uid_selector(),
        "-dns",
        "paged.example.org",
    ]);
    let dns = |s: &spiffe::X509Svid| names_dns(s.cert_chain()[0].as_bytes(), "paged.example.org");
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(30), dns, logs).await;
}

/// The server's CA rotates (`ca_ttl` 36 s: the next CA is prepared at half its life and activated at
/// 5/6): the agent gets the new authority in its bundle before it signs anything, then SVIDs from
/// it, and keeps talking to the server, whose own certificate the new CA now signs.
pub(crate) async fn follows_the_servers_ca_rotation<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    let workload = A::id("workload");
    let server = S::start(&server_bin, &ServerSetup::with_config("    ca_ttl = \"36s\"\n")).await;
    let token = server.generate_token();
    let parent = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", &workload, "-selector", &uid_selector()]);
    let first_ca = bundle_from_pem(&server.cli(&["bundle", "show", "-format", "pem"])).x509_authorities()[0].clone();

    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = A::start(&agent_bin, dir.path(), server.port, &options).await;
    let logs = || both_logs(&server, &agent);
    let bundle = wait_for_ca_rotation(&agent.endpoint(), &workload, &first_ca, Duration::from_secs(60), logs).await;
    check_x509(&agent.endpoint(), &workload, &bundle).await;
    check_jwt(&agent.endpoint(), &workload, "after-rotation").await;
}

/// The server restarts (same database and keys): the agent keeps serving its cache meanwhile,
/// reconnects, and syncs what changed.
pub(crate) async fn reconnects_after_the_server_restarts<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    let (workload, later) = (A::id("workload"), A::id("later"));
    let mut server = S::start(&server_bin, &ServerSetup::default()).await;
    let token = server.generate_token();
    let agent_id = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", &workload, "-selector", &uid_selector()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = A::start(&agent_bin, dir.path(), server.port, &options).await;
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(30), |_| true, || tail(&agent.log())).await;

    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(5), |_| true, || tail(&agent.log())).await;
    server.restart().await;
    server.cli(&["entry", "create", "-parentID", &agent_id, "-spiffeID", &later, "-selector", &uid_selector()]);
    let logs = || both_logs(&server, &agent);
    wait_for_x509(&agent.endpoint(), &later, Duration::from_secs(30), |_| true, logs).await;
}

/// The server's CA signed by an upstream CA (`UpstreamAuthority "disk"`, an intermediate under a
/// root): the agent hands the workload the whole chain (leaf, the server's CA, the upstream
/// intermediate), which chains to the root alone, the trust domain's bundle.
pub(crate) async fn serves_chains_under_an_upstream_authority<S: ServerUnderTest, A: AgentUnderTest>() {
    let Some((server_bin, agent_bin)) = binaries::<S, A>() else { return };
    let workload = A::id("workload");
    let files = tempfile::tempdir().expect("tempdir");
    let (plugin, root) = disk_upstream_authority(files.path());
    let server = S::start(&server_bin, &ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }).await;
    let bundle = bundle_from_pem(&server.cli(&["bundle", "show", "-format", "pem"]));
    assert_eq!(bundle.x509_authorities(), [root], "the bundle is the upstream root");
    let token = server.generate_token();
    let parent = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", &workload, "-selector", &uid_selector()]);

    let dir = tempfile::tempdir().expect("tempdir");
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = A::start(&agent_bin, dir.path(), server.port, &options).await;
    let logs = || both_logs(&server, &agent);
    wait_for_x509(&agent.endpoint(), &workload, Duration::from_secs(30), |_| true, logs).await;
    let svid = check_x509(&agent.endpoint(), &workload, &bundle).await;
    assert_eq!(svid.cert_chain().len(), 3, "leaf, {}'s CA, the upstream intermediate", S::NAME);
    check_jwt(&agent.endpoint(), &workload, "upstream-authority").await;
}
