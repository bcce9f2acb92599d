//! SPIRE's own `spire-agent api fetch x509|jwt`, `validate jwt` and `watch` (v1.13.3) against our
//! agent (on our server), compared with the same CLI against SPIRE's agent (on SPIRE's server): with
//! no identity for the caller, then with an entry for this process (hint, DNS name, a federated trust
//! domain), every command must print the same once IDs, times, keys, certificates and tokens are
//! normalised (JWTs are compared by header and claim names). What our agent answers is what SPIRE's
//! CLI prints, so any difference is ours to fix; none is expected.

mod cli_compare;

use std::time::{Duration, Instant};

use cli_compare::{
    Cli, Report, WORKLOAD, agent_scenario, agent_scenario_unregistered, wait_for_svid, workload_entry_args,
};
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::process::TestServer;
use spire_testkit::upstream::{ServerOptions, UpstreamAgent, UpstreamServer};

#[tokio::test]
async fn spire_agent_cli_prints_the_same_against_our_agent() {
    let Some([spire_server, spire_agent]) = peers::require_all(["upstream-spire-server", "upstream-spire-agent"])
    else {
        return;
    };
    let started = Instant::now();
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let options = |token: &str| AgentOptions {
        sync_interval: "200ms".into(),
        discover_workload_path: false,
        ..AgentOptions::with_token(token)
    };

    // SPIRE's server and agent.
    let upstream = UpstreamServer::start(&spire_server, &ServerOptions::default()).await;
    let token_a = generate_token(&spire_server, &upstream);
    let agent_a =
        UpstreamAgent::start(&spire_agent, &dir_a.path().join("agent"), upstream.port, &options(&token_a)).await;

    // Ours; its admin CLI is ours too (only the agent CLI is under test here).
    let ours_cli = peers::workspace_binary("spire-server");
    let ours = TestServer::start(&ours_cli, "").await;
    let token_b = generate_token(&ours_cli, &ours);
    let agent_b = TestAgent::start(
        peers::workspace_binary("spire-agent"),
        &dir_b.path().join("agent"),
        ours.port,
        &options(&token_b),
    )
    .await;
    let logs = || {
        let tail = |log: String| {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- SPIRE agent ---\n{}\n--- SPIRE server ---\n{}\n--- our agent ---\n{}\n--- our server ---\n{}",
            tail(agent_a.log()),
            tail(upstream.log()),
            tail(agent_b.log()),
            tail(ours.log())
        )
    };

    let a = Cli::new("SPIRE agent CLI → SPIRE agent", &spire_agent, &agent_a.socket);
    let b = Cli::new("SPIRE agent CLI → our agent", &spire_agent, &agent_b.socket);
    let mut report = Report::new(
        &a.name,
        &b.name,
        vec![dir_a.path().into(), dir_b.path().into(), upstream.dir.clone(), ours.dir.clone()],
    );
    agent_scenario_unregistered(&mut report, &a, &b);

    // The workload's entry on each side, federated with other.org (any CA will do as its bundle:
    // SPIRE server's own).
    let federated = dir_a.path().join("other.org.pem");
    let admin_a = Cli::new("SPIRE admin", &spire_server, &upstream.socket);
    let admin_b = Cli::new("our admin", &ours_cli, &ours.socket);
    std::fs::write(&federated, admin_a.run(&["bundle", "show"]).ok()).expect("write the federated bundle");
    let pem = federated.to_str().expect("UTF-8");
    for (admin, agent_id) in [(&admin_a, join_token_agent_id(&token_a)), (&admin_b, join_token_agent_id(&token_b))] {
        admin.run(&["bundle", "set", "-id", "spiffe://other.org", "-path", pem]).ok();
        let args = workload_entry_args(&agent_id);
        admin.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    }
    wait_for_svid(&a, WORKLOAD, Duration::from_secs(30), logs).await;
    wait_for_svid(&b, WORKLOAD, Duration::from_secs(30), logs).await;
    // Both agents have the federated bundle by the time the SVID comes with it.
    for cli in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cli.run(&["api", "fetch", "x509"]).stdout.contains("[spiffe://other.org]") {
            assert!(Instant::now() < deadline, "{}: no federated bundle\n{}", cli.name, logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    agent_scenario(&mut report, &a, &b, [dir_a.path(), dir_b.path()]);
    eprintln!("took {:?}", started.elapsed());
    report.finish(logs);
}
