//! The sshpop messages as each side reads them from the other before anything is proven: the
//! agent's payload (read by the server from any caller of AttestAgent) with the SSH certificate
//! inside it, the server's challenge (read by the agent) and the agent's response (read by the
//! server), checked against the certificate's key. The raw input is also read as SSH wire bytes.
//! Never panics; what parses survives a write and a re-read unchanged; nonces are combined only
//! when both have SPIRE's length; no certificate passes the host check (no CA key signed it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::sshpop::ssh;
use spire_attestation::sshpop::{
    AttestationData, Authorities, Challenge, HostCertificate, NONCE_LEN, Response, combine_nonces,
};

/// A CA key nobody has the private half of here.
const CA: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S";

/// A certificate must re-read from its own bytes as itself, and cannot pass the host check.
fn certificate(bytes: &[u8]) -> Option<HostCertificate> {
    let cert = HostCertificate::from_bytes(bytes).ok()?;
    let again = HostCertificate::from_bytes(cert.as_bytes()).expect("a certificate re-reads from its own bytes");
    assert_eq!(again.as_bytes(), cert.as_bytes());
    assert_eq!(again.fingerprint(), cert.fingerprint());
    let cas = Authorities::parse([CA]).expect("the CA line parses");
    let _ = cert.check_host(&cas, 1_800_000_000);
    Some(cert)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(cert)) = ssh::Certificate::parse(data) {
        assert_eq!(ssh::Certificate::parse(&cert.marshal()).expect("re-reads"), Some(cert));
    }
    if let Ok(key) = ssh::PublicKey::parse(data) {
        assert_eq!(ssh::PublicKey::parse(&key.marshal()).expect("re-reads"), key);
    }
    let mut cert = None;
    if let Ok(payload) = AttestationData::from_json(data) {
        assert_eq!(AttestationData::from_json(&payload.to_json()).expect("reads back"), payload);
        cert = certificate(&payload.certificate);
    }
    if let Ok(challenge) = Challenge::from_json(data) {
        assert_eq!(Challenge::from_json(&challenge.to_json()).expect("reads back"), challenge);
    }
    if let Ok(response) = Response::from_json(data) {
        assert_eq!(Response::from_json(&response.to_json()).expect("reads back"), response);
        let challenge_nonce = Challenge::from_json(data).map(|c| c.nonce).unwrap_or_default();
        let combined = combine_nonces(&challenge_nonce, &response.nonce);
        assert_eq!(combined.is_ok(), challenge_nonce.len() == NONCE_LEN && response.nonce.len() == NONCE_LEN);
        if let (Some(cert), Some(signature)) = (&cert, &response.signature) {
            let _ = cert.verify(&combined.unwrap_or_default(), signature);
        }
    }
});
