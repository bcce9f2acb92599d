use x509_parser::prelude::*;

use super::*;

fn request(ttl: Duration) -> Request {
    Request {
        namespace: "spire".into(),
        service: "k8s-workload-registrar".into(),
        ca_key: KeyType::EcP256,
        server_key: KeyType::EcP384,
        client_key: KeyType::Rsa2048,
        ttl,
        kubeconfig_path: "/etc/kubernetes/registrar.yaml".into(),
    }
}

/// The PEM blocks of `text` in order (inline in the ConfigMap, or base64 in data fields).
fn pem_blocks(text: &str) -> Vec<::pem::Pem> {
    let mut found = ::pem::parse_many(text).unwrap_or_default();
    for word in text.split_whitespace() {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(word)
            && let Ok(s) = String::from_utf8(bytes)
        {
            found.extend(::pem::parse_many(&s).unwrap_or_default());
        }
    }
    found
}

#[test]
fn the_documents_hold_a_working_pki() {
    let yaml = generate(&request(Duration::from_secs(3600))).unwrap();
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    assert_eq!(docs.len(), 5, "five documents, each after a ---: {yaml}");
    for kind in ["ConfigMap", "Secret", "Config", "AdmissionConfiguration", "ValidatingWebhookConfiguration"] {
        assert!(yaml.contains(&format!("kind: {kind}\n")), "{kind} missing");
    }
    assert!(yaml.contains("kubeConfigFile: /etc/kubernetes/registrar.yaml"));
    assert!(yaml.contains("- name: k8s-workload-registrar.spire.svc"));

    let blocks = pem_blocks(&yaml);
    let certs: Vec<&::pem::Pem> = blocks.iter().filter(|p| p.tag() == "CERTIFICATE").collect();
    let parsed: Vec<X509Certificate<'_>> =
        certs.iter().map(|p| X509Certificate::from_der(p.contents()).unwrap().1).collect();
    let ca = parsed.iter().find(|c| c.is_ca()).expect("the CA");
    let server = parsed.iter().find(|c| c.subject().to_string().contains("SERVER")).expect("server cert");
    let client = parsed.iter().find(|c| c.subject().to_string().contains("CLIENT")).expect("client cert");
    for leaf in [server, client] {
        leaf.verify_signature(Some(ca.public_key())).expect("signed by the CA");
        assert!(!leaf.is_ca());
    }
    let sans = server.subject_alternative_name().unwrap().unwrap();
    assert_eq!(sans.value.general_names, vec![GeneralName::DNSName("k8s-workload-registrar.spire.svc")]);
    assert!(server.extended_key_usage().unwrap().unwrap().value.server_auth);
    assert!(client.extended_key_usage().unwrap().unwrap().value.client_auth);
    let keys = blocks.iter().filter(|p| p.tag() == "PRIVATE KEY").count();
    assert_eq!(keys, 2, "the server key (Secret) and the client key (kubeconfig)");
}

#[test]
fn ttl_zero_never_expires() {
    let yaml = generate(&request(Duration::ZERO)).unwrap();
    let ca = pem_blocks(&yaml).into_iter().find(|p| p.tag() == "CERTIFICATE").unwrap();
    let (_, cert) = X509Certificate::from_der(ca.contents()).unwrap();
    assert_eq!(cert.validity().not_after.to_datetime().year(), 9999);
}

#[test]
fn flags_are_spires() {
    let mut out = Vec::new();
    run(&["-namespace".into(), "infra".into(), "-service".into(), "reg".into()], &mut out).unwrap();
    let yaml = String::from_utf8(out).unwrap();
    assert!(yaml.contains("name: reg.infra.svc") && yaml.contains("namespace: infra"), "{yaml}");
    let e = run(&["-ca-key-alg".into(), "ec-p224".into()], &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("unsupported key algorithm \"ec-p224\""), "{e}");
    let e = run(&["-bogus".into()], &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("flag provided but not defined: -bogus"), "{e}");
}
