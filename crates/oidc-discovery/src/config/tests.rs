use super::*;

fn load(text: &str) -> Result<Config, String> {
    Config::from_str(text, false).map_err(|e| e.to_string())
}

fn error(text: &str) -> String {
    load(text).expect_err("should be refused")
}

const BASE: &str = r#"
domains = ["oidc.example.org", "oidc.example.org", "other.example"]
insecure_addr = ":8080"
server_api { address = "unix:///tmp/spire-server/private/api.sock" }
"#;

#[test]
fn defaults_as_spire() {
    let c = load(BASE).unwrap();
    assert_eq!(c.domains, ["oidc.example.org", "other.example"]);
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.listen, Listen::InsecureAddr(":8080".into()));
    assert_eq!(
        c.source,
        SourceConfig::ServerApi {
            socket_path: "/tmp/spire-server/private/api.sock".into(),
            poll_interval: DEFAULT_POLL_INTERVAL
        }
    );
    assert_eq!(c.server_path_prefix, "/");
    assert!(c.health_checks.is_none() && !c.set_key_use && !c.allow_insecure_scheme && !c.log_requests);
}

#[test]
fn readme_examples_load() {
    let c = load(
        r#"
log_level = "debug"
domains = ["mypublicdomain.test"]
serving_cert_file {
 cert_file_path = "/some/path/on/disk/to/cert.pem"
 key_file_path = "/some/path/on/disk/to/key.pem"
}
workload_api {
    socket_path = "/tmp/spire-agent/public/api.sock"
    trust_domain = "domain.test"
}
health_checks {}
"#,
    )
    .unwrap();
    let Listen::ServingCertFile(s) = &c.listen else { panic!("{:?}", c.listen) };
    assert_eq!(s.addr.port(), 443);
    assert_eq!(s.file_sync_interval, DEFAULT_FILE_SYNC_INTERVAL);
    assert_eq!(
        c.health_checks,
        Some(HealthChecks { bind_port: 8008, ready_path: "/ready".into(), live_path: "/live".into() })
    );
    assert!(matches!(c.source, SourceConfig::WorkloadApi { .. }));

    let c = load(
        r#"
domains = ["mypublicdomain.test"]
acme {
    email = "email@domain.test"
    tos_accepted = true
}
server_api { address = "unix:///tmp/api.sock" }
"#,
    )
    .unwrap();
    let Listen::Acme(a) = &c.listen else { panic!() };
    assert_eq!(a.cache_dir.as_deref(), Some(Path::new("./.acme-cache")));

    let c = load(
        r#"
domains = ["d.test"]
listen_socket_path = "/run/oidc/server.sock"
file { path = "/b.json" poll_interval = "1m" }
"#,
    )
    .unwrap();
    assert_eq!(c.listen, Listen::Socket("/run/oidc/server.sock".into()));
    assert_eq!(c.source.poll_interval(), Duration::from_secs(60));
}

#[test]
fn spire_messages() {
    let cases: &[(&str, &str)] = &[
        (r#"insecure_addr = ":1" server_api { address = "unix:///a" }"#, "at least one domain must be configured"),
        (
            r#"domains = ["d"] server_api { address = "unix:///a" }"#,
            "either acme, serving_cert_file, insecure_addr or listen_socket_path must be configured",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1""#,
            "exactly one of the server_api, workload_api, or file sections must be configured",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" } file { path = "x" }"#,
            "the server_api, workload_api, and file sections are mutually exclusive",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" listen_socket_path = "/s" server_api { address = "unix:///a" }"#,
            "insecure_addr and listen_socket_path are mutually exclusive",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" acme { email = "e" tos_accepted = true } server_api { address = "unix:///a" }"#,
            "insecure_addr and the acme section are mutually exclusive",
        ),
        (
            r#"domains = ["d"] acme { email = "e" } server_api { address = "unix:///a" }"#,
            "tos_accepted must be set to true in the acme configuration section",
        ),
        (
            r#"domains = ["d"] acme { tos_accepted = true } server_api { address = "unix:///a" }"#,
            "email must be configured in the acme configuration section",
        ),
        (
            r#"domains = ["d"] acme { email = "e" tos_accepted = true } serving_cert_file { cert_file_path = "c" key_file_path = "k" } server_api { address = "unix:///a" }"#,
            "acme and serving_cert_file are mutually exclusive",
        ),
        (
            r#"domains = ["d"] serving_cert_file { key_file_path = "k" } server_api { address = "unix:///a" }"#,
            "cert_file_path must be configured in the serving_cert_file configuration section",
        ),
        (
            r#"domains = ["d"] serving_cert_file { cert_file_path = "c" key_file_path = "k" addr = "nope" } server_api { address = "unix:///a" }"#,
            "invalid addr in the serving_cert_file configuration section: address nope: missing port in address",
        ),
        (
            r#"domains = ["d"] serving_cert_file { cert_file_path = "c" key_file_path = "k" file_sync_interval = "x" } server_api { address = "unix:///a" }"#,
            "invalid file_sync_interval in the serving_cert_file configuration section: time: invalid duration \"x\"",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { }"#,
            "address must be configured in the server_api configuration section",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "dns:///x" }"#,
            "address must use the unix name system in the server_api configuration section",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" poll_interval = "10" }"#,
            "invalid poll_interval in the server_api configuration section: time: missing unit in duration \"10\"",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" workload_api { socket_path = "/s" }"#,
            "trust_domain must be configured in the workload_api configuration section",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" workload_api { trust_domain = "td" }"#,
            "socket_path must be configured in the workload_api configuration section",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" } jwt_issuer = "example.org""#,
            "the jwt_issuer url must contain a scheme",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" } jwt_issuer = "https:/path""#,
            "the jwt_issuer url must contain a host",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" } jwks_uri = "/keys""#,
            "the jwks_uri setting could not be parsed",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" } log_level = "loud""#,
            "not a valid logrus Level: \"loud\"",
        ),
        (
            r#"domains = ["d"] insecure_addr = ":1" server_api { address = "unix:///a" } log_format = "xml""#,
            "unknown logger format: \"xml\"",
        ),
    ];
    for (text, expected) in cases {
        let e = error(text);
        assert!(e.contains(expected), "{text}\n  gave: {e}\n  want: {expected}");
    }
}

#[test]
fn durations_zero_or_negative_mean_the_default() {
    for raw in ["0s", "-5s", ""] {
        let c = load(&format!(
            r#"{BASE} workload_api {{ socket_path = "/s" trust_domain = "td" poll_interval = "{raw}" }}"#
        ));
        // BASE already has server_api: the two sources conflict, so check the duration alone.
        assert!(c.is_err());
        assert_eq!(duration_field(raw, DEFAULT_POLL_INTERVAL).unwrap(), DEFAULT_POLL_INTERVAL);
    }
}

#[test]
fn unknown_keys_are_warnings_as_spire_ignores_them() {
    let c = load(&format!("{BASE}\nmystery = 1\nserver_api {{ extra = true }}")).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("mystery")), "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("extra")), "{:?}", c.warnings);
}

#[test]
fn jwt_issuer_without_jwks_uri_warns() {
    let c = load(&format!(r#"{BASE} jwt_issuer = "https://issuer.example""#)).unwrap();
    assert_eq!(c.jwt_issuer.as_deref(), Some("https://issuer.example"));
    assert!(c.warnings.iter().any(|w| w.contains("jwt_issuer configuration will also affect")));
}

#[test]
fn health_checks_port() {
    let c = load(&format!(r#"{BASE} health_checks {{ bind_port = "9090" live_path = "/l" }}"#)).unwrap();
    assert_eq!(
        c.health_checks,
        Some(HealthChecks { bind_port: 9090, ready_path: "/ready".into(), live_path: "/l".into() })
    );
}

#[test]
fn addresses_split_as_go() {
    assert_eq!(split_host_port("[::1]:443").unwrap(), ("::1", "443"));
    assert_eq!(split_host_port(":443").unwrap(), ("", "443"));
    assert!(split_host_port("a:b:c").unwrap_err().to_string().contains("too many colons"));
    assert_eq!(resolve_tcp_addr("127.0.0.1:0").unwrap(), "127.0.0.1:0".parse().unwrap());
    assert_eq!(split_url("https://u@h.example:8443/p").unwrap(), ("https", "h.example:8443"));
}

#[test]
fn json_configs_load_too() {
    let c = load(
        r#"{"domains": ["d"], "insecure_addr": ":1", "workload_api": {"socket_path": "/s", "trust_domain": "td"}}"#,
    )
    .unwrap();
    assert!(matches!(c.source, SourceConfig::WorkloadApi { .. }));
}
