//! SPIRE's external plugins (issue 15): plugins written with spire-plugin-sdk, built by
//! `crates/interop/peers/spire-plugins/install.sh` and loaded through `plugin_cmd` (with
//! `plugin_checksum`). One scenario ([`plugins::scenario`]) runs on SPIRE v1.13.3 and on ours and
//! sums up what came out: the agent attested by the challenge node attestor pair (which calls back
//! into the server's AgentStore, IdentityProvider and Metrics host services), the workload selected
//! by the test workload attestor, its X509-SVID signed by a CA whose key the test key manager holds
//! and which the test upstream authority signed, the credential composer's marks on the SVIDs, the
//! notifier's and bundle publisher's files, and the plugins' log lines forwarded into the daemons'
//! logs. Then the refusals of the server and of the agent, with SPIRE's messages: a wrong checksum,
//! a plugin exiting at start, one refusing Configure; and a plugin dying after start, which SPIRE logs and survives. SPIRE's
//! `validate` starts no plugin.
//!
//! Ours say the same, except where we chose clearer words: a plugin exiting at start is reported
//! with go-plugin's "plugin exited before we could connect" and the plugin's last output (SPIRE's
//! host reads its closed stdout as an "Unrecognized remote plugin message"), and our `validate` runs
//! each plugin's Validate.

mod plugins;

use std::time::Duration;

use plugins::Implementation;
use plugins::refusal::{self, Daemon, Fault};
use plugins::scenario;

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_runs_the_test_plugins() {
    let Some(summary) = scenario::run(Implementation::Spire).await else { return };
    assert_eq!(summary, scenario::expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_matches_spire() {
    let Some(spire) = scenario::run(Implementation::Spire).await else { return };
    let Some(ours) = scenario::run(Implementation::Ours).await else { return };
    assert_eq!(ours, spire);
}

/// What `implementation` says when `fault` stops a daemon (SPIRE v1.13.3's words, ours where noted): the error it ends with (in the server's
/// `Fatal run error` and `Server crashed` log lines, the agent's `Agent crashed`), and log lines
/// about the plugin, each given as the parts it holds (message, error, the `plugin_name` and
/// `plugin_type` fields), so that a log format of our own with SPIRE's words and fields matches too.
/// Quotes are unescaped.
struct Said {
    fatal: String,
    lines: Vec<Vec<String>>,
}

fn says(implementation: Implementation, daemon: Daemon, fault: Fault) -> Said {
    let name = daemon.plugin_name(fault);
    let fields = [format!("plugin_name={name}"), format!("plugin_type={}", daemon.plugin_type())];
    let line = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).chain(fields.iter().cloned()).collect();
    match fault {
        Fault::ExitAtStart if implementation == Implementation::Ours => Said {
            fatal: format!(
                r#"failed to load plugin "{name}": failed to launch plugin: plugin exited before we could connect (its last output: misbehave: exiting at start on purpose)"#
            ),
            lines: vec![
                line(&["misbehave: exiting at start on purpose"]),
                line(&["plugin process exited", "exit status 1"]),
                line(&["Failed to load plugin", "plugin exited before we could connect"]),
            ],
        },
        Fault::WrongChecksum => Said {
            fatal: format!(r#"failed to load plugin "{name}": failed to launch plugin: checksums did not match"#),
            lines: vec![line(&["Failed to load plugin", "failed to launch plugin: checksums did not match"])],
        },
        Fault::ExitAtStart => Said {
            fatal: format!(
                r#"failed to load plugin "{name}": failed to launch plugin: Unrecognized remote plugin message: "#
            ),
            lines: vec![
                // The plugin's stderr, forwarded (at debug level).
                line(&["misbehave: exiting at start on purpose"]),
                line(&["plugin process exited", "exit status 1"]),
                line(&["Failed to load plugin", "Failed to read any lines from plugin's stdout"]),
            ],
        },
        Fault::HangStart => Said {
            fatal: format!(
                r#"failed to load plugin "{name}": failed to launch plugin: timeout while waiting for plugin to start"#
            ),
            lines: vec![line(&["Failed to load plugin", "timeout while waiting for plugin to start"])],
        },
        Fault::HangConfigure => Said {
            fatal: format!(r#"failed to configure plugin "{name}": no answer to Configure within 3s"#),
            lines: vec![line(&["Failed to configure plugin", "no answer to Configure within 3s"])],
        },
        Fault::ConfigureError => Said {
            fatal: format!(
                r#"failed to configure plugin "{name}": rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose"#
            ),
            lines: vec![line(&[
                "Failed to configure plugin",
                "rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose",
            ])],
        },
    }
}

/// Whether one line of `output` holds every one of `parts`.
fn has_line_with<S: AsRef<str>>(output: &str, parts: &[S]) -> bool {
    output.lines().any(|line| parts.iter().all(|p| line.contains(p.as_ref())))
}

/// `implementation`'s `daemon` refuses to start with `fault`: it exits 1 saying what SPIRE says.
async fn refuses(implementation: Implementation, daemon: Daemon, fault: Fault) {
    let Some(refusal) = refusal::start(implementation, daemon, fault).await else { return };
    let output = refusal.output.replace("\\\"", "\"");
    let who = format!("{}'s {daemon:?} with {fault:?}", implementation.name());
    assert_eq!(refusal.status.and_then(|s| s.code()), Some(1), "{who} should exit 1:\n{output}");
    let said = says(implementation, daemon, fault);
    assert!(output.contains(&said.fatal), "{who} does not end with {:?}:\n{output}", said.fatal);
    for parts in &said.lines {
        assert!(has_line_with(&output, parts), "{who} logs no line with {parts:?}:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_server_refuses_a_wrong_checksum() {
    refuses(Implementation::Spire, Daemon::Server, Fault::WrongChecksum).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_server_refuses_a_plugin_exiting_at_start() {
    refuses(Implementation::Spire, Daemon::Server, Fault::ExitAtStart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_server_refuses_a_plugin_refusing_configure() {
    refuses(Implementation::Spire, Daemon::Server, Fault::ConfigureError).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_agent_refuses_a_wrong_checksum() {
    refuses(Implementation::Spire, Daemon::Agent, Fault::WrongChecksum).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_agent_refuses_a_plugin_exiting_at_start() {
    refuses(Implementation::Spire, Daemon::Agent, Fault::ExitAtStart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_agent_refuses_a_plugin_refusing_configure() {
    refuses(Implementation::Spire, Daemon::Agent, Fault::ConfigureError).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_server_refuses_a_wrong_checksum() {
    refuses(Implementation::Ours, Daemon::Server, Fault::WrongChecksum).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_server_refuses_a_plugin_exiting_at_start() {
    refuses(Implementation::Ours, Daemon::Server, Fault::ExitAtStart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_server_refuses_a_plugin_refusing_configure() {
    refuses(Implementation::Ours, Daemon::Server, Fault::ConfigureError).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_agent_refuses_a_wrong_checksum() {
    refuses(Implementation::Ours, Daemon::Agent, Fault::WrongChecksum).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_agent_refuses_a_plugin_exiting_at_start() {
    refuses(Implementation::Ours, Daemon::Agent, Fault::ExitAtStart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_agent_refuses_a_plugin_refusing_configure() {
    refuses(Implementation::Ours, Daemon::Agent, Fault::ConfigureError).await;
}

/// A NodeAttestor plugin that exits 3 s after it was configured: SPIRE v1.13.3 logs the exit (at
/// error, naming the plugin) and keeps running; it does not restart the plugin.
async fn survives_a_plugin_dying(implementation: Implementation) {
    let observe = Duration::from_secs(8);
    let Some(run) = refusal::server_with_dying_plugin(implementation, observe).await else { return };
    let output = run.output.replace("\\\"", "\"");
    assert!(
        run.status.is_none(),
        "{} stopped ({:?}) when its plugin died:\n{output}",
        implementation.name(),
        run.status
    );
    let said = ["plugin process exited", "exit status 1", "plugin_name=misbehave", "plugin_type=NodeAttestor"];
    assert!(has_line_with(&output, &said), "{} logs no line with {said:?}:\n{output}", implementation.name());
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_survives_a_plugin_dying() {
    survives_a_plugin_dying(Implementation::Spire).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_survives_a_plugin_dying() {
    survives_a_plugin_dying(Implementation::Ours).await;
}

/// `spire-server validate` in SPIRE v1.13.3 only loads the configuration: it starts no plugin (so
/// neither the checksum nor the plugin's Validate RPC is checked) and calls every such config valid.
fn validate_starts_no_plugin(implementation: Implementation) {
    for fault in [Fault::WrongChecksum, Fault::ExitAtStart, Fault::ConfigureError] {
        let Some((code, said)) = refusal::validate(implementation, fault) else { return };
        assert_eq!(
            (code, said.as_str()),
            (Some(0), "SPIRE server configuration file is valid."),
            "{} validate with {fault:?}",
            implementation.name()
        );
    }
}

#[test]
fn spire_v1_13_3_validate_starts_no_plugin() {
    validate_starts_no_plugin(Implementation::Spire);
}

/// Our `spire-server validate` starts each external plugin and runs its Validate (beyond SPIRE
/// v1.13.3, as issue 15 asks): each fault makes the configuration invalid, naming the plugin.
#[test]
fn ours_validate_runs_each_plugins_validate() {
    let expected = [
        (
            Fault::WrongChecksum,
            r#"failed to load plugin "challenge": failed to launch plugin: checksums did not match"#,
        ),
        (
            Fault::ExitAtStart,
            r#"failed to load plugin "misbehave": failed to launch plugin: plugin exited before we could connect"#,
        ),
        (
            Fault::ConfigureError,
            r#"plugin "misbehave" configuration is invalid: misbehave: configure refused on purpose"#,
        ),
    ];
    for (fault, message) in expected {
        let Some((code, said)) = refusal::validate(Implementation::Ours, fault) else { return };
        assert_eq!(code, Some(1), "validate with {fault:?}: {said}");
        assert!(said.contains(message), "validate with {fault:?} says {said:?}, not {message:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_server_gives_up_on_a_plugin_that_never_starts() {
    refuses(Implementation::Ours, Daemon::Server, Fault::HangStart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_agent_gives_up_on_a_plugin_that_never_answers_configure() {
    refuses(Implementation::Ours, Daemon::Agent, Fault::HangConfigure).await;
}
