//! What a KeyManager plugin answers, used to sign: its public key (`pkix_data`) and the signatures
//! `SignData` returns. Never panics, and a plugin that does not hold the key behind the public key it
//! gave cannot get a certificate or JWT-SVID out of us.
//!
//! Input: one byte choosing the key type, two bytes (big-endian) of public key length, the public
//! key, then the signature the plugin answers every time.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use spire_identity::jwt::{JwtSigner, JwtSvidParams, sign_jwt_svid};
use spire_identity::x509::{CaParams, Subject, certificate_request, self_signed_ca};
use spire_identity::{KeyType, RemoteSignError, RemoteSigner, SignerOpts, SigningKey, SpiffeId, TrustDomain};

/// A plugin that answers the same bytes to every `SignData`.
#[derive(Debug)]
struct Answers(Vec<u8>);

impl RemoteSigner for Answers {
    fn sign_digest(&self, _: SignerOpts, _: &[u8]) -> Result<Vec<u8>, RemoteSignError> {
        Ok(self.0.clone())
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, hi, lo, rest @ ..] = data else { return };
    let key_type = KeyType::ALL[usize::from(selector % 4)];
    let (spki, signature) = rest.split_at(usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len()));
    let Ok(key) = SigningKey::remote(key_type, spki.to_vec(), Arc::new(Answers(signature.to_vec()))) else {
        return;
    };
    assert_eq!(key.public_key_der(), spki);
    let td = TrustDomain::parse("example.org").expect("valid trust domain");
    let now = SystemTime::now();
    let params = CaParams {
        trust_domain: &td,
        public_key_der: spki,
        subject: Subject::default_ca(),
        now,
        ttl: Duration::from_secs(60),
    };
    assert!(self_signed_ca(&params, &key).is_err());
    assert!(certificate_request(&key, &[], &[]).is_err());
    let id = SpiffeId::parse("spiffe://example.org/w").expect("valid ID");
    let audience = ["aud".to_string()];
    let jwt = JwtSvidParams {
        spiffe_id: &id,
        audience: &audience,
        now,
        ttl: Duration::from_secs(60),
        issuer: None,
        jti: None,
    };
    assert!(sign_jwt_svid(&jwt, &JwtSigner::new("kid", key)).is_err());
});
