//! Settings a daemon accepts, so that SPIRE's configuration files load unchanged, but does not act
//! on yet.
//!
//! Each daemon lists its own (`inert_settings` in spire-server and in spire-agent) and logs one
//! warning per setting at start, so that nothing configured is silently ignored. This module holds
//! what the two share: the [`InertSetting`] type, [`WrittenKeys`] (which keys the file wrote, since
//! a block left empty is still a request the typed configuration cannot tell from its absence), and
//! the checks of the parts both daemons have: `telemetry`, `health_checks`, `profiling_*` and
//! `plugins`.
//!
//! A setting is reported when the operator asked for something SPIRE would do and this build does
//! not. A key left at its default is not reported, nor is one SPIRE itself ignores.

use std::collections::BTreeSet;
use std::fmt;

use crate::plugins::Plugins;
use crate::server::Profiling;
use crate::telemetry::Telemetry;
use crate::value::{Kind, Value};

/// A configured setting that has no effect in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InertSetting {
    /// The key path as written in the file (`telemetry.Prometheus`, `agent.sds`), or the flag
    /// (`-disableWorkloadAPI`) when the setting came from the command line.
    pub key: String,
    /// What this build lacks, briefly.
    pub reason: String,
}

impl InertSetting {
    /// A setting `key` that has no effect because of `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

impl fmt::Display for InertSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has no effect yet: {}", self.key, self.reason)
    }
}

/// The key paths a configuration file wrote (`server.federation`, `telemetry.prometheus`,
/// `plugins.keymanager.disk.plugin_cmd`), whatever their values. Block labels are path segments;
/// matching ignores ASCII case, as HCL v1 matches keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WrittenKeys(BTreeSet<String>);

impl WrittenKeys {
    /// Every key path of a parsed document.
    pub fn from_document(doc: &Value) -> Self {
        let mut paths = BTreeSet::new();
        collect(doc, "", &mut paths);
        Self(paths)
    }

    /// Whether the file wrote `path` (dotted, e.g. `agent.sds`).
    pub fn contains(&self, path: &str) -> bool {
        self.0.contains(&path.to_ascii_lowercase())
    }
}

fn collect(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match &value.kind {
        Kind::Object(entries) => {
            for entry in entries {
                let key = entry.key.to_ascii_lowercase();
                let path = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                collect(&entry.value, &path, out);
                out.insert(path);
            }
        }
        // JSON writes repeated blocks as lists of objects: their keys share the list's path.
        Kind::List(items) => items.iter().for_each(|item| collect(item, prefix, out)),
        _ => {}
    }
}

const NO_METRICS: &str = "spire-rs does not export metrics";

/// The `telemetry` block: each sink or option written, or the block itself when it holds none.
pub fn telemetry(t: &Telemetry, written: &WrittenKeys, out: &mut Vec<InertSetting>) {
    let in_mem_enabled = t.in_mem.as_ref().is_some_and(|m| m.enabled != Some(false));
    let keys = [
        ("Prometheus", t.prometheus.is_some()),
        ("DogStatsd", !t.dogstatsd.is_empty()),
        ("Statsd", !t.statsd.is_empty()),
        ("M3", !t.m3.is_empty()),
        ("InMem", in_mem_enabled),
        ("MetricPrefix", t.metric_prefix.is_some()),
        ("EnableTrustDomainLabel", t.enable_trust_domain_label.is_some()),
        ("EnableHostnameLabel", t.enable_hostname_label.is_some()),
        ("AllowedPrefixes", !t.allowed_prefixes.is_empty()),
        ("BlockedPrefixes", !t.blocked_prefixes.is_empty()),
        ("AllowedLabels", !t.allowed_labels.is_empty()),
        ("BlockedLabels", !t.blocked_labels.is_empty()),
    ];
    let set: Vec<&str> = keys.iter().filter(|(_, set)| *set).map(|(key, _)| *key).collect();
    if set.is_empty() {
        if written.contains("telemetry") && t.in_mem.is_none() {
            out.push(InertSetting::new("telemetry", NO_METRICS));
        }
        return;
    }
    out.extend(set.into_iter().map(|key| InertSetting::new(format!("telemetry.{key}"), NO_METRICS)));
}

/// The `health_checks` block, reported whenever it is written: this build has no HTTP listener
/// for it to configure.
pub fn health_checks(written: &WrittenKeys, out: &mut Vec<InertSetting>) {
    if written.contains("health_checks") {
        out.push(InertSetting::new(
            "health_checks",
            "spire-rs serves no HTTP liveness/readiness endpoints (the `healthcheck` command works over the API \
             socket)",
        ));
    }
}

/// `profiling_*` of the `block` (`server` or `agent`): SPIRE only starts the profiler when
/// `profiling_enabled` is true, so the other keys count only then.
pub fn profiling(block: &str, p: &Profiling, out: &mut Vec<InertSetting>) {
    if !p.enabled {
        return;
    }
    let keys = [
        ("profiling_enabled", true),
        ("profiling_port", p.port.is_some()),
        ("profiling_freq", p.freq.is_some()),
        ("profiling_names", !p.names.is_empty()),
    ];
    for (key, _) in keys.iter().filter(|(_, set)| *set) {
        out.push(InertSetting::new(format!("{block}.{key}"), "spire-rs has no profiling endpoint"));
    }
}

/// The names `builtin` lists for `plugin_type`, quoted and joined for an error message:
/// `"join_token", "k8s_psat" and "x509pop"`.
pub fn supported_names(builtin: &[(&str, &[&str])], plugin_type: &str) -> String {
    let names: Vec<String> = builtin
        .iter()
        .find(|(t, _)| *t == plugin_type)
        .map(|(_, names)| names.iter().map(|n| format!("{n:?}")).collect())
        .unwrap_or_default();
    match names.split_last() {
        None => "none".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The enabled plugins this build does not run. `builtin` lists, for each plugin type the daemon
/// has built in, the names it runs; `external` the types it runs as external plugins (`plugin_cmd`).
/// A built-in plugin of a type not listed is reported (the daemon has no plugin of that type at
/// all), and so is an external plugin of a type not in `external`. A built-in with an unlisted name
/// of a listed type is not reported: the daemon refuses to start with it.
pub fn plugins(plugins: &Plugins, builtin: &[(&str, &[&str])], external: &[&str], out: &mut Vec<InertSetting>) {
    for p in plugins.all().iter().filter(|p| p.enabled) {
        if p.is_external() {
            if !external.contains(&p.plugin_type.as_str()) {
                out.push(InertSetting::new(
                    format!("{}.plugin_cmd", p.path()),
                    format!("spire-rs runs no external {} plugins", p.plugin_type),
                ));
            }
        } else if !builtin.iter().any(|(plugin_type, _)| *plugin_type == p.plugin_type) {
            out.push(InertSetting::new(p.path(), format!("spire-rs has no {} plugins", p.plugin_type)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Reader;
    use crate::error::Diagnostics;
    use crate::load::parse_str;

    #[test]
    fn supported_names_read_as_a_list() {
        let builtin: &[(&str, &[&str])] = &[("A", &["x"]), ("B", &["x", "y", "z"]), ("C", &[])];
        assert_eq!(supported_names(builtin, "A"), r#""x""#);
        assert_eq!(supported_names(builtin, "B"), r#""x", "y" and "z""#);
        assert_eq!(supported_names(builtin, "C"), "none");
        assert_eq!(supported_names(builtin, "D"), "none");
    }

    fn keys(out: &[InertSetting]) -> Vec<&str> {
        out.iter().map(|s| s.key.as_str()).collect()
    }

    fn telemetry_of(text: &str) -> Vec<InertSetting> {
        let doc = parse_str(text, false).unwrap();
        let mut diags = Diagnostics::new();
        let t = doc
            .get("telemetry")
            .map_or_else(Telemetry::default, |v| Telemetry::read(Reader::new("telemetry", v, &mut diags).unwrap()));
        assert!(!diags.has_errors());
        let mut out = Vec::new();
        telemetry(&t, &WrittenKeys::from_document(&doc), &mut out);
        out
    }

    #[test]
    fn written_keys_follow_blocks_labels_and_json_lists() {
        let doc = parse_str(
            "agent {\n sds {}\n}\nplugins {\n KeyManager \"disk\" { plugin_cmd = \"/x\" }\n}\nTelemetry { Prometheus {} }",
            false,
        )
        .unwrap();
        let w = WrittenKeys::from_document(&doc);
        for path in ["agent", "agent.sds", "plugins.KeyManager.disk.plugin_cmd", "telemetry.prometheus"] {
            assert!(w.contains(path), "{path}");
        }
        assert!(!w.contains("agent.sds.default_svid_name") && !w.contains("health_checks"));
        let doc = parse_str(r#"{"plugins": {"NodeAttestor": [{"a": {"plugin_data": {"x": 1}}}]}}"#, false).unwrap();
        assert!(WrittenKeys::from_document(&doc).contains("plugins.NodeAttestor.a.plugin_data.x"));
    }

    #[test]
    fn telemetry_keys() {
        assert!(telemetry_of("").is_empty());
        assert_eq!(keys(&telemetry_of("telemetry {}")), ["telemetry"]);
        assert!(telemetry_of("telemetry { InMem { enabled = false } }").is_empty());
        let out = telemetry_of(
            r#"telemetry {
  Prometheus { port = 9988 }
  DogStatsd = [{ address = "localhost:8125" }]
  Statsd = [{ address = "localhost:1337" }]
  M3 = [{ address = "localhost:9000", env = "prod" }]
  InMem {}
  MetricPrefix = "spire"
  EnableTrustDomainLabel = true
  EnableHostnameLabel = false
  AllowedPrefixes = ["a"]
  BlockedPrefixes = ["b"]
  AllowedLabels = ["c"]
  BlockedLabels = ["d"]
}"#,
        );
        assert_eq!(
            keys(&out),
            [
                "telemetry.Prometheus",
                "telemetry.DogStatsd",
                "telemetry.Statsd",
                "telemetry.M3",
                "telemetry.InMem",
                "telemetry.MetricPrefix",
                "telemetry.EnableTrustDomainLabel",
                "telemetry.EnableHostnameLabel",
                "telemetry.AllowedPrefixes",
                "telemetry.BlockedPrefixes",
                "telemetry.AllowedLabels",
                "telemetry.BlockedLabels",
            ]
        );
        assert_eq!(out[0].to_string(), "telemetry.Prometheus has no effect yet: spire-rs does not export metrics");
    }

    #[test]
    fn health_checks_when_written() {
        let mut out = Vec::new();
        health_checks(&WrittenKeys::from_document(&parse_str("server {}", false).unwrap()), &mut out);
        assert!(out.is_empty());
        health_checks(&WrittenKeys::from_document(&parse_str("health_checks {}", false).unwrap()), &mut out);
        assert_eq!(keys(&out), ["health_checks"]);
    }

    #[test]
    fn profiling_only_when_enabled() {
        let mut out = Vec::new();
        let mut p = Profiling { enabled: false, port: Some(8080), freq: Some(5), names: vec!["heap".into()] };
        profiling("server", &p, &mut out);
        assert!(out.is_empty());
        p.enabled = true;
        profiling("agent", &p, &mut out);
        assert_eq!(
            keys(&out),
            ["agent.profiling_enabled", "agent.profiling_port", "agent.profiling_freq", "agent.profiling_names"]
        );
    }

    #[test]
    fn plugin_types_and_external_commands() {
        let doc = parse_str(
            r#"plugins {
  KeyManager "disk" { plugin_cmd = "/opt/km" }
  KeyManager "aws_kms" {}
  Notifier "k8sbundle" {}
  Notifier "gcs_bundle" { enabled = false }
  Notifier "mine" { plugin_cmd = "/opt/notifier" }
  SVIDStore "store" { plugin_cmd = "/opt/store" }
  NodeAttestor "join_token" {}
}"#,
            false,
        )
        .unwrap();
        let mut diags = Diagnostics::new();
        let r = Reader::new("plugins", doc.get("plugins").unwrap(), &mut diags).unwrap();
        let p = Plugins::read(r, &["KeyManager", "Notifier", "NodeAttestor", "SVIDStore"]);
        let mut out = Vec::new();
        let builtin: &[(&str, &[&str])] = &[("KeyManager", &["disk", "memory"]), ("NodeAttestor", &["join_token"])];
        plugins(&p, builtin, &["KeyManager", "Notifier"], &mut out);
        assert_eq!(keys(&out), ["plugins.Notifier.k8sbundle", "plugins.SVIDStore.store.plugin_cmd"]);
    }
}
