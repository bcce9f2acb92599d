//! The `health_checks` block: an HTTP listener answering liveness and readiness probes.

use crate::decode::Reader;

/// `health_checks { listener_enabled, bind_address, bind_port, live_path, ready_path }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChecks {
    /// Whether the HTTP listener runs (default false).
    pub listener_enabled: bool,
    /// Listen host (default `localhost`).
    pub bind_address: String,
    /// Listen port (default 80).
    pub bind_port: u16,
    /// Liveness path (default `/live`).
    pub live_path: String,
    /// Readiness path (default `/ready`).
    pub ready_path: String,
}

impl Default for HealthChecks {
    fn default() -> Self {
        Self {
            listener_enabled: false,
            bind_address: "localhost".to_owned(),
            bind_port: 80,
            live_path: "/live".to_owned(),
            ready_path: "/ready".to_owned(),
        }
    }
}

impl HealthChecks {
    /// `host:port` to listen on.
    pub fn address(&self) -> String {
        crate::join_host_port(&self.bind_address, self.bind_port)
    }

    pub(crate) fn read(mut r: Reader<'_, '_>) -> Self {
        let d = Self::default();
        let h = Self {
            listener_enabled: r.bool("listener_enabled").unwrap_or(d.listener_enabled),
            bind_address: r.non_empty_string("bind_address").unwrap_or(d.bind_address),
            bind_port: r.int::<u16>("bind_port").filter(|&p| p != 0).unwrap_or(d.bind_port),
            live_path: r.non_empty_string("live_path").unwrap_or(d.live_path),
            ready_path: r.non_empty_string("ready_path").unwrap_or(d.ready_path),
        };
        r.finish();
        h
    }
}
