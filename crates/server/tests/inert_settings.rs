//! The real `spire-server` started with settings it accepts but does not act on: it starts, and its
//! log says so once per setting; `validate` lists the same settings on stderr.

use std::path::Path;

use spire_testkit::inert::{assert_each_warned_once, assert_validate_lists};

use spire_testkit::process::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

/// Lines for the `server` block. The test config has no other place for top-level blocks, so the
/// lines close the block, add `plugins`, `health_checks` and `telemetry`, and open `server` again:
/// repeated blocks merge, as in HCL v1.
const EXTRA: &str = r#"
    audit_log_enabled = true
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
    "server.experimental.require_pq_kem",
    "plugins.Notifier.k8sbundle",
    "health_checks",
    "telemetry.Prometheus",
];

#[tokio::test]
async fn starts_and_warns_once_per_inert_setting() {
    let mut server = TestServer::start(BIN, EXTRA).await;
    assert!(server.try_wait().is_none(), "the server stopped: {}", server.log());
    let log = server.log();
    assert_each_warned_once(&log, INERT);

    assert_validate_lists(
        Path::new(BIN),
        &server.dir.join("server.conf"),
        "SPIRE server configuration file is valid.\n",
        INERT,
    );
    server.stop();
}
