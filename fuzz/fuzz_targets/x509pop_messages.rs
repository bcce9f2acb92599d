//! The x509pop messages as each side reads them from the other before anything is proven: the
//! agent's payload (read by the server from any caller of AttestAgent), the server's challenge (read
//! by the agent) and the agent's response (read by the server). Never panics; what parses survives a
//! write and a re-read unchanged; nonces are combined only when both have SPIRE's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::x509pop::{AttestationData, Challenge, NONCE_LEN, Response, combine_nonces};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = AttestationData::from_json(data) {
        assert_eq!(AttestationData::from_json(&payload.to_json()).expect("reads back"), payload);
    }
    if let Ok(challenge) = Challenge::from_json(data) {
        assert_eq!(Challenge::from_json(&challenge.to_json()).expect("reads back"), challenge);
    }
    if let Ok(response) = Response::from_json(data) {
        assert_eq!(Response::from_json(&response.to_json()).expect("reads back"), response);
        if let (Ok(challenge), Some(rsa)) = (Challenge::from_json(data), &response.rsa_signature) {
            let challenge_nonce = challenge.rsa_signature.map(|c| c.nonce).unwrap_or_default();
            let combined = combine_nonces(&challenge_nonce, &rsa.nonce);
            assert_eq!(combined.is_ok(), challenge_nonce.len() == NONCE_LEN && rsa.nonce.len() == NONCE_LEN);
        }
    }
});
