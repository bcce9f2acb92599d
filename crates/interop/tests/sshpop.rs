//! The sshpop node attestor end to end, for each pairing of our server and agent with SPIRE
//! v1.13.3's: a host CA and host certificates made by `ssh-keygen` (Ed25519, ECDSA and RSA host
//! keys), the agent proving it holds the host key by signing both nonces, the agent ID as the
//! server shows it (SPIRE's sshpop gives no selectors) and a workload under that agent getting its
//! SVID; then the refusals: a certificate of another CA, an expired one, a user certificate, and a
//! key that is not the certificate's, each with SPIRE's message in the server's log and no agent
//! created; and re-attestation, which renews sshpop agents.

mod agent_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest, field, workload_gets_svid};
use base64::Engine as _;
use spire_testkit::agent::AgentOptions;
use spire_testkit::openssl::ssh_keygen;
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

/// A key pair `name` (`name`, `name.pub`) of `kind`: `ed25519`, `ecdsa` (P-256) or `rsa`.
fn key(dir: &Path, name: &str, kind: &str) {
    ssh_keygen(dir, &["-q", "-N", "", "-t", kind, "-f", name, "-C", name]);
}

/// Certifies `name.pub` with CA `ca` as `ssh-keygen -s ca [-h] -I name -n principal -V validity`,
/// writing `name-cert.pub`.
fn certify(dir: &Path, ca: &str, name: &str, host: bool, principal: &str, validity: &str) {
    let pub_file = format!("{name}.pub");
    let mut args = vec!["-q", "-s", ca, "-I", name, "-n", principal, "-V", validity];
    if host {
        args.push("-h");
    }
    args.push(&pub_file);
    ssh_keygen(dir, &args);
}

/// SPIRE's agent ID for a certificate file: the unpadded URL-safe base64 of the SHA-256 of the
/// certificate's wire bytes (hashed here by `openssl`).
fn agent_id(dir: &Path, cert: &str) -> String {
    let text = std::fs::read_to_string(dir.join(cert)).expect("cert");
    let blob = base64::engine::general_purpose::STANDARD.decode(text.split_whitespace().nth(1).expect("blob")).unwrap();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &blob).unwrap();
    let digest = child.wait_with_output().expect("openssl").stdout;
    assert_eq!(digest.len(), 32);
    let fingerprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("spiffe://example.org/spire/agent/sshpop/{fingerprint}")
}

/// The server's plugin: the CA from a file, or inline.
fn server_setup(dir: &Path, ca: &str, inline: bool) -> ServerSetup {
    let data = if inline {
        let line = std::fs::read_to_string(dir.join(format!("{ca}.pub"))).expect("ca");
        format!("cert_authorities = [\"{}\"]", line.trim())
    } else {
        format!("cert_authorities_path = \"{}\"", dir.join(format!("{ca}.pub")).display())
    };
    let plugin =
        format!("    NodeAttestor \"sshpop\" {{\n        plugin_data {{\n            {data}\n        }}\n    }}\n");
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(dir: &Path, host: &str) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"sshpop\" {{\n        plugin_data {{\n            host_key_path = \"{}\"\n            host_cert_path = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        dir.join(host).display(),
        dir.join(format!("{host}-cert.pub")).display()
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

/// The whole flow on one pairing with a host key of `kind`.
async fn attests<S: ServerUnderTest, A: AgentUnderTest>(tag: &str, kind: &str, inline_ca: bool) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().to_owned();
    key(&dir, "ca", "ed25519");
    let host = format!("host-{tag}");
    key(&dir, &host, kind);
    certify(&dir, "ca", &host, true, &format!("{host}.example.org"), "-5m:+1d");
    let server = S::start(&server_bin, &server_setup(&dir, "ca", inline_ca)).await;
    let agent = A::start(&agent_bin, &dir.join("agent"), server.port, &agent_options(&dir, &host)).await;

    let agent_id = agent_id(&dir, &format!("{host}-cert.pub"));
    let listed = server.cli(&["agent", "list"]);
    assert!(listed.contains(&agent_id), "{} lists no {agent_id}:\n{listed}", S::NAME);
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert_eq!(field(&shown, "Attestation type"), "sshpop", "{shown}");
    assert!(!shown.contains("Selectors"), "sshpop gives no selectors:\n{shown}");

    // No selectors, so no node alias can select the agent: the workload's entry is under the agent.
    workload_gets_svid(&server, &agent, &agent_id, tag).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_an_ed25519_host_key() {
    attests::<OurServer, OurAgent>("ours-ed25519", "ed25519", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server_with_ecdsa_and_rsa_host_keys() {
    attests::<OurServer, OurAgent>("ours-ecdsa", "ecdsa", true).await;
    attests::<OurServer, OurAgent>("ours-rsa", "rsa", false).await;
}

/// SPIRE's agent signs the challenge (RSA as `ssh-rsa`, SHA-1); our server checks it.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    attests::<OurServer, UpstreamAgent>("spire-agent-ed25519", "ed25519", false).await;
    attests::<OurServer, UpstreamAgent>("spire-agent-rsa", "rsa", true).await;
}

/// Our agent signs (RSA as `rsa-sha2-512`); SPIRE's server checks, and names the agent as we do.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_server() {
    attests::<UpstreamServer, OurAgent>("spire-server-ed25519", "ed25519", false).await;
    attests::<UpstreamServer, OurAgent>("spire-server-ecdsa", "ecdsa", true).await;
    attests::<UpstreamServer, OurAgent>("spire-server-rsa", "rsa", false).await;
}

/// With 20-second agent SVIDs the agent renews by attesting again (sshpop agents may re-attest):
/// the server shows a new serial number for the same agent ID.
async fn reattests<S: ServerUnderTest, A: AgentUnderTest>(tag: &str) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().to_owned();
    key(&dir, "ca", "ed25519");
    key(&dir, "host", "ecdsa");
    certify(&dir, "ca", "host", true, "host.example.org", "-5m:+1d");
    let setup = ServerSetup { extra_config: "    agent_ttl = \"20s\"\n".into(), ..server_setup(&dir, "ca", false) };
    let server = S::start(&server_bin, &setup).await;
    let agent = A::start(&agent_bin, &dir.join("agent"), server.port, &agent_options(&dir, "host")).await;
    let agent_id = agent_id(&dir, "host-cert.pub");
    let first = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    assert_eq!(field(&first, "Can re-attest"), "true", "{first}");
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
        if field(&shown, "Serial number") != field(&first, "Serial number") {
            assert_eq!(field(&shown, "Attestation type"), "sshpop", "{shown}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{tag}: {} never re-attested:\n{}", A::NAME, agent.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_our_server() {
    reattests::<OurServer, OurAgent>("reattest-ours").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_reattests_to_our_server() {
    reattests::<OurServer, UpstreamAgent>("reattest-spire-agent").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_spire_server() {
    reattests::<UpstreamServer, OurAgent>("reattest-spire-server").await;
}

/// Runs agent `A` with host `host` against `server`: it must be refused with the plugin's
/// `message`, which the server logs too. (Skipped if `A` is a missing peer.)
async fn refused<S: ServerUnderTest, A: AgentUnderTest>(server: &S, dir: &Path, host: &str, message: &str) {
    let Some(binary) = A::binary() else { return };
    // The server allows one attestation per second from an address (SPIRE's rate limit).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let agent_dir = dir.join(format!("{host}-{}-{}", A::PATH, S::NAME.replace([' ', '\''], "-")));
    let mut agent = A::launch(&binary, &agent_dir, server.port, &agent_options(dir, host));
    // SPIRE's agent retries a refused first attestation (sshpop refuses with Internal, which it
    // takes for transient); ours gives up. Either way it must say why, and get no SVID.
    let expected = format!("nodeattestor(sshpop): {message}");
    let said = agent.wait_for_log(&expected, 0, Duration::from_secs(30)).await;
    let who = A::NAME;
    assert!(said, "{who}, {host}: the agent does not say {expected:?}:\n{}", agent.log());
    agent.stop();
    assert!(server.log().contains(message), "{who}, {host}: {} does not say {message:?}", S::NAME);
}

/// Our server refuses, with SPIRE's messages, a certificate of another CA, an expired one, a user
/// certificate, and a key that is not the certificate's (from our agent and SPIRE's, neither of
/// which checks the pair itself); SPIRE's server refuses our agent with the same messages; no agent
/// is created.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_of_other_cas_expired_user_certificates_and_wrong_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    key(&dir, "ca", "ed25519");
    key(&dir, "other-ca", "ed25519");
    for name in ["stranger", "old", "user", "good", "spare"] {
        key(&dir, name, "ed25519");
    }
    certify(&dir, "other-ca", "stranger", true, "stranger.example.org", "-5m:+1d");
    certify(&dir, "ca", "old", true, "old.example.org", "20200101:20200102");
    certify(&dir, "ca", "user", false, "user", "-5m:+1d");
    certify(&dir, "ca", "good", true, "good.example.org", "-5m:+1d");
    // The good certificate with the spare key.
    std::fs::copy(dir.join("good-cert.pub"), dir.join("spare-cert.pub")).expect("copy");
    let cases = [
        ("stranger", "failed to check host key: ssh: no authorities for hostname: stranger.example.org:22"),
        ("old", "failed to check host key: ssh: cert has expired"),
        ("user", "failed to check host key: ssh: certificate presented as a host key has type 1"),
        ("spare", "failed to verify signature: ssh: signature did not verify"),
    ];
    let ours = <OurServer as ServerUnderTest>::binary().expect("our server");
    let server = <OurServer as ServerUnderTest>::start(&ours, &server_setup(&dir, "ca", false)).await;
    for (host, message) in cases {
        refused::<_, OurAgent>(&server, &dir, host, message).await;
        refused::<_, UpstreamAgent>(&server, &dir, host, message).await;
    }
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("sshpop"), "no agent may have attested to {}:\n{listed}", OurServer::NAME);
    let Some(spire) = <UpstreamServer as ServerUnderTest>::binary() else { return };
    let server = <UpstreamServer as ServerUnderTest>::start(&spire, &server_setup(&dir, "ca", false)).await;
    for (host, message) in cases {
        refused::<_, OurAgent>(&server, &dir, host, message).await;
    }
    let listed = server.cli(&["agent", "list"]);
    assert!(!listed.contains("sshpop"), "no agent may have attested to {}:\n{listed}", UpstreamServer::NAME);
}
