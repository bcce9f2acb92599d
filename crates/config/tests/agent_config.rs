//! spire-agent configuration files as SPIRE users write them, and each class of mistake.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spire_config::agent::{NodeAttestation, RebootstrapMode, TrustBundleFormat, TrustBundleSource};
use spire_config::log::{LogFormat, LogLevel};
use spire_config::plugin_data::{DiskKeyManagerAgentConfig, UnixWorkloadAttestorConfig};
use spire_config::{AgentConfig, AgentOverrides, ConfigError};
use spire_identity::KeyType;

fn load(text: &str) -> AgentConfig {
    AgentConfig::from_str(text, false).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn load_with(text: &str, flags: &AgentOverrides) -> AgentConfig {
    AgentConfig::load_str(text, false, flags).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn error(text: &str) -> String {
    AgentConfig::from_str(text, false).expect_err("should be refused").to_string()
}

fn error_with(text: &str, flags: &AgentOverrides) -> String {
    AgentConfig::load_str(text, false, flags).expect_err("should be refused").to_string()
}

/// A valid file (lines 1-6 are the agent block) with `agent_extra` added to the agent block
/// (from line 6) and `plugins_extra` to the plugins block.
fn with(agent_extra: &str, plugins_extra: &str) -> String {
    format!(
        "agent {{\n    trust_domain = \"example.org\"\n    server_address = \"spire-server\"\n    server_port = 8081\n    \
         trust_bundle_path = \"/etc/spire/bootstrap.crt\"\n{agent_extra}\n}}\n\
         plugins {{\n    KeyManager \"memory\" {{ plugin_data = {{}} }}\n    NodeAttestor \"x509pop\" {{ plugin_data {{}} }}\n    \
         WorkloadAttestor \"unix\" {{}}\n{plugins_extra}\n}}\n"
    )
}

/// [`with`] without the bootstrap key, to test the bootstrap rules.
fn without_bundle(agent_extra: &str) -> String {
    with(agent_extra, "").replace("    trust_bundle_path = \"/etc/spire/bootstrap.crt\"\n", "")
}

#[test]
fn the_repository_sample_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/agent/agent.conf");
    let c = AgentConfig::from_file(&path, false).unwrap();
    assert_eq!(c.trust_domain.as_str(), "example.org");
    assert_eq!(c.server_endpoint(), "127.0.0.1:8081");
    assert_eq!(c.socket_path, PathBuf::from("/tmp/spire-agent/public/api.sock"));
    assert_eq!(c.data_dir, PathBuf::from("./.data/agent"));
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.trust_bundle, TrustBundleSource::Insecure);
    assert!(c.insecure_bootstrap());
    assert_eq!(c.join_token, None);
    let na = c.node_attestor().unwrap();
    assert_eq!(na.name, "join_token");
    assert_eq!(c.node_attestation(), NodeAttestation::Plugin(na));
    let km = c.key_manager();
    assert_eq!(km.name, "disk");
    assert_eq!(DiskKeyManagerAgentConfig::from_plugin(km).unwrap().directory, PathBuf::from("./.data/agent"));
    let unix: Vec<_> = c.workload_attestors().collect();
    assert_eq!(unix.len(), 1);
    let unix = UnixWorkloadAttestorConfig::from_plugin(unix[0]).unwrap();
    assert!(unix.discover_workload_path);
    assert_eq!(unix.workload_size_limit, 0);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Meant to run next to conf/server/server.conf: same trust domain, the server's port.
    let server = spire_config::ServerConfig::from_file(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/server/server.conf"),
        false,
    )
    .unwrap();
    assert_eq!(server.trust_domain, c.trust_domain);
    assert_eq!(server.bind_port, c.server_port);
    assert_eq!(server.bind_address, c.server_address);

    // And with the token on the command line, as the comment says.
    let flags =
        AgentOverrides { join_token: Some("5b0b8ba1-1d53-4e2e-a8b4-3f2d7a5a0c11".to_owned()), ..Default::default() };
    let c = AgentConfig::load_file(&path, false, &flags).unwrap();
    assert_eq!(c.node_attestation(), NodeAttestation::JoinToken("5b0b8ba1-1d53-4e2e-a8b4-3f2d7a5a0c11"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// SPIRE's own `conf/agent/agent.conf`.
#[test]
fn spire_sample_loads() {
    let c = load(
        r#"
agent {
    data_dir = "./.data"
    log_level = "DEBUG"
    server_address = "127.0.0.1"
    server_port = "8081"
    socket_path ="/tmp/spire-agent/public/api.sock"
    trust_bundle_path = "./conf/agent/dummy_root_ca.crt"
    trust_domain = "example.org"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {
        }
    }
    KeyManager "disk" {
        plugin_data {
            directory = "./.data"
        }
    }
    WorkloadAttestor "k8s" {
        plugin_data {
            kubelet_read_only_port = "10255"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
        }
    }
}
"#,
    );
    assert_eq!(c.trust_bundle, TrustBundleSource::Path(PathBuf::from("./conf/agent/dummy_root_ca.crt")));
    assert_eq!(c.server_port, 8081);
    assert_eq!(c.workload_attestors().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["k8s", "unix"]);
    assert_eq!(c.svid_stores().count(), 0);
    assert_eq!(DiskKeyManagerAgentConfig::from_plugin(c.key_manager()).unwrap().directory, PathBuf::from("./.data"));
}

/// The shape of SPIRE's `test/fixture/config/agent_good.conf`-style full files: every section.
#[test]
fn full_spire_file_loads() {
    let c = load(
        r#"
agent {
    data_dir = "/var/lib/spire/agent"
    log_level = "INFO"
    log_format = "json"
    log_file = "/var/log/spire-agent.log"
    log_source_location = true
    log_selectors = ["k8s:ns", "unix:user"]
    server_address = "spire-server.spire.svc"
    server_port = 8081
    socket_path = "/run/spire/sockets/agent.sock"
    admin_socket_path = "/run/spire/admin/admin.sock"
    trust_bundle_url = "https://bundle.example.org/bundle"
    trust_bundle_format = "spiffe"
    trust_domain = "example.org"
    workload_x509_svid_key_type = "rsa-2048"
    x509_svid_cache_max_size = 5000
    jwt_svid_cache_max_size = "2000"
    availability_target = "48h"
    allow_unauthenticated_verifiers = true
    allowed_foreign_jwt_claims = ["groups", "email"]
    authorized_delegates = ["spiffe://example.org/cilium", "spiffe://example.org/istio"]
    disable_sds_api = true
    rebootstrap_mode = "auto"
    rebootstrap_delay = "1m"
    profiling_enabled = true
    profiling_port = 6060
    profiling_freq = 10
    profiling_names = ["heap", "cpu"]

    sds {
        default_svid_name = "spiffe"
        default_bundle_name = "bundle"
        default_all_bundles_name = "all-bundles"
        disable_spiffe_cert_validation = true
    }

    experimental {
        sync_interval = "10s"
        jwt_svid_cache_hit_timeout = "10s"
        require_pq_kem = true
        ratelimit {
            fetch_x509_svid = 10
        }
    }
}

plugins {
    NodeAttestor "k8s_psat" {
        plugin_data {
            cluster = "demo"
        }
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "k8s" {
        plugin_data {
            skip_kubelet_verification = true
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
            discover_workload_path = "true"
            workload_size_limit = -1
        }
    }
    SVIDStore "aws_secretsmanager" {
        plugin_cmd = "/opt/spire/plugins/aws"
        plugin_data {
            region = "us-east-1"
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

telemetry {
    Prometheus {
        port = 9988
    }
}
"#,
    );
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/spire/agent"));
    assert_eq!((c.log.level, c.log.format), (LogLevel::Info, LogFormat::Json));
    assert_eq!(c.log.file, Some(PathBuf::from("/var/log/spire-agent.log")));
    assert!(c.log.source_location);
    assert_eq!(c.log_selectors, ["k8s:ns", "unix:user"]);
    assert_eq!(c.server_endpoint(), "spire-server.spire.svc:8081");
    assert_eq!(c.admin_socket_path, Some(PathBuf::from("/run/spire/admin/admin.sock")));
    assert_eq!(
        c.trust_bundle,
        TrustBundleSource::Url { url: "https://bundle.example.org/bundle".to_owned(), unix_socket: None }
    );
    assert_eq!(c.trust_bundle_format, TrustBundleFormat::Spiffe);
    assert_eq!(c.workload_x509_svid_key_type, KeyType::Rsa2048);
    assert_eq!((c.x509_svid_cache_max_size, c.jwt_svid_cache_max_size), (5000, 2000));
    assert_eq!(c.availability_target, Some(Duration::from_secs(48 * 3600)));
    assert!(c.allow_unauthenticated_verifiers);
    assert_eq!(c.allowed_foreign_jwt_claims, ["groups", "email"]);
    assert_eq!(
        c.authorized_delegates.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["spiffe://example.org/cilium", "spiffe://example.org/istio"]
    );
    assert!(!c.disable_workload_api && c.disable_sds_api);
    assert_eq!((c.rebootstrap_mode, c.rebootstrap_delay), (RebootstrapMode::Auto, Duration::from_secs(60)));
    assert!(c.profiling.enabled);
    assert_eq!((c.profiling.port, c.profiling.freq), (Some(6060), Some(10)));
    assert_eq!(c.sds.default_svid_name, "spiffe");
    assert_eq!(c.sds.default_bundle_name, "bundle");
    assert_eq!(c.sds.default_all_bundles_name, "all-bundles");
    assert!(c.sds.disable_spiffe_cert_validation);
    assert_eq!(c.experimental.sync_interval, Duration::from_secs(10));
    assert_eq!(c.experimental.jwt_svid_cache_hit_timeout, Duration::from_secs(10));
    assert!(c.experimental.require_pq_kem);
    assert!(c.experimental.ratelimit.is_some());
    assert_eq!(c.node_attestor().unwrap().name, "k8s_psat");
    let unix = UnixWorkloadAttestorConfig::from_plugin(c.plugins.get("WorkloadAttestor", "unix").unwrap()).unwrap();
    assert_eq!(unix, UnixWorkloadAttestorConfig { discover_workload_path: true, workload_size_limit: -1 });
    assert_eq!(c.svid_stores().count(), 1);
    assert!(c.health_checks.listener_enabled);
    assert_eq!(c.health_checks.address(), "0.0.0.0:8080");
    assert_eq!(c.telemetry.prometheus.as_ref().unwrap().port, Some(9988));
    assert_eq!(
        c.warnings,
        [
            "The use of 'jwt_svid_cache_hit_timeout' is experimental",
            "Experimental features have been enabled. Please see doc/upgrading.md for upgrade and compatibility \
             considerations for experimental features.",
        ]
    );
}

#[test]
fn json_configuration() {
    let c = load(
        r#"{
  "agent": {
    "trust_domain": "example.org",
    "server_address": "10.0.0.1",
    "server_port": 8081,
    "trust_bundle_path": "/bootstrap.crt",
    "sds": {"default_svid_name": "svid"}
  },
  "plugins": {
    "NodeAttestor": [{"join_token": {"plugin_data": {}}}],
    "KeyManager": {"disk": {"plugin_data": {"directory": "/var/lib/spire"}}},
    "WorkloadAttestor": {"unix": {"plugin_data": {"discover_workload_path": true}}, "docker": {}}
  },
  "health_checks": {"listener_enabled": true}
}"#,
    );
    assert_eq!(c.server_endpoint(), "10.0.0.1:8081");
    assert_eq!(c.sds.default_svid_name, "svid");
    assert_eq!(c.sds.default_bundle_name, "ROOTCA");
    assert_eq!(c.workload_attestors().count(), 2);
    assert_eq!(
        DiskKeyManagerAgentConfig::from_plugin(c.key_manager()).unwrap().directory,
        PathBuf::from("/var/lib/spire")
    );

    let err = error(
        "{\n  \"agent\": {\n    \"trust_domain\": \"example.org\",\n    \"server_adress\": \"x\"\n  },\n  \"plugins\": {}\n}",
    );
    assert!(err.contains("unknown configuration key \"server_adress\" at line 4 (in agent)"), "{err}");
}

#[test]
fn defaults_are_spires() {
    let c = load(&with("", ""));
    assert_eq!(c.data_dir, PathBuf::from("."));
    assert_eq!(c.socket_path, PathBuf::from("/tmp/spire-agent/public/api.sock"));
    assert_eq!(c.admin_socket_path, None);
    assert_eq!(c.trust_bundle_format, TrustBundleFormat::Pem);
    assert_eq!((c.join_token.as_deref(), c.join_token_file.as_ref()), (None, None));
    assert_eq!(
        (c.log.level, c.log.format, c.log.file.as_ref(), c.log.source_location),
        (LogLevel::Info, LogFormat::Text, None, false)
    );
    assert!(c.log_selectors.is_empty());
    assert_eq!(c.workload_x509_svid_key_type, KeyType::EcP256);
    assert_eq!((c.x509_svid_cache_max_size, c.jwt_svid_cache_max_size), (1000, 1000));
    assert_eq!(c.availability_target, None);
    assert!(!c.allow_unauthenticated_verifiers);
    assert!(c.allowed_foreign_jwt_claims.is_empty() && c.authorized_delegates.is_empty());
    assert!(!c.disable_workload_api && !c.disable_sds_api);
    assert_eq!((c.rebootstrap_mode, c.rebootstrap_delay), (RebootstrapMode::Never, Duration::from_secs(600)));
    assert!(!c.retry_bootstrap);
    assert_eq!(c.sds.default_svid_name, "default");
    assert_eq!(c.sds.default_bundle_name, "ROOTCA");
    assert_eq!(c.sds.default_all_bundles_name, "ALL");
    assert!(!c.sds.disable_spiffe_cert_validation);
    assert_eq!(c.experimental.sync_interval, Duration::from_secs(5));
    assert!(c.experimental.use_sync_authorized_entries);
    assert_eq!(c.experimental.jwt_svid_cache_hit_timeout, Duration::from_secs(30));
    assert!(!c.experimental.require_pq_kem);
    assert_eq!((c.experimental.named_pipe_name.as_ref(), c.experimental.admin_named_pipe_name.as_ref()), (None, None));
    assert!(!c.health_checks.listener_enabled);
    assert_eq!(c.telemetry, Default::default());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // A cache size of 0 is SPIRE's "default".
    let c = load(&with("    x509_svid_cache_max_size = 0", ""));
    assert_eq!(c.x509_svid_cache_max_size, 1000);
}

#[test]
fn required_keys_with_spires_messages() {
    let base = with("", "");
    assert_eq!(
        error(&base.replace("    server_address = \"spire-server\"\n", "")),
        "server_address must be configured (line 1)"
    );
    assert_eq!(error(&base.replace("    server_port = 8081\n", "")), "server_port must be configured (line 1)");
    assert_eq!(
        error(&base.replace("server_port = 8081", "server_port = 0")),
        "server_port must be configured (line 1)"
    );
    assert_eq!(
        error(&base.replace("    trust_domain = \"example.org\"\n", "")),
        "trust_domain must be configured (line 1)"
    );
    assert!(error("plugins {\n}\n").contains("\n  - agent section must be configured"));
    assert_eq!(
        error(
            "agent {\n    trust_domain = \"example.org\"\n    server_address = \"a\"\n    server_port = 1\n    insecure_bootstrap = true\n}\n"
        ),
        "plugins section must be configured"
    );
    // All at once, in SPIRE's order.
    let err = error(
        "agent {\n    data_dir = \"/d\"\n}\nplugins {\n    KeyManager \"memory\" {}\n    NodeAttestor \"x509pop\" {}\n    WorkloadAttestor \"unix\" {}\n}\n",
    );
    assert_eq!(
        err,
        "4 configuration errors:\n  - server_address must be configured (line 1)\n  \
         - server_port must be configured (line 1)\n  - trust_domain must be configured (line 1)\n  \
         - trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set (line 1)"
    );
}

#[test]
fn exactly_one_bootstrap_source() {
    assert_eq!(
        error(&without_bundle("")),
        "trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set (line 1)"
    );
    // `insecure_bootstrap = false` is not a source.
    assert!(
        error(&without_bundle("    insecure_bootstrap = false")).starts_with("trust_bundle_path or trust_bundle_url")
    );
    assert_eq!(
        error(&with("    insecure_bootstrap = true", "")),
        "only one of insecure_bootstrap or trust_bundle_path can be specified, not both (line 6)"
    );
    assert_eq!(
        error(&without_bundle("    insecure_bootstrap = true\n    trust_bundle_url = \"https://x\"")),
        "only one of insecure_bootstrap or trust_bundle_url can be specified, not both (line 6)"
    );
    assert_eq!(
        error(&with("    insecure_bootstrap = true\n    trust_bundle_url = \"https://x\"", "")),
        "only one of insecure_bootstrap, trust_bundle_url, or trust_bundle_path can be specified, not the three \
         options (line 7)"
    );
    assert_eq!(
        error(&with("    trust_bundle_url = \"https://x\"", "")),
        "only one of trust_bundle_url or trust_bundle_path can be specified, not both (line 6)"
    );
    assert_eq!(
        error(&with("    trust_bundle_spiffe_workload_api = \"unix:///run/outer/api.sock\"", "")),
        "only one of trust_bundle_spiffe_workload_api or trust_bundle_path can be specified, not both (line 6)"
    );
    assert_eq!(
        error(&without_bundle("    insecure_bootstrap = true\n    trust_bundle_spiffe_workload_api = \"unix:///a\"")),
        "only one of insecure_bootstrap or trust_bundle_spiffe_workload_api can be specified, not both (line 6)"
    );
    assert_eq!(
        error(&without_bundle(
            "    trust_bundle_url = \"https://x\"\n    trust_bundle_spiffe_workload_api = \"unix:///a\""
        )),
        "only one of trust_bundle_spiffe_workload_api or trust_bundle_url can be specified, not both (line 6)"
    );

    // Each source alone.
    let c = load(&without_bundle("    insecure_bootstrap = true"));
    assert_eq!(c.trust_bundle, TrustBundleSource::Insecure);
    let c = load(&without_bundle("    trust_bundle_spiffe_workload_api = \"unix:///run/outer/api.sock\""));
    assert_eq!(c.trust_bundle, TrustBundleSource::SpiffeWorkloadApi("unix:///run/outer/api.sock".to_owned()));
    let c = load(&without_bundle(
        "    trust_bundle_url = \"http://localhost/trustbundle?instance=a\"\n    trust_bundle_unix_socket = \"/run/attestor.sock\"",
    ));
    assert_eq!(
        c.trust_bundle,
        TrustBundleSource::Url {
            url: "http://localhost/trustbundle?instance=a".to_owned(),
            unix_socket: Some(PathBuf::from("/run/attestor.sock")),
        }
    );
}

#[test]
fn trust_bundle_url_and_format() {
    assert_eq!(
        error(&without_bundle("    trust_bundle_url = \"http://bundle.example.org\"")),
        "trust bundle URL must start with https:// (line 5)"
    );
    assert_eq!(
        error(&without_bundle("    trust_bundle_url = \"https://x\"\n    trust_bundle_unix_socket = \"/s\"")),
        "trust bundle URL must start with http:// (line 5)"
    );
    assert_eq!(
        error(&without_bundle(
            "    trust_bundle_url = \"http://localhost/tb?spire-instance=a\"\n    trust_bundle_unix_socket = \"/s\""
        )),
        "trust_bundle_url query params can not start with spire- (line 5)"
    );
    assert_eq!(
        error(&with("    trust_bundle_format = \"der\"", "")),
        "invalid value for trust_bundle_format, expected \"pem\" or \"spiffe\" (line 6)"
    );
    // SPIRE compares the format as written.
    assert!(error(&with("    trust_bundle_format = \"PEM\"", "")).starts_with("invalid value for trust_bundle_format"));
    // A unix socket without a URL is accepted with a warning.
    let c = load(&with("    trust_bundle_unix_socket = \"/s\"", ""));
    assert_eq!(c.warnings, ["trust_bundle_unix_socket (line 6) is only used with trust_bundle_url; \"/s\" is ignored"]);
}

#[test]
fn other_invalid_values() {
    assert_eq!(
        error(&with("    workload_x509_svid_key_type = \"rsa-4096\"", "")),
        "error parsing workload_x509_svid_key_type: key type \"rsa-4096\" is unknown; must be one of [rsa-2048, \
         ec-p256, ec-p384] (line 6)"
    );
    assert_eq!(
        load(&with("    workload_x509_svid_key_type = \"EC-P384\"", "")).workload_x509_svid_key_type,
        KeyType::EcP384
    );
    assert_eq!(
        error(&with("    x509_svid_cache_max_size = -10", "")),
        "x509_svid_cache_max_size should not be negative (line 6)"
    );
    assert_eq!(
        error(&with("    jwt_svid_cache_max_size = \"-1\"", "")),
        "jwt_svid_cache_max_size should not be negative (line 6)"
    );
    assert_eq!(
        error(&with("    availability_target = \"1h\"", "")),
        "availability_target must be at least 24h0m0s (line 6)"
    );
    assert_eq!(
        load(&with("    availability_target = \"24h\"", "")).availability_target,
        Some(Duration::from_secs(86400))
    );
    assert_eq!(
        error(&with("    availability_target = \"1d\"", "")),
        "could not parse agent.availability_target \"1d\": time: unknown unit \"d\" in duration \"1d\" (line 6)"
    );
    assert_eq!(
        error(&with("    authorized_delegates = [\"spiffe://other.org/x\"]", "")),
        "error validating authorized delegate: SPIFFE ID \"spiffe://other.org/x\" is not a member of trust domain \
         \"example.org\" (line 6)"
    );
    assert!(
        error(&with("    authorized_delegates = [\"example.org/x\"]", ""))
            .starts_with("error validating authorized delegate: scheme is missing or invalid"),
    );
    assert_eq!(
        error(&with("    rebootstrap_mode = \"sometimes\"", "")),
        "invalid rebootstrap_mode \"sometimes\": use \"never\", \"auto\" or \"always\" (line 6)"
    );
    assert_eq!(
        error(&with("    rebootstrap_delay = \"10\"", "")),
        "could not parse agent.rebootstrap_delay \"10\": time: missing unit in duration \"10\" (line 6)"
    );
    assert_eq!(
        error(&with("    admin_socket_path = \"/tmp/spire-agent/public/admin.sock\"", "")),
        "admin socket cannot be in the same directory or a subdirectory as that containing the Workload API socket \
         (line 6)"
    );
    assert!(
        error(&with("    admin_socket_path = \"/tmp/spire-agent/public/sub/admin.sock\"", ""))
            .starts_with("admin socket")
    );
    assert_eq!(
        load(&with("    admin_socket_path = \"/tmp/spire-agent/private/admin.sock\"", "")).admin_socket_path,
        Some(PathBuf::from("/tmp/spire-agent/private/admin.sock"))
    );
    let err = error(&with("    trust_domain = \"Example.org\"", ""));
    assert!(
        err.starts_with("could not parse trust_domain \"Example.org\": trust domain characters are limited"),
        "{err}"
    );
    assert!(
        error(&with("    log_level = \"LOUD\"", "")).starts_with("agent.log_level \"LOUD\" is not a valid log level")
    );
    assert_eq!(
        error(&with("    log_format = \"xml\"", "")),
        "agent.log_format \"xml\" is not a valid log format: use \"text\" or \"json\" (line 6)"
    );
    // SPIRE's warning for identical SDS names.
    let c = load(&with("    sds {\n        default_all_bundles_name = \"ROOTCA\"\n    }", ""));
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].starts_with("The \"default_bundle_name\" and \"default_all_bundles_name\" configurables"));
}

#[test]
fn experimental_block() {
    assert_eq!(
        error(&with("    experimental {\n        jwt_svid_cache_hit_timeout = \"4s\"\n    }", "")),
        "jwt_svid_cache_hit_timeout (4s) must be greater than 5s (line 7)"
    );
    assert_eq!(
        error(&with("    experimental {\n        jwt_svid_cache_hit_timeout = \"30s\"\n    }", "")),
        "jwt_svid_cache_hit_timeout (30s) must be less than 30s (line 7)"
    );
    assert_eq!(
        load(&with("    experimental {\n        jwt_svid_cache_hit_timeout = \"5s\"\n    }", ""))
            .experimental
            .jwt_svid_cache_hit_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        error(&with("    experimental {\n        sync_interval = \"moo\"\n    }", "")),
        "could not parse agent.experimental.sync_interval \"moo\": time: invalid duration \"moo\" (line 7)"
    );
    assert_eq!(
        error(&with("    experimental {\n        named_pipe_name = \"\\\\spire-agent\\\\public\\\\api\"\n    }", "")),
        "invalid configuration: named_pipe_name is not supported in this platform; please use socket_path instead \
         (line 6)"
    );
    assert_eq!(
        error(&with("    experimental {\n        admin_named_pipe_name = \"x\"\n    }", "")),
        "invalid configuration: admin_named_pipe_name is not supported in this platform; please use \
         admin_socket_path instead (line 6)"
    );
    // Unknown keys warn and are kept; use_sync_authorized_entries is deprecated.
    let c = load(&with(
        "    experimental {\n        use_sync_authorized_entries = false\n        brand_new_thing = 1\n        broker {\n            socket_path = \"/b\"\n        }\n    }",
        "",
    ));
    assert!(!c.experimental.use_sync_authorized_entries);
    assert!(c.experimental.broker.is_some());
    assert_eq!(c.experimental.other.len(), 1);
    assert_eq!(
        c.warnings,
        [
            "The 'use_sync_authorized_entries' configuration is deprecated. The option to disable it will be removed \
             in SPIRE 1.13.",
            "agent.experimental.brand_new_thing (line 8) is not known to spire-rs; it is kept but has no effect",
            "Experimental features have been enabled. Please see doc/upgrading.md for upgrade and compatibility \
             considerations for experimental features.",
        ]
    );
}

#[test]
fn unknown_keys_are_refused_with_path_and_line() {
    assert_eq!(
        error(&with("    server_adress = \"x\"", "")),
        "unknown configuration key \"server_adress\" at line 6 (in agent)"
    );
    assert_eq!(
        error(&with("    sds {\n        default_svid = \"x\"\n    }", "")),
        "unknown configuration key \"default_svid\" at line 7 (in agent.sds)"
    );
    assert_eq!(
        error(&format!("{}agnet {{}}\n", with("", ""))),
        "unknown configuration key \"agnet\" at line 14 (at the top level)"
    );
    assert_eq!(
        error(&with("", "    WorkloadAttestor \"unix\" {\n        plugin_data {\n            discover_path = true\n        }\n    }")
            .replace("    WorkloadAttestor \"unix\" {}\n", "")),
        "unknown configuration key \"discover_path\" at line 13 (in plugins.WorkloadAttestor.unix.plugin_data)"
    );
    assert_eq!(
        error(&with("", "").replace(
            "KeyManager \"memory\" { plugin_data = {} }",
            "KeyManager \"disk\" { plugin_data { directory = \"/d\" keys_path = \"/k\" } }"
        )),
        "unknown configuration key \"keys_path\" at line 9 (in plugins.KeyManager.disk.plugin_data)"
    );
    assert_eq!(
        error(&with("", "    DataStore \"sql\" {}")),
        "unsupported plugin type \"DataStore\": expected one of KeyManager, NodeAttestor, WorkloadAttestor, SVIDStore \
         (line 12)"
    );
    // Inside plugin_data the keys belong to the plugin: only built-ins we know are checked.
    load(&with("", "    WorkloadAttestor \"docker\" { plugin_data { anything = \"goes\" } }"));
}

#[test]
fn wrong_types() {
    assert_eq!(
        error(&with("    server_port = \"abc\"", "").replace("    server_port = 8081\n", "")),
        "invalid value for agent.server_port at line 5: expected an integer, got \"abc\""
    );
    assert_eq!(
        error(&with("", "").replace("server_port = 8081", "server_port = 70000")),
        "agent.server_port: 70000 is out of range (line 4)"
    );
    assert_eq!(
        error(&without_bundle("    insecure_bootstrap = \"yes\"")),
        "invalid value for agent.insecure_bootstrap at line 5: expected a boolean, got \"yes\""
    );
    assert_eq!(
        error(&with("    allowed_foreign_jwt_claims = \"groups\"", "")),
        "invalid value for agent.allowed_foreign_jwt_claims at line 6: expected a list of strings, got \"groups\""
    );
    assert_eq!(
        error(&with("", "").replace("server_address = \"spire-server\"", "server_address = [\"a\"]")),
        "invalid value for agent.server_address at line 3: expected a string, got a list"
    );
    assert_eq!(
        error(&with("    sds = \"x\"", "")),
        "invalid value for agent.sds at line 6: expected a block, got \"x\""
    );
    // HCL v1's coercions: numbers and booleans as strings.
    let c = load(&with("    x509_svid_cache_max_size = \"0x10\"\n    disable_workload_api = \"1\"", ""));
    assert_eq!(c.x509_svid_cache_max_size, 16);
    assert!(c.disable_workload_api);
}

#[test]
fn overrides_apply() {
    let file = "agent {\n    log_level = \"INFO\"\n}\nplugins {\n    KeyManager \"memory\" {}\n    NodeAttestor \"join_token\" {}\n    WorkloadAttestor \"unix\" {}\n}\n";
    assert!(AgentConfig::from_str(file, false).is_err());
    let dir = tempfile::tempdir().unwrap();
    let flags = AgentOverrides {
        data_dir: Some(dir.path().to_owned()),
        join_token: Some("tok".to_owned()),
        log_file: Some(PathBuf::from("/log")),
        log_format: Some("json".to_owned()),
        log_level: Some("ERROR".to_owned()),
        log_source_location: true,
        server_address: Some("[::1]".to_owned()),
        server_port: Some(9443),
        trust_domain: Some("flags.org".to_owned()),
        trust_bundle_path: Some(PathBuf::from("/b.pem")),
        trust_bundle_format: Some("spiffe".to_owned()),
        allow_unauthenticated_verifiers: true,
        socket_path: Some(PathBuf::from("/run/agent.sock")),
        disable_workload_api: true,
        disable_sds_api: true,
        rebootstrap_mode: Some("always".to_owned()),
        rebootstrap_delay: Some("2m".to_owned()),
        ..Default::default()
    };
    let c = load_with(file, &flags);
    assert_eq!(c.trust_domain.as_str(), "flags.org");
    assert_eq!(c.data_dir, dir.path());
    assert_eq!(c.server_address, "::1");
    assert_eq!(c.server_endpoint(), "[::1]:9443");
    assert_eq!(c.trust_bundle, TrustBundleSource::Path(PathBuf::from("/b.pem")));
    assert_eq!(c.trust_bundle_format, TrustBundleFormat::Spiffe);
    assert_eq!(c.socket_path, PathBuf::from("/run/agent.sock"));
    assert_eq!((c.log.level, c.log.format), (LogLevel::Error, LogFormat::Json));
    assert_eq!(c.log.file, Some(PathBuf::from("/log")));
    assert!(c.log.source_location && c.allow_unauthenticated_verifiers && c.disable_workload_api && c.disable_sds_api);
    assert_eq!(c.join_token.as_deref(), Some("tok"));
    assert_eq!((c.rebootstrap_mode, c.rebootstrap_delay), (RebootstrapMode::Always, Duration::from_secs(120)));

    // Flags win over the file, key by key.
    let c = load_with(
        &with("    data_dir = \"/file\"\n    trust_bundle_format = \"pem\"", ""),
        &AgentOverrides {
            server_address: Some("flag-server".to_owned()),
            trust_bundle_path: Some(PathBuf::from("/flag.pem")),
            trust_bundle_format: Some("spiffe".to_owned()),
            ..Default::default()
        },
    );
    assert_eq!(c.server_endpoint(), "flag-server:8081");
    assert_eq!(c.data_dir, PathBuf::from("/file"));
    assert_eq!(c.trust_bundle, TrustBundleSource::Path(PathBuf::from("/flag.pem")));
    assert_eq!(c.trust_bundle_format, TrustBundleFormat::Spiffe);

    // -insecureBootstrap next to a file's trust_bundle_path: two sources, as in SPIRE's merge.
    let insecure = AgentOverrides { insecure_bootstrap: true, ..Default::default() };
    assert_eq!(
        error_with(&with("", ""), &insecure),
        "only one of insecure_bootstrap or trust_bundle_path can be specified, not both (line 5)"
    );
    assert_eq!(load_with(&without_bundle(""), &insecure).trust_bundle, TrustBundleSource::Insecure);
    let url = AgentOverrides { trust_bundle_url: Some("http://x".to_owned()), ..Default::default() };
    assert_eq!(error_with(&without_bundle(""), &url), "trust bundle URL must start with https://");

    // Bad flag values are named as flags.
    let err = error_with(
        &with("", ""),
        &AgentOverrides {
            trust_domain: Some("Bad.Org".to_owned()),
            log_level: Some("loud".to_owned()),
            rebootstrap_mode: Some("x".to_owned()),
            rebootstrap_delay: Some("1y".to_owned()),
            ..Default::default()
        },
    );
    assert!(err.starts_with("4 configuration errors:"), "{err}");
    assert!(err.contains("could not parse trust_domain \"Bad.Org\""), "{err}");
    assert!(err.contains("-logLevel \"loud\" is not a valid log level"), "{err}");
    assert!(err.contains("invalid -rebootstrapMode \"x\""), "{err}");
    assert!(err.contains("could not parse -rebootstrapDelay \"1y\""), "{err}");
}

#[test]
fn join_token_file_is_read_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "  6b2b3c4d-token \n").unwrap();
    let quoted = format!("{:?}", token_file.display().to_string());

    let c = load(&with(&format!("    join_token_file = {quoted}"), ""));
    assert_eq!(c.join_token.as_deref(), Some("6b2b3c4d-token"));
    assert_eq!(c.join_token_file.as_deref(), Some(token_file.as_path()));

    let flags = AgentOverrides { join_token_file: Some(token_file.clone()), ..Default::default() };
    assert_eq!(load_with(&with("", ""), &flags).join_token.as_deref(), Some("6b2b3c4d-token"));

    let missing = dir.path().join("missing");
    let err = error(&with(&format!("    join_token_file = {:?}", missing.display().to_string()), ""));
    assert!(err.starts_with(&format!("unable to read join token file {:?}: ", missing.display().to_string())), "{err}");
    assert!(err.ends_with("(line 6)"), "{err}");

    std::fs::write(&token_file, "\n").unwrap();
    assert_eq!(
        error(&with(&format!("    join_token_file = {quoted}"), "")),
        format!("join token file {quoted} is empty (line 6)")
    );

    assert_eq!(
        error(&with(&format!("    join_token = \"abc\"\n    join_token_file = {quoted}"), "")),
        "only one of join_token or join_token_file can be specified, not both (line 7)"
    );
    // As in SPIRE's merge, -joinToken does not clear the file's join_token_file.
    let flags = AgentOverrides { join_token: Some("abc".to_owned()), ..Default::default() };
    assert_eq!(
        error_with(&with(&format!("    join_token_file = {quoted}"), ""), &flags),
        "only one of join_token or join_token_file can be specified, not both (line 6)"
    );
}

#[test]
fn plugin_cardinality() {
    let base = with("", "");
    assert_eq!(
        error(&base.replace("    KeyManager \"memory\" { plugin_data = {} }\n", "")),
        "plugin type \"KeyManager\": expected exactly 1 but got 0"
    );
    assert_eq!(
        error(&with("", "    KeyManager \"disk\" { plugin_data { directory = \"/d\" } }")),
        "plugin type \"KeyManager\": expected exactly 1 but got 2 (lines 9, 12)"
    );
    assert_eq!(
        error(&base.replace("    NodeAttestor \"x509pop\" { plugin_data {} }\n", "")),
        "plugin type \"NodeAttestor\": expected exactly 1 but got 0"
    );
    assert_eq!(
        error(&with("", "    NodeAttestor \"join_token\" {}")),
        "plugin type \"NodeAttestor\": expected exactly 1 but got 2 (lines 10, 12)"
    );
    assert_eq!(
        error(&base.replace("    WorkloadAttestor \"unix\" {}\n", "")),
        "plugin type \"WorkloadAttestor\": expected at least 1 but got 0"
    );
    // A disabled plugin does not count; several workload attestors and SVID stores are fine.
    assert_eq!(
        error(&base.replace("WorkloadAttestor \"unix\" {}", "WorkloadAttestor \"unix\" { enabled = false }")),
        "plugin type \"WorkloadAttestor\": expected at least 1 but got 0"
    );
    let c = load(&with(
        "",
        "    WorkloadAttestor \"docker\" {}\n    SVIDStore \"aws_secretsmanager\" {}\n    SVIDStore \"gcp_secretmanager\" {}",
    ));
    assert_eq!((c.workload_attestors().count(), c.svid_stores().count()), (2, 2));
    assert_eq!(
        error(
            &with("", "    NodeAttestor \"join_token\" {\n        plugin_cmd = \"/bin/jt\"\n    }")
                .replace("    NodeAttestor \"x509pop\" { plugin_data {} }\n", "")
        ),
        "the built-in join_token node attestor cannot be overridden by an external plugin (line 11)"
    );
    assert_eq!(
        error(
            &with("", "")
                .replace("KeyManager \"memory\" { plugin_data = {} }", "KeyManager \"disk\" { plugin_data = {} }")
        ),
        "plugins.KeyManager.disk.plugin_data.directory is required (line 9)"
    );
}

#[test]
fn a_join_token_replaces_the_node_attestor() {
    let no_attestor =
        with("    join_token = \"abc\"", "").replace("    NodeAttestor \"x509pop\" { plugin_data {} }\n", "");
    let c = load(&no_attestor);
    assert_eq!(c.node_attestation(), NodeAttestation::JoinToken("abc"));
    assert_eq!(c.node_attestor(), None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Also with the flag, and with a join_token_file.
    let file = no_attestor.replace("    join_token = \"abc\"\n", "");
    assert!(error(&file).contains("NodeAttestor"));
    let flags = AgentOverrides { join_token: Some("flag-token".to_owned()), ..Default::default() };
    assert_eq!(load_with(&file, &flags).node_attestation(), NodeAttestation::JoinToken("flag-token"));

    // A configured attestor other than join_token is replaced, with a warning.
    let c = load(&with("    join_token = \"abc\"", ""));
    assert_eq!(c.node_attestation(), NodeAttestation::JoinToken("abc"));
    assert_eq!(c.node_attestor().unwrap().name, "x509pop");
    assert_eq!(
        c.warnings,
        ["a join token is configured: the agent attests with the built-in join_token node attestor, and NodeAttestor \
          \"x509pop\" (line 10) is not used"]
    );
    // NodeAttestor "join_token" with a token is the ordinary case: no warning.
    let c =
        load(&with("    join_token = \"abc\"", "").replace("NodeAttestor \"x509pop\"", "NodeAttestor \"join_token\""));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Still at most one.
    assert_eq!(
        error(&with("    join_token = \"abc\"", "    NodeAttestor \"join_token\" {}")),
        "plugin type \"NodeAttestor\": expected at most 1 but got 2 (lines 10, 12)"
    );
}

#[test]
fn every_mistake_is_reported_at_once() {
    let err = AgentConfig::from_str(
        "agent {\n    trust_domain = \"example.org\"\n    server_adress = \"x\"\n    server_port = \"x\"\n    availability_target = \"x\"\n    insecure_bootstrap = true\n}\nplugins {\n    KeyManager \"disk\" {}\n    KeyManager \"memory\" {}\n    WorkloadAttestor \"unix\" {}\n}\n",
        false,
    )
    .unwrap_err();
    let messages: Vec<String> = err.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "server_address must be configured (line 1)",
            "unknown configuration key \"server_adress\" at line 3 (in agent)",
            "invalid value for agent.server_port at line 4: expected an integer, got \"x\"",
            "could not parse agent.availability_target \"x\": time: invalid duration \"x\" (line 5)",
            "plugins.KeyManager.disk.plugin_data.directory is required (line 9)",
            "plugin type \"KeyManager\": expected exactly 1 but got 2 (lines 9, 10)",
            "plugin type \"NodeAttestor\": expected exactly 1 but got 0",
        ]
    );
}

#[test]
fn file_errors_and_env_expansion() {
    let err = AgentConfig::from_file("does/not/exist.conf", false).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    assert!(err.to_string().ends_with("does/not/exist.conf: please use the -config flag"), "{err}");
    assert_eq!(spire_config::agent::DEFAULT_CONFIG_PATH, "conf/agent/agent.conf");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.conf");
    std::fs::write(&path, with("    log_file = \"$PATH\"", "")).unwrap();
    let c = AgentConfig::load_file(&path, true, &AgentOverrides::default()).unwrap();
    assert_eq!(c.log.file, Some(PathBuf::from(std::env::var("PATH").unwrap())));
    let c = AgentConfig::from_file(&path, false).unwrap();
    assert_eq!(c.log.file, Some(PathBuf::from("$PATH")));
}

#[test]
fn decoders() {
    let c = load(&with(
        "",
        "    WorkloadAttestor \"docker\" {}\n    NodeAttestor \"join_token\" { enabled = false plugin_data { x = 1 } }",
    ));
    // Disabled plugins are not decoded at load; decoding them refuses the key.
    let jt = c.plugins.get("NodeAttestor", "join_token").unwrap();
    assert_eq!(
        spire_config::plugin_data::expect_no_data(jt).unwrap_err().to_string(),
        "unknown configuration key \"x\" at line 13 (in plugins.NodeAttestor.join_token.plugin_data)"
    );
    let unix = c.plugins.get("WorkloadAttestor", "unix").unwrap();
    assert_eq!(UnixWorkloadAttestorConfig::from_plugin(unix).unwrap(), UnixWorkloadAttestorConfig::default());
    assert_eq!(
        error(&with("", "").replace(
            "WorkloadAttestor \"unix\" {}",
            "WorkloadAttestor \"unix\" { plugin_data { workload_size_limit = \"big\" } }"
        )),
        "invalid value for plugins.WorkloadAttestor.unix.plugin_data.workload_size_limit at line 11: expected an \
         integer, got \"big\""
    );
    assert_eq!(
        error(
            &with("", "    NodeAttestor \"join_token\" { plugin_data { token = \"x\" } }")
                .replace("    NodeAttestor \"x509pop\" { plugin_data {} }\n", "")
        ),
        "unknown configuration key \"token\" at line 11 (in plugins.NodeAttestor.join_token.plugin_data)"
    );
}
