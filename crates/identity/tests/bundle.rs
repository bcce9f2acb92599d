//! Bundles: the SPIFFE bundle format, PEM and the Workload API's standard JWKS.

use serde_json::{Value, json};
use spire_identity::bundle::BundleError;
use spire_identity::{Bundle, JwtAuthority, KeyType, PrivateKey};
use spire_testkit::pki::*;

fn sample() -> (Bundle, Pki) {
    let pki = Pki::new(KeyType::EcP256);
    let mut b = pki.bundle();
    let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    b.add_jwt_authority(JwtAuthority {
        key_id: "kid-ec".into(),
        public_key_der: pki.root.key().public_key_der(),
        expires_at: 0,
    })
    .unwrap();
    b.add_jwt_authority(JwtAuthority { key_id: "kid-rsa".into(), public_key_der: rsa.public_key_der(), expires_at: 0 })
        .unwrap();
    b.refresh_hint = Some(300);
    b.sequence_number = 7;
    (b, pki)
}

#[test]
fn spiffe_format_round_trips_and_follows_the_spec() {
    let (b, _) = sample();
    let json: Value = serde_json::from_str(&b.to_spiffe_json()).unwrap();
    assert_eq!(json["spiffe_sequence"], 7);
    assert_eq!(json["spiffe_refresh_hint"], 300);
    let keys = json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let x509 = &keys[0];
    assert_eq!(x509["use"], "x509-svid");
    assert!(x509.get("kid").is_none(), "x509-svid keys must not have a kid");
    assert_eq!(x509["x5c"].as_array().unwrap().len(), 1);
    assert_eq!((x509["kty"].as_str(), x509["crv"].as_str()), (Some("EC"), Some("P-256")));
    assert_eq!(keys[1]["use"], "jwt-svid");
    assert_eq!(keys[1]["kid"], "kid-ec");
    assert_eq!(keys[2]["kty"], "RSA");
    assert!(keys[2]["n"].is_string() && keys[2]["e"] == "AQAB");

    let back = Bundle::from_spiffe_json(td(), b.to_spiffe_json().as_bytes()).unwrap();
    assert_eq!(back, b);
    let pretty = b.to_spiffe_json_pretty();
    assert!(pretty.starts_with("{\n    \"keys\": [\n        {"), "{pretty}");
    assert_eq!(Bundle::from_spiffe_json(td(), pretty.as_bytes()).unwrap(), b);
}

#[test]
fn spiffe_format_is_read_by_rust_spiffe() {
    let (b, _) = sample();
    let td = spiffe::TrustDomain::new("example.org").unwrap();
    let theirs = spiffe::JwtBundle::from_jwt_authorities(td.clone(), &b.to_jwt_jwks()).unwrap();
    assert!(theirs.find_jwt_authority("kid-ec").is_some() && theirs.find_jwt_authority("kid-rsa").is_some());
    let x509 = spiffe::X509Bundle::parse_from_der(td, &b.x509_authorities_der()).unwrap();
    assert_eq!(x509.authorities().len(), 1);
}

#[test]
fn standard_jwks_has_only_jwt_keys_without_use() {
    let (b, _) = sample();
    let jwks: Value = serde_json::from_slice(&b.to_jwt_jwks()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert!(k.get("use").is_none() && k.get("x5c").is_none() && k["kid"].is_string());
    }
    assert!(jwks.get("spiffe_sequence").is_none());
}

/// The bytes are those SPIRE's agent sends (and `spire-agent api fetch jwt` prints as they are):
/// indented by four spaces, members in go-jose's order.
#[test]
fn standard_jwks_is_laid_out_like_spires_agent() {
    let (b, _) = sample();
    let text = String::from_utf8(b.to_jwt_jwks()).unwrap();
    assert!(
        text.starts_with("{\n    \"keys\": [\n        {\n            \"kty\": \"EC\",\n            \"kid\": "),
        "{text}"
    );
    let key = text.find("\"kty\"").unwrap();
    let order: Vec<usize> =
        ["\"kid\"", "\"crv\"", "\"x\"", "\"y\""].iter().map(|m| text[key..].find(m).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let empty = spire_identity::Bundle::new(spire_identity::TrustDomain::parse("example.org").unwrap());
    assert_eq!(String::from_utf8(empty.to_jwt_jwks()).unwrap(), "{\n    \"keys\": []\n}");
}

#[test]
fn reader_skips_what_the_spec_says_to_ignore() {
    let (b, _) = sample();
    let mut json: Value = serde_json::from_str(&b.to_spiffe_json()).unwrap();
    let keys = json["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "OKP", "use": "jwt-svid", "kid": "ed", "crv": "Ed25519", "x": "AA"}));
    keys.push(json!({"kty": "EC", "use": "wit-svid", "kid": "w", "crv": "P-256"}));
    keys.push(json!({"kty": "EC", "kid": "no-use"}));
    keys.push(json!({"kty": "EC", "use": "x509-svid", "x5c": []}));
    let read = Bundle::from_spiffe_json(td(), json.to_string().as_bytes()).unwrap();
    assert_eq!(read, b);
    let empty = Bundle::from_spiffe_json(td(), br#"{"keys": []}"#).unwrap();
    assert!(empty.x509_authorities().is_empty() && empty.jwt_authorities().is_empty());
}

#[test]
fn reader_rejects_broken_bundles() {
    type Check = fn(&BundleError) -> bool;
    let cases: &[(&[u8], Check)] = &[
        (b"not json", |e| matches!(e, BundleError::Json(_))),
        (b"{}", |e| *e == BundleError::MissingKeys),
        (br#"{"keys": [{"kty":"EC","use":"jwt-svid","crv":"P-256","x":"AA","y":"AA"}]}"#, |e| {
            *e == BundleError::MissingKeyId(0)
        }),
        (br#"{"keys": [{"kty":"EC","use":"jwt-svid","kid":"k","crv":"P-256","x":"AA","y":"AA"}]}"#, |e| {
            matches!(e, BundleError::JwtAuthority { index: 0, .. })
        }),
        (br#"{"keys": [{"kty":"EC","use":"x509-svid","x5c":["AAAA"]}]}"#, |e| {
            matches!(e, BundleError::X509Authority { index: 0, .. })
        }),
        (br#"{"keys": [{"kty":"EC","use":"x509-svid","x5c":["***"]}]}"#, |e| {
            matches!(e, BundleError::X509Authority { .. })
        }),
        (br#"{"keys": ["string"]}"#, |e| matches!(e, BundleError::Json(_))),
    ];
    for (input, check) in cases {
        let err = Bundle::from_spiffe_json(td(), input).unwrap_err();
        assert!(check(&err), "{}: {err:?}", String::from_utf8_lossy(input));
    }
    let (b, _) = sample();
    let mut json: Value = serde_json::from_str(&b.to_spiffe_json()).unwrap();
    let dup = json["keys"][1].clone();
    json["keys"].as_array_mut().unwrap().push(dup);
    let err = Bundle::from_spiffe_json(td(), json.to_string().as_bytes()).unwrap_err();
    assert_eq!(err, BundleError::DuplicateKeyId("kid-ec".into()));
}

#[test]
fn pem_bundles() {
    let (b, pki) = sample();
    let pem = b.to_pem();
    let back = Bundle::from_pem(td(), &pem).unwrap();
    assert_eq!(back.x509_authorities(), b.x509_authorities());
    assert_eq!(back.x509_authorities()[0], pki.root.cert_der());
    assert!(Bundle::from_pem(td(), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    assert!(Bundle::from_pem(td(), "").is_err());
}

#[test]
fn adding_authorities_is_idempotent() {
    let (mut b, pki) = sample();
    assert!(!b.add_x509_authority(pki.root.cert_der().to_vec()).unwrap());
    let same = b.jwt_authorities()[0].clone();
    assert!(!b.add_jwt_authority(same).unwrap());
    assert!(b.add_x509_authority(b"junk".to_vec()).is_err());
}
