//! The `telemetry` block: metrics sinks. Parsed and kept for the binaries to act on.
//!
//! As in SPIRE, unknown keys inside a sink (`Prometheus { prot = 9988 }`) are refused, while unknown
//! keys at the top of the block only warn (SPIRE does not check them).

use crate::decode::{Reader, UnknownKeys};
use crate::value::Value;

/// `telemetry { ... }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Telemetry {
    /// `Prometheus { host, port, tls {...} }`: serve `/metrics`.
    pub prometheus: Option<Prometheus>,
    /// `DogStatsd = [{ address }]`.
    pub dogstatsd: Vec<StatsdSink>,
    /// `Statsd = [{ address }]`.
    pub statsd: Vec<StatsdSink>,
    /// `M3 = [{ address, env }]`.
    pub m3: Vec<M3Sink>,
    /// `InMem {}`: the in-memory sink (its old `enabled` key is still accepted).
    pub in_mem: Option<InMem>,
    /// `MetricPrefix`.
    pub metric_prefix: Option<String>,
    /// `EnableTrustDomainLabel`.
    pub enable_trust_domain_label: Option<bool>,
    /// `EnableHostnameLabel`.
    pub enable_hostname_label: Option<bool>,
    /// `AllowedPrefixes`.
    pub allowed_prefixes: Vec<String>,
    /// `BlockedPrefixes`.
    pub blocked_prefixes: Vec<String>,
    /// `AllowedLabels`.
    pub allowed_labels: Vec<String>,
    /// `BlockedLabels`.
    pub blocked_labels: Vec<String>,
}

/// The Prometheus sink.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prometheus {
    /// Listen host (SPIRE's default: `localhost`).
    pub host: Option<String>,
    /// Listen port.
    pub port: Option<u16>,
    /// `tls { cert_file, key_file, client_ca_file, use_spire_svid, authorized_spiffe_ids }`, kept raw.
    pub tls: Option<Value>,
}

/// A DogStatsd or Statsd sink.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsdSink {
    /// `host:port` to send to.
    pub address: String,
}

/// An M3 sink.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct M3Sink {
    /// `host:port` to send to.
    pub address: String,
    /// The M3 environment.
    pub env: Option<String>,
}

/// The in-memory sink.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InMem {
    /// The deprecated `enabled` key, if written.
    pub enabled: Option<bool>,
}

impl Telemetry {
    pub(crate) fn read(r: Reader<'_, '_>) -> Self {
        let mut r = r.unknown_keys(UnknownKeys::Warn);
        let mut t = Telemetry { prometheus: r.object("Prometheus").map(read_prometheus), ..Telemetry::default() };
        t.dogstatsd = sinks(&mut r, "DogStatsd", read_statsd);
        t.statsd = sinks(&mut r, "Statsd", read_statsd);
        t.m3 = sinks(&mut r, "M3", read_m3);
        t.in_mem = r.object("InMem").map(|mut m| {
            let enabled = m.bool("enabled");
            m.finish();
            InMem { enabled }
        });
        t.metric_prefix = r.string("MetricPrefix");
        t.enable_trust_domain_label = r.bool("EnableTrustDomainLabel");
        t.enable_hostname_label = r.bool("EnableHostnameLabel");
        t.allowed_prefixes = r.string_list("AllowedPrefixes").unwrap_or_default();
        t.blocked_prefixes = r.string_list("BlockedPrefixes").unwrap_or_default();
        t.allowed_labels = r.string_list("AllowedLabels").unwrap_or_default();
        t.blocked_labels = r.string_list("BlockedLabels").unwrap_or_default();
        r.finish();
        t
    }
}

/// The sinks under `key`: `DogStatsd = [{...}, {...}]` or repeated `DogStatsd {...}` blocks.
fn sinks<T>(r: &mut Reader<'_, '_>, key: &str, read: fn(Reader<'_, '_>) -> T) -> Vec<T> {
    let path = r.key_path(key);
    let mut out = Vec::new();
    for entry in r.take_all(key) {
        let items: Vec<&Value> = match &entry.value.kind {
            crate::value::Kind::List(items) => items.iter().collect(),
            _ => vec![&entry.value],
        };
        for item in items {
            if let Some(sink) = Reader::new(path.clone(), item, r.diags()) {
                out.push(read(sink));
            }
        }
    }
    out
}

fn read_prometheus(mut r: Reader<'_, '_>) -> Prometheus {
    let p = Prometheus { host: r.string("host"), port: r.int("port"), tls: r.take("tls").cloned() };
    r.finish();
    p
}

fn read_statsd(mut r: Reader<'_, '_>) -> StatsdSink {
    let s = StatsdSink { address: r.string("address").unwrap_or_default() };
    r.finish();
    s
}

fn read_m3(mut r: Reader<'_, '_>) -> M3Sink {
    let s = M3Sink { address: r.string("address").unwrap_or_default(), env: r.string("env") };
    r.finish();
    s
}
