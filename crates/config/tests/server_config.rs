//! spire-server configuration files as SPIRE users write them, and each class of mistake.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spire_config::federation::{BundleEndpointProfile, FederatesWithProfile};
use spire_config::log::{LogFormat, LogLevel};
use spire_config::plugin_data::{DatabaseType, DiskKeyManagerConfig, DiskUpstreamAuthorityConfig};
use spire_config::{ConfigError, ServerConfig, ServerOverrides};
use spire_identity::KeyType;

fn load(text: &str) -> ServerConfig {
    ServerConfig::from_str(text, false).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn error(text: &str) -> String {
    ServerConfig::from_str(text, false).expect_err("should be refused").to_string()
}

/// A valid file with `server_extra` added to the server block and `plugins_extra` to plugins.
fn with(server_extra: &str, plugins_extra: &str) -> String {
    format!(
        "server {{\n    trust_domain = \"example.org\"\n    data_dir = \"/var/lib/spire\"\n{server_extra}\n}}\n\
         plugins {{\n    DataStore \"sql\" {{ plugin_data {{ database_type = \"sqlite3\" connection_string = \"/d.sqlite3\" }} }}\n    \
         KeyManager \"memory\" {{ plugin_data = {{}} }}\n{plugins_extra}\n}}\n"
    )
}

#[test]
fn the_repository_sample_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/server/server.conf");
    let c = ServerConfig::from_file(&path, false).unwrap();
    assert_eq!(c.trust_domain.as_str(), "example.org");
    assert_eq!(c.data_dir, PathBuf::from("./.data"));
    assert_eq!(c.bind_endpoint(), "127.0.0.1:8081");
    assert_eq!(c.socket_path, PathBuf::from("/tmp/spire-server/private/api.sock"));
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.ca_subject.country, ["US"]);
    assert_eq!(c.ca_subject.organization, ["SPIFFE"]);
    assert_eq!(c.datastore.database_type, DatabaseType::Sqlite3);
    assert_eq!(c.datastore.connection_string, "./.data/datastore.sqlite3");
    assert_eq!(c.node_attestors().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["join_token"]);
    let km = c.key_manager();
    assert_eq!(km.name, "disk");
    assert_eq!(DiskKeyManagerConfig::from_plugin(km).unwrap().keys_path, PathBuf::from("./.data/keys.json"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// The shape of SPIRE's own `conf/server/server.conf`, with an upstream authority and health checks.
#[test]
fn spire_sample_shape_loads() {
    let c = load(
        r#"
server {
    bind_address = "127.0.0.1"
    bind_port = "8081"
    socket_path = "/tmp/spire-server/private/api.sock"
    trust_domain = "example.org"
    data_dir = "./.data"
    log_level = "DEBUG"
    ca_subject {
        country = ["US"]
        organization = ["SPIFFE"]
        common_name = ""
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./.data/datastore.sqlite3"
        }
    }

    NodeAttestor "join_token" {
        plugin_data {
        }
    }

    KeyManager "memory" {
        plugin_data = {}
    }

    UpstreamAuthority "disk" {
        plugin_data {
            key_file_path = "./conf/server/dummy_upstream_ca.key"
            cert_file_path = "./conf/server/dummy_upstream_ca.crt"
        }
    }
}

health_checks {
    listener_enabled = true
    bind_address = "0.0.0.0"
    bind_port = "8080"
    live_path = "/live"
    ready_path = "/ready"
}
"#,
    );
    assert_eq!(c.key_manager().name, "memory");
    let ua = DiskUpstreamAuthorityConfig::from_plugin(c.upstream_authority().unwrap()).unwrap();
    assert_eq!(ua.key_file_path, PathBuf::from("./conf/server/dummy_upstream_ca.key"));
    assert!(c.health_checks.listener_enabled);
    assert_eq!(c.health_checks.address(), "0.0.0.0:8080");
    assert_eq!((c.health_checks.live_path.as_str(), c.health_checks.ready_path.as_str()), ("/live", "/ready"));
}

#[test]
fn defaults_are_spires() {
    let c = load(&with("", ""));
    assert_eq!(c.bind_address, "0.0.0.0");
    assert_eq!(c.bind_port, 8081);
    assert_eq!(c.socket_path, PathBuf::from("/tmp/spire-server/private/api.sock"));
    assert_eq!(c.ca_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(c.default_x509_svid_ttl, Duration::from_secs(3600));
    assert_eq!(c.default_jwt_svid_ttl, Duration::from_secs(300));
    assert_eq!(c.agent_ttl, Duration::from_secs(3600));
    assert_eq!((c.ca_key_type, c.jwt_key_type), (KeyType::EcP256, KeyType::EcP256));
    assert_eq!(c.ca_subject.country, ["US"]);
    assert_eq!(c.ca_subject.organization, ["SPIFFE"]);
    assert_eq!(c.ca_subject.common_name, "");
    assert_eq!(c.jwt_issuer, None);
    assert!(!c.disable_jwt_svids && !c.audit_log_enabled);
    assert!(c.admin_ids.is_empty());
    assert_eq!(
        (c.log.level, c.log.format, c.log.file.as_ref(), c.log.source_location),
        (LogLevel::Info, LogFormat::Text, None, false)
    );
    assert!(c.ratelimit.attestation && c.ratelimit.signing);
    assert_eq!(c.prune_attested_nodes_expired_for, None);
    assert_eq!(c.prune_attested_nodes_batch_size, 1000);
    assert_eq!(c.federation, None);
    assert_eq!(c.experimental.cache_reload_interval, Duration::from_secs(5));
    assert_eq!(c.experimental.full_cache_reload_interval, Duration::from_secs(24 * 3600));
    assert_eq!(c.experimental.prune_events_older_than, Duration::from_secs(12 * 3600));
    assert_eq!(c.experimental.event_timeout, Duration::from_secs(15 * 60));
    assert_eq!((c.datastore.max_open_conns, c.datastore.max_idle_conns), (100, 100));
    assert!(!c.health_checks.listener_enabled);
    assert_eq!(c.health_checks.address(), "localhost:80");
    assert_eq!(c.telemetry, Default::default());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn every_server_key() {
    let c = load(&with(
        r#"
    bind_address = "::1"
    bind_port = 9000
    socket_path = "/run/spire/api.sock"
    ca_ttl = "168h"
    default_x509_svid_ttl = "1h30m"
    default_jwt_svid_ttl = "500s"
    agent_ttl = "2h"
    ca_key_type = "RSA-2048"
    jwt_key_type = "ec-p384"
    ca_subject = { country = ["DE"], organization = ["Acme"], common_name = "Acme CA" }
    jwt_issuer = "https://oidc.example.org"
    disable_jwt_svids = "false"
    admin_ids = ["spiffe://example.org/admin", "spiffe://other.org/ops"]
    audit_log_enabled = true
    log_level = "warn"
    log_format = "JSON"
    log_file = "/var/log/spire.log"
    log_source_location = true
    ratelimit { attestation = false }
    prune_attested_nodes_expired_for = "720h"
    prune_attested_nodes_batch_size = 50
    prune_tofu_nodes = true
    proxy_protocol_trusted_cidrs = ["10.0.0.0/8"]
    max_attested_node_info_staleness = "1m"
    profiling_enabled = true
    profiling_port = 6060
    profiling_freq = 10
    profiling_names = ["heap"]
    experimental {
        events_based_cache = true
        cache_reload_interval = "10s"
        full_cache_reload_interval = "1h"
        prune_events_older_than = "6h"
        event_timeout = "1m"
        agent_spiffe_id_as_selector = true
        feature_flags = ["flag_a"]
        auth_opa_policy_engine { local { rego_path = "./p.rego" policy_data_path = "./d.json" } }
        some_future_knob = 3
    }
"#,
        "",
    ));
    assert_eq!(c.bind_endpoint(), "[::1]:9000");
    assert_eq!(c.ca_ttl, Duration::from_secs(168 * 3600));
    assert_eq!(c.default_x509_svid_ttl, Duration::from_secs(5400));
    assert_eq!(c.default_jwt_svid_ttl, Duration::from_secs(500));
    assert_eq!(c.agent_ttl, Duration::from_secs(7200));
    assert_eq!((c.ca_key_type, c.jwt_key_type), (KeyType::Rsa2048, KeyType::EcP384));
    assert_eq!(c.ca_subject.common_name, "Acme CA");
    assert_eq!(c.admin_ids.len(), 2);
    assert_eq!((c.log.level, c.log.format), (LogLevel::Warn, LogFormat::Json));
    assert_eq!(c.log.file, Some(PathBuf::from("/var/log/spire.log")));
    assert!(!c.ratelimit.attestation && c.ratelimit.signing);
    assert_eq!(c.prune_attested_nodes_expired_for, Some(Duration::from_secs(720 * 3600)));
    assert_eq!(c.prune_attested_nodes_batch_size, 50);
    assert_eq!(c.profiling.port, Some(6060));
    assert!(c.experimental.events_based_cache && c.experimental.agent_spiffe_id_as_selector);
    assert_eq!(c.experimental.event_timeout, Duration::from_secs(60));
    assert!(c.experimental.auth_opa_policy_engine.is_some());
    assert_eq!(c.experimental.other.len(), 1);
    assert_eq!(c.experimental.other[0].key, "some_future_knob");
    let warnings = c.warnings.join("\n");
    assert!(warnings.contains("Developer feature flag \"flag_a\" has been enabled"), "{warnings}");
    assert!(warnings.contains("server.experimental.some_future_knob (line "), "{warnings}");
    assert!(warnings.contains("Experimental features have been enabled"), "{warnings}");
}

#[test]
fn ints_and_booleans_as_strings() {
    let c = load(&with("    bind_port = \"8443\"\n    audit_log_enabled = \"true\"\n    disable_jwt_svids = 1", ""));
    assert_eq!(c.bind_port, 8443);
    assert!(c.audit_log_enabled && c.disable_jwt_svids);
}

#[test]
fn json_configuration() {
    let c = load(
        r#"{
  "server": {
    "trust_domain": "example.org",
    "data_dir": "/var/lib/spire",
    "bind_port": 8082,
    "ca_subject": {"country": ["US"], "organization": ["SPIFFE"]}
  },
  "plugins": {
    "DataStore": [{"sql": {"plugin_data": {"database_type": "postgres", "connection_string": "dbname=spire"}}}],
    "KeyManager": {"disk": {"plugin_data": {"keys_path": "/var/lib/spire/keys.json"}}},
    "NodeAttestor": {"join_token": {"plugin_data": {}}, "x509pop": {"plugin_data": {"ca_bundle_path": "/ca.pem"}}}
  },
  "health_checks": {"listener_enabled": true},
  "telemetry": {"Prometheus": {"port": 9988}}
}"#,
    );
    assert_eq!(c.bind_port, 8082);
    assert_eq!(c.datastore.database_type, DatabaseType::Postgres);
    assert_eq!(c.node_attestors().count(), 2);
    let x509pop = c.plugins.get("NodeAttestor", "x509pop").unwrap();
    assert_eq!(x509pop.data_json().unwrap(), serde_json::json!({"ca_bundle_path": "/ca.pem"}));
    assert_eq!(c.telemetry.prometheus.as_ref().unwrap().port, Some(9988));

    let err = error("{\n  \"server\": {\n    \"trust_domain\": \"example.org\",\n    \"data_dirr\": \"/x\"\n  }\n}");
    assert!(err.contains("unknown configuration key \"data_dirr\" at line 4 (in server)"), "{err}");
}

#[test]
fn env_expansion() {
    let text =
        with("    bind_port = \"${SPIRE_RS_CONFIG_TEST_PORT}\"\n    jwt_issuer = \"$SPIRE_RS_CONFIG_TEST_UNSET\"", "");
    assert!(ServerConfig::from_str(&text, false).unwrap_err().to_string().contains("expected an integer"));
    // Expansion happens on the text, so it is tested through the same function with a lookup.
    let expanded = spire_config::env::expand_with(&text, |name| {
        if name == "SPIRE_RS_CONFIG_TEST_PORT" { "9001".to_owned() } else { String::new() }
    });
    let c = load(&expanded);
    assert_eq!((c.bind_port, c.jwt_issuer), (9001, None));
    // With the process environment: PATH is always set, and ends up in a string value.
    let c = ServerConfig::from_str(&with("    log_file = \"$PATH\"", ""), true).unwrap();
    assert_eq!(c.log.file, Some(PathBuf::from(std::env::var("PATH").unwrap())));
}

#[test]
fn telemetry_and_federation_are_kept() {
    let c = load(&format!(
        "{}\n{}",
        with(
            r#"
    federation {
        bundle_endpoint {
            address = "0.0.0.0"
            port = 8443
            refresh_hint = "10m"
            profile "https_web" {
                acme {
                    domain_name = "example.org"
                    email = "ops@example.org"
                    tos_accepted = true
                }
            }
        }
        federates_with "domain1.test" {
            bundle_endpoint_url = "https://1.2.3.4:8443"
            bundle_endpoint_profile "https_spiffe" {
                endpoint_spiffe_id = "spiffe://domain1.test/spire/server"
            }
        }
        federates_with "domain2.test" {
            bundle_endpoint_url = "https://example.com"
            bundle_endpoint_profile "https_web" {}
        }
    }"#,
            ""
        ),
        r#"telemetry {
    Prometheus { host = "127.0.0.1" port = 9988 }
    DogStatsd = [{ address = "localhost:8125" }, { address = "localhost:8126" }]
    Statsd { address = "localhost:1337" }
    M3 = [{ address = "localhost:9000" env = "prod" }]
    InMem {}
    AllowedPrefixes = ["spire_server"]
}"#
    ));
    let t = &c.telemetry;
    assert_eq!(t.prometheus.as_ref().unwrap().host.as_deref(), Some("127.0.0.1"));
    assert_eq!(t.dogstatsd.len(), 2);
    assert_eq!(t.statsd[0].address, "localhost:1337");
    assert_eq!(t.m3[0].env.as_deref(), Some("prod"));
    assert!(t.in_mem.is_some());
    assert_eq!(t.allowed_prefixes, ["spire_server"]);

    let f = c.federation.as_ref().unwrap();
    let be = f.bundle_endpoint.as_ref().unwrap();
    assert_eq!((be.port, be.refresh_hint), (8443, Duration::from_secs(600)));
    assert!(matches!(&be.profile, Some(BundleEndpointProfile::HttpsWebAcme(a)) if a.tos_accepted));
    assert_eq!(f.federates_with.len(), 2);
    assert_eq!(f.federates_with[0].trust_domain.as_str(), "domain1.test");
    assert!(matches!(&f.federates_with[0].profile, FederatesWithProfile::HttpsSpiffe { endpoint_spiffe_id }
        if endpoint_spiffe_id.to_string() == "spiffe://domain1.test/spire/server"));
    assert_eq!(f.federates_with[1].profile, FederatesWithProfile::HttpsWeb);

    let err = error(&with(
        "    federation {\n        federates_with \"d.test\" {\n            bundle_endpoint_url = \"http://d.test\"\n        }\n    }",
        "",
    ));
    assert!(
        err.contains("federation.federates_with[\"d.test\"].bundle_endpoint_url must use the HTTPS protocol"),
        "{err}"
    );
    assert!(err.contains("missing bundle endpoint configuration"), "{err}");

    let own = "    federation {\n        federates_with \"example.org\" {\n            bundle_endpoint_url = \"https://e.test\"\n            bundle_endpoint_profile \"https_web\" {}\n        }\n    }";
    let err = error(&with(own, ""));
    assert!(err.contains("federation.federates_with[\"example.org\"] names the server's own trust domain"), "{err}");
}

#[test]
fn overrides_apply() {
    let file = "server {\n    bind_address = \"127.0.0.1\"\n    log_level = \"INFO\"\n}\nplugins {\n    DataStore \"sql\" { plugin_data { database_type = \"sqlite3\" connection_string = \"x\" } }\n    KeyManager \"memory\" {}\n}\n";
    // Missing in the file, given as flags: accepted, as with SPIRE's merge of flags over the file.
    assert!(ServerConfig::from_str(file, false).is_err());
    let flags = ServerOverrides {
        trust_domain: Some("flags.org".to_owned()),
        data_dir: Some(PathBuf::from("/flags")),
        bind_address: Some("10.0.0.1".to_owned()),
        server_port: Some(9443),
        socket_path: Some(PathBuf::from("/run/api.sock")),
        log_level: Some("ERROR".to_owned()),
        log_format: Some("json".to_owned()),
        log_file: Some(PathBuf::from("/log")),
        log_source_location: true,
    };
    let c = ServerConfig::load_str(file, false, &flags).unwrap();
    assert_eq!(c.trust_domain.as_str(), "flags.org");
    assert_eq!(c.data_dir, PathBuf::from("/flags"));
    assert_eq!(c.bind_endpoint(), "10.0.0.1:9443");
    assert_eq!(c.socket_path, PathBuf::from("/run/api.sock"));
    assert_eq!((c.log.level, c.log.format), (LogLevel::Error, LogFormat::Json));
    assert_eq!(c.log.file, Some(PathBuf::from("/log")));
    assert!(c.log.source_location);

    // On top of a loaded configuration.
    let mut c = load(&with("", ""));
    c.apply_overrides(&ServerOverrides {
        server_port: Some(1234),
        log_level: Some("debug".to_owned()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((c.bind_port, c.log.level), (1234, LogLevel::Debug));
    let err = c
        .apply_overrides(&ServerOverrides {
            trust_domain: Some("Bad.Org".to_owned()),
            log_level: Some("loud".to_owned()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("2 configuration errors:"), "{err}");
    assert!(err.contains("could not parse trust_domain \"Bad.Org\""), "{err}");
    assert!(err.contains("-logLevel \"loud\" is not a valid log level"), "{err}");
    assert_eq!(c.trust_domain.as_str(), "example.org");
}

#[test]
fn ttl_warnings_like_spire() {
    let c = load(&with("    ca_ttl = \"24h\"\n    default_x509_svid_ttl = \"6h\"", ""));
    assert_eq!(
        c.warnings,
        ["default_x509_svid_ttl is too high for the configured ca_ttl value. SVIDs with shorter lifetimes may be \
          issued. Please set default_x509_svid_ttl to 4h or less, or the ca_ttl to 36h or more, to guarantee the full \
          default_x509_svid_ttl lifetime when CA rotations are scheduled."]
    );
    let c = load(&with("    ca_ttl = \"720h\"\n    default_jwt_svid_ttl = \"200h\"\n    agent_ttl = \"169h\"", ""));
    assert_eq!(c.warnings.len(), 2);
    assert!(
        c.warnings[0].starts_with("default_jwt_svid_ttl is too high and the ca_ttl is too low."),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[0].contains("set default_jwt_svid_ttl to 168h or less, and the ca_ttl to 1008h or more"));
    assert!(c.warnings[1].starts_with("agent_ttl is too high and the ca_ttl is too low."));
    let c = load(&with("    ca_ttl = \"2000h\"\n    default_x509_svid_ttl = \"200h\"", ""));
    assert_eq!(
        c.warnings,
        ["default_x509_svid_ttl is too high. SVIDs with shorter lifetimes may be issued. Please set \
          default_x509_svid_ttl to 168h or less to guarantee the full default_x509_svid_ttl lifetime when CA \
          rotations are scheduled."]
    );
    assert!(load(&with("    ca_ttl = \"60h\"\n    default_x509_svid_ttl = \"10h\"", "")).warnings.is_empty());
}

#[test]
fn unknown_keys_are_refused_with_path_and_line() {
    assert_eq!(
        error(
            "server {\n    trust_domain = \"example.org\"\n    data_dir = \"/d\"\n    bind_adress = \"0.0.0.0\"\n}\nplugins {\n    DataStore \"sql\" { plugin_data { database_type = \"sqlite3\" connection_string = \"x\" } }\n    KeyManager \"memory\" {}\n}\n"
        ),
        "unknown configuration key \"bind_adress\" at line 4 (in server)"
    );
    assert_eq!(
        error(&with("", "    NodeAttestor \"join_token\" {\n        plugin_dta {}\n    }")),
        "unknown configuration key \"plugin_dta\" at line 10 (in plugins.NodeAttestor.join_token)"
    );
    assert_eq!(
        error(&format!("{}health_checks {{\n    listener_enabled = true\n    bind_prot = 80\n}}\n", with("", ""))),
        "unknown configuration key \"bind_prot\" at line 13 (in health_checks)"
    );
    assert_eq!(
        error(&format!("{}srever {{}}\n", with("", ""))),
        "unknown configuration key \"srever\" at line 11 (at the top level)"
    );
    assert_eq!(
        error(&with("    ca_subject {\n        countries = [\"US\"]\n    }", "")),
        "unknown configuration key \"countries\" at line 5 (in server.ca_subject)"
    );
    assert_eq!(
        error(&format!("{}telemetry {{\n    Prometheus {{\n        prot = 9988\n    }}\n}}\n", with("", ""))),
        "unknown configuration key \"prot\" at line 13 (in telemetry.Prometheus)"
    );
    // Inside plugin_data the keys belong to the plugin: only built-ins we know are checked.
    load(&with("", "    NodeAttestor \"x509pop\" { plugin_data { anything = \"goes\" } }"));
}

#[test]
fn wrong_types() {
    assert_eq!(
        error(&with("    bind_port = \"abc\"", "")),
        "invalid value for server.bind_port at line 4: expected an integer, got \"abc\""
    );
    assert_eq!(error(&with("    bind_port = 70000", "")), "server.bind_port: 70000 is out of range (line 4)");
    assert_eq!(
        error(&with("    audit_log_enabled = \"yes\"", "")),
        "invalid value for server.audit_log_enabled at line 4: expected a boolean, got \"yes\""
    );
    assert_eq!(
        error(&with("    admin_ids = \"spiffe://example.org/admin\"", "")),
        "invalid value for server.admin_ids at line 4: expected a list of strings, got \"spiffe://example.org/admin\""
    );
    assert_eq!(
        error(&with("    trust_domain = [\"a\"]", "")),
        "invalid value for server.trust_domain at line 4: expected a string, got a list"
    );
}

#[test]
fn required_and_invalid_values() {
    let no_td = "server {\n    data_dir = \"/d\"\n}\nplugins {\n    DataStore \"sql\" { plugin_data { database_type = \"sqlite3\" connection_string = \"x\" } }\n    KeyManager \"memory\" {}\n}\n";
    assert_eq!(error(no_td), "trust_domain must be configured (line 1)");
    let no_dd = no_td.replace("data_dir = \"/d\"", "trust_domain = \"example.org\"");
    assert_eq!(error(&no_dd), "data_dir must be configured (line 1)");
    assert_eq!(
        error("plugins {}\n"),
        "3 configuration errors:\n  - expecting a DataStore plugin\n  \
         - plugin type \"KeyManager\": expected exactly 1 but got 0\n  - server section must be configured"
    );
    assert_eq!(
        error("server {\n trust_domain = \"a.org\"\n data_dir = \"/d\"\n}\n"),
        "plugins section must be configured"
    );

    let err = error(&with("    trust_domain = \"Example.org\"", ""));
    assert!(
        err.starts_with("could not parse trust_domain \"Example.org\": trust domain characters are limited"),
        "{err}"
    );
    assert!(err.ends_with("(line 4)"), "{err}");
    assert_eq!(
        error(&with("    ca_key_type = \"ec-p521\"", "")),
        "error parsing ca_key_type: key type \"ec-p521\" is unknown; must be one of [rsa-2048, rsa-4096, ec-p256, ec-p384] (line 4)"
    );
    assert_eq!(
        error(&with("    ca_ttl = \"1d\"", "")),
        "could not parse server.ca_ttl \"1d\": time: unknown unit \"d\" in duration \"1d\" (line 4)"
    );
    assert_eq!(
        error(&with("    default_x509_svid_ttl = \"3600\"", "")),
        "could not parse server.default_x509_svid_ttl \"3600\": time: missing unit in duration \"3600\" (line 4)"
    );
    let err = error(&with("    admin_ids = [\"spiffe://example.org/ok\", \"example.org/admin\"]", ""));
    assert!(err.starts_with("could not parse admin ID \"example.org/admin\": scheme is missing or invalid"), "{err}");
    assert!(
        error(&with("    log_level = \"LOUD\"", "")).starts_with("server.log_level \"LOUD\" is not a valid log level")
    );
    assert_eq!(
        error(&with("    log_format = \"xml\"", "")),
        "server.log_format \"xml\" is not a valid log format: use \"text\" or \"json\" (line 4)"
    );
    let err = error(&with(
        "    experimental {\n        event_timeout = \"1m\"\n        sql_transaction_timeout = \"1m\"\n    }",
        "",
    ));
    assert_eq!(err, "both experimental sql_transaction_timeout and event_timeout set, only set event_timeout (line 4)");
    #[cfg(not(windows))]
    assert_eq!(
        error(&with("    experimental {\n        named_pipe_name = \"\\\\spire-server\\\\private\\\\api\"\n    }", "")),
        "invalid configuration: named_pipe_name is not supported in this platform; please use socket_path instead \
         (line 4)"
    );
}

#[test]
fn plugin_rules() {
    assert_eq!(
        error(&with("", "    KeyManager \"disk\" { plugin_data { keys_path = \"/k\" } }")),
        "plugin type \"KeyManager\": expected exactly 1 but got 2 (lines 8, 9)"
    );
    // A disabled plugin does not count.
    load(&with("", "    KeyManager \"disk\" {\n        enabled = false\n    }"));
    assert_eq!(
        error(&with(
            "",
            "    UpstreamAuthority \"disk\" { plugin_data { cert_file_path = \"/c\" key_file_path = \"/k\" } }\n    UpstreamAuthority \"vault\" {}"
        )),
        "plugin type \"UpstreamAuthority\": expected at most 1 but got 2 (lines 9, 10)"
    );
    let text = with("", "").replace("DataStore \"sql\"", "DataStore \"postgres\"");
    assert_eq!(
        error(&text),
        "pluggability for the DataStore is deprecated; only the built-in \"sql\" plugin is supported (line 7)"
    );
    assert_eq!(
        error(&with(
            "",
            "    DataStore \"sql\" { plugin_data { database_type = \"sqlite3\" connection_string = \"y\" } }"
        )),
        "plugin DataStore \"sql\" is already declared at line 7 (line 9)"
    );
    assert_eq!(
        error(&with("", "").replace("\"sqlite3\"", "\"oracle\"")),
        "unsupported plugins.DataStore.sql.plugin_data.database_type \"oracle\": use sqlite3, postgres or mysql (line 7)"
    );
    assert_eq!(
        error(&with("", "    NodeAttestor \"join_token\" {\n        plugin_cmd = \"/bin/jt\"\n    }")),
        "the built-in join_token node attestor cannot be overridden by an external plugin (line 9)"
    );
    assert_eq!(
        error(&with("", "    WorkloadAttestor \"unix\" {}")),
        "unsupported plugin type \"WorkloadAttestor\": expected one of DataStore, KeyManager, UpstreamAuthority, \
         NodeAttestor, Notifier, BundlePublisher, CredentialComposer (line 9)"
    );
    assert_eq!(
        error(
            &with("", "")
                .replace("KeyManager \"memory\" { plugin_data = {} }", "KeyManager \"disk\" { plugin_data = {} }")
        ),
        "plugins.KeyManager.disk.plugin_data.keys_path is required (line 8)"
    );
}

#[test]
fn every_mistake_is_reported_at_once() {
    let err = ServerConfig::from_str(
        "server {\n    trust_domain = \"example.org\"\n    bind_adress = \"x\"\n    bind_port = \"x\"\n    ca_ttl = \"x\"\n}\nplugins {\n    DataStore \"sql\" { plugin_data { database_type = \"sqlite3\" } }\n    KeyManager \"memory\" {}\n    KeyManager \"disk\" {}\n}\n",
        false,
    )
    .unwrap_err();
    let messages: Vec<String> = err.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "data_dir must be configured (line 1)",
            "unknown configuration key \"bind_adress\" at line 3 (in server)",
            "invalid value for server.bind_port at line 4: expected an integer, got \"x\"",
            "could not parse server.ca_ttl \"x\": time: invalid duration \"x\" (line 5)",
            "plugins.DataStore.sql.plugin_data.connection_string must be set (line 8)",
            "plugins.KeyManager.disk.plugin_data.keys_path is required (line 10)",
            "plugin type \"KeyManager\": expected exactly 1 but got 2 (lines 9, 10)",
        ]
    );
    assert!(err.to_string().starts_with("7 configuration errors:\n  - data_dir must be configured (line 1)\n"));
}

#[test]
fn file_errors() {
    let err = ServerConfig::from_file("does/not/exist.conf", false).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with("could not find config file /")
            && text.ends_with("does/not/exist.conf: please use the -config flag"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.conf");
    std::fs::write(&path, "server {\n    trust_domain = \"example.org\"\n").unwrap();
    assert_eq!(
        ServerConfig::from_file(&path, false).unwrap_err().to_string(),
        "unable to parse configuration: line 3, column 1: unexpected end of file: the block opened at line 1 is not closed"
    );
}
