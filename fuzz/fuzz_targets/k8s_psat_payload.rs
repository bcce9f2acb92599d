//! The `k8s_psat` attestation payload, which the server reads from any caller of AttestAgent before
//! it has authenticated anything: never panics, and what parses survives a write and a re-read
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::k8s_psat::AttestationData;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = AttestationData::from_payload(data) {
        let again = AttestationData::from_payload(&parsed.to_payload()).expect("a written payload reads back");
        assert_eq!(again, parsed);
    }
});
