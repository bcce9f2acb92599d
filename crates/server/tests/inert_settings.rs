//! The real `spire-server` started with settings it accepts but does not act on: it starts, and its
//! log says so once per setting; `validate` lists the same settings on stderr.

use std::process::Command;

use spire_testkit::process::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

/// Lines for the `server` block. The test config has no other place for top-level blocks, so the
/// lines close the block, add `plugins`, `health_checks` and `telemetry`, and open `server` again:
/// repeated blocks merge, as in HCL v1.
const EXTRA: &str = r#"
    audit_log_enabled = true
    federation {
        bundle_endpoint {
            port = 8443
            profile "https_spiffe" {}
        }
    }
    experimental {
        require_pq_kem = true
    }
}
plugins {
    Notifier "k8sbundle" {
        plugin_data {}
    }
}
health_checks {
    listener_enabled = true
    bind_port = 8080
}
telemetry {
    Prometheus {
        port = 9988
    }
}
server {
"#;

const INERT: &[&str] = &[
    "server.audit_log_enabled",
    "server.federation.bundle_endpoint",
    "server.experimental.require_pq_kem",
    "plugins.Notifier.k8sbundle",
    "health_checks",
    "telemetry.Prometheus",
];

/// The lines of `text` that say `key` has no effect.
fn lines_about<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let needle = format!(" {key} has no effect yet: ");
    text.lines().filter(|l| l.contains(&needle)).collect()
}

#[tokio::test]
async fn starts_and_warns_once_per_inert_setting() {
    let mut server = TestServer::start(BIN, EXTRA).await;
    assert!(server.try_wait().is_none(), "the server stopped: {}", server.log());
    let log = server.log();
    for key in INERT {
        let lines = lines_about(&log, key);
        assert_eq!(lines.len(), 1, "{key}: {lines:?}\n{log}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    }
    let all: Vec<&str> = log.lines().filter(|l| l.contains(" has no effect yet: ")).collect();
    assert_eq!(all.len(), INERT.len(), "{all:#?}");

    let out = Command::new(BIN).arg("validate").arg("-config").arg(server.dir.join("server.conf")).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SPIRE server configuration file is valid.\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in INERT {
        assert_eq!(lines_about(&stderr, key).len(), 1, "{key}: {stderr}");
    }
    assert_eq!(stderr.lines().count(), INERT.len(), "{stderr}");
    server.stop();
}
