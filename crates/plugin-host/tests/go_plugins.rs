//! The host against real spire-plugin-sdk plugins (Go, built by `scripts/install-peers.sh
//! spire-plugins` from crates/interop/peers/spire-plugins): start, broker, Init, Configure,
//! Validate, calls, death, shutdown, and each way a plugin can fail to come up.

use std::path::PathBuf;
use std::time::Duration;

use spire_plugin_host::{ExternalPlugin, HostServices, PluginError, PluginMetrics, Spec, Timeouts};
use spire_proto::spire::plugin::agent::workloadattestor::v1 as workloadv1;

const WORKLOAD: &str = "spire.plugin.agent.workloadattestor.v1.WorkloadAttestor";

fn plugin(name: &str) -> Option<PathBuf> {
    spire_testkit::peers::require(&format!("spire-test-plugin-{name}"))
}

fn spec(plugin_type: &str, name: &str, cmd: PathBuf, args: &[&str]) -> Spec {
    Spec {
        plugin_type: plugin_type.into(),
        name: name.into(),
        cmd,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        checksum: None,
    }
}

fn sha256_hex(path: &PathBuf) -> String {
    let bytes = std::fs::read(path).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn short() -> Timeouts {
    Timeouts { start: Duration::from_secs(3), call: Duration::from_secs(3) }
}

#[tokio::test]
async fn a_workload_attestor_runs_with_host_services_and_its_checksum() {
    let Some(cmd) = plugin("workload") else { return };
    let metrics = PluginMetrics::new();
    let mut spec = spec("WorkloadAttestor", "test_workload", cmd.clone(), &[]);
    spec.checksum = Some(sha256_hex(&cmd));
    let plugin = ExternalPlugin::start(&spec, HostServices::new().with(metrics.service()), Timeouts::default())
        .await
        .expect("starts");
    assert_eq!(plugin.require(&[WORKLOAD]).unwrap(), WORKLOAD);
    assert!(plugin.implements("spire.service.common.config.v1.Config"));
    plugin.configure("example.org", "label = \"blue\"\n").await.expect("configures");
    assert!(plugin.validate("example.org", "label = \"blue\"\n").await.is_ok());

    let mut client = workloadv1::workload_attestor_client::WorkloadAttestorClient::new(plugin.channel());
    let pid = i32::try_from(std::process::id()).unwrap();
    let selectors =
        client.attest(workloadv1::AttestRequest { pid }).await.expect("attests").into_inner().selector_values;
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().next().unwrap().to_owned()))
        .unwrap();
    assert_eq!(selectors, vec![format!("uid:{uid}"), "label:blue".to_owned()]);
    // The plugin counted the attestation through the Metrics host service, brokered to us.
    assert_eq!(metrics.get("test_workload_attestations", &[]).map(|m| m.counter), Some(1.0));

    let exited = plugin.exited();
    plugin.shutdown().await;
    assert!(exited.borrow().is_some(), "the process is gone after shutdown");
}

#[tokio::test]
async fn a_wrong_checksum_is_refused_before_the_plugin_runs() {
    let Some(cmd) = plugin("workload") else { return };
    let mut spec = spec("WorkloadAttestor", "test_workload", cmd, &[]);
    spec.checksum = Some("00".repeat(32));
    let err = ExternalPlugin::start(&spec, HostServices::new(), short()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to load plugin \"test_workload\": failed to launch plugin: checksums did not match"
    );
    spec.checksum = Some("abc".into());
    let err = ExternalPlugin::start(&spec, HostServices::new(), short()).await.unwrap_err();
    assert_eq!(err.to_string(), "failed to load plugin \"test_workload\": checksum is not a valid hex string");
}

#[tokio::test]
async fn a_plugin_that_exits_at_start_is_reported_with_its_last_words() {
    let Some(cmd) = plugin("misbehave") else { return };
    let spec = spec("NodeAttestor", "bad", cmd, &["-mode", "exit-at-start"]);
    let err = ExternalPlugin::start(&spec, HostServices::new(), short()).await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "failed to load plugin \"bad\": failed to launch plugin: plugin exited before we could connect"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_plugin_that_never_shakes_hands_times_out() {
    let Some(cmd) = plugin("misbehave") else { return };
    let spec = spec("NodeAttestor", "slow", cmd, &["-mode", "hang-start"]);
    let err = ExternalPlugin::start(&spec, HostServices::new(), short()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to load plugin \"slow\": failed to launch plugin: timeout while waiting for plugin to start"
    );
}

#[tokio::test]
async fn configure_errors_and_hangs_name_the_plugin() {
    let Some(cmd) = plugin("misbehave") else { return };
    let refusing = ExternalPlugin::start(
        &spec("NodeAttestor", "refusing", cmd.clone(), &["-mode", "configure-error"]),
        HostServices::new(),
        short(),
    )
    .await
    .expect("starts");
    let err = refusing.configure("example.org", "").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to configure plugin \"refusing\": rpc error: code = InvalidArgument desc = misbehave: configure refused on purpose"
    );
    let err = refusing.validate("example.org", "").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin \"refusing\" configuration is invalid: misbehave: configure refused on purpose"
    );
    refusing.shutdown().await;

    let hanging = ExternalPlugin::start(
        &spec("NodeAttestor", "hanging", cmd, &["-mode", "hang-configure"]),
        HostServices::new(),
        short(),
    )
    .await
    .expect("starts");
    let err = hanging.configure("example.org", "").await.unwrap_err();
    assert_eq!(err.to_string(), "failed to configure plugin \"hanging\": no answer to Configure within 3s");
    hanging.shutdown().await;
}

#[tokio::test]
async fn a_plugin_that_dies_is_noticed_and_its_calls_fail() {
    let Some(cmd) = plugin("misbehave") else { return };
    let plugin = ExternalPlugin::start(
        &spec(
            "WorkloadAttestor",
            "mortal",
            cmd,
            &["-type", "WorkloadAttestor", "-side", "agent", "-mode", "die-later", "-after", "1"],
        ),
        HostServices::new(),
        short(),
    )
    .await
    .expect("starts");
    let mut exited = plugin.exited();
    tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some))
        .await
        .expect("exit noticed")
        .unwrap();
    let mut client = workloadv1::workload_attestor_client::WorkloadAttestorClient::new(plugin.channel());
    let status = client.attest(workloadv1::AttestRequest { pid: 1 }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    plugin.shutdown().await;
}

#[tokio::test]
async fn a_plugin_of_another_type_is_not_bound() {
    let Some(cmd) = plugin("workload") else { return };
    let plugin = ExternalPlugin::start(
        &spec("WorkloadAttestor", "w", cmd, &[]),
        HostServices::new().with(PluginMetrics::new().service()),
        short(),
    )
    .await
    .expect("starts");
    let err = plugin.require(&["spire.plugin.server.nodeattestor.v1.NodeAttestor"]).unwrap_err();
    assert!(matches!(err, PluginError::Bind { .. }));
    assert!(
        err.to_string().starts_with("failed to bind plugin \"w\": no supported plugin interface found in: ["),
        "{err}"
    );
    plugin.shutdown().await;
}
