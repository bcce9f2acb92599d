//! Property tests: whatever is printed parses back, whatever the library issues validates, and no
//! input makes a parser panic.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use spire_identity::jwt::{JwtSigner, JwtSvidParams, sign_jwt_svid, validate_jwt_svid};
use spire_identity::x509::{self, SvidParams, verify_svid};
use spire_identity::{Bundle, BundleSet, JwtAuthority, KeyType, PrivateKey, Selector, SpiffeId, TrustDomain};
use spire_testkit::pki::*;

static PKI: LazyLock<Pki> = LazyLock::new(|| Pki::new(KeyType::EcP256));
static LEAF_KEY: LazyLock<PrivateKey> = LazyLock::new(|| PrivateKey::generate(KeyType::EcP256).unwrap());

fn trust_domain() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9._-]{1,12}", 0..6).prop_map(|segs| {
        segs.into_iter()
            .map(|s| if s == "." || s == ".." { format!("{s}x") } else { s })
            .map(|s| format!("/{s}"))
            .collect()
    })
}

fn dns_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn spiffe_id_prints_and_parses_back(td in trust_domain(), path in path()) {
        let text = format!("spiffe://{td}{path}");
        let id = SpiffeId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text.clone());
        prop_assert_eq!(SpiffeId::parse(&id.to_string()).unwrap(), id.clone());
        let again = SpiffeId::from_parts(&TrustDomain::parse(&td).unwrap(), &path).unwrap();
        prop_assert_eq!(again, id);
    }

    #[test]
    fn spiffe_id_parser_never_panics_and_accepts_only_canonical_text(input in "\\PC{0,80}") {
        if let Ok(id) = SpiffeId::parse(&input) {
            prop_assert_eq!(id.to_string(), input);
        }
    }

    #[test]
    fn selectors_print_and_parse_back(kind in "[a-z0-9_-]{1,10}", value in "[^\\x00]{1,30}") {
        let s = Selector::new(kind, value).unwrap();
        prop_assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn bundle_parser_never_panics(input in "\\PC{0,200}") {
        let _ = Bundle::from_spiffe_json(td(), input.as_bytes());
    }

    #[test]
    fn jwt_validator_never_panics(input in "[A-Za-z0-9_.-]{0,200}") {
        let _ = validate_jwt_svid(&input, &BundleSet::new(), &["a"], SystemTime::now());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_issued_x509_svid_validates(path in path().prop_filter("leaf needs a path", |p| !p.is_empty()),
                                        dns in prop::collection::vec(dns_name(), 0..3),
                                        ttl in 60u64..200_000) {
        let id = SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap();
        let leaf = x509::sign_svid(&SvidParams {
            spiffe_id: &id,
            public_key_der: &LEAF_KEY.public_key_der(),
            dns_names: &dns,
            subject: None,
            now: SystemTime::now(),
            ttl: Duration::from_secs(ttl),
        }, &PKI.intermediate).unwrap();
        let chain = vec![leaf, PKI.intermediate.cert_der().to_vec()];
        let verified = verify_svid(&chain, &PKI.bundles(), SystemTime::now()).unwrap();
        prop_assert_eq!(&verified.spiffe_id, &id);
        let theirs = spiffe::X509Svid::parse_from_der(&x509::join_der_chain(&chain), LEAF_KEY.pkcs8_der()).unwrap();
        prop_assert_eq!(theirs.spiffe_id().to_string(), id.to_string());
    }

    #[test]
    fn every_issued_jwt_svid_validates(path in path().prop_filter("needs a path", |p| !p.is_empty()),
                                       aud in prop::collection::vec("[a-zA-Z0-9:/._-]{1,20}", 1..4),
                                       ttl in 1u64..100_000) {
        let id = SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap();
        let mut bundle = Bundle::new(td());
        bundle.add_jwt_authority(JwtAuthority { key_id: "k".into(), public_key_der: LEAF_KEY.public_key_der(), expires_at: 0 }).unwrap();
        let token = sign_jwt_svid(&JwtSvidParams {
            spiffe_id: &id, audience: &aud, now: SystemTime::now(), ttl: Duration::from_secs(ttl), issuer: None, jti: None,
        }, &JwtSigner::new("k", LEAF_KEY.clone())).unwrap();
        let v = validate_jwt_svid(&token, &bundle.into(), &aud[..1], SystemTime::now()).unwrap();
        prop_assert_eq!(v.spiffe_id, id);
        prop_assert_eq!(v.audience, aud);
    }

    #[test]
    fn bundles_round_trip(seq in any::<u64>(), hint in proptest::option::of(0u64..1_000_000), n_jwt in 0usize..4) {
        let mut b = PKI.bundle();
        b.sequence_number = seq;
        b.refresh_hint = hint;
        for i in 0..n_jwt {
            b.add_jwt_authority(JwtAuthority { key_id: format!("k{i}"), public_key_der: LEAF_KEY.public_key_der(), expires_at: 0 }).unwrap();
        }
        prop_assert_eq!(Bundle::from_spiffe_json(td(), b.to_spiffe_json().as_bytes()).unwrap(), b);
    }
}
