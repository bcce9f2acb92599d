//! SPIRE's external plugins (issue 15): plugins written with spire-plugin-sdk, built by
//! `crates/interop/peers/spire-plugins/install.sh` and loaded through `plugin_cmd` (with
//! `plugin_checksum`). One scenario ([`plugins::scenario`]) runs on SPIRE v1.13.3 and on ours and
//! sums up what came out: the agent attested by the challenge node attestor pair (which calls back
//! into the server's AgentStore, IdentityProvider and Metrics host services), the workload selected
//! by the test workload attestor, its X509-SVID signed by a CA whose key the test key manager holds
//! and which the test upstream authority signed, the credential composer's marks on the SVIDs, the
//! notifier's and bundle publisher's files, and the plugins' log lines forwarded into the daemons'
//! logs. Then the refusals, with SPIRE's messages: a wrong checksum, a plugin exiting at start, one
//! refusing Configure; and a plugin dying after start, which SPIRE logs and survives.
//!
//! The tests on our daemons wait for the plugin host (`#[ignore]`d until it lands).

mod plugins;

use std::time::Duration;

use plugins::Implementation;
use plugins::refusal::{self, Fault};
use plugins::scenario;

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_runs_the_test_plugins() {
    let Some(summary) = scenario::run(Implementation::Spire).await else { return };
    assert_eq!(summary, scenario::expected());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "waiting for the plugin host"]
async fn ours_matches_spire() {
    let Some(spire) = scenario::run(Implementation::Spire).await else { return };
    let Some(ours) = scenario::run(Implementation::Ours).await else { return };
    assert_eq!(ours, spire);
}

/// What SPIRE v1.13.3 says when `fault` stops its server (the `error` of its `Fatal run error` and
/// `Server crashed` lines, and what else it logs about the plugin), quotes unescaped.
fn spire_says(fault: Fault) -> &'static [&'static str] {
    match fault {
        Fault::WrongChecksum => &[
            r#"msg="Failed to load plugin" error="failed to launch plugin: checksums did not match" external=true plugin_name=challenge plugin_type=NodeAttestor"#,
            r#"failed to load plugin "challenge": failed to launch plugin: checksums did not match"#,
        ],
        Fault::ExitAtStart => &[
            // The plugin's stderr, forwarded at debug level.
            r#"msg="misbehave: exiting at start on purpose" external=true plugin_name=misbehave plugin_type=NodeAttestor"#,
            r#"msg="plugin process exited" error="exit status 1" external=true"#,
            r#"failed to load plugin "misbehave": failed to launch plugin: Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout\n"#,
        ],
        Fault::ConfigureError => &[
            r#"msg="Failed to configure plugin" error="rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose" external=true plugin_name=misbehave plugin_type=NodeAttestor"#,
            r#"failed to configure plugin "misbehave": rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose"#,
        ],
    }
}

/// `implementation`'s server refuses to start with `fault`: it exits 1 saying what SPIRE says.
async fn refuses(implementation: Implementation, fault: Fault) {
    let Some(refusal) = refusal::server_start(implementation, fault).await else { return };
    let output = refusal.output.replace("\\\"", "\"");
    assert_eq!(
        refusal.status.and_then(|s| s.code()),
        Some(1),
        "{} with {fault:?} should exit 1:\n{output}",
        implementation.name()
    );
    for said in spire_says(fault) {
        assert!(output.contains(said), "{} with {fault:?} does not say {said:?}:\n{output}", implementation.name());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_refuses_a_wrong_checksum() {
    refuses(Implementation::Spire, Fault::WrongChecksum).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_refuses_a_plugin_exiting_at_start() {
    refuses(Implementation::Spire, Fault::ExitAtStart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_refuses_a_plugin_refusing_configure() {
    refuses(Implementation::Spire, Fault::ConfigureError).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "waiting for the plugin host"]
async fn ours_refuses_a_wrong_checksum() {
    refuses(Implementation::Ours, Fault::WrongChecksum).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "waiting for the plugin host"]
async fn ours_refuses_a_plugin_exiting_at_start() {
    refuses(Implementation::Ours, Fault::ExitAtStart).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "waiting for the plugin host"]
async fn ours_refuses_a_plugin_refusing_configure() {
    refuses(Implementation::Ours, Fault::ConfigureError).await;
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
    let said = r#"msg="plugin process exited" error="exit status 1" external=true"#;
    let died = output.lines().find(|l| l.contains(said));
    assert!(
        died.is_some_and(|l| l.contains("plugin_name=misbehave plugin_type=NodeAttestor")),
        "{} does not log {said:?} for the plugin:\n{output}",
        implementation.name()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spire_v1_13_3_survives_a_plugin_dying() {
    survives_a_plugin_dying(Implementation::Spire).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "waiting for the plugin host"]
async fn ours_survives_a_plugin_dying() {
    survives_a_plugin_dying(Implementation::Ours).await;
}
