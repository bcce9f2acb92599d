//! Selectors, configuration and error messages; the failures against a real `dbus-daemon` that has no
//! systemd on it. A real systemd serving real units is in `crates/interop/tests/systemd_attestor.rs`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spire_config::PluginConfig;

use super::*;

#[test]
fn selector_values_are_spire_s_in_spire_s_order() {
    let unit = UnitInfo { id: "nginx.service".into(), fragment_path: "/lib/systemd/system/nginx.service".into() };
    assert_eq!(unit.selector_values(), ["id:nginx.service", "fragment_path:/lib/systemd/system/nginx.service"]);
    // A scope has no unit file: SPIRE still returns the (empty) selector value.
    let scope = UnitInfo { id: "session-2.scope".into(), fragment_path: String::new() };
    assert_eq!(scope.selector_values(), ["id:session-2.scope", "fragment_path:"]);
}

#[test]
fn config_takes_no_keys() {
    let plugin = |data: &str| PluginConfig::built_in("WorkloadAttestor", "systemd", data).unwrap();
    check_config(&plugin("")).unwrap();
    check_config(&plugin("{}")).unwrap();
    let err = check_config(&plugin("bus = \"x\"")).unwrap_err().to_string();
    assert!(
        err.starts_with("plugins.WorkloadAttestor.systemd.plugin_data: no supported configuration interface found ("),
        "{err}"
    );
    assert!(err.contains("unknown configuration key \"bus\""), "{err}");
}

#[test]
fn error_messages_are_spire_s() {
    let method_error = |name: &str, description: Option<&str>| {
        let call = zbus::message::Message::method_call("/", "M").unwrap().build(&()).unwrap();
        let reply = zbus::message::Message::error(&call.header(), name).unwrap().build(&()).unwrap();
        zbus::Error::MethodError(name.try_into().unwrap(), description.map(str::to_owned), reply)
    };
    let no_unit = SystemdError::UnitByPid {
        pid: 7,
        error: method_error("org.freedesktop.systemd1.NoUnitForPID", Some("PID 7 does not belong to any loaded unit.")),
    };
    assert_eq!(no_unit.to_string(), "failed to get unit by pid 7: PID 7 does not belong to any loaded unit.");
    let unnamed = SystemdError::Property { property: "Id", error: method_error("org.example.Failed", None) };
    assert_eq!(unnamed.to_string(), "error getting value for Id: org.example.Failed");
    let not_a_string = SystemdError::NotAString { property: "FragmentPath", value: "uint32 5".into() };
    assert_eq!(not_a_string.to_string(), "Returned value for FragmentPath was not a string: uint32 5");
    assert_eq!(SystemdError::InvalidPid(-1).to_string(), "invalid value for PID: -1 is out of range");
}

#[tokio::test]
async fn an_unreachable_bus_fails_with_spire_s_message() {
    let dir = tempfile::tempdir().unwrap();
    let attestor = SystemdAttestor::with_address(format!("unix:path={}", dir.path().join("no.sock").display()));
    let err = attestor.unit_info(1).await.unwrap_err().to_string();
    assert!(err.starts_with("failed to open dbus connection: "), "{err}");
    // Not cached: the next call tries again.
    assert!(attestor.connection.lock().await.is_none());
}

/// A real `dbus-daemon` on a private socket, killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dbus-daemon` listening at `dir/bus`, or `None` when it is not installed.
fn dbus_daemon(dir: &Path) -> Option<Bus> {
    let socket = dir.join("bus");
    let config = dir.join("bus.conf");
    // No service directories: nothing can be activated, so systemd's name stays unowned.
    let conf = format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/><allow user="*"/></policy>
</busconfig>
"#,
        socket.display()
    );
    std::fs::write(&config, conf).unwrap();
    let child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .arg("--nofork")
        .arg("--nopidfile")
        .stdout(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("dbus-daemon: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "dbus-daemon did not listen at {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Bus { child, address: format!("unix:path={}", socket.display()) })
}

#[tokio::test]
async fn a_bus_without_systemd_fails_the_attestation() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bus) = dbus_daemon(dir.path()) else {
        eprintln!("skipped: dbus-daemon is not installed (Debian's dbus-daemon package)");
        return;
    };
    let attestor = SystemdAttestor::with_address(bus.address.clone());
    let pid = i32::try_from(std::process::id()).unwrap();
    let err = attestor.unit_info(pid).await.unwrap_err();
    assert!(matches!(err, SystemdError::UnitByPid { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("failed to get unit by pid {pid}: ")), "{message}");
    assert!(message.contains("org.freedesktop.systemd1"), "{message}");

    // Through the plugin interface the failure is the plugin's, for the host to log and skip.
    let err = attestor.attest(Process::from_pid(pid)).await.unwrap_err();
    assert!(matches!(err, AttestError::Plugin(_)), "{err:?}");

    // The connection is kept; once the bus goes away, the next call reconnects and says so.
    assert!(attestor.connection.lock().await.is_some());
    drop(bus);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let message = attestor.unit_info(pid).await.unwrap_err().to_string();
        if message.starts_with("failed to open dbus connection: ") {
            break;
        }
        assert!(Instant::now() < deadline, "still connected after the bus stopped: {message}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_unreachable_bus_does_not_stop_the_other_attestors() {
    use std::sync::Arc;

    use crate::workload_attestor::{UnixAttestor, UnixConfig, WorkloadAttestors};

    let dir = tempfile::tempdir().unwrap();
    let systemd = SystemdAttestor::with_address(format!("unix:path={}", dir.path().join("no.sock").display()));
    let attestors = WorkloadAttestors::new([
        Arc::new(systemd) as Arc<dyn WorkloadAttestor>,
        Arc::new(UnixAttestor::new(UnixConfig::default())),
    ]);
    let pid = i32::try_from(std::process::id()).unwrap();
    let selectors = attestors.attest_pid(pid).await.unwrap();
    let shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
    assert!(shown.iter().any(|s| s.starts_with("unix:uid:")), "{shown:?}");
    assert!(!shown.iter().any(|s| s.starts_with("systemd:")), "{shown:?}");
}
