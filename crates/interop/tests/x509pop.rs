//! The x509pop node attestor end to end, for each pairing of our server and agent with SPIRE
//! v1.13.3's: certificates made by `openssl` (a CA and leaves, EC and RSA), the agent proving it
//! holds the leaf's key (RSA-PSS or ECDSA over both nonces), the agent ID and selectors as the server
//! shows them, and a workload under a node alias on those selectors getting its SVID; re-attestation
//! with a renewed certificate; `mode = "spiffe"`, where an X509-SVID minted by the server is
//! exchanged for an agent ID; then the refusals: a leaf of another CA, an expired leaf, a key that
//! is not the certificate's, an SVID outside the exchange prefix.

mod agent_server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_testkit::agent::AgentOptions;
use spire_testkit::openssl;
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

/// A leaf `name` (CN `name`) signed by CA `ca`, with a key of `alg` (`ec` or `rsa`), valid a day.
fn leaf(dir: &Path, ca: &str, name: &str, alg: &str) {
    openssl::leaf(dir, ca, name, alg, "1");
}

/// The SHA-1 of the PEM certificate `pem` in `dir`.
fn sha1_fingerprint(dir: &Path, pem: &str) -> String {
    openssl::sha1_fingerprint(&dir.join(pem))
}

fn server_setup(ca_bundle: &Path) -> ServerSetup {
    server_setup_with(&format!("ca_bundle_path = \"{}\"", ca_bundle.display()))
}

/// A server whose x509pop `plugin_data` is `data`.
fn server_setup_with(data: &str) -> ServerSetup {
    let plugin =
        format!("    NodeAttestor \"x509pop\" {{\n        plugin_data {{\n            {data}\n        }}\n    }}\n");
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(cert: &Path, key: &Path) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"x509pop\" {{\n        plugin_data {{\n            private_key_path = \"{}\"\n            certificate_path = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        key.display(),
        cert.display()
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

/// The whole flow on one pairing with a leaf of key type `alg`.
async fn attests<S: ServerUnderTest, A: AgentUnderTest>(tag: &str, alg: &str) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().to_owned();
    openssl::ca(&dir, "ca");
    let node = format!("node-{tag}");
    leaf(&dir, "ca", &node, alg);
    let server = S::start(&server_bin, &server_setup(&dir.join("ca.pem"))).await;
    let options = agent_options(&dir.join(format!("{node}.pem")), &dir.join(format!("{node}.key")));
    let agent = A::start(&agent_bin, &dir.join("agent"), server.port, &options).await;

    let agent_id =
        format!("spiffe://example.org/spire/agent/x509pop/{}", sha1_fingerprint(&dir, &format!("{node}.pem")));
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    let ca_fingerprint = sha1_fingerprint(&dir, "ca.pem");
    for selector in [format!("x509pop:subject:cn:{node}"), format!("x509pop:ca:fingerprint:{ca_fingerprint}")] {
        assert!(shown.contains(&selector), "{} lacks {selector}:\n{shown}", S::NAME);
    }
    assert!(shown.contains("x509pop:serialnumber:"), "{shown}");

    agent_server::node_alias_workload_gets_svid(
        &server,
        &agent,
        "x509pop-nodes",
        tag,
        &format!("x509pop:subject:cn:{node}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_ec_leaf() {
    attests::<OurServer, OurAgent>("ours-ec", "ec").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_rsa_leaf() {
    attests::<OurServer, OurAgent>("ours-rsa", "rsa").await;
}

/// SPIRE's agent signs the challenge; our server checks it (ECDSA, then RSA-PSS).
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    attests::<OurServer, UpstreamAgent>("spire-agent-ec", "ec").await;
    attests::<OurServer, UpstreamAgent>("spire-agent-rsa", "rsa").await;
}

/// Our agent signs; SPIRE's server checks.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_server() {
    attests::<UpstreamServer, OurAgent>("spire-server-ec", "ec").await;
    attests::<UpstreamServer, OurAgent>("spire-server-rsa", "rsa").await;
}

/// Our server refuses a leaf of another CA and an expired leaf, and creates no agent. A key that is
/// not the certificate's never reaches a server: SPIRE's agent and ours both refuse the pair when
/// they load it (the server's refusal of a signature by the wrong key is in its unit tests).
#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_other_cas_and_wrong_keys() {
    let Some(upstream_agent) = <UpstreamAgent as AgentUnderTest>::binary() else { return };
    let server_bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    openssl::ca(&dir, "ca");
    openssl::ca(&dir, "other-ca");
    leaf(&dir, "ca", "good", "ec");
    leaf(&dir, "other-ca", "stranger", "ec");
    leaf(&dir, "ca", "spare", "ec");
    openssl::leaf(&dir, "ca", "expired", "ec", "0");
    let server = OurServer::start(&server_bin, &server_setup(&dir.join("ca.pem"))).await;
    let cases = [
        ("another CA", "stranger.pem", "stranger.key", upstream_agent.clone()),
        ("expired", "expired.pem", "expired.key", upstream_agent.clone()),
        ("wrong key", "good.pem", "spare.key", upstream_agent),
    ];
    for (case, cert, key, binary) in cases {
        // The server allows one attestation per second from an address (SPIRE's rate limit).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let options = agent_options(&dir.join(cert), &dir.join(key));
        let mut agent = UpstreamAgent::launch(&binary, &dir.join(case.replace(' ', "-")), server.port, &options);
        let status = agent.wait_exit(Duration::from_secs(30)).await;
        assert!(status.is_some_and(|s| !s.success()), "{case}: the agent did not fail:\n{}", agent.log());
        assert!(server.log().contains("x509pop"), "{case}: the server says nothing:\n{}", server.log());
    }
    let log = server.log();
    assert!(log.contains("certificate signed by unknown authority"), "another CA:\n{log}");
    assert!(log.contains("certificate has expired or is not yet valid"), "expired:\n{log}");
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("x509pop"), "no agent may have attested:\n{listed}");
    // Our agent refuses the mismatched pair before sending anything.
    let our_agent = <OurAgent as AgentUnderTest>::binary().expect("our agent");
    let options = agent_options(&dir.join("good.pem"), &dir.join("spare.key"));
    let mut agent = OurAgent::launch(&our_agent, &dir.join("ours-wrong-key"), server.port, &options);
    let status = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| !s.success()), "our agent did not fail:\n{}", agent.log());
}

/// An agent renews its short-lived SVID by attesting again, reading its certificate files anew: the
/// node's certificate was renewed meanwhile (same CN, new key and serial), and with a template on
/// the CN the agent keeps its ID while its serial-number selector follows the new certificate.
async fn reattests_with_a_renewed_certificate<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().to_owned();
    openssl::ca(&dir, "ca");
    let node = format!("node-{tag}");
    leaf(&dir, "ca", &node, "ec");
    let renewed = dir.join("renewed");
    std::fs::create_dir(&renewed).expect("mkdir");
    for file in ["ca.pem", "ca.key"] {
        std::fs::copy(dir.join(file), renewed.join(file)).expect("copy the CA");
    }
    leaf(&renewed, "ca", &node, "ec");

    let mut setup = server_setup_with(&format!(
        "ca_bundle_path = \"{}\"\n            agent_path_template = \"/cn/{{{{ .Subject.CommonName }}}}\"",
        dir.join("ca.pem").display()
    ));
    setup.extra_config = "agent_ttl = \"20s\"".into();
    let server = S::start(&server_bin, &setup).await;
    let (cert, key) = (dir.join(format!("{node}.pem")), dir.join(format!("{node}.key")));
    let agent = A::start(&agent_bin, &dir.join("agent"), server.port, &agent_options(&cert, &key)).await;

    let agent_id = format!("spiffe://example.org/spire/agent/cn/{node}");
    let first = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert!(first.contains("Can re-attest     : true"), "{first}");
    let serial_selector = |path: &Path| {
        let out =
            openssl::run(path.parent().expect("dir"), &["x509", "-in", &path.to_string_lossy(), "-noout", "-serial"]);
        // SPIRE's form: lowercase hex of the magnitude, zero-padded to whole bytes.
        let hex = out.trim().trim_start_matches("serial=").trim_start_matches('0').to_lowercase();
        format!("x509pop:serialnumber:{}{hex}", if hex.len() % 2 == 1 { "0" } else { "" })
    };
    let old_serial = serial_selector(&cert);
    assert!(first.contains(&old_serial), "{first}\nlacks {old_serial}");

    std::fs::copy(renewed.join(format!("{node}.pem")), &cert).expect("renew the certificate");
    std::fs::copy(renewed.join(format!("{node}.key")), &key).expect("renew the key");
    let new_serial = serial_selector(&cert);
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
        if shown.contains(&new_serial) {
            assert!(!shown.contains(&old_serial), "the old certificate's selector stayed:\n{shown}");
            assert!(shown.contains("Can re-attest     : true"), "{shown}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} never re-attested:\n{shown}\n{}", A::NAME, agent.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_our_server_with_a_renewed_certificate() {
    reattests_with_a_renewed_certificate::<OurServer, OurAgent>("reattest").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_reattests_to_our_server_with_a_renewed_certificate() {
    reattests_with_a_renewed_certificate::<OurServer, UpstreamAgent>("reattest-spire-agent").await;
}

/// `mode = "spiffe"`: an X509-SVID the server minted under `/spire-exchange/` is exchanged for the
/// agent ID `/spire/agent/x509pop/<rest of its path>`; one outside the prefix is refused.
async fn spiffe_mode<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().to_owned();
    let server = S::start(&server_bin, &server_setup_with("mode = \"spiffe\"")).await;
    let mint = |path: &str, out: &Path| {
        std::fs::create_dir_all(out).expect("mkdir");
        let id = format!("spiffe://example.org{path}");
        server.cli(&["x509", "mint", "-spiffeID", &id, "-ttl", "1h", "-write", &out.to_string_lossy()]);
        (out.join("svid.pem"), out.join("key.pem"))
    };

    let (cert, key) = mint(&format!("/spire-exchange/rack-1/{tag}"), &dir.join("exchange"));
    let agent = A::start(&agent_bin, &dir.join("agent"), server.port, &agent_options(&cert, &key)).await;
    let agent_id = format!("spiffe://example.org/spire/agent/x509pop/rack-1/{tag}");
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert!(shown.contains("x509pop:ca:fingerprint:"), "{} shows no CA selector:\n{shown}\n{}", S::NAME, agent.log());
    drop(agent);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (cert, key) = mint("/workload/web", &dir.join("outside"));
    let mut agent = A::launch(&agent_bin, &dir.join("agent-outside"), server.port, &agent_options(&cert, &key));
    let status = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| !s.success()), "an SVID outside the prefix attested:\n{}", agent.log());
    assert!(server.log().contains("x509 cert doesnt match SVID prefix"), "{}", server.log());
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("/workload/web"), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spiffe_mode_ours() {
    spiffe_mode::<OurServer, OurAgent>("ours").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spiffe_mode_our_agent_to_spire_server() {
    spiffe_mode::<UpstreamServer, OurAgent>("spire-server").await;
}
