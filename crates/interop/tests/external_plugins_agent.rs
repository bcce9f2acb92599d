//! Our agent's external plugins (issue 15, the agent side) against SPIRE v1.13.3's server: our
//! `spire-agent` loads the spire-plugin-sdk test plugins through `plugin_cmd` (with
//! `plugin_checksum`), `NodeAttestor "challenge"` (challenge-agent) and `WorkloadAttestor
//! "test_workload"` (workload), with its key in `KeyManager "test_km"` (keymanager-agent), and
//! attests to a SPIRE server loaded with challenge-server: the
//! plugin's payload goes to the server under the plugin's configured name, the server's nonce comes
//! back through our agent to the plugin on the same stream, and a workload gets the X509-SVID of
//! the entry the external workload attestor's selectors match. Then our agent's refusals of a plugin
//! that cannot come up (wrong checksum, exit at start, Configure refused), each naming the plugin.
//!
//! Skipped (with a message) when SPIRE's server or the test plugins are not installed, unless
//! `SPIRE_REQUIRE_PEERS=1`.

mod plugins;

use std::time::{Duration, Instant};

use spiffe::WorkloadApiClient;
use spire_testkit::agent::{AgentOptions, TestAgent, server_cli};
use spire_testkit::peers;
use spire_testkit::process::TestServer;

use plugins::config::{self, LABEL, NODE_NAME, SECRET, TRUST_DOMAIN, data, external};
use plugins::refusal::{self, Daemon, Fault};
use plugins::{Implementation, TestPlugins};

/// The SPIRE server's plugins: the built-in memory KeyManager and the challenge node attestor.
fn server_plugins(plugins: &TestPlugins) -> String {
    let memory = "    KeyManager \"memory\" {\n        plugin_data {}\n    }\n";
    let challenge =
        external("NodeAttestor", "challenge", plugins.get("challenge-server"), &[], &data(&[("secret", SECRET)]));
    format!("{memory}{challenge}")
}

/// Our agent's plugins: the challenge attestor and the test workload attestor, both external, and
/// `more` plugin blocks.
fn agent_options(plugins: &TestPlugins, dir: &std::path::Path, more: &str) -> AgentOptions {
    let attestors = [
        external(
            "NodeAttestor",
            "challenge",
            plugins.get("challenge-agent"),
            &[],
            &data(&[("node_name", NODE_NAME), ("secret", SECRET)]),
        ),
        external("WorkloadAttestor", "test_workload", plugins.get("workload"), &[], &data(&[("label", LABEL)])),
        more.to_owned(),
    ]
    .concat();
    AgentOptions {
        attestors: Some(attestors),
        // The agent SVID's key lives in the plugin: CSRs and TLS client authentication sign there.
        key_manager: Some(external("KeyManager", "test_km", plugins.get("keymanager-agent"), &[], "")),
        discover_workload_path: false,
        extra_config: format!("    log_file = \"{}\"\n", dir.join("agent.log").display()),
        ..AgentOptions::default()
    }
}

/// SPIRE v1.13.3's server with the challenge attestor, and our agent attested by it with
/// [`agent_options`] (`more` plugin blocks added); `None` when a peer is missing (the test skipped).
struct Pair {
    server_bin: std::path::PathBuf,
    server: TestServer,
    agent: TestAgent,
    _tmp: tempfile::TempDir,
}

impl Pair {
    async fn start(more: impl FnOnce(&TestPlugins) -> String) -> Option<Self> {
        let server_bin = peers::require("upstream-spire-server")?;
        let plugins = TestPlugins::find()?;
        let agent_bin = peers::workspace_binary("spire-agent");
        let server_plugins = server_plugins(&plugins);
        let server =
            TestServer::start_with_config(&server_bin, |d, port| config::server(d, port, &server_plugins, true, ""))
                .await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let agent_dir = tmp.path().join("agent");
        let options = agent_options(&plugins, &agent_dir, &more(&plugins));
        let agent = TestAgent::start(&agent_bin, &agent_dir, server.port, &options).await;
        Some(Self { server_bin, server, agent, _tmp: tmp })
    }

    fn logs(&self) -> String {
        format!("--- our agent ---\n{}\n--- SPIRE v1.13.3 server ---\n{}", self.agent.log(), self.server.log())
    }

    /// An entry for the workload (this test) under the agent, selected by the external workload
    /// attestor's selectors only; its SPIFFE ID.
    fn register_workload(&self) -> String {
        let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc/self"));
        let workload_id = format!("spiffe://{TRUST_DOMAIN}/external-plugins/workload");
        server_cli(
            &self.server_bin,
            &self.server,
            &[
                "entry",
                "create",
                "-parentID",
                &agent_id(),
                "-spiffeID",
                &workload_id,
                "-selector",
                &format!("test_workload:uid:{uid}"),
                "-selector",
                &format!("test_workload:label:{LABEL}"),
            ],
        );
        workload_id
    }
}

fn agent_id() -> String {
    format!("spiffe://{TRUST_DOMAIN}/spire/agent/challenge/{NODE_NAME}")
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_v1_13_3_through_external_plugins() {
    let Some(pair) = Pair::start(|_| String::new()).await else { return };
    let Pair { server_bin, server, agent, .. } = &pair;
    let logs = || pair.logs();

    // Attested by the challenge pair: the server's plugin checked the HMAC of its nonce.
    let agent_id = agent_id();
    let shown = server_cli(server_bin, server, &["agent", "show", "-spiffeID", &agent_id]);
    let attestation_type = shown.lines().find_map(|l| l.trim().strip_prefix("Attestation type"));
    assert_eq!(
        attestation_type.map(|r| r.trim_start_matches([' ', ':']).trim()),
        Some("challenge"),
        "{shown}\n{}",
        logs()
    );
    let mut selectors: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Selectors"))
        .map(|r| r.trim_start_matches([' ', ':']).trim())
        .collect();
    selectors.sort_unstable();
    assert_eq!(
        selectors,
        [
            format!("challenge:node_name:{NODE_NAME}").as_str(),
            "challenge:seen_before:false",
            &format!("challenge:server_id:spiffe://{TRUST_DOMAIN}/spire/server"),
        ],
        "{}",
        logs()
    );

    // A workload selected by the external workload attestor only.
    let workload_id = pair.register_workload();
    let chain = wait_for_svid(&agent.endpoint(), &workload_id).await.unwrap_or_else(|why| panic!("{why}\n{}", logs()));
    // No upstream authority: the server's CA is the trust domain's root, not in the chain.
    assert_eq!(chain, 1, "the leaf only");

    // Both plugins' Configure log lines were forwarded into our agent's log, naming the plugin.
    let log = agent.log();
    for name in ["test_km", "challenge", "test_workload"] {
        let field = format!("plugin_name={name}");
        assert!(
            log.lines().any(|l| l.contains(plugins::CONFIGURED_MESSAGE) && l.contains(&field)),
            "{name}'s log not forwarded:\n{}",
            logs()
        );
    }
}

/// A workload attestor whose plugin dies after start: SPIRE's agent logs the exit and keeps running;
/// each attestation then logs the dead plugin's failure (`Unavailable`, prefixed with its name) and
/// the other attestors' selectors still select the workload.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_survives_a_workload_attestor_dying() {
    let args = ["-type", "WorkloadAttestor", "-side", "agent", "-mode", "die-later", "-after", "1"];
    let Some(pair) =
        Pair::start(|plugins| external("WorkloadAttestor", "misbehave", plugins.get("misbehave"), &args, "")).await
    else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let workload_id = pair.register_workload();
    wait_for_svid(&pair.agent.endpoint(), &workload_id).await.unwrap_or_else(|why| panic!("{why}\n{}", pair.logs()));
    let log = pair.agent.log().replace("\\\"", "\"");
    for said in [
        "plugin_name=misbehave",
        r#"workload attestor "misbehave" failed: rpc error: code = Unavailable desc = workloadattestor(misbehave): "#,
    ] {
        assert!(log.contains(said), "no {said:?} in the agent's log:\n{}", pair.logs());
    }
}

/// Waits up to 60 s for the Workload API to serve an X509-SVID for `spiffe_id`; its chain length.
async fn wait_for_svid(endpoint: &str, spiffe_id: &str) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let fetched = async {
            let client = WorkloadApiClient::connect_to(endpoint).await.map_err(|e| e.to_string())?;
            let context = client.fetch_x509_context().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(
                context.svids().iter().find(|s| s.spiffe_id().to_string() == spiffe_id).map(|s| s.cert_chain().len()),
            )
        };
        match fetched.await {
            Ok(Some(length)) => return Ok(length),
            Ok(None) => last = "not served (yet)".into(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("no X509-SVID for {spiffe_id}: {last}"))
}

/// Our agent refuses to start with `fault`: exit 1, its output naming the plugin with `said`.
async fn our_agent_refuses(fault: Fault, said: &str) {
    let Some(refusal) = refusal::start(Implementation::Ours, Daemon::Agent, fault).await else { return };
    let output = refusal.output.replace("\\\"", "\"");
    assert_eq!(refusal.status.and_then(|s| s.code()), Some(1), "{fault:?} should stop the agent:\n{output}");
    assert!(output.contains(said), "{fault:?}: no {said:?} in:\n{output}");
    let name = Daemon::Agent.plugin_name(fault);
    assert!(
        output
            .lines()
            .any(|l| l.contains(&format!("plugin_name={name}")) && l.contains("plugin_type=WorkloadAttestor")),
        "{fault:?}: no log line with the plugin's name and type:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_refuses_a_wrong_checksum() {
    our_agent_refuses(
        Fault::WrongChecksum,
        r#"failed to load plugin "test_workload": failed to launch plugin: checksums did not match"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_refuses_a_plugin_exiting_at_start() {
    our_agent_refuses(Fault::ExitAtStart, r#"failed to load plugin "misbehave": failed to launch plugin: "#).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_refuses_a_plugin_refusing_configure() {
    our_agent_refuses(
        Fault::ConfigureError,
        r#"failed to configure plugin "misbehave": rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose"#,
    )
    .await;
}
