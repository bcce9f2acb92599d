//! The X509-SVID conformance table: one certificate chain per rule of X509-SVID.md, each breaking
//! exactly that rule, with the error our validator must give and what the independent rust-spiffe
//! stack is known to do with it.

use rcgen::{BasicConstraints, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use spire_identity::x509::X509SvidError as E;
use spire_identity::{BundleSet, KeyType, PrivateKey};

use crate::pki::*;

/// One broken chain.
#[derive(Debug)]
pub struct Case {
    /// The rule it breaks.
    pub rule: &'static str,
    /// Leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's key.
    pub key: PrivateKey,
    /// What to validate against.
    pub bundles: BundleSet,
    /// Whether our validator's error is the one for this rule.
    pub expect: fn(&E) -> bool,
    /// Whether rust-spiffe's `X509Svid` parser rejects it.
    pub parser_rejects: bool,
    /// Whether spiffe-rustls rejects it when a TLS server presents it (`None`: cannot be presented).
    pub tls_rejects: Option<bool>,
}

/// Who in the rust-spiffe stack rejects a case: its parser, its TLS verifier, both or neither.
#[derive(Clone, Copy, Debug)]
enum Theirs {
    Both,
    Parser,
    Tls,
    Neither,
}

impl Theirs {
    fn parser(self) -> bool {
        matches!(self, Self::Both | Self::Parser)
    }

    fn tls(self) -> Option<bool> {
        Some(matches!(self, Self::Both | Self::Tls))
    }
}

fn leaf_case(
    pki: &Pki,
    rule: &'static str,
    mutate: impl FnOnce(&mut rcgen::CertificateParams),
    expect: fn(&E) -> bool,
    theirs: Theirs,
) -> Case {
    let mut p = leaf_params("spiffe://example.org/workload");
    mutate(&mut p);
    let (leaf, key) = sign_with(&mut p, &pki.intermediate);
    let chain = vec![leaf, pki.intermediate.cert_der().to_vec()];
    Case {
        rule,
        chain,
        key,
        bundles: pki.bundles(),
        expect,
        parser_rejects: theirs.parser(),
        tls_rejects: theirs.tls(),
    }
}

/// A chain whose intermediate is built from mutated CA parameters under the real root.
fn intermediate_case(
    pki: &Pki,
    rule: &'static str,
    mutate: impl FnOnce(&mut rcgen::CertificateParams),
    expect: fn(&E) -> bool,
    theirs: Theirs,
) -> Case {
    let mut ip = ca_params();
    mutate(&mut ip);
    let (inter_der, inter_key) = sign_with(&mut ip, &pki.root);
    let (leaf, key) = sign_with_raw(&mut leaf_params("spiffe://example.org/workload"), &inter_der, &inter_key);
    let chain = vec![leaf, inter_der];
    Case {
        rule,
        chain,
        key,
        bundles: pki.bundles(),
        expect,
        parser_rejects: theirs.parser(),
        tls_rejects: theirs.tls(),
    }
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

/// The whole table for `pki`.
pub fn broken_x509_svids(pki: &Pki) -> Vec<Case> {
    use Theirs::*;
    let mut cases = vec![
        leaf_case(
            pki,
            "leaf without URI SAN",
            |p| p.subject_alt_names = vec![SanType::DnsName("x".try_into().unwrap())],
            |e| *e == E::UriSanCount(0),
            Both,
        ),
        leaf_case(
            pki,
            "leaf with two URI SANs",
            |p| p.subject_alt_names.push(uri("spiffe://example.org/other")),
            |e| *e == E::UriSanCount(2),
            Both,
        ),
        leaf_case(
            pki,
            "URI SAN of another scheme",
            |p| p.subject_alt_names = vec![uri("https://example.org/workload")],
            |e| matches!(e, E::BadSpiffeId(_)),
            Both,
        ),
        leaf_case(
            pki,
            "URI SAN with percent-encoding",
            |p| p.subject_alt_names = vec![uri("spiffe://example.org/a%2Fb")],
            |e| matches!(e, E::BadSpiffeId(_)),
            Both,
        ),
        leaf_case(
            pki,
            "leaf SPIFFE ID without path",
            |p| p.subject_alt_names = vec![uri("spiffe://example.org")],
            |e| matches!(e, E::LeafWithoutPath(_)),
            Both,
        ),
        leaf_case(
            pki,
            "leaf with cA=true",
            |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
            |e| *e == E::LeafIsCa,
            Both,
        ),
        leaf_case(pki, "leaf without key usage", |p| p.key_usages.clear(), |e| *e == E::LeafKeyUsageMissing, Both),
        leaf_case(
            pki,
            "leaf key usage not critical",
            |p| {
                p.key_usages.clear();
                p.custom_extensions.push(non_critical_key_usage(0x80));
            },
            |e| *e == E::LeafKeyUsageNotCritical,
            Neither,
        ),
        leaf_case(
            pki,
            "leaf without digitalSignature",
            |p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment],
            |e| *e == E::LeafMissingDigitalSignature,
            Both,
        ),
        leaf_case(
            pki,
            "leaf with keyCertSign",
            |p| p.key_usages.push(KeyUsagePurpose::KeyCertSign),
            |e| *e == E::LeafHasKeyCertSign,
            Both,
        ),
        leaf_case(
            pki,
            "leaf with cRLSign",
            |p| p.key_usages.push(KeyUsagePurpose::CrlSign),
            |e| *e == E::LeafHasCrlSign,
            Both,
        ),
        leaf_case(
            pki,
            "leaf EKU without clientAuth",
            |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth],
            |e| *e == E::LeafExtKeyUsage("clientAuth"),
            Neither,
        ),
        leaf_case(
            pki,
            "leaf EKU without serverAuth",
            |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
            |e| *e == E::LeafExtKeyUsage("serverAuth"),
            Tls,
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
            Neither,
        ),
        leaf_case(
            pki,
            "expired leaf",
            |p| {
                p.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(3);
                p.not_after = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
            },
            |e| *e == E::Expired,
            Tls,
        ),
        leaf_case(
            pki,
            "leaf not yet valid",
            |p| p.not_before = time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
            |e| *e == E::NotYetValid,
            Tls,
        ),
        leaf_case(
            pki,
            "leaf of another trust domain",
            |p| p.subject_alt_names = vec![uri("spiffe://other.org/workload")],
            |e| *e == E::NoBundle("other.org".into()),
            Tls,
        ),
        intermediate_case(
            pki,
            "signing certificate with cA=false",
            |p| p.is_ca = IsCa::ExplicitNoCa,
            |e| *e == E::SigningNotCa { index: 1 },
            Both,
        ),
        intermediate_case(
            pki,
            "signing certificate without keyCertSign",
            |p| p.key_usages = vec![KeyUsagePurpose::CrlSign],
            |e| *e == E::SigningMissingKeyCertSign { index: 1 },
            Both,
        ),
        intermediate_case(
            pki,
            "signing certificate without key usage",
            |p| p.key_usages.clear(),
            |e| *e == E::SigningKeyUsageMissing { index: 1 },
            Parser,
        ),
        intermediate_case(
            pki,
            "signing certificate key usage not critical",
            |p| {
                p.key_usages.clear();
                p.custom_extensions.push(non_critical_key_usage(0x04));
            },
            |e| *e == E::SigningKeyUsageNotCritical { index: 1 },
            Neither,
        ),
        intermediate_case(
            pki,
            "signing certificate SPIFFE ID with a path",
            |p| p.subject_alt_names = vec![uri("spiffe://example.org/ca")],
            |e| matches!(e, E::SigningIdWithPath { index: 1, .. }),
            Neither,
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
        parser_rejects: false,
        tls_rejects: Some(true),
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
        parser_rejects: false,
        tls_rejects: Some(true),
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
        parser_rejects: false,
        tls_rejects: Some(true),
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
        parser_rejects: false,
        tls_rejects: Some(true),
    });

    // An empty chain and garbage.
    cases.push(Case {
        rule: "empty chain",
        chain: vec![],
        key: PrivateKey::generate(KeyType::EcP256).unwrap(),
        bundles: pki.bundles(),
        expect: |e| *e == E::EmptyChain,
        parser_rejects: true,
        tls_rejects: None,
    });
    cases.push(Case {
        rule: "not a certificate",
        chain: vec![b"garbage".to_vec()],
        key: PrivateKey::generate(KeyType::EcP256).unwrap(),
        bundles: pki.bundles(),
        expect: |e| matches!(e, E::Malformed { index: 0, .. }),
        parser_rejects: true,
        tls_rejects: None,
    });
    cases
}
