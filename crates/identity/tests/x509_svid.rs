//! X509-SVID conformance: what the identity core issues is accepted by our validator and by the
//! independent `spiffe` crate; one hand-made certificate per rule of X509-SVID.md is rejected by our
//! validator with that rule's error, and by `spiffe` for every rule its parser checks.

mod common;

use common::*;
use rcgen::{BasicConstraints, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use spire_identity::x509::{self, X509SvidError as E, verify_svid};
use spire_identity::{BundleSet, KeyType, PrivateKey};

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

/// Whether rust-spiffe's X509Svid parser checks a rule; the rest (chain, time, EKU, criticality...)
/// it leaves to TLS verification, which the agent end-to-end tests exercise with spiffe-rustls.
#[derive(Clone, Copy, PartialEq, Debug)]
enum RustSpiffe {
    Rejects,
    DoesNotCheck,
}

struct Case {
    rule: &'static str,
    chain: Vec<Vec<u8>>,
    key: PrivateKey,
    bundles: BundleSet,
    expect: fn(&E) -> bool,
    rust_spiffe: RustSpiffe,
}

fn leaf_case(
    pki: &Pki,
    rule: &'static str,
    mutate: impl FnOnce(&mut rcgen::CertificateParams),
    expect: fn(&E) -> bool,
    rust_spiffe: RustSpiffe,
) -> Case {
    let mut p = leaf_params("spiffe://example.org/workload");
    mutate(&mut p);
    let (leaf, key) = sign_with(&mut p, &pki.intermediate);
    Case {
        rule,
        chain: vec![leaf, pki.intermediate.cert_der().to_vec()],
        key,
        bundles: pki.bundles(),
        expect,
        rust_spiffe,
    }
}

/// A chain whose intermediate is built from mutated CA parameters under the real root.
fn intermediate_case(
    pki: &Pki,
    rule: &'static str,
    mutate: impl FnOnce(&mut rcgen::CertificateParams),
    expect: fn(&E) -> bool,
    rust_spiffe: RustSpiffe,
) -> Case {
    let mut ip = ca_params();
    mutate(&mut ip);
    let (inter_der, inter_key) = sign_with(&mut ip, &pki.root);
    let (leaf, key) = sign_with_raw(&mut leaf_params("spiffe://example.org/workload"), &inter_der, &inter_key);
    Case { rule, chain: vec![leaf, inter_der], key, bundles: pki.bundles(), expect, rust_spiffe }
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// keyUsage with only digitalSignature, encoded by hand so that it can be marked non-critical.
fn non_critical_key_usage(bits: u8) -> CustomExtension {
    let unused = bits.trailing_zeros().min(7) as u8;
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 15], vec![0x03, 0x02, unused, bits]);
    ext.set_criticality(false);
    ext
}

fn cases(pki: &Pki) -> Vec<Case> {
    use RustSpiffe::*;
    let mut cases = vec![
        leaf_case(
            pki,
            "leaf without URI SAN",
            |p| p.subject_alt_names = vec![SanType::DnsName("x".try_into().unwrap())],
            |e| *e == E::UriSanCount(0),
            Rejects,
        ),
        leaf_case(
            pki,
            "leaf with two URI SANs",
            |p| p.subject_alt_names.push(uri("spiffe://example.org/other")),
            |e| *e == E::UriSanCount(2),
            Rejects,
        ),
        leaf_case(
            pki,
            "URI SAN of another scheme",
            |p| p.subject_alt_names = vec![uri("https://example.org/workload")],
            |e| matches!(e, E::BadSpiffeId(_)),
            Rejects,
        ),
        leaf_case(
            pki,
            "URI SAN with percent-encoding",
            |p| p.subject_alt_names = vec![uri("spiffe://example.org/a%2Fb")],
            |e| matches!(e, E::BadSpiffeId(_)),
            Rejects,
        ),
        leaf_case(
            pki,
            "leaf SPIFFE ID without path",
            |p| p.subject_alt_names = vec![uri("spiffe://example.org")],
            |e| matches!(e, E::LeafWithoutPath(_)),
            Rejects,
        ),
        leaf_case(
            pki,
            "leaf with cA=true",
            |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
            |e| *e == E::LeafIsCa,
            Rejects,
        ),
        leaf_case(pki, "leaf without key usage", |p| p.key_usages.clear(), |e| *e == E::LeafKeyUsageMissing, Rejects),
        leaf_case(
            pki,
            "leaf key usage not critical",
            |p| {
                p.key_usages.clear();
                p.custom_extensions.push(non_critical_key_usage(0x80));
            },
            |e| *e == E::LeafKeyUsageNotCritical,
            DoesNotCheck,
        ),
        leaf_case(
            pki,
            "leaf without digitalSignature",
            |p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment],
            |e| *e == E::LeafMissingDigitalSignature,
            Rejects,
        ),
        leaf_case(
            pki,
            "leaf with keyCertSign",
            |p| p.key_usages.push(KeyUsagePurpose::KeyCertSign),
            |e| *e == E::LeafHasKeyCertSign,
            Rejects,
        ),
        leaf_case(
            pki,
            "leaf with cRLSign",
            |p| p.key_usages.push(KeyUsagePurpose::CrlSign),
            |e| *e == E::LeafHasCrlSign,
            Rejects,
        ),
        leaf_case(
            pki,
            "leaf EKU without clientAuth",
            |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth],
            |e| *e == E::LeafExtKeyUsage("clientAuth"),
            DoesNotCheck,
        ),
        leaf_case(
            pki,
            "leaf EKU without serverAuth",
            |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
            |e| *e == E::LeafExtKeyUsage("serverAuth"),
            DoesNotCheck,
        ),
        leaf_case(
            pki,
            "empty subject with non-critical SAN",
            |p| {
                p.distinguished_name = rcgen::DistinguishedName::new();
                p.subject_alt_names.clear();
                let san = yasna::construct_der(|w| {
                    w.write_sequence(|w| {
                        w.next().write_tagged_implicit(yasna::Tag::context(6), |w| {
                            w.write_ia5_string("spiffe://example.org/workload")
                        })
                    })
                });
                let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 17], san);
                ext.set_criticality(false);
                p.custom_extensions.push(ext);
            },
            |e| *e == E::LeafSanNotCritical,
            DoesNotCheck,
        ),
        leaf_case(
            pki,
            "expired leaf",
            |p| {
                p.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(3);
                p.not_after = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
            },
            |e| *e == E::Expired,
            DoesNotCheck,
        ),
        leaf_case(
            pki,
            "leaf not yet valid",
            |p| p.not_before = time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
            |e| *e == E::NotYetValid,
            DoesNotCheck,
        ),
        leaf_case(
            pki,
            "leaf of another trust domain",
            |p| p.subject_alt_names = vec![uri("spiffe://other.org/workload")],
            |e| *e == E::NoBundle("other.org".into()),
            DoesNotCheck,
        ),
        intermediate_case(
            pki,
            "signing certificate with cA=false",
            |p| p.is_ca = IsCa::ExplicitNoCa,
            |e| *e == E::SigningNotCa { index: 1 },
            Rejects,
        ),
        intermediate_case(
            pki,
            "signing certificate without keyCertSign",
            |p| p.key_usages = vec![KeyUsagePurpose::CrlSign],
            |e| *e == E::SigningMissingKeyCertSign { index: 1 },
            Rejects,
        ),
        intermediate_case(
            pki,
            "signing certificate without key usage",
            |p| p.key_usages.clear(),
            |e| *e == E::SigningKeyUsageMissing { index: 1 },
            Rejects,
        ),
        intermediate_case(
            pki,
            "signing certificate key usage not critical",
            |p| {
                p.key_usages.clear();
                p.custom_extensions.push(non_critical_key_usage(0x04));
            },
            |e| *e == E::SigningKeyUsageNotCritical { index: 1 },
            DoesNotCheck,
        ),
        intermediate_case(
            pki,
            "signing certificate SPIFFE ID with a path",
            |p| p.subject_alt_names = vec![uri("spiffe://example.org/ca")],
            |e| matches!(e, E::SigningIdWithPath { index: 1, .. }),
            DoesNotCheck,
        ),
    ];

    // Signed by a CA that is not in the bundle.
    let stranger = Pki::new(KeyType::EcP256);
    let (chain, key) = stranger.leaf("spiffe://example.org/workload", &[]);
    cases.push(Case {
        rule: "signed by an unknown authority",
        chain,
        key,
        bundles: pki.bundles(),
        expect: |e| matches!(e, E::UnknownAuthority(_)),
        rust_spiffe: RustSpiffe::DoesNotCheck,
    });

    // The intermediate left out of the chain.
    let (mut chain, key) = pki.leaf("spiffe://example.org/workload", &[]);
    chain.truncate(1);
    cases.push(Case {
        rule: "chain missing its intermediate",
        chain,
        key,
        bundles: pki.bundles(),
        expect: |e| matches!(e, E::UnknownAuthority(_)),
        rust_spiffe: RustSpiffe::DoesNotCheck,
    });

    // A leaf whose signature bits were altered.
    let (mut chain, key) = pki.leaf("spiffe://example.org/workload", &[]);
    let last = chain[0].len() - 1;
    chain[0][last] ^= 0x01;
    cases.push(Case {
        rule: "leaf signature altered",
        chain,
        key,
        bundles: pki.bundles(),
        expect: |e| *e == E::BadSignature,
        rust_spiffe: RustSpiffe::DoesNotCheck,
    });

    // An intermediate that allows no CA below it (pathLenConstraint 0) above another intermediate.
    let mut constrained = ca_params();
    constrained.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    constrained.distinguished_name.push(rcgen::DnType::CommonName, "upper");
    let (upper_der, upper_key) = sign_with(&mut constrained, &pki.root);
    let mut lower = ca_params();
    lower.distinguished_name.push(rcgen::DnType::CommonName, "lower");
    let (lower_der, lower_key) = sign_with_raw(&mut lower, &upper_der, &upper_key);
    let (leaf, key) = sign_with_raw(&mut leaf_params("spiffe://example.org/workload"), &lower_der, &lower_key);
    cases.push(Case {
        rule: "path length constraint exceeded",
        chain: vec![leaf, lower_der, upper_der],
        key,
        bundles: pki.bundles(),
        expect: |e| matches!(e, E::Path(_)),
        rust_spiffe: RustSpiffe::DoesNotCheck,
    });

    // An empty chain and garbage.
    cases.push(Case {
        rule: "empty chain",
        chain: vec![],
        key: PrivateKey::generate(KeyType::EcP256).unwrap(),
        bundles: pki.bundles(),
        expect: |e| *e == E::EmptyChain,
        rust_spiffe: RustSpiffe::Rejects,
    });
    cases.push(Case {
        rule: "not a certificate",
        chain: vec![b"garbage".to_vec()],
        key: PrivateKey::generate(KeyType::EcP256).unwrap(),
        bundles: pki.bundles(),
        expect: |e| matches!(e, E::Malformed { index: 0, .. }),
        rust_spiffe: RustSpiffe::Rejects,
    });
    cases
}

#[test]
fn every_broken_rule_is_rejected() {
    let pki = Pki::new(KeyType::EcP256);
    let cases = cases(&pki);
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        match verify_svid(&case.chain, &case.bundles, now()) {
            Ok(_) => failures.push(format!("{}: accepted by our validator", case.rule)),
            Err(e) if !(case.expect)(&e) => failures.push(format!("{}: wrong error {e:?}", case.rule)),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let theirs = spiffe_accepts(&case.chain, &case.key);
        match (case.rust_spiffe, theirs) {
            (RustSpiffe::Rejects, Ok(id)) => failures.push(format!("{}: rust-spiffe accepted {id}", case.rule)),
            (RustSpiffe::DoesNotCheck, Err(e)) => {
                failures.push(format!("{}: rust-spiffe rejects ({e}); mark it Rejects", case.rule))
            }
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
