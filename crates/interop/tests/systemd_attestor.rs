//! The systemd workload attestor end to end, against a real systemd: our server, our agent with
//! `WorkloadAttestor "systemd"` and `"unix"`, and workloads run as real systemd units asking for
//! their SVIDs (`spire-agent api fetch x509` as a unit's `ExecStart`).
//!
//! This machine's PID 1 is not systemd, so the test boots Debian's systemd as PID 1 of its own
//! namespaces ([`systemd_ns`]): it starts the real `dbus-daemon` as the system bus and the units,
//! and answers `GetUnitByPID` and the unit properties as on any host. The agent runs in those
//! namespaces too (through `nsenter`), so it sees the PIDs systemd does, and reaches it on the
//! default system bus address. Skipped, saying why, where that cannot be done (not root, or no
//! systemd, dbus-daemon or util-linux).

mod agent_server;
mod systemd_ns;

use std::path::Path;
use std::time::{Duration, Instant};

use spire_testkit::agent::{AgentOptions, join_token_agent_id};
use spire_testkit::peers;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use systemd_ns::SystemdNs;

/// A oneshot unit fetching its X.509 SVIDs, with what it printed in `<dir>/<name>.out`.
fn fetch_unit(agent_bin: &Path, socket: &Path, dir: &Path, name: &str) -> String {
    format!(
        "[Unit]\nDefaultDependencies=no\n\n[Service]\nType=oneshot\nExecStart={} api fetch x509 -socketPath {}\nStandardOutput=truncate:{}\nStandardError=inherit\n",
        agent_bin.display(),
        socket.display(),
        dir.join(format!("{name}.out")).display()
    )
}

/// Starts unit `name` until what it printed contains `want`, for up to 30 s; what it printed.
async fn run_unit(ns: &SystemdNs, name: &str, want: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let out_file = ns.dir.join(format!("{name}.out"));
    loop {
        let out = ns.run(&["systemctl", "start", &format!("{name}.service")]);
        let said = std::fs::read_to_string(&out_file).unwrap_or_default();
        if out.status.success() && said.contains(want) {
            return Ok(said);
        }
        if Instant::now() >= deadline {
            return Err(format!("{said}{}", String::from_utf8_lossy(&out.stderr)));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Two units get their own SVIDs, one selected by `systemd:id`, the other by
/// `systemd:fragment_path`, and not each other's; a process of the same namespace outside any unit
/// gets its unix identity only: the systemd attestor fails for it (systemd has no unit for its PID)
/// and the unix attestor still speaks for it.
#[tokio::test(flavor = "multi_thread")]
async fn units_get_their_identities_and_a_process_outside_any_unit_its_unix_one() {
    if let Some(why) = systemd_ns::unavailable() {
        eprintln!("skipped: cannot run a real systemd here: {why}");
        return;
    }
    let server_bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    let agent_bin = peers::workspace_binary("spire-agent");
    let server = OurServer::start(&server_bin, &ServerSetup::default()).await;
    let token = server.generate_token();

    let dir = tempfile::tempdir().expect("tempdir");
    let agent_dir = dir.path().join("agent");
    let socket = agent_dir.join("public").join("api.sock");
    let units = [
        ("spire-workload-a.service", fetch_unit(&agent_bin, &socket, dir.path(), "spire-workload-a")),
        ("spire-workload-b.service", fetch_unit(&agent_bin, &socket, dir.path(), "spire-workload-b")),
    ];
    let ns = SystemdNs::boot(dir.path(), &units).await;

    let attestors = "    NodeAttestor \"join_token\" {\n        plugin_data {}\n    }\n    WorkloadAttestor \"systemd\" {\n    }\n    WorkloadAttestor \"unix\" {\n        plugin_data {}\n    }";
    let options = AgentOptions { attestors: Some(attestors.into()), ..AgentOptions::with_token(&token) };
    let wrapper = ns.wrapper(&agent_bin, "spire-agent-in-ns");
    let agent = OurAgent::start(&wrapper, &agent_dir, server.port, &options).await;
    assert_eq!(agent.socket, socket);

    let parent = join_token_agent_id(&token);
    for (id, selector) in [
        ("spiffe://example.org/systemd/a", "systemd:id:spire-workload-a.service"),
        ("spiffe://example.org/systemd/b", "systemd:fragment_path:/run/systemd/system/spire-workload-b.service"),
        ("spiffe://example.org/host", "unix:uid:0"),
    ] {
        server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", id, "-selector", selector]);
    }

    for (unit, own, other) in
        [("spire-workload-a", "/systemd/a", "/systemd/b"), ("spire-workload-b", "/systemd/b", "/systemd/a")]
    {
        let want = format!("spiffe://example.org{own}");
        let said = match run_unit(&ns, unit, &want).await {
            Ok(said) => said,
            Err(said) => panic!(
                "unit {unit} never got {want}: {said}\n--- agent ---\n{}\n--- systemd ---\n{}",
                agent.log(),
                ns.log()
            ),
        };
        assert!(!said.contains(other), "{unit} got {other} too: {said}");
    }

    // A process in the same namespaces but in no unit: the unix identity only.
    let agent_bin_arg = agent_bin.display().to_string();
    let socket_arg = socket.display().to_string();
    let out = ns.run(&[&agent_bin_arg, "api", "fetch", "x509", "-socketPath", &socket_arg]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("spiffe://example.org/host"),
        "{said}{}\n--- agent ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log()
    );
    assert!(!said.contains("/systemd/"), "{said}");
    let log = agent.log();
    let failure = log.lines().find(|l| l.contains("failed to get unit by pid"));
    let Some(failure) = failure else { panic!("the systemd attestor's failure is not logged: {log}") };
    eprintln!("the agent on the process outside any unit: {failure}");

    drop(agent);
    drop(ns);
}
