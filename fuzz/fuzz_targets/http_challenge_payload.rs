//! The http_challenge messages as each side reads them from the other before anything is proven:
//! the agent's payload (read by the server from any caller of AttestAgent) and the server's
//! challenge (read by the agent). Never panics; what parses survives a write and a re-read
//! unchanged; the challenge path built from a parsed agent name unescapes back to that name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::http_challenge::{AttestationData, Challenge, challenge_path, unescape_path};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = AttestationData::from_json(data) {
        assert_eq!(AttestationData::from_json(&payload.to_json()).expect("reads back"), payload);
        let _ = payload.check_fetchable();
        let path = challenge_path(&payload.agentname);
        let expected = format!("/.well-known/spiffe/nodeattestor/http_challenge/{}/challenge", payload.agentname);
        assert_eq!(unescape_path(&path).as_deref(), Some(expected.as_str()));
    }
    if let Ok(challenge) = Challenge::from_json(data) {
        assert_eq!(Challenge::from_json(&challenge.to_json()).expect("reads back"), challenge);
        let _ = challenge.check_answer(data);
    }
});
