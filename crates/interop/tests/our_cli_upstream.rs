//! Our CLIs against the real SPIRE (v1.13.3), compared with SPIRE's own CLIs against it:
//!
//! * our `spire-server` admin commands against a SPIRE server, next to SPIRE's `spire-server` against
//!   another SPIRE server set up the same way (the same steps as `upstream_cli_our_server.rs`; each
//!   CLI needs a server of its own since the steps create and delete entries);
//! * our `spire-agent api fetch x509|jwt`, `validate jwt` and `watch` against a SPIRE agent serving
//!   this process, next to SPIRE's `spire-agent api ...` against the same agent.
//!
//! The outputs must be the same once normalised, except what our CLI deliberately does as newer SPIRE
//! releases do (asserted to be there, then undone before comparing): entry labels padded to 23
//! columns, and the API fields SPIRE v1.13.3 does not have yet in `-output json`. See
//! docs/compatibility.md, "CLIs across implementations".

mod cli_compare;

use std::time::{Duration, Instant};

use cli_compare::{
    Cli, Report, ServerSide, WORKLOAD, agent_scenario, agent_scenario_unregistered, entry_label_width,
    newer_api_fields, server_scenario, wait_for_svid, workload_entry_args,
};
use spire_testkit::agent::{AgentOptions, generate_token, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::upstream::{ServerOptions, UpstreamAgent, UpstreamServer};

/// A SPIRE server with a SPIRE agent attested to it.
struct Deployment {
    server: UpstreamServer,
    agent: UpstreamAgent,
    agent_id: String,
    _dir: tempfile::TempDir,
}

impl Deployment {
    async fn start(spire_server: &std::path::Path, spire_agent: &std::path::Path) -> Self {
        let server = UpstreamServer::start(spire_server, &ServerOptions::default()).await;
        let token = generate_token(spire_server, &server);
        let dir = tempfile::tempdir().expect("tempdir");
        let options = AgentOptions {
            sync_interval: "500ms".into(),
            discover_workload_path: false,
            ..AgentOptions::with_token(&token)
        };
        let agent = UpstreamAgent::start(spire_agent, dir.path(), server.port, &options).await;
        Self { server, agent, agent_id: join_token_agent_id(&token), _dir: dir }
    }

    fn logs(&self) -> String {
        let tail = |log: String| {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!("--- server ---\n{}\n--- agent ---\n{}", tail(self.server.log()), tail(self.agent.log()))
    }
}

#[tokio::test]
async fn our_cli_prints_what_spires_prints_against_spire() {
    let Some([spire_server, spire_agent]) = peers::require_all(["upstream-spire-server", "upstream-spire-agent"])
    else {
        return;
    };
    let started = Instant::now();
    let (first, second) =
        tokio::join!(Deployment::start(&spire_server, &spire_agent), Deployment::start(&spire_server, &spire_agent));
    let (files_a, files_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let dirs = vec![
        files_a.path().to_path_buf(),
        files_b.path().to_path_buf(),
        first.server.dir.clone(),
        second.server.dir.clone(),
    ];

    // spire-server: SPIRE's CLI on the first server, ours on the second.
    let a = ServerSide {
        cli: Cli::new("SPIRE CLI → SPIRE server", &spire_server, &first.server.socket),
        agent_id: first.agent_id.clone(),
        dir: files_a.path().to_path_buf(),
    };
    let b = ServerSide {
        cli: Cli::new("our CLI → SPIRE server", peers::workspace_binary("spire-server"), &second.server.socket),
        agent_id: second.agent_id.clone(),
        dir: files_b.path().to_path_buf(),
    };
    let federated = files_a.path().join("other.org.pem");
    std::fs::write(&federated, a.cli.run(&["bundle", "show"]).ok()).expect("write the federated bundle");
    let mut report = Report::new(&a.cli.name, &b.cli.name, dirs.clone());
    report.expect(entry_label_width());
    report.expect(newer_api_fields());
    server_scenario(&mut report, &a, &b, &federated);
    let expected = report.same_after_expected.clone();
    report.finish(|| format!("{}\n{}", first.logs(), second.logs()));
    // The two kept differences were met (and nothing else differed).
    assert_eq!(expected.len(), 2, "{expected:?}");

    // spire-agent: both CLIs against the first deployment's agent (the server scenario set the
    // bundle of other.org the workload's entry federates with).
    let spire_cli = Cli::new("SPIRE agent CLI → SPIRE agent", &spire_agent, &first.agent.socket);
    let our_cli = Cli::new("our agent CLI → SPIRE agent", peers::workspace_binary("spire-agent"), &first.agent.socket);
    let mut report = Report::new(&spire_cli.name, &our_cli.name, dirs);
    agent_scenario_unregistered(&mut report, &spire_cli, &our_cli);
    let args = workload_entry_args(&first.agent_id);
    a.cli.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    wait_for_svid(&spire_cli, WORKLOAD, Duration::from_secs(30), || first.logs()).await;
    agent_scenario(&mut report, &spire_cli, &our_cli, [files_a.path(), files_b.path()]);

    // Kept: SPIRE prints validate's claims with protojson, whose spacing varies by build (Go's
    // detrand); this build of SPIRE puts a space after each comma, ours prints compact JSON.
    let token = {
        let out = spire_cli.run(&["api", "fetch", "jwt", "-audience", "aud1", "-output", "json"]);
        let v: serde_json::Value = serde_json::from_str(out.ok()).expect("JSON");
        v[0]["svids"][0]["svid"].as_str().expect("token").to_owned()
    };
    let claims = |cli: &Cli| {
        let out = cli.run(&["api", "validate", "jwt", "-audience", "aud1", "-svid", &token]);
        out.ok().lines().find(|l| l.starts_with("Claims    : ")).expect("a Claims line").to_owned()
    };
    let (theirs, ours) = (claims(&spire_cli), claims(&our_cli));
    assert!(!ours.contains(", "), "ours is compact: {ours}");
    assert_eq!(theirs.replace(", ", ","), ours, "the same claims, but for protojson's spacing");
    eprintln!("took {:?}", started.elapsed());
    report.finish(|| first.logs());
}
