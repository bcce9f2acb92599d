//! JWT-SVID validation on arbitrary tokens: never panics, never accepts a token it did not issue.
#![no_main]

use std::sync::LazyLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use spire_identity::jwt::validate_jwt_svid;
use spire_identity::{Bundle, BundleSet, JwtAuthority, KeyType, PrivateKey, TrustDomain};

static BUNDLES: LazyLock<BundleSet> = LazyLock::new(|| {
    let key = PrivateKey::generate(KeyType::EcP256).expect("key generation");
    let mut bundle = Bundle::new(TrustDomain::parse("example.org").expect("valid trust domain"));
    bundle
        .add_jwt_authority(JwtAuthority { key_id: "key-1".into(), public_key_der: key.public_key_der(), expires_at: 0 })
        .expect("valid key");
    bundle.into()
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    // The key is fresh each run, so no input can carry a valid signature.
    assert!(validate_jwt_svid(token, &BUNDLES, &["aud"], SystemTime::now()).is_err());
});
