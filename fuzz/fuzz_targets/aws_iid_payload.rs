//! The `aws_iid` attestation payload, which the server reads from any caller of AttestAgent before
//! it has authenticated anything: the JSON payload, the instance identity document inside it and
//! the PKCS#7 signature reader (given the raw input as BER). Never panics, and a payload that
//! parses survives a write and a re-read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::aws_iid::pkcs7::SignedData;
use spire_attestation::aws_iid::{AttestationData, InstanceIdentityDocument};

fuzz_target!(|data: &[u8]| {
    let _ = SignedData::parse(data);
    if let Ok(parsed) = AttestationData::from_payload(data) {
        let again = AttestationData::from_payload(&parsed.to_payload()).expect("a written payload reads back");
        assert_eq!(again, parsed);
        let _ = InstanceIdentityDocument::parse(parsed.document.as_bytes());
    }
});
