//! Which configured settings have no effect in this build of the server.
//!
//! SPIRE's `server.conf` files load unchanged, so they may ask for features spire-rs does not have
//! yet. Rather than ignore them silently, the server logs one warning per such setting at start
//! (and `spire-server validate` prints them). A setting counts when the operator set it: a key left
//! at its default is not reported, a block written empty is. Plugin types or names the server
//! cannot run at all (a KeyManager other than `disk`/`memory`, say) are not listed here: they stop
//! the server with an error.

use std::time::Duration;

use spire_config::ServerConfig;
use spire_config::inert::{self, InertSetting};
use spire_config::plugin_data::{DatabaseType, SqlDataStoreConfig};

/// The plugins this build has built in, per plugin type; the server has no built-in Notifier,
/// BundlePublisher or CredentialComposer plugins.
pub(crate) const BUILTIN_PLUGINS: &[(&str, &[&str])] = &[
    ("DataStore", &["sql"]),
    ("KeyManager", &["disk", "memory"]),
    ("UpstreamAuthority", &["disk", "spire"]),
    ("NodeAttestor", spire_attestation::NODE_ATTESTORS),
];

/// The plugin types the server runs as external plugins (`plugin_cmd`).
pub(crate) const EXTERNAL_PLUGINS: &[&str] =
    &["KeyManager", "UpstreamAuthority", "NodeAttestor", "Notifier", "BundlePublisher", "CredentialComposer"];

const NO_FEDERATION: &str = "the block sets neither a bundle_endpoint nor a federates_with, so it does nothing";

/// The settings of `config` that have no effect, block by block in the order of SPIRE's docs.
pub fn find(config: &ServerConfig) -> Vec<InertSetting> {
    let mut out = Vec::new();
    let mut add = |key: String, reason: &str| out.push(InertSetting::new(key, reason));
    if config.audit_log_enabled {
        add("server.audit_log_enabled".into(), "spire-rs writes no audit log");
    }
    if let Some(federation) = &config.federation
        && federation.bundle_endpoint.is_none()
        && federation.federates_with.is_empty()
    {
        add("server.federation".into(), NO_FEDERATION);
    }
    const NO_PRUNING: &str = "expired agents are not pruned automatically (use `spire-server agent purge`)";
    if config.prune_attested_nodes_expired_for.is_some() {
        add("server.prune_attested_nodes_expired_for".into(), NO_PRUNING);
    }
    if config.prune_attested_nodes_batch_size != 1000 {
        add("server.prune_attested_nodes_batch_size".into(), NO_PRUNING);
    }
    if config.prune_tofu_nodes {
        add("server.prune_tofu_nodes".into(), NO_PRUNING);
    }
    if !config.proxy_protocol_trusted_cidrs.is_empty() {
        add("server.proxy_protocol_trusted_cidrs".into(), "the TCP listener does not read PROXY protocol headers");
    }
    if config.max_attested_node_info_staleness.is_some() {
        add(
            "server.max_attested_node_info_staleness".into(),
            "spire-rs keeps no cache of attested agents; each call reads the datastore",
        );
    }
    inert::profiling("server", &config.profiling, &mut out);
    experimental(config, &mut out);
    inert::plugins(&config.plugins, BUILTIN_PLUGINS, EXTERNAL_PLUGINS, &mut out);
    datastore(&config.datastore, &mut out);
    inert::health_checks(&config.written, &mut out);
    inert::telemetry(&config.telemetry, &config.written, &mut out);
    out
}

/// `server.experimental`. `events_based_cache` is not listed: the entry index always follows the
/// events table, which is what `true` asks for and gives the same results as `false`.
fn experimental(config: &ServerConfig, out: &mut Vec<InertSetting>) {
    let e = &config.experimental;
    let mut add = |key: &str, reason: &str| out.push(InertSetting::new(format!("server.experimental.{key}"), reason));
    if e.full_cache_reload_interval != Duration::from_secs(24 * 3600) {
        add("full_cache_reload_interval", "the entry index follows the events table without periodic full reloads");
    }
    if e.agent_spiffe_id_as_selector {
        add("agent_spiffe_id_as_selector", "agents' SPIFFE IDs are not added to their selectors");
    }
    if e.require_pq_kem {
        add("require_pq_kem", "TLS key exchange is not restricted to post-quantum groups");
    }
    if !e.feature_flags.is_empty() {
        add("feature_flags", "spire-rs has no developer feature flags");
    }
    if e.wit_key_type.is_some() {
        add("wit_key_type", "spire-rs issues no WIT-SVIDs");
    }
    if e.wit_issuer.is_some() {
        add("wit_issuer", "spire-rs issues no WIT-SVIDs");
    }
    if e.auth_opa_policy_engine.is_some() {
        add(
            "auth_opa_policy_engine",
            "API authorization uses the built-in rules (admin_ids, agents, the local socket), not an OPA policy",
        );
    }
}

/// DataStore "sql" settings the store does not apply: with SQLite it keeps its own connections
/// (one writer, a few readers), where SPIRE applies the pool settings to every database type.
fn datastore(ds: &SqlDataStoreConfig, out: &mut Vec<InertSetting>) {
    let mut add = |key: &str, reason: &str| {
        out.push(InertSetting::new(format!("plugins.DataStore.sql.plugin_data.{key}"), reason));
    };
    if ds.max_idle_conns != SqlDataStoreConfig::DEFAULT_MAX_CONNS {
        add("max_idle_conns", "the connection pool does not cap idle connections");
    }
    if ds.log_sql {
        add("log_sql", "SQL statements are not logged");
    }
    if ds.database_type == DatabaseType::Sqlite3 {
        const SQLITE: &str = "with sqlite3, spire-rs uses one writer and a few reader connections of its own";
        if ds.max_open_conns != SqlDataStoreConfig::DEFAULT_MAX_CONNS {
            add("max_open_conns", SQLITE);
        }
        if ds.conn_max_lifetime.is_some() {
            add("conn_max_lifetime", SQLITE);
        }
        if ds.ro_connection_string.is_some() {
            add("ro_connection_string", "with sqlite3, spire-rs reads through the main database file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQLITE: &str = r#"DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "/d/ds" } }"#;

    /// A valid config with `server_extra` in the server block, `plugins` (which must declare the
    /// DataStore) in the plugins block, and `rest` at the top level.
    fn config(server_extra: &str, plugins: &str, rest: &str) -> ServerConfig {
        let text = format!(
            r#"server {{
    trust_domain = "example.org"
    data_dir = "/tmp/d"
    {server_extra}
}}
plugins {{
    {plugins}
    KeyManager "memory" {{}}
    NodeAttestor "join_token" {{}}
}}
{rest}
"#
        );
        ServerConfig::from_str(&text, false).unwrap()
    }

    fn keys(config: &ServerConfig) -> Vec<String> {
        find(config).into_iter().map(|s| s.key).collect()
    }

    #[test]
    fn defaults_report_nothing() {
        assert!(find(&config("", SQLITE, "")).is_empty());
        // Keys written at their default, or that SPIRE ignores too, are not reported.
        let c = config(
            r#"audit_log_enabled = false
    prune_tofu_nodes = false
    prune_attested_nodes_batch_size = 1000
    profiling_port = 6060
    experimental { events_based_cache = true }"#,
            SQLITE,
            "telemetry { InMem { enabled = false } }",
        );
        assert!(find(&c).is_empty(), "{:?}", find(&c));
    }

    #[test]
    fn every_inert_key() {
        let c = config(
            r#"audit_log_enabled = true
    federation {
        bundle_endpoint {
            address = "0.0.0.0"
            port = 8443
            profile "https_spiffe" {}
        }
        federates_with "domain.test" {
            bundle_endpoint_url = "https://domain.test:8443"
            bundle_endpoint_profile "https_web" {}
        }
    }
    prune_attested_nodes_expired_for = "24h"
    prune_attested_nodes_batch_size = 50
    prune_tofu_nodes = true
    proxy_protocol_trusted_cidrs = ["10.0.0.0/8"]
    max_attested_node_info_staleness = "30s"
    profiling_enabled = true
    profiling_port = 6060
    profiling_freq = 5
    profiling_names = ["heap"]
    experimental {
        full_cache_reload_interval = "1h"
        agent_spiffe_id_as_selector = true
        require_pq_kem = true
        feature_flags = ["test_flag"]
        wit_key_type = "ec-p256"
        wit_issuer = "https://issuer.example.org"
        auth_opa_policy_engine {
            local {
                rego_path = "./policy.rego"
                policy_data_path = "./policy_data.json"
            }
        }
    }"#,
            r#"DataStore "sql" { plugin_data {
        database_type = "sqlite3"
        connection_string = "/tmp/d/ds.sqlite3"
        ro_connection_string = "/tmp/d/ro.sqlite3"
        max_open_conns = 10
        max_idle_conns = 5
        conn_max_lifetime = "1h"
        log_sql = true
    } }
    UpstreamAuthority "disk" {
        plugin_cmd = "/opt/spire/upstream-disk"
        plugin_data { cert_file_path = "/c.pem" key_file_path = "/k.pem" }
    }
    Notifier "k8sbundle" { plugin_data { namespace = "spire" } }
    BundlePublisher "aws_s3" { plugin_data {} }
    CredentialComposer "uniqueid" {}"#,
            "health_checks { listener_enabled = true }\ntelemetry { Prometheus { port = 9988 } }",
        );
        assert_eq!(
            keys(&c),
            [
                "server.audit_log_enabled",
                "server.prune_attested_nodes_expired_for",
                "server.prune_attested_nodes_batch_size",
                "server.prune_tofu_nodes",
                "server.proxy_protocol_trusted_cidrs",
                "server.max_attested_node_info_staleness",
                "server.profiling_enabled",
                "server.profiling_port",
                "server.profiling_freq",
                "server.profiling_names",
                "server.experimental.full_cache_reload_interval",
                "server.experimental.agent_spiffe_id_as_selector",
                "server.experimental.require_pq_kem",
                "server.experimental.feature_flags",
                "server.experimental.wit_key_type",
                "server.experimental.wit_issuer",
                "server.experimental.auth_opa_policy_engine",
                "plugins.Notifier.k8sbundle",
                "plugins.BundlePublisher.aws_s3",
                "plugins.CredentialComposer.uniqueid",
                "plugins.DataStore.sql.plugin_data.max_idle_conns",
                "plugins.DataStore.sql.plugin_data.log_sql",
                "plugins.DataStore.sql.plugin_data.max_open_conns",
                "plugins.DataStore.sql.plugin_data.conn_max_lifetime",
                "plugins.DataStore.sql.plugin_data.ro_connection_string",
                "health_checks",
                "telemetry.Prometheus",
            ]
        );
        assert_eq!(find(&c)[0].to_string(), "server.audit_log_enabled has no effect yet: spire-rs writes no audit log");
    }

    #[test]
    fn empty_blocks_count_as_set() {
        let c = config("federation {}", SQLITE, "health_checks {}\ntelemetry {}");
        assert_eq!(keys(&c), ["server.federation", "health_checks", "telemetry"]);
    }

    #[test]
    fn pool_settings_count_on_postgres() {
        let c = config(
            "",
            r#"DataStore "sql" { plugin_data {
    database_type = "postgres"
    connection_string = "dbname=spire"
    ro_connection_string = "dbname=spire host=replica"
    max_open_conns = 10
    conn_max_lifetime = "1h"
} }"#,
            "",
        );
        assert!(find(&c).is_empty(), "{:?}", find(&c));
    }
}
