use super::*;

const MINIMAL: &str = r#"
trust_domain = "example.org"
server_socket_path = "/run/spire/sockets/api.sock"
cluster = "production"
"#;

fn parse(extra: &str) -> Result<Config, String> {
    Config::parse(&format!("{MINIMAL}{extra}")).map_err(|e| e.to_string())
}

#[test]
fn defaults_are_spires() {
    let c = parse("").unwrap();
    assert_eq!(c.common.server, ServerAddress::Unix("/run/spire/sockets/api.sock".into()));
    assert_eq!(c.common.id_source, IdSource::ServiceAccount);
    assert_eq!(c.common.disabled_namespaces, vec!["kube-system".to_owned(), "kube-public".to_owned()]);
    assert_eq!(c.common.log.level, LogLevel::Info);
    assert_eq!(
        c.mode,
        Mode::Webhook(WebhookConfig {
            addr: ":8443".into(),
            cert_path: "cert.pem".into(),
            key_path: "key.pem".into(),
            cacert_path: "cacert.pem".into(),
            insecure_skip_client_verification: false,
        })
    );
    let Mode::Reconcile(r) = parse("mode = \"reconcile\"").unwrap().mode else { panic!() };
    assert_eq!(
        r,
        ReconcileConfig {
            leader_election: false,
            leader_election_resource_lock: "configmaps".into(),
            metrics_addr: ":8080".into(),
            controller_name: "spire-k8s-registrar".into(),
            add_pod_dns_names: false,
            cluster_dns_zone: "cluster.local".into(),
        }
    );
    let Mode::Crd(c) = parse("mode = \"crd\"").unwrap().mode else { panic!() };
    assert!(c.add_svc_dns_name && c.pod_controller && !c.webhook_enabled && !c.leader_election);
    assert_eq!(
        (c.metrics_bind_addr.as_str(), c.webhook_cert_dir.as_str(), c.webhook_port),
        (":8080", "/run/spire/serving-certs", 9443)
    );
}

#[test]
fn server_addresses() {
    let c = Config::parse("trust_domain = \"example.org\"\ncluster = \"c\"\nserver_address = \"unix:///tmp/api.sock\"")
        .unwrap();
    assert_eq!(c.common.server, ServerAddress::Unix("/tmp/api.sock".into()));
    let c = Config::parse(
        "trust_domain = \"example.org\"\ncluster = \"c\"\nserver_address = \"spire:8081\"\nagent_socket_path = \"/a.sock\"",
    )
    .unwrap();
    assert_eq!(c.common.server, ServerAddress::Tcp { address: "spire:8081".into(), agent_socket: "/a.sock".into() });
    let e = Config::parse("trust_domain = \"example.org\"\ncluster = \"c\"\nserver_address = \"spire:8081\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("agent_socket_path must be specified"), "{e}");
    let e = Config::parse("trust_domain = \"example.org\"\ncluster = \"c\"").unwrap_err().to_string();
    assert!(e.contains("server_address or server_socket_path must be specified"), "{e}");
}

#[test]
fn label_or_annotation_not_both() {
    assert_eq!(parse("pod_label = \"app\"").unwrap().common.id_source, IdSource::Label("app".into()));
    assert_eq!(parse("pod_annotation = \"id\"").unwrap().common.id_source, IdSource::Annotation("id".into()));
    let e = parse("pod_label = \"a\"\npod_annotation = \"b\"").unwrap_err();
    assert!(e.contains("can't specify both pod_label and pod_annotation"), "{e}");
}

#[test]
fn mistakes_are_named() {
    for (extra, expected) in [
        ("mode = \"magic\"", "invalid mode \"magic\""),
        ("trust_domian = \"x\"", "unknown configuration key \"trust_domian\""),
        ("addr = \":1\"\nmode = \"crd\"", "addr applies to mode \"webhook\" only"),
        ("controller_name = \"x\"", "controller_name applies to mode \"reconcile\" only"),
        ("leader_election = true", "leader_election applies to modes \"reconcile\" and \"crd\" only"),
        ("log_level = \"loud\"", "log_level \"loud\""),
        ("mode = \"crd\"\nwebhook_port = \"x\"", "webhook_port"),
        ("mode = \"crd\"\nidentity_template = \"x\"", "identity_template is not supported yet"),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.contains(expected), "{extra}: {e}");
    }
    let e = Config::parse("server_socket_path = \"/s\"").unwrap_err().to_string();
    assert!(e.contains("trust_domain must be specified") && e.contains("cluster must be specified"), "{e}");
    let e = Config::parse("trust_domain = \"Not A Domain\"\ncluster = \"c\"\nserver_socket_path = \"/s\"").unwrap_err();
    assert!(e.to_string().contains("malformed trust domain"), "{e}");
}
