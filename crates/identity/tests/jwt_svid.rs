//! JWT-SVID conformance: tokens the identity core signs validate with our validator and with
//! rust-spiffe's `JwtSvid::parse_and_validate` against the JWT bundle the core writes; one forged
//! token per rule of JWT-SVID.md is rejected by both.

use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use spire_identity::jwt::{
    JwtAlgorithm, JwtSigner, JwtSvidError as E, JwtSvidParams, random_key_id, sign_jwt_svid, validate_jwt_svid,
};
use spire_identity::{Bundle, BundleSet, JwtAuthority, KeyType, PrivateKey, SpiffeId, TrustDomain};

const KID: &str = "key-1";

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A signing key and the bundle that trusts it.
struct Authority {
    key: PrivateKey,
    bundle: Bundle,
}

fn authority(key_type: KeyType) -> Authority {
    let key = PrivateKey::generate(key_type).unwrap();
    let mut bundle = Bundle::new(td());
    bundle
        .add_jwt_authority(JwtAuthority { key_id: KID.into(), public_key_der: key.public_key_der(), expires_at: 0 })
        .unwrap();
    Authority { key, bundle }
}

fn rust_spiffe_bundles(bundle: &Bundle) -> spiffe::JwtBundleSet {
    let td = spiffe::TrustDomain::new(bundle.trust_domain().as_str()).unwrap();
    let jwt_bundle = spiffe::JwtBundle::from_jwt_authorities(td, &bundle.to_jwt_jwks()).unwrap();
    let mut set = spiffe::JwtBundleSet::new();
    set.add_bundle(jwt_bundle);
    set
}

fn rust_spiffe_validates(token: &str, bundle: &Bundle, aud: &[&str]) -> Result<String, String> {
    spiffe::JwtSvid::parse_and_validate(token, &rust_spiffe_bundles(bundle), aud)
        .map(|svid| svid.spiffe_id().to_string())
        .map_err(|e| e.to_string())
}

fn sign(signer: JwtSigner, aud: &[&str]) -> String {
    let audience: Vec<String> = aud.iter().map(|s| s.to_string()).collect();
    sign_jwt_svid(
        &JwtSvidParams {
            spiffe_id: &SpiffeId::parse("spiffe://example.org/workload").unwrap(),
            audience: &audience,
            now: SystemTime::now(),
            ttl: Duration::from_secs(300),
            issuer: None,
            jti: None,
        },
        &signer,
    )
    .unwrap()
}

#[test]
fn signed_tokens_validate_with_us_and_rust_spiffe() {
    let cases = [
        (KeyType::EcP256, None, "ES256"),
        (KeyType::EcP384, None, "ES384"),
        (KeyType::Rsa2048, None, "RS256"),
        (KeyType::Rsa2048, Some(JwtAlgorithm::PS256), "PS256"),
    ];
    for (key_type, alg, alg_name) in cases {
        let a = authority(key_type);
        let mut signer = JwtSigner::new(KID, a.key.clone());
        if let Some(alg) = alg {
            signer = signer.with_algorithm(alg).unwrap();
        }
        let token = sign(signer, &["service-a", "service-b"]);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": alg_name, "kid": KID, "typ": "JWT"}));

        let ours = validate_jwt_svid(&token, &a.bundle.clone().into(), &["service-a"], SystemTime::now()).unwrap();
        assert_eq!(ours.spiffe_id.to_string(), "spiffe://example.org/workload");
        assert_eq!(ours.audience, ["service-a", "service-b"]);
        assert!(ours.claims["aud"].is_array() && ours.claims["exp"].is_number() && ours.claims["iat"].is_number());
        assert_eq!(
            rust_spiffe_validates(&token, &a.bundle, &["service-a"]).unwrap(),
            "spiffe://example.org/workload",
            "{alg_name}"
        );
    }
}

#[test]
fn optional_claims_and_expiry_cap() {
    let a = authority(KeyType::EcP256);
    let now = SystemTime::now();
    let signer = JwtSigner::new(KID, a.key.clone()).with_not_after(now + Duration::from_secs(30));
    let audience = vec!["x".to_string()];
    let token = sign_jwt_svid(
        &JwtSvidParams {
            spiffe_id: &SpiffeId::parse("spiffe://example.org/w").unwrap(),
            audience: &audience,
            now,
            ttl: Duration::from_secs(3600),
            issuer: Some("https://oidc.example.org"),
            jti: Some("0b5e0f5c"),
        },
        &signer,
    )
    .unwrap();
    let v = validate_jwt_svid(&token, &a.bundle.into(), &["x"], now).unwrap();
    assert_eq!(v.claims["iss"], "https://oidc.example.org");
    assert_eq!(v.claims["jti"], "0b5e0f5c");
    let iat = v.claims["iat"].as_i64().unwrap();
    assert_eq!(v.expiry - iat, 30, "exp is capped at the signing key's expiry");
}

#[test]
fn signing_refuses_bad_requests() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    assert!(JwtSigner::new(KID, key.clone()).with_algorithm(JwtAlgorithm::RS256).is_err());
    let signer = JwtSigner::new(KID, key);
    let err = sign_jwt_svid(
        &JwtSvidParams {
            spiffe_id: &SpiffeId::parse("spiffe://example.org/w").unwrap(),
            audience: &[],
            now: SystemTime::now(),
            ttl: Duration::from_secs(60),
            issuer: None,
            jti: None,
        },
        &signer,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "audience must be specified");
}

#[test]
fn key_ids_are_32_alphanumerics() {
    let a = random_key_id();
    assert_eq!(a.len(), 32);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, random_key_id());
}

/// Signs arbitrary header and claims with a P-256 key, bypassing every check of the signer.
fn forge(header: &Value, claims: &Value, key: &PrivateKey) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.pkcs8_der()).unwrap();
    let sig = pair.sign(&aws_lc_rs::rand::SystemRandom::new(), signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn good_header() -> Value {
    json!({"alg": "ES256", "kid": KID, "typ": "JWT"})
}

fn good_claims() -> Value {
    json!({"sub": "spiffe://example.org/workload", "aud": ["svc"], "exp": unix_now() + 300, "iat": unix_now()})
}

fn with(mut v: Value, key: &str, value: Option<Value>) -> Value {
    match value {
        Some(x) => v[key] = x,
        None => {
            v.as_object_mut().unwrap().remove(key);
        }
    }
    v
}

#[test]
fn every_broken_rule_is_rejected_by_us_and_rust_spiffe() {
    let a = authority(KeyType::EcP256);
    let k = &a.key;
    let impostor = PrivateKey::generate(KeyType::EcP256).unwrap();
    let good = forge(&good_header(), &good_claims(), k);
    assert!(validate_jwt_svid(&good, &a.bundle.clone().into(), &["svc"], SystemTime::now()).is_ok());
    rust_spiffe_validates(&good, &a.bundle, &["svc"]).unwrap();

    let parts: Vec<&str> = good.split('.').collect();
    type Check = fn(&E) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        ("two parts only", format!("{}.{}", parts[0], parts[1]), |e| matches!(e, E::Malformed(_))),
        ("JSON serialization", serde_json::to_string(&json!({"payload": parts[1]})).unwrap(), |e| {
            matches!(e, E::Malformed(_))
        }),
        ("header not base64url", format!("!!.{}.{}", parts[1], parts[2]), |e| matches!(e, E::Malformed(_))),
        ("alg none", format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"key-1"}"#), parts[1]), |e| {
            *e == E::UnsupportedAlgorithm("none".into())
        }),
        ("alg HS256", forge(&with(good_header(), "alg", Some(json!("HS256"))), &good_claims(), k), |e| {
            *e == E::UnsupportedAlgorithm("HS256".into())
        }),
        ("alg missing", forge(&with(good_header(), "alg", None), &good_claims(), k), |e| *e == E::MissingAlgorithm),
        (
            "extra header member",
            forge(&with(good_header(), "jku", Some(json!("https://evil"))), &good_claims(), k),
            |e| *e == E::UnexpectedHeader("jku".into()),
        ),
        ("typ not JWT or JOSE", forge(&with(good_header(), "typ", Some(json!("at+jwt"))), &good_claims(), k), |e| {
            matches!(e, E::BadType(_))
        }),
        ("kid missing", forge(&with(good_header(), "kid", None), &good_claims(), k), |e| *e == E::MissingKeyId),
        ("kid unknown", forge(&with(good_header(), "kid", Some(json!("other"))), &good_claims(), k), |e| {
            matches!(e, E::UnknownKeyId { .. })
        }),
        (
            "alg does not fit the key",
            forge(&with(good_header(), "alg", Some(json!("RS256"))), &good_claims(), k),
            |e| *e == E::AlgorithmKeyMismatch("RS256".into()),
        ),
        ("signed by another key", forge(&good_header(), &good_claims(), &impostor), |e| *e == E::BadSignature),
        (
            "claims altered after signing",
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(
                    serde_json::to_vec(&with(good_claims(), "sub", Some(json!("spiffe://example.org/admin")))).unwrap()
                ),
                parts[2]
            ),
            |e| *e == E::BadSignature,
        ),
        ("sub missing", forge(&good_header(), &with(good_claims(), "sub", None), k), |e| *e == E::MissingSubject),
        ("sub not a SPIFFE ID", forge(&good_header(), &with(good_claims(), "sub", Some(json!("alice"))), k), |e| {
            matches!(e, E::BadSubject(_))
        }),
        (
            "sub of a trust domain without bundle",
            forge(&good_header(), &with(good_claims(), "sub", Some(json!("spiffe://other.org/w"))), k),
            |e| *e == E::NoBundle("other.org".into()),
        ),
        ("aud missing", forge(&good_header(), &with(good_claims(), "aud", None), k), |e| *e == E::MissingAudience),
        ("aud empty", forge(&good_header(), &with(good_claims(), "aud", Some(json!([]))), k), |e| {
            *e == E::MissingAudience
        }),
        (
            "aud without the expected value",
            forge(&good_header(), &with(good_claims(), "aud", Some(json!(["other"]))), k),
            |e| matches!(e, E::AudienceMismatch { .. }),
        ),
        ("exp missing", forge(&good_header(), &with(good_claims(), "exp", None), k), |e| *e == E::MissingExpiry),
        (
            "exp passed beyond leeway",
            forge(&good_header(), &with(good_claims(), "exp", Some(json!(unix_now() - 120))), k),
            |e| *e == E::Expired,
        ),
        ("exp not a number", forge(&good_header(), &with(good_claims(), "exp", Some(json!("tomorrow"))), k), |e| {
            *e == E::ClaimType("exp")
        }),
        (
            "nbf ahead beyond leeway",
            forge(&good_header(), &with(good_claims(), "nbf", Some(json!(unix_now() + 600))), k),
            |e| *e == E::NotYetValid,
        ),
    ];
    let mut failures = Vec::new();
    for (rule, token, check) in &cases {
        match validate_jwt_svid(token, &a.bundle.clone().into(), &["svc"], SystemTime::now()) {
            Ok(_) => failures.push(format!("{rule}: accepted by our validator")),
            Err(e) if !check(&e) => failures.push(format!("{rule}: wrong error {e:?}")),
            Err(_) => {}
        }
        if let Ok(id) = rust_spiffe_validates(token, &a.bundle, &["svc"]) {
            failures.push(format!("{rule}: rust-spiffe accepted {id}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn leeway_tolerates_small_skew_and_jose_typ() {
    let a = authority(KeyType::EcP256);
    let set: BundleSet = a.bundle.clone().into();
    let just_expired = forge(&good_header(), &with(good_claims(), "exp", Some(json!(unix_now() - 5))), &a.key);
    assert!(validate_jwt_svid(&just_expired, &set, &["svc"], SystemTime::now()).is_ok());
    let jose = forge(&with(good_header(), "typ", Some(json!("JOSE"))), &good_claims(), &a.key);
    assert!(validate_jwt_svid(&jose, &set, &["svc"], SystemTime::now()).is_ok());
    let no_typ = forge(&with(good_header(), "typ", None), &good_claims(), &a.key);
    assert!(validate_jwt_svid(&no_typ, &set, &["svc"], SystemTime::now()).is_ok());
    let single_aud = forge(&good_header(), &with(good_claims(), "aud", Some(json!("svc"))), &a.key);
    let v = validate_jwt_svid(&single_aud, &set, &["svc"], SystemTime::now()).unwrap();
    assert_eq!(v.claims["aud"], json!(["svc"]), "aud is always returned as a list");
}

#[test]
fn es512_is_accepted_as_the_spec_allows() {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P521_SHA512_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let mut bundle = Bundle::new(td());
    bundle.add_jwt_authority(JwtAuthority { key_id: KID.into(), public_key_der: spki, expires_at: 0 }).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(good_header(), "alg", Some(json!("ES512")))).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good_claims()).unwrap())
    );
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    let v = validate_jwt_svid(&token, &bundle.into(), &["svc"], SystemTime::now()).unwrap();
    assert_eq!(v.spiffe_id.to_string(), "spiffe://example.org/workload");
}
