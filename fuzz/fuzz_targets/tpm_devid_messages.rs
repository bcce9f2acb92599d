//! The tpm_devid messages and the TPM structures inside them, as the server reads them from any
//! caller of AttestAgent before anything is proven: the payload JSON, each `TPMT_PUBLIC`, the
//! `TPMS_ATTEST` of the certification and its `TPMT_SIGNATURE`, and the challenge response (and
//! the challenge, as the agent reads it). Never panics; what parses survives a write and a re-read
//! unchanged; a parsed public area re-parses from its canonical bytes to the same name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::tpm_devid::tpm::{Public, certified_name, name_matches, parse_signature, verify_rsa_signature};
use spire_attestation::tpm_devid::{AttestationRequest, ChallengeRequest, ChallengeResponse};

fn public(bytes: &[u8]) -> Option<Public> {
    let p = Public::parse(bytes).ok()?;
    let again = Public::parse(&p.bytes).expect("canonical bytes parse");
    assert_eq!(again.bytes, p.bytes);
    assert_eq!(again.name().ok(), p.name().ok());
    let _ = (p.can_sign(), p.rsa_exponent(), p.ecc_point());
    Some(p)
}

fn structures(payload: &AttestationRequest) {
    let devid = public(&payload.devid_pub);
    let ak = public(&payload.ak_pub);
    let _ = public(&payload.ek_pub);
    let name = certified_name(&payload.certified_devid);
    let _ = parse_signature(&payload.certification_signature);
    if let Some(ak) = &ak {
        let _ = verify_rsa_signature(ak, &payload.certified_devid, &payload.certification_signature);
    }
    if let (Ok(name), Some(devid)) = (name, &devid) {
        let _ = name_matches(&name, devid);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = AttestationRequest::from_json(data) {
        assert_eq!(AttestationRequest::from_json(&payload.to_json()).expect("reads back"), payload);
        structures(&payload);
    }
    // The raw bytes as each structure, as if they had come base64-decoded out of the payload.
    let raw = AttestationRequest {
        devid_pub: data.to_vec(),
        ak_pub: data.to_vec(),
        ek_pub: data.to_vec(),
        certified_devid: data.to_vec(),
        certification_signature: data.to_vec(),
        ..AttestationRequest::default()
    };
    structures(&raw);
    if let Ok(challenge) = ChallengeRequest::from_json(data) {
        assert_eq!(ChallengeRequest::from_json(&challenge.to_json()).expect("reads back"), challenge);
    }
    if let Ok(response) = ChallengeResponse::from_json(data) {
        assert_eq!(ChallengeResponse::from_json(&response.to_json()).expect("reads back"), response);
    }
});
