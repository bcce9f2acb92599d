//! Keys held by a key manager: CAs, SVIDs, CSRs and JWT-SVIDs signed through a [`RemoteSigner`]
//! verify exactly as those signed with the same key held locally.
//!
//! The remote signer here is a real one: a [`PrivateKey`] signing digests with aws-lc-rs, which is
//! what a KeyManager plugin's `SignData` does with its own key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use spire_identity::jwk::Jwk;
use spire_identity::jwt::{JwtSignError, JwtSigner, JwtSvidParams, sign_jwt_svid, validate_jwt_svid};
use spire_identity::x509::{self, CaParams, Issuer, Subject, SvidParams, X509BuildError, verify_svid};
use spire_identity::{
    Bundle, JwtAuthority, KeyType, PrivateKey, RemoteSignError, RemoteSigner, SignError, SignerOpts, SigningKey,
    SpiffeId, TrustDomain,
};
use x509_parser::prelude::*;

const HOUR: Duration = Duration::from_secs(3600);

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

/// `key`, but usable only through its signer, as a key manager's key is.
fn remote(key: &PrivateKey) -> SigningKey {
    SigningKey::remote(key.key_type(), key.public_key_der(), Arc::new(key.clone())).unwrap()
}

/// A key manager that lost its key.
#[derive(Debug)]
struct Failing;

impl RemoteSigner for Failing {
    fn sign_digest(&self, _: SignerOpts, _: &[u8]) -> Result<Vec<u8>, RemoteSignError> {
        Err(RemoteSignError::new("keymanager(fake): no such key \"x509-CA-A\""))
    }
}

fn ca_params<'a>(td: &'a TrustDomain, public_key_der: &'a [u8], now: SystemTime) -> CaParams<'a> {
    CaParams { trust_domain: td, public_key_der, subject: Subject::default_ca(), now, ttl: 24 * HOUR }
}

/// root (self-signed) -> intermediate -> leaf, every CA key used through `wrap`.
fn chain(keys: &[PrivateKey; 3], wrap: fn(&PrivateKey) -> SigningKey) -> Vec<Vec<u8>> {
    let [root_key, inter_key, leaf_key] = keys;
    let td = td();
    let now = SystemTime::now();
    let root_der = x509::self_signed_ca(&ca_params(&td, &root_key.public_key_der(), now), wrap(root_key)).unwrap();
    let root = Issuer::new(root_der.clone(), wrap(root_key)).unwrap();
    let inter_der = x509::sign_ca(&ca_params(&td, &inter_key.public_key_der(), now), &root).unwrap();
    let inter = Issuer::new(inter_der.clone(), wrap(inter_key)).unwrap();
    let leaf = x509::sign_svid(
        &SvidParams {
            spiffe_id: &SpiffeId::parse("spiffe://example.org/workload").unwrap(),
            public_key_der: &leaf_key.public_key_der(),
            dns_names: &["web.example.org".into()],
            subject: None,
            now,
            ttl: HOUR,
        },
        &inter,
    )
    .unwrap();
    vec![leaf, inter_der, root_der]
}

/// Subject, issuer, signature algorithm, and each extension's OID, criticality and value.
type Shape = (String, String, String, Vec<(String, bool, Vec<u8>)>);

/// What a certificate says, without its serial, validity and signature value (random or timed).
fn shape(der: &[u8]) -> Shape {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let subject: Vec<String> = cert
        .subject()
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() != "2.5.4.5")
        .map(|a| format!("{}={:?}", a.attr_type(), a.as_str()))
        .collect();
    let issuer: Vec<String> = cert
        .issuer()
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() != "2.5.4.5")
        .map(|a| format!("{}={:?}", a.attr_type(), a.as_str()))
        .collect();
    let extensions = cert.extensions().iter().map(|e| (e.oid.to_id_string(), e.critical, e.value.to_vec())).collect();
    (subject.join(","), issuer.join(","), cert.signature_algorithm.algorithm.to_id_string(), extensions)
}

#[test]
fn remotely_signed_chains_verify_like_local_ones_for_every_key_type() {
    for key_type in KeyType::ALL {
        let keys = [key_type, key_type, KeyType::EcP256].map(|t| PrivateKey::generate(t).unwrap());
        let local = chain(&keys, |k| SigningKey::from(k));
        let remote = chain(&keys, remote);

        let mut bundle = Bundle::new(td());
        bundle.add_x509_authority(remote[2].clone()).unwrap();
        let verified = verify_svid(&remote[..2], &bundle.clone().into(), SystemTime::now()).unwrap();
        assert_eq!(verified.spiffe_id.to_string(), "spiffe://example.org/workload", "{key_type}");

        for (i, (l, r)) in local.iter().zip(&remote).enumerate() {
            assert_eq!(shape(l), shape(r), "{key_type}: certificate {i} differs from the local one");
            // Each signature checked on its own by x509-parser, against its issuer's key.
            let (_, cert) = X509Certificate::from_der(r).unwrap();
            let (_, issuer) = X509Certificate::from_der(&remote[(i + 1).min(2)]).unwrap();
            cert.verify_signature(Some(issuer.public_key())).unwrap();
        }
        // And the local chain verifies against the same bundle: it is the same trust.
        let mut local_bundle = Bundle::new(td());
        local_bundle.add_x509_authority(local[2].clone()).unwrap();
        verify_svid(&local[..2], &local_bundle.into(), SystemTime::now()).unwrap();
    }
}

#[test]
fn remotely_signed_csrs_carry_the_key() {
    for key_type in KeyType::ALL {
        let key = PrivateKey::generate(key_type).unwrap();
        let der = x509::certificate_request(remote(&key), &["spiffe://example.org".into()], &[]).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().unwrap();
        assert_eq!(csr.certification_request_info.subject_pki.raw, key.public_key_der().as_slice());
    }
}

#[test]
fn a_failing_signer_surfaces_its_error() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let failing = SigningKey::remote(KeyType::EcP256, key.public_key_der(), Arc::new(Failing)).unwrap();
    let td = td();
    let now = SystemTime::now();
    let public = key.public_key_der();

    let err = x509::self_signed_ca(&ca_params(&td, &public, now), &failing).unwrap_err();
    assert!(matches!(err, X509BuildError::Signer(SignError::Remote(_))), "{err:?}");
    assert_eq!(
        err.to_string(),
        "signing failed: the key manager failed to sign: keymanager(fake): no such key \"x509-CA-A\""
    );

    let root_der = x509::self_signed_ca(&ca_params(&td, &public, now), &key).unwrap();
    let issuer = Issuer::new(root_der, failing.clone()).unwrap();
    let leaf_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let err = x509::sign_svid(
        &SvidParams {
            spiffe_id: &SpiffeId::parse("spiffe://example.org/w").unwrap(),
            public_key_der: &leaf_key.public_key_der(),
            dns_names: &[],
            subject: None,
            now,
            ttl: HOUR,
        },
        &issuer,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no such key \"x509-CA-A\""), "{err}");
    let err = x509::certificate_request(&failing, &[], &[]).unwrap_err();
    assert!(err.to_string().contains("no such key \"x509-CA-A\""), "{err}");

    let err = sign_jwt_svid(&jwt_params(&["a".to_string()], now), &JwtSigner::new("kid", failing)).unwrap_err();
    assert!(matches!(err, JwtSignError::Signer(SignError::Remote(_))), "{err:?}");
    assert!(err.to_string().contains("no such key \"x509-CA-A\""), "{err}");
}

fn jwt_params(audience: &[String], now: SystemTime) -> JwtSvidParams<'_> {
    static ID: std::sync::LazyLock<SpiffeId> =
        std::sync::LazyLock::new(|| SpiffeId::parse("spiffe://example.org/workload").unwrap());
    JwtSvidParams { spiffe_id: &ID, audience, now, ttl: Duration::from_secs(300), issuer: None, jti: Some("j-1") }
}

/// The token's claims as jsonwebtoken reads them after checking the signature with `key`'s JWK.
fn jsonwebtoken_validates(token: &str, key: &PrivateKey, alg: jsonwebtoken::Algorithm) -> Value {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(Jwk::from_spki(&key.public_key_der()).unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&["service-a"]);
    jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

#[test]
fn remotely_signed_jwt_svids_match_local_ones() {
    use jsonwebtoken::Algorithm as A;
    let cases = [
        (KeyType::EcP256, A::ES256),
        (KeyType::EcP384, A::ES384),
        (KeyType::Rsa2048, A::RS256),
        (KeyType::Rsa4096, A::RS256),
    ];
    let audience = vec!["service-a".to_string(), "service-b".to_string()];
    for (key_type, alg) in cases {
        let key = PrivateKey::generate(key_type).unwrap();
        let now = SystemTime::now();
        let local = sign_jwt_svid(&jwt_params(&audience, now), &JwtSigner::new("kid-1", key.clone())).unwrap();
        let remote = sign_jwt_svid(&jwt_params(&audience, now), &JwtSigner::new("kid-1", remote(&key))).unwrap();

        // Header and claims are byte for byte the local ones; so is the whole token for RSA
        // PKCS#1 v1.5, which is deterministic.
        let (l, r): (Vec<&str>, Vec<&str>) = (local.split('.').collect(), remote.split('.').collect());
        assert_eq!(l[..2], r[..2], "{key_type}");
        if key_type.is_rsa() {
            assert_eq!(local, remote);
        } else {
            let size = if key_type == KeyType::EcP256 { 64 } else { 96 };
            assert_eq!(URL_SAFE_NO_PAD.decode(r[2]).unwrap().len(), size, "fixed-size r || s");
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(r[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": format!("{alg:?}"), "kid": "kid-1", "typ": "JWT"}));

        let claims = jsonwebtoken_validates(&remote, &key, alg);
        assert_eq!(claims["sub"], "spiffe://example.org/workload");
        assert_eq!(claims["jti"], "j-1");

        let mut bundle = Bundle::new(td());
        bundle
            .add_jwt_authority(JwtAuthority {
                key_id: "kid-1".into(),
                public_key_der: key.public_key_der(),
                expires_at: 0,
            })
            .unwrap();
        let ours = validate_jwt_svid(&remote, &bundle.into(), &["service-b"], now).unwrap();
        assert_eq!(ours.audience, audience);
    }
}
