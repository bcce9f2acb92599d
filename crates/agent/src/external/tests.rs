//! The facades against the real spire-plugin-sdk test plugins (Go, built by
//! `scripts/install-peers.sh spire-plugins`): the workload attestor's selectors, the challenge node
//! attestor's payload and challenge on one stream, a dying plugin beside a live one, and the agent's
//! start and `validate` refusing a plugin that cannot come up, naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use spire_config::agent::AgentConfig;

use super::*;
use crate::cli_run::{Validated, settings, validate};
use crate::workload_attestor::{WorkloadAttestor, WorkloadAttestors};

const SECRET: &str = "open sesame";

fn plugin(name: &str) -> Option<PathBuf> {
    spire_testkit::peers::require(&format!("spire-test-plugin-{name}"))
}

fn sha256_hex(path: &Path) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &std::fs::read(path).unwrap());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A `plugin_cmd` block.
fn block(kind: &str, name: &str, cmd: &Path, extra: &str, data: &str) -> String {
    format!(
        "    {kind} \"{name}\" {{\n        plugin_cmd = \"{}\"\n{extra}        plugin_data {{ {data} }}\n    }}\n",
        cmd.display()
    )
}

/// An agent config with the memory key manager and `plugins`.
fn config(plugins: &str) -> AgentConfig {
    let text = crate::test_config::agent_conf("", &format!("    KeyManager \"memory\" {{}}\n{plugins}"));
    AgentConfig::from_str(&text, false).unwrap()
}

/// The one plugin block of `plugins`, decoded.
fn external_config(plugins: &str) -> ExternalConfig {
    let config = config(&format!("    NodeAttestor \"join_token\" {{}}\n{plugins}"));
    let block = config.workload_attestors().next().unwrap();
    ExternalConfig::from_plugin(block).unwrap().unwrap()
}

fn own_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().next().unwrap().to_owned()))
        .unwrap()
}

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap()
}

#[tokio::test]
async fn a_workload_attestor_gives_selectors_typed_with_its_name() {
    let Some(cmd) = plugin("workload") else { return };
    let external = ExternalPlugins::new();
    let plugin = external_config(&block("WorkloadAttestor", "test_workload", &cmd, "", "label = \"blue\""));
    let channel = external.start(&plugin, "example.org", WORKLOAD_ATTESTOR_SERVICE).await.unwrap();
    let attestor: Arc<dyn WorkloadAttestor> = Arc::new(ExternalWorkloadAttestor::new("test_workload", channel));
    let selectors = WorkloadAttestors::new([attestor]).attest_pid(own_pid()).await.unwrap();
    let mut shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
    shown.sort();
    assert_eq!(shown, ["test_workload:label:blue".to_owned(), format!("test_workload:uid:{}", own_uid())]);
    // The plugin counted it through the Metrics host service.
    assert_eq!(external.metrics().get("test_workload_attestations", &[]).map(|m| m.counter), Some(1.0));
    external.shutdown().await;
}

#[tokio::test]
async fn a_node_attestor_sends_its_payload_then_answers_the_challenge_on_the_same_stream() {
    let Some(cmd) = plugin("challenge-agent") else { return };
    let external = ExternalPlugins::new();
    let node = block("NodeAttestor", "challenge", &cmd, "", &format!("node_name = \"node-1\"\n secret = \"{SECRET}\""));
    let config = config(&format!("{node}    WorkloadAttestor \"unix\" {{}}\n"));
    let settings = settings(&config, &external).await.unwrap();
    let attestor = settings.node_attestor;
    assert_eq!(attestor.name(), "challenge", "the attestation data type is the configured name");

    let nonce = b"a nonce from the server";
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
    let expected = aws_lc_rs::hmac::sign(&key, nonce).as_ref().to_vec();
    for _ in 0..2 {
        // Each attempt is a stream of its own.
        let mut attempt = attestor.begin().await.unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&attempt.payload().await.unwrap()).unwrap();
        assert_eq!(payload, serde_json::json!({"node_name": "node-1"}));
        assert_eq!(attempt.challenge(nonce).await.unwrap(), expected);
        // The plugin answers one challenge and ends its stream.
        let err = attempt.challenge(nonce).await.unwrap_err();
        assert_eq!(
            crate::node::NodeError::Attestor { plugin: "challenge".into(), source: err }.to_string(),
            "rpc error: code = Internal desc = nodeattestor(challenge): plugin closed stream before handling the challenge"
        );
    }
    external.shutdown().await;
}

#[tokio::test]
async fn a_dying_workload_attestor_fails_alone() {
    let (Some(workload), Some(misbehave)) = (plugin("workload"), plugin("misbehave")) else { return };
    let external = ExternalPlugins::new();
    let args = "        plugin_args = [\"-type\", \"WorkloadAttestor\", \"-side\", \"agent\", \"-mode\", \"die-later\", \"-after\", \"1\"]\n";
    let mortal = external_config(&block("WorkloadAttestor", "misbehave", &misbehave, args, ""));
    let living = external_config(&block("WorkloadAttestor", "test_workload", &workload, "", "label = \"blue\""));
    let mortal = ExternalWorkloadAttestor::new(
        "misbehave",
        external.start(&mortal, "example.org", WORKLOAD_ATTESTOR_SERVICE).await.unwrap(),
    );
    let living = ExternalWorkloadAttestor::new(
        "test_workload",
        external.start(&living, "example.org", WORKLOAD_ATTESTOR_SERVICE).await.unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let err = mortal.attest(crate::peer::Process::from_pid(own_pid())).await.unwrap_err().to_string();
    assert!(err.starts_with("rpc error: code = Unavailable desc = workloadattestor(misbehave): "), "{err}");
    let both: Vec<Arc<dyn WorkloadAttestor>> = vec![Arc::new(mortal), Arc::new(living)];
    let selectors = WorkloadAttestors::new(both).attest_pid(own_pid()).await.unwrap();
    let mut shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
    shown.sort();
    assert_eq!(shown, ["test_workload:label:blue".to_owned(), format!("test_workload:uid:{}", own_uid())]);
    external.shutdown().await;
}

/// What the agent's start says about `plugins` (its NodeAttestor is join_token).
async fn start_error(plugins: &str) -> String {
    let external = ExternalPlugins::new();
    let config = config(&format!("    NodeAttestor \"join_token\" {{}}\n{plugins}"));
    let err = settings(&config, &external).await.expect_err("refused");
    external.shutdown().await;
    err
}

fn misbehave_args(mode: &str, side: &str, kind: &str) -> String {
    format!("        plugin_args = [\"-type\", \"{kind}\", \"-side\", \"{side}\", \"-mode\", \"{mode}\"]\n")
}

#[tokio::test]
async fn plugins_that_cannot_come_up_stop_the_agent_naming_them() {
    let (Some(workload), Some(misbehave)) = (plugin("workload"), plugin("misbehave")) else { return };
    let wrong = "        plugin_checksum = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
    assert_eq!(
        start_error(&block("WorkloadAttestor", "test_workload", &workload, wrong, "")).await,
        "failed to load plugin \"test_workload\": failed to launch plugin: checksums did not match"
    );
    let right = format!("        plugin_checksum = \"{}\"\n", sha256_hex(&workload));
    let external = ExternalPlugins::new();
    let checked = config(&format!(
        "    NodeAttestor \"join_token\" {{}}\n{}",
        block("WorkloadAttestor", "test_workload", &workload, &right, "label = \"x\"")
    ));
    settings(&checked, &external).await.expect("the right checksum starts");
    external.shutdown().await;

    let exits = start_error(&block(
        "WorkloadAttestor",
        "misbehave",
        &misbehave,
        &misbehave_args("exit-at-start", "agent", "WorkloadAttestor"),
        "",
    ))
    .await;
    assert!(exits.starts_with("failed to load plugin \"misbehave\": failed to launch plugin: "), "{exits}");
    assert_eq!(
        start_error(&block(
            "WorkloadAttestor",
            "misbehave",
            &misbehave,
            &misbehave_args("configure-error", "agent", "WorkloadAttestor"),
            ""
        ))
        .await,
        "failed to configure plugin \"misbehave\": rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose"
    );
    // A server NodeAttestor is not an agent WorkloadAttestor.
    let other = start_error(&block(
        "WorkloadAttestor",
        "misbehave",
        &misbehave,
        &misbehave_args("good", "server", "NodeAttestor"),
        "",
    ))
    .await;
    // Its magic cookie is another type's: it refuses to serve.
    assert!(other.starts_with("failed to load plugin \"misbehave\": failed to launch plugin: "), "{other}");
    // A server NodeAttestor is not an agent NodeAttestor.
    let external = ExternalPlugins::new();
    let server_side = config(&format!(
        "{}    WorkloadAttestor \"unix\" {{}}\n",
        block("NodeAttestor", "misbehave", &misbehave, &misbehave_args("good", "server", "NodeAttestor"), "")
    ));
    let other = settings(&server_side, &external).await.expect_err("refused");
    external.shutdown().await;
    assert!(
        other.starts_with("failed to bind plugin \"misbehave\": no supported plugin interface found in: "),
        "{other}"
    );
}

/// The agent's key in the plugin: generated and found again by ID, signing (a CSR here; the TLS
/// handshake in the end-to-end tests) through `SignData` from synchronous code on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_key_manager_holds_the_agent_key() {
    use x509_parser::prelude::FromDer as _;
    let Some(cmd) = plugin("keymanager-agent") else { return };
    let external = ExternalPlugins::new();
    let text = crate::test_config::agent_conf(
        "",
        &format!(
            "    NodeAttestor \"join_token\" {{}}\n    WorkloadAttestor \"unix\" {{}}\n{}",
            block("KeyManager", "test_km", &cmd, "", "")
        ),
    );
    let settings = settings(&AgentConfig::from_str(&text, false).unwrap(), &external).await.unwrap();
    let keys = settings.keys;
    assert_eq!(keys.get_key("agent-svid-A").await.unwrap(), None);
    for key_type in [spire_identity::KeyType::EcP256, spire_identity::KeyType::Rsa2048] {
        let key = keys.generate_key("agent-svid-A", key_type).await.unwrap();
        assert!(key.is_remote());
        assert_eq!(keys.get_key("agent-svid-A").await.unwrap().as_ref(), Some(&key));
        let csr = spire_identity::x509::certificate_request(&key, &[], &[]).unwrap();
        let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(&csr).unwrap();
        parsed.verify_signature().expect("the plugin's signature verifies with the key's public key");
        assert_eq!(parsed.certification_request_info.subject_pki.raw, key.public_key_der().as_slice());
    }
    let err = keys.get_local_key("agent-svid-A").await.unwrap_err().to_string();
    assert!(err.contains("held by the key manager"), "{err}");
    external.shutdown().await;
}

/// `validate -config <file>` on an agent config whose plugins are the memory key manager and
/// `plugins` (join_token unless they name a NodeAttestor).
async fn run_validate(plugins: &str) -> Result<Validated, String> {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("agent.conf");
    let node = if plugins.contains("NodeAttestor") { "" } else { "    NodeAttestor \"join_token\" {}\n" };
    let text = crate::test_config::agent_conf("", &format!("    KeyManager \"memory\" {{}}\n{node}{plugins}"));
    std::fs::write(&conf, text).unwrap();
    validate(&["-config".to_owned(), conf.display().to_string()]).await
}

#[tokio::test]
async fn validate_asks_each_external_plugin() {
    let (Some(workload), Some(misbehave), Some(challenge)) =
        (plugin("workload"), plugin("misbehave"), plugin("challenge-agent"))
    else {
        return;
    };
    let valid = run_validate(&block("WorkloadAttestor", "test_workload", &workload, "", "label = \"blue\"")).await;
    assert!(valid.unwrap().notes.is_empty());
    let incomplete = [
        block("NodeAttestor", "challenge", &challenge, "", "node_name = \"n\""),
        block("WorkloadAttestor", "test_workload", &workload, "", "label = \"blue\""),
    ]
    .concat();
    assert_eq!(
        run_validate(&incomplete).await.unwrap_err(),
        "plugin \"challenge\" configuration is invalid: rpc error: code = InvalidArgument desc = node_name and secret are required"
    );
    let refused = run_validate(&block(
        "WorkloadAttestor",
        "misbehave",
        &misbehave,
        &misbehave_args("configure-error", "agent", "WorkloadAttestor"),
        "",
    ))
    .await;
    assert_eq!(
        refused.unwrap_err(),
        "plugin \"misbehave\" configuration is invalid: misbehave: configure refused on purpose"
    );
    let wrong = "        plugin_checksum = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
    assert_eq!(
        run_validate(&block("WorkloadAttestor", "test_workload", &workload, wrong, "")).await.unwrap_err(),
        "failed to load plugin \"test_workload\": failed to launch plugin: checksums did not match"
    );
}

#[test]
fn statuses_are_prefixed_once_as_spire_does() {
    let wrapped = spire_plugin_host::facade_status("WorkloadAttestor", "w", &tonic::Status::unavailable("gone"));
    assert_eq!((wrapped.code(), wrapped.message()), (tonic::Code::Unavailable, "workloadattestor(w): gone"));
    let again = spire_plugin_host::facade_status("WorkloadAttestor", "w", &wrapped);
    assert_eq!(again.message(), "workloadattestor(w): gone");
    let own = spire_plugin_host::facade_status("NodeAttestor", "x", &tonic::Status::internal("x: bad"));
    assert_eq!(own.message(), "nodeattestor(x): bad");
    let ours = spire_plugin_host::facade_error(
        "NodeAttestor",
        "x",
        tonic::Code::Internal,
        "plugin response missing attestation payload",
    );
    assert_eq!(ours.message(), "nodeattestor(x): plugin response missing attestation payload");
}
