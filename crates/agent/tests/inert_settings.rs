//! The real `spire-agent`, attested to a real `spire-server`, started with settings it accepts but
//! does not act on: it starts and serves the Workload API, and its log says so once per setting;
//! `validate` lists the same settings on stderr.

use spire_testkit::inert::{assert_each_warned_once, assert_validate_lists};
use std::path::Path;

use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, server_binary};
use spire_testkit::process::TestServer;

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

/// Lines for the `agent` block. The test config has no other place for top-level blocks, so the
/// lines close the block, add `plugins`, `health_checks` and `telemetry`, and open `agent` again:
/// repeated blocks merge, as in HCL v1.
fn extra(dir: &Path) -> String {
    format!(
        r#"
    admin_socket_path = "{admin}"
    authorized_delegates = ["spiffe://example.org/envoy"]
    disable_workload_api = true
    sds {{
        default_svid_name = "svid"
    }}
    profiling_enabled = true
    experimental {{
        require_pq_kem = true
    }}
}}
plugins {{
    SVIDStore "aws_secretsmanager" {{
        plugin_data {{}}
    }}
}}
health_checks {{
    listener_enabled = true
    bind_port = 8080
}}
telemetry {{
    Prometheus {{
        port = 9988
    }}
}}
agent {{
"#,
        admin = dir.join("admin/admin.sock").display()
    )
}

const INERT: &[&str] = &[
    "agent.admin_socket_path",
    "agent.authorized_delegates",
    "agent.disable_workload_api",
    "agent.sds",
    "agent.profiling_enabled",
    "agent.experimental.require_pq_kem",
    "plugins.SVIDStore.aws_secretsmanager",
    "health_checks",
    "telemetry.Prometheus",
];

#[tokio::test]
async fn starts_and_warns_once_per_inert_setting() {
    let server = TestServer::start(server_binary(Path::new(AGENT)), "").await;
    let token = generate_token(&server_binary(Path::new(AGENT)), &server);
    let tmp = tempfile::tempdir().unwrap();
    let options = AgentOptions { extra_config: extra(tmp.path()), ..AgentOptions::with_token(&token) };
    // Returns once the Workload API socket answers, `disable_workload_api` notwithstanding.
    let mut agent = TestAgent::start(AGENT, tmp.path(), server.port, &options).await;
    assert!(agent.try_wait().is_none(), "the agent stopped: {}", agent.log());
    let log = agent.log();
    assert_each_warned_once(&log, INERT);

    assert_validate_lists(
        Path::new(AGENT),
        &tmp.path().join("agent.conf"),
        "SPIRE agent configuration file is valid.\n",
        INERT,
    );
    agent.stop();
}
