//! X509-SVID conformance: what the identity core issues is accepted by our validator and by the
//! independent `spiffe` crate; one hand-made certificate per rule of X509-SVID.md is rejected by our
//! validator with that rule's error, and by `spiffe` for every rule its parser checks.

use spire_identity::x509::{self, X509SvidError as E, verify_svid};
use spire_identity::{KeyType, PrivateKey};
use spire_testkit::pki::*;
use spire_testkit::x509_cases::broken_x509_svids;

fn spiffe_accepts(chain: &[Vec<u8>], key: &PrivateKey) -> Result<String, String> {
    spiffe::X509Svid::parse_from_der(&x509::join_der_chain(chain), key.pkcs8_der())
        .map(|svid| svid.spiffe_id().to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn issued_chain_is_accepted_by_us_and_rust_spiffe() {
    for key_type in KeyType::ALL {
        let pki = Pki::new(key_type);
        let (chain, key) = pki.leaf("spiffe://example.org/workload", &["web.example.org".into(), "web".into()]);
        let verified = verify_svid(&chain, &pki.bundles(), now()).unwrap();
        assert_eq!(verified.spiffe_id.to_string(), "spiffe://example.org/workload");
        assert_eq!(spiffe_accepts(&chain, &key).unwrap(), "spiffe://example.org/workload", "{key_type}");
    }
}

#[test]
fn issued_leaf_follows_the_spire_template() {
    use x509_parser::prelude::*;
    let pki = Pki::new(KeyType::EcP256);
    let (chain, _) = pki.leaf("spiffe://example.org/w", &["first.example".into(), "second.example".into()]);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let (_, inter) = X509Certificate::from_der(&chain[1]).unwrap();
    assert_eq!(leaf.subject().to_string(), "C=US, O=SPIRE, CN=first.example");
    let serial = leaf.raw_serial();
    assert!(!serial.is_empty() && serial.len() <= 17, "128-bit serial, got {} bytes", serial.len());
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature() && ku.value.key_encipherment() && ku.value.key_agreement());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!leaf.basic_constraints().unwrap().unwrap().value.ca);
    let skid = |c: &X509Certificate<'_>| {
        c.iter_extensions().find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
    };
    let akid = leaf
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => None,
        })
        .unwrap();
    assert_eq!(Some(akid), skid(&inter), "AKID of the leaf is the SKID of its issuer");
    let names: Vec<String> =
        leaf.subject_alternative_name().unwrap().unwrap().value.general_names.iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["URI(spiffe://example.org/w)", "DNSName(first.example)", "DNSName(second.example)"]);
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    assert!((3600 + 9..=3600 + 11).contains(&(na - nb)), "NotBefore is 10 s back: {}", na - nb);
    // The CA carries the trust domain ID and a serial number in its subject.
    assert!(inter.subject().to_string().contains("O=SPIFFE"));
    assert!(inter.is_ca());
}

#[test]
fn not_after_is_capped_at_the_issuer() {
    let pki = Pki::new(KeyType::EcP256);
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let leaf = x509::sign_svid(
        &x509::SvidParams {
            spiffe_id: &id("spiffe://example.org/long"),
            public_key_der: &key.public_key_der(),
            dns_names: &[],
            subject: None,
            now: now(),
            ttl: 1000 * HOUR,
        },
        &pki.intermediate,
    )
    .unwrap();
    let verified = verify_svid(&[leaf, pki.intermediate.cert_der().to_vec()], &pki.bundles(), now()).unwrap();
    let cap = pki.intermediate.not_after();
    assert!(verified.not_after <= cap && verified.not_after + std::time::Duration::from_secs(1) >= cap);
}

#[test]
fn every_broken_rule_is_rejected() {
    let pki = Pki::new(KeyType::EcP256);
    let cases = broken_x509_svids(&pki);
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        match verify_svid(&case.chain, &case.bundles, now()) {
            Ok(_) => failures.push(format!("{}: accepted by our validator", case.rule)),
            Err(e) if !(case.expect)(&e) => failures.push(format!("{}: wrong error {e:?}", case.rule)),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        match (case.parser_rejects, spiffe_accepts(&case.chain, &case.key)) {
            (true, Ok(id)) => failures.push(format!("{}: rust-spiffe's parser accepted {id}", case.rule)),
            (false, Err(e)) => failures.push(format!("{}: rust-spiffe's parser rejects ({e}); mark it so", case.rule)),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn upper_case_trust_domain_is_refused_though_rust_spiffe_folds_it() {
    // A known disagreement between clients (go-spiffe refuses, rust-spiffe lower-cases): we refuse.
    let pki = Pki::new(KeyType::EcP256);
    let mut p = leaf_params("spiffe://Example.org/workload");
    let (leaf, _key) = sign_with(&mut p, &pki.intermediate);
    let err = verify_svid(&[leaf, pki.intermediate.cert_der().to_vec()], &pki.bundles(), now()).unwrap_err();
    assert!(matches!(err, E::BadSpiffeId(_)), "{err:?}");
}

#[test]
fn leaf_directly_under_root_and_federated_bundles() {
    let pki = Pki::new(KeyType::EcP384);
    let (leaf, _) = sign_with(&mut leaf_params("spiffe://example.org/direct"), &pki.root);
    let verified = verify_svid(std::slice::from_ref(&leaf), &pki.bundles(), now()).unwrap();
    assert_eq!(verified.spiffe_id.to_string(), "spiffe://example.org/direct");
    // The right bundle is chosen by the SVID's trust domain, never another one.
    let other = Pki::new(KeyType::EcP256);
    let mut wrong = spire_identity::Bundle::new(spire_identity::TrustDomain::parse("example.org").unwrap());
    wrong.add_x509_authority(other.root.cert_der().to_vec()).unwrap();
    assert!(matches!(verify_svid(&[leaf], &wrong.into(), now()).unwrap_err(), E::UnknownAuthority(_)));
}

#[test]
fn issuer_checks_key_and_ca_flag() {
    let pki = Pki::new(KeyType::EcP256);
    let other = PrivateKey::generate(KeyType::EcP256).unwrap();
    assert!(x509::Issuer::new(pki.root.cert_der().to_vec(), other).is_err());
    let (leaf, key) = pki.leaf("spiffe://example.org/w", &[]);
    assert!(x509::Issuer::new(leaf[0].clone(), key).is_err());
}

#[test]
fn pem_and_der_helpers_round_trip() {
    let pki = Pki::new(KeyType::EcP256);
    let (chain, _) = pki.leaf("spiffe://example.org/w", &[]);
    let joined = x509::join_der_chain(&chain);
    assert_eq!(x509::split_der_chain(&joined).unwrap(), chain);
    let pem = x509::certs_to_pem(&chain);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n") && !pem.contains('\r'));
    assert_eq!(x509::certs_from_pem(&pem).unwrap(), chain);
    assert!(x509::certs_from_pem("nothing").is_err());
    assert!(x509::split_der_chain(b"\x30\x03abc").is_err());
}
