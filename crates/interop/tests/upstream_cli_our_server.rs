//! SPIRE's own `spire-server` CLI (v1.13.3) against our server's admin socket, compared with the same
//! CLI against the real SPIRE server: the same commands (`token generate`, `entry create/show/update/
//! delete/count` with their filters, refusals and `-output json`, `bundle set/show/list/count`,
//! `agent list/show/count` for SPIRE's agent attested to each with a join token, `x509 mint`,
//! `jwt mint`) must print the same, once IDs, times, serial numbers, keys, certificates and tokens
//! are normalised (their structure is still compared). Our server's answers are what SPIRE's CLI
//! prints, so any difference is ours to fix; none is expected.

mod cli_compare;

use std::time::Instant;

use cli_compare::{Cli, Report, ServerSide, server_scenario};
use spire_testkit::agent::{AgentOptions, generate_token, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::process::TestServer;
use spire_testkit::upstream::{ServerOptions, UpstreamAgent, UpstreamServer};

#[tokio::test]
async fn spire_server_cli_prints_the_same_against_our_server() {
    let Some([spire_server, spire_agent]) = peers::require_all(["upstream-spire-server", "upstream-spire-agent"])
    else {
        return;
    };
    let started = Instant::now();
    let upstream = UpstreamServer::start(&spire_server, &ServerOptions::default()).await;
    let ours = TestServer::start(peers::workspace_binary("spire-server"), "").await;

    // SPIRE's agent attested to each server with a join token SPIRE's CLI generated.
    let token_a = generate_token(&spire_server, &upstream);
    let token_b = generate_token(&spire_server, &ours);
    let (agent_dir_a, agent_dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let options = |token: &str| AgentOptions {
        sync_interval: "500ms".into(),
        discover_workload_path: false,
        ..AgentOptions::with_token(token)
    };
    let agent_a = UpstreamAgent::start(&spire_agent, agent_dir_a.path(), upstream.port, &options(&token_a)).await;
    let agent_b = UpstreamAgent::start(&spire_agent, agent_dir_b.path(), ours.port, &options(&token_b)).await;

    let (files_a, files_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let a = ServerSide {
        cli: Cli::new("SPIRE CLI → SPIRE server", &spire_server, &upstream.socket),
        agent_id: join_token_agent_id(&token_a),
        dir: files_a.path().to_path_buf(),
    };
    let b = ServerSide {
        cli: Cli::new("SPIRE CLI → our server", &spire_server, &ours.socket),
        agent_id: join_token_agent_id(&token_b),
        dir: files_b.path().to_path_buf(),
    };
    // The federated bundle both sides get: any CA will do, SPIRE server's own.
    let federated = files_a.path().join("other.org.pem");
    std::fs::write(&federated, a.cli.run(&["bundle", "show"]).ok()).expect("write the federated bundle");

    let mut report = Report::new(
        &a.cli.name,
        &b.cli.name,
        vec![files_a.path().into(), files_b.path().into(), upstream.dir.clone(), ours.dir.clone()],
    );
    server_scenario(&mut report, &a, &b, &federated);
    eprintln!("took {:?}", started.elapsed());
    report.finish(|| {
        format!(
            "--- SPIRE server log (tail) ---\n{}\n--- our server log (tail) ---\n{}\n--- agents ---\n{}\n{}",
            tail(&upstream.log()),
            tail(&ours.log()),
            tail(&agent_a.log()),
            tail(&agent_b.log())
        )
    });
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
