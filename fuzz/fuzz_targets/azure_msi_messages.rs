//! What the azure_msi attestor reads from others: the agent's payload and the token in it (read by
//! the server from any caller of AttestAgent before anything is proven), the OpenID configuration
//! and JWKS of Azure AD, IMDS's answers and Resource Manager's resource IDs. Never panics; what
//! parses survives a write and a re-read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_attestation::azure_msi::{AttestationData, InstanceMetadata, TokenClaims, TokenResponse};
use spire_server::catalog::nodeattestor::azure_msi::{keys, verify};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = AttestationData::from_payload(data) {
        assert_eq!(AttestationData::from_payload(&payload.to_payload()).expect("reads back"), payload);
    }
    if let Ok(token) = verify::parse_payload(data) {
        let keys = keys::parse_jwks(data).unwrap_or_default();
        let _ = verify::verify_token(&token, &keys);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify::verify_token(text, &[]);
        let _ = verify::parse_vm_id(text);
        let _ = verify::parse_nic_id(text);
        let _ = verify::parse_nsg_id(text);
        let _ = verify::parse_subnet_id(text);
    }
    let _ = keys::jwks_uri(data);
    let _ = keys::parse_jwks(data);
    let _ = TokenClaims::from_json(data);
    let _ = TokenResponse::from_json(data);
    let _ = InstanceMetadata::from_json(data);
});
