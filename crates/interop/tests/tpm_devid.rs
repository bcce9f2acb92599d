//! The tpm_devid node attestor end to end against a software TPM (`swtpm`) the test starts and
//! provisions with `tpm2-tools` and `openssl`: an EK certificate from a test manufacturer CA in the
//! EK certificate index, a DevID key under SPIRE's storage root key template, a DevID certificate
//! from a test DevID CA. For each pairing of our server and agent with SPIRE v1.13.3's: attestation
//! (possession of the DevID key, credential activation binding the AK to the EK), the agent ID and
//! selectors as the server shows them, and a workload under a node alias on those selectors
//! getting its SVID. Then the refusals: a DevID certificate of another CA, an expired one, a DevID
//! key from another TPM than the one the agent uses; each refused, no agent created.

mod agent_server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_testkit::agent::AgentOptions;
use spire_testkit::peers;
use spire_testkit::swtpm::{DevIdFiles, DevIdKind, Swtpm, openssl, openssl_ca, openssl_issue};
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

/// A provisioned TPM, its CAs and a DevID with its certificate, in `dir`.
struct Node {
    tpm: Swtpm,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    devid: DevIdFiles,
    cert: PathBuf,
}

/// A fresh TPM with an EK certificate from `manufacturer` and a DevID of `kind` certified (CN
/// `node`) by `devid-ca`; `None` when swtpm is missing.
fn provision(node: &str, kind: DevIdKind) -> Option<Node> {
    let tpm = Swtpm::start()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    openssl_ca(&dir, "manufacturer");
    openssl_ca(&dir, "devid-ca");
    tpm.provision_ek(&dir, "manufacturer");
    let devid = tpm.create_devid(&dir, "devid", kind, "");
    let cert = dir.join("devid.pem");
    openssl_issue(&dir, "devid-ca", &devid.public_pem, node, "1", &cert);
    Some(Node { tpm, _tmp: tmp, dir, devid, cert })
}

/// The SHA-1 of a PEM certificate's DER, lowercase hex.
fn sha1_fingerprint(pem: &Path) -> String {
    let out = openssl(
        pem.parent().expect("dir"),
        &["x509", "-in", &pem.display().to_string(), "-noout", "-fingerprint", "-sha1"],
    );
    out.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_lowercase()
}

fn server_setup(dir: &Path) -> ServerSetup {
    let plugin = format!(
        "    NodeAttestor \"tpm_devid\" {{\n        plugin_data {{\n            devid_ca_path = \"{}\"\n            endorsement_ca_path = \"{}\"\n        }}\n    }}\n",
        dir.join("devid-ca.pem").display(),
        dir.join("manufacturer.pem").display()
    );
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(device: &Path, cert: &Path, devid: &DevIdFiles) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"tpm_devid\" {{\n        plugin_data {{\n            tpm_device_path = \"{}\"\n            devid_cert_path = \"{}\"\n            devid_priv_path = \"{}\"\n            devid_pub_path = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        device.display(),
        cert.display(),
        devid.private_blob.display(),
        devid.public_blob.display()
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

/// The whole flow on one pairing with a DevID of `kind`.
async fn attests<S: ServerUnderTest, A: AgentUnderTest>(tag: &str, kind: DevIdKind) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let node = format!("node-{tag}");
    let Some(n) = provision(&node, kind) else { return };
    let server = S::start(&server_bin, &server_setup(&n.dir)).await;
    let options = agent_options(&n.tpm.socket, &n.cert, &n.devid);
    let agent = A::start(&agent_bin, &n.dir.join("agent"), server.port, &options).await;

    let agent_id = format!("spiffe://example.org/spire/agent/tpm_devid/{}", sha1_fingerprint(&n.cert));
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    let ca_fingerprint = sha1_fingerprint(&n.dir.join("devid-ca.pem"));
    for selector in [
        format!("tpm_devid:subject:cn:{node}"),
        "tpm_devid:issuer:cn:devid-ca".to_owned(),
        format!("tpm_devid:ca:fingerprint:{ca_fingerprint}"),
    ] {
        assert!(shown.contains(&selector), "{} lacks {selector}:\n{shown}", S::NAME);
    }
    assert!(shown.contains("Can re-attest     : true"), "{shown}");

    let alias = format!("spiffe://example.org/tpm-nodes/{tag}");
    server.cli(&[
        "entry",
        "create",
        "-node",
        "-spiffeID",
        &alias,
        "-selector",
        &format!("tpm_devid:subject:cn:{node}"),
    ]);
    let workload = format!("spiffe://example.org/{tag}/workload");
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).expect("uid");
    server.cli(&[
        "entry",
        "create",
        "-parentID",
        &alias,
        "-spiffeID",
        &workload,
        "-selector",
        &format!("unix:uid:{uid}"),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(peers::workspace_binary("spire-agent"))
            .args(["api", "fetch", "x509", "-socketPath"])
            .arg(&agent.socket)
            .output()
            .expect("api fetch");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && said.contains(&workload) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no SVID for {workload} from {}: {said}{}\n--- agent ---\n{}",
            A::NAME,
            String::from_utf8_lossy(&out.stderr),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_ecc_devid() {
    attests::<OurServer, OurAgent>("ours-ecc", DevIdKind::Ecc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_rsa_devid() {
    attests::<OurServer, OurAgent>("ours-rsa", DevIdKind::Rsa).await;
}

/// SPIRE's agent (go-tpm over the swtpm socket) against our server, ECC and RSA DevIDs: the wire
/// format both ways and our MakeCredential opened by a real TPM for SPIRE's AK.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    attests::<OurServer, UpstreamAgent>("spire-agent-ecc", DevIdKind::Ecc).await;
    attests::<OurServer, UpstreamAgent>("spire-agent-rsa", DevIdKind::Rsa).await;
}

/// Our agent against SPIRE's server, ECC and RSA DevIDs: go-tpm's MakeCredential opened by our TPM
/// commands, our DevID signatures checked by Go.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_server() {
    attests::<UpstreamServer, OurAgent>("spire-server-ecc", DevIdKind::Ecc).await;
    attests::<UpstreamServer, OurAgent>("spire-server-rsa", DevIdKind::Rsa).await;
}

/// Our server refuses a DevID certificate of another CA and an expired one, and our agent refuses
/// to use a DevID key made in another TPM (the TPM it talks to cannot load it): no agent is
/// created. (The server's refusals of an AK that is not in the EK's TPM, of a key the AK did not
/// certify and of an EK of another manufacturer are in its unit tests, which can forge payloads.)
#[tokio::test(flavor = "multi_thread")]
async fn refusals_create_no_agent() {
    let (Some(server_bin), Some(agent_bin)) =
        (<OurServer as ServerUnderTest>::binary(), <OurAgent as AgentUnderTest>::binary())
    else {
        return;
    };
    let Some(n) = provision("refused", DevIdKind::Ecc) else { return };
    let Some(other_tpm) = Swtpm::start() else { return };
    openssl_ca(&n.dir, "other-ca");
    openssl_issue(&n.dir, "other-ca", &n.devid.public_pem, "stranger", "1", &n.dir.join("stranger.pem"));
    openssl_issue(&n.dir, "devid-ca", &n.devid.public_pem, "expired", "0", &n.dir.join("expired.pem"));
    let other_dir = n.dir.join("other-tpm");
    std::fs::create_dir(&other_dir).expect("mkdir");
    let foreign = other_tpm.create_devid(&other_dir, "foreign", DevIdKind::Ecc, "");
    openssl_issue(&n.dir, "devid-ca", &foreign.public_pem, "foreign", "1", &n.dir.join("foreign.pem"));
    tokio::time::sleep(Duration::from_millis(1100)).await; // the expired certificate is now expired
    let server = OurServer::start(&server_bin, &server_setup(&n.dir)).await;
    let cases = [
        ("another CA", "stranger.pem", &n.devid, "x509: certificate signed by unknown authority"),
        ("expired", "expired.pem", &n.devid, "certificate has expired or is not yet valid"),
        ("foreign key", "foreign.pem", &foreign, "unable to start a new TPM session: cannot load DevID key on TPM"),
    ];
    for (case, cert, devid, message) in cases {
        // The server allows one attestation per second from an address (SPIRE's rate limit).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let options = agent_options(&n.tpm.socket, &n.dir.join(cert), devid);
        let mut agent = OurAgent::launch(&agent_bin, &n.dir.join(case.replace(' ', "-")), server.port, &options);
        let status = agent.wait_exit(Duration::from_secs(60)).await;
        assert!(status.is_some_and(|s| !s.success()), "{case}: the agent did not fail:\n{}", agent.log());
        let said = format!("{}\n{}", agent.log(), server.log());
        assert!(said.contains(message), "{case}: no {message:?} in:\n{said}");
    }
    let log = server.log();
    for refusal in [
        "code=InvalidArgument nodeattestor(tpm_devid): unable to verify DevID signature: verification failed: x509: certificate signed by unknown authority",
        "code=InvalidArgument nodeattestor(tpm_devid): unable to verify DevID signature: verification failed: x509: certificate has expired or is not yet valid",
    ] {
        assert!(log.contains(refusal), "no {refusal:?} in:\n{log}");
    }
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("tpm_devid"), "no agent may have attested:\n{listed}");
}

/// An agent renews its short-lived SVID by attesting again: a new TPM session, a new AK, fresh
/// challenges; the agent keeps its ID and selectors.
async fn reattests<A: AgentUnderTest>(tag: &str) {
    let (Some(server_bin), Some(agent_bin)) = (<OurServer as ServerUnderTest>::binary(), A::binary()) else { return };
    let node = format!("node-{tag}");
    let Some(n) = provision(&node, DevIdKind::Ecc) else { return };
    let mut setup = server_setup(&n.dir);
    setup.extra_config = "agent_ttl = \"20s\"".into();
    let server = OurServer::start(&server_bin, &setup).await;
    let options = agent_options(&n.tpm.socket, &n.cert, &n.devid);
    let agent = A::start(&agent_bin, &n.dir.join("agent"), server.port, &options).await;
    let agent_id = format!("spiffe://example.org/spire/agent/tpm_devid/{}", sha1_fingerprint(&n.cert));
    let attestations =
        || server.log().lines().filter(|l| l.contains("agent attested") && l.contains(&agent_id)).count();
    assert_eq!(attestations(), 1, "{}", server.log());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while attestations() < 2 {
        assert!(std::time::Instant::now() < deadline, "{} never re-attested:\n{}", A::NAME, agent.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert!(shown.contains(&format!("tpm_devid:subject:cn:{node}")), "{shown}");
    assert!(shown.contains("Can re-attest     : true"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_our_server() {
    reattests::<OurAgent>("reattest").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_reattests_to_our_server() {
    reattests::<UpstreamAgent>("reattest-spire-agent").await;
}
