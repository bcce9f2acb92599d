//! What the gcp_iit attestor reads from others: the agent's payload (an identity token, read by
//! the server from any caller of AttestAgent before anything is proven), Google's certificate
//! document, a Compute Engine `instances.get` answer and the token's claims. Never panics; no
//! token verifies (no key here has a private half anyone holds).
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use spire_attestation::gcp_iit::IdentityClaims;
use spire_server::catalog::nodeattestor::gcp_iit::{compute::Instance, keys::parse_certs, verify};
use spire_server::catalog::nodeattestor::jose::PublicKey;

fuzz_target!(|data: &[u8]| {
    let keys = [PublicKey { kid: "k".into(), spki_der: data.to_vec() }];
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(verify::identity(data, &keys, now).is_err(), "a token verified with a key nobody signs with");
    if let Ok(keys) = parse_certs(data) {
        let _ = verify::identity(data, &keys, now);
    }
    let _ = Instance::from_json(data);
    let _ = IdentityClaims::from_json(data);
});
