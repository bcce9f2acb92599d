//! Which configured settings have no effect in this build of the agent.
//!
//! SPIRE's `agent.conf` files load unchanged, so they may ask for features spire-rs does not have
//! yet. Rather than ignore them silently, the agent logs one warning per such setting at start (and
//! `spire-agent validate` prints them). A setting counts when the operator set it: a key left at
//! its default is not reported, a block written empty is. Plugins the agent cannot run at all (a
//! WorkloadAttestor other than `unix`, say) are not listed here: they stop the agent with an error.
//! `disable_sds_api` is not listed either: the agent serves no SDS, which is what it asks for.

use spire_config::agent::{
    AgentConfig, DEFAULT_JWT_SVID_CACHE_HIT_TIMEOUT, DEFAULT_REBOOTSTRAP_DELAY, RebootstrapMode,
};
use spire_config::inert::{self, InertSetting};

/// The plugins this build runs, per plugin type; the agent has no SVIDStore plugins.
pub(crate) const BUILTIN_PLUGINS: &[(&str, &[&str])] = &[
    ("KeyManager", &["disk", "memory"]),
    ("NodeAttestor", spire_attestation::NODE_ATTESTORS),
    ("WorkloadAttestor", &["unix", "k8s", "docker", "systemd"]),
];

/// The plugin types the agent runs as external plugins (`plugin_cmd`).
pub(crate) const EXTERNAL_PLUGINS: &[&str] = &["KeyManager", "NodeAttestor", "WorkloadAttestor"];

/// The settings of `config` that have no effect, block by block in the order of SPIRE's docs.
pub fn find(config: &AgentConfig) -> Vec<InertSetting> {
    let mut out = Vec::new();
    let mut add = |key: &str, reason: &str| out.push(InertSetting::new(key, reason));
    if config.admin_socket_path.is_some() {
        add("agent.admin_socket_path", "spire-rs has no agent admin API (Delegated Identity, debug, logger)");
    }
    if !config.authorized_delegates.is_empty() {
        add("agent.authorized_delegates", "spire-rs serves no Delegated Identity API");
    }
    if config.disable_workload_api {
        // From the file, or else from `-disableWorkloadAPI`.
        let key = if config.written.contains("agent.disable_workload_api") {
            "agent.disable_workload_api"
        } else {
            "-disableWorkloadAPI"
        };
        add(key, "the Workload API is served regardless");
    }
    if !config.log_selectors.is_empty() {
        add("agent.log_selectors", "the Workload API logs no selectors of callers it issues no identity to");
    }
    if config.rebootstrap_mode != RebootstrapMode::Never {
        add("agent.rebootstrap_mode", "the agent does not bootstrap again when it stops trusting the server");
        if config.rebootstrap_delay != DEFAULT_REBOOTSTRAP_DELAY {
            add("agent.rebootstrap_delay", "the agent does not bootstrap again when it stops trusting the server");
        }
    }
    if config.retry_bootstrap {
        add("agent.retry_bootstrap", "a failed first attestation stops the agent");
    }
    if config.written.contains("agent.sds") {
        add("agent.sds", "spire-rs serves no Envoy SDS API");
    }
    inert::profiling("agent", &config.profiling, &mut out);
    experimental(config, &mut out);
    inert::plugins(&config.plugins, BUILTIN_PLUGINS, EXTERNAL_PLUGINS, &mut out);
    inert::health_checks(&config.written, &mut out);
    inert::telemetry(&config.telemetry, &config.written, &mut out);
    out
}

/// `agent.experimental`. `named_pipe_name` and `admin_named_pipe_name` are refused off Windows, as
/// SPIRE refuses them.
fn experimental(config: &AgentConfig, out: &mut Vec<InertSetting>) {
    let e = &config.experimental;
    let mut add = |key: &str, reason: &str| out.push(InertSetting::new(format!("agent.experimental.{key}"), reason));
    if !e.use_sync_authorized_entries {
        add("use_sync_authorized_entries", "the agent always syncs with SyncAuthorizedEntries");
    }
    if e.jwt_svid_cache_hit_timeout != DEFAULT_JWT_SVID_CACHE_HIT_TIMEOUT {
        add("jwt_svid_cache_hit_timeout", "renewing a cached JWT-SVID has no shorter timeout");
    }
    if e.require_pq_kem {
        add("require_pq_kem", "TLS key exchange is not restricted to post-quantum groups");
    }
    if !e.feature_flags.is_empty() {
        add("feature_flags", "spire-rs has no developer feature flags");
    }
    if e.ratelimit.is_some() {
        add("ratelimit", "the Workload API is not rate-limited");
    }
    if e.broker.is_some() {
        add("broker", "spire-rs serves no SPIFFE Broker API");
    }
}

#[cfg(test)]
mod tests {
    use crate::test_config::agent_conf;
    use spire_config::AgentOverrides;

    use super::*;

    /// A valid config with `agent_extra` in the agent block, `plugins_extra` in the plugins block
    /// and `rest` at the top level.
    fn config_with(agent_extra: &str, plugins_extra: &str, rest: &str, flags: &AgentOverrides) -> AgentConfig {
        let agent_extra = format!("socket_path = \"/tmp/inert/public/api.sock\"\n    {agent_extra}");
        let plugins = format!(
            "    NodeAttestor \"join_token\" {{}}\n    KeyManager \"memory\" {{}}\n    WorkloadAttestor \"unix\" {{}}\n    {plugins_extra}"
        );
        let text = format!("{}{rest}\n", agent_conf(&agent_extra, &plugins));
        AgentConfig::load_str(&text, false, flags).unwrap()
    }

    fn config(agent_extra: &str, plugins_extra: &str, rest: &str) -> AgentConfig {
        config_with(agent_extra, plugins_extra, rest, &AgentOverrides::default())
    }

    fn keys(config: &AgentConfig) -> Vec<String> {
        find(config).into_iter().map(|s| s.key).collect()
    }

    #[test]
    fn defaults_report_nothing() {
        assert!(find(&config("", "", "")).is_empty());
        // Keys written at their default, or that SPIRE ignores too, are not reported.
        let c = config(
            r#"disable_workload_api = false
    disable_sds_api = true
    rebootstrap_delay = "1m"
    retry_bootstrap = false
    log_selectors = []
    profiling_port = 6060
    experimental {
        use_sync_authorized_entries = true
        sync_interval = "10s"
    }"#,
            "",
            "telemetry { InMem { enabled = false } }",
        );
        assert!(find(&c).is_empty(), "{:?}", find(&c));
    }

    #[test]
    fn every_inert_key() {
        let c = config(
            r#"admin_socket_path = "/tmp/inert/admin/admin.sock"
    authorized_delegates = ["spiffe://example.org/envoy"]
    allowed_foreign_jwt_claims = ["email"]
    disable_workload_api = true
    log_selectors = ["unix:uid"]
    rebootstrap_mode = "auto"
    rebootstrap_delay = "1m"
    retry_bootstrap = true
    sds {
        default_svid_name = "svid"
    }
    profiling_enabled = true
    profiling_port = 6060
    experimental {
        use_sync_authorized_entries = false
        jwt_svid_cache_hit_timeout = "10s"
        require_pq_kem = true
        feature_flags = ["test_flag"]
        ratelimit {
            fetch_x509_svid = 10
        }
        broker {
            socket_path = "/tmp/inert/broker.sock"
        }
    }"#,
            r#"SVIDStore "aws_secretsmanager" { plugin_data { region = "us-east-1" } }"#,
            "health_checks { listener_enabled = true }\ntelemetry { DogStatsd = [{ address = \"localhost:8125\" }] }",
        );
        assert_eq!(
            keys(&c),
            [
                "agent.admin_socket_path",
                "agent.authorized_delegates",
                "agent.disable_workload_api",
                "agent.log_selectors",
                "agent.rebootstrap_mode",
                "agent.rebootstrap_delay",
                "agent.retry_bootstrap",
                "agent.sds",
                "agent.profiling_enabled",
                "agent.profiling_port",
                "agent.experimental.use_sync_authorized_entries",
                "agent.experimental.jwt_svid_cache_hit_timeout",
                "agent.experimental.require_pq_kem",
                "agent.experimental.feature_flags",
                "agent.experimental.ratelimit",
                "agent.experimental.broker",
                "plugins.SVIDStore.aws_secretsmanager",
                "health_checks",
                "telemetry.DogStatsd",
            ]
        );
        assert_eq!(find(&c)[7].to_string(), "agent.sds has no effect yet: spire-rs serves no Envoy SDS API");
    }

    #[test]
    fn empty_blocks_count_as_set() {
        let c = config("sds {}", "", "health_checks {}\ntelemetry {}");
        assert_eq!(keys(&c), ["agent.sds", "health_checks", "telemetry"]);
    }

    #[test]
    fn flags_are_named_as_flags() {
        let flags = AgentOverrides { disable_workload_api: true, disable_sds_api: true, ..AgentOverrides::default() };
        assert_eq!(keys(&config_with("", "", "", &flags)), ["-disableWorkloadAPI"]);
    }

    #[test]
    fn external_plugins_of_the_agent_types_are_run() {
        let text = r#"agent {
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = 8081
    insecure_bootstrap = true
}
plugins {
    NodeAttestor "join_token" {}
    KeyManager "disk" {
        plugin_cmd = "/opt/spire/keymanager"
        plugin_data { directory = "/tmp/keys" }
    }
    WorkloadAttestor "unix" { plugin_cmd = "/opt/spire/unix" }
}"#;
        let c = AgentConfig::from_str(text, false).unwrap();
        // `plugin_cmd` makes them external plugins, whatever their names, as in SPIRE.
        assert!(keys(&c).is_empty(), "{:?}", keys(&c));
    }
}
