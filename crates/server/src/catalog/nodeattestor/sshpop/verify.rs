//! The steps of SPIRE's server handshake, as functions: the attestation data, the challenge, the
//! response, the agent ID.

use spire_attestation::sshpop::{self as wire, AttestationData, Authorities, Challenge, HostCertificate, Response};
use spire_identity::{SpiffeId, TrustDomain};

use super::error::AttestError;
use super::template::{Template, TemplateData};

/// A certificate that passed SPIRE's `VerifyAttestationData`, with the host name it yields.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The host certificate.
    pub cert: HostCertificate,
    /// The first principal less the canonical domain.
    pub hostname: String,
}

/// Reads the payload and checks its certificate against `authorities` at `now` (Unix seconds).
pub fn verify_attestation_data(
    payload: &[u8],
    authorities: &Authorities,
    canonical_domain: Option<&str>,
    now: u64,
) -> Result<Verified, AttestError> {
    let data = AttestationData::from_json(payload).map_err(|e| AttestError::BadPayload(e.to_string()))?;
    if data.certificate.is_empty() {
        return Err(AttestError::NoCertificate);
    }
    let cert = HostCertificate::from_bytes(&data.certificate).map_err(|e| match e {
        wire::ParseError::NotCertificate => AttestError::NotCertificate,
        other => AttestError::BadCertificate(other.to_string()),
    })?;
    let Some(first) = cert.first_principal() else { return Err(AttestError::NoPrincipals) };
    cert.check_host(authorities, now)?;
    let hostname = decanonicalize(&first, canonical_domain)?;
    Ok(Verified { cert, hostname })
}

/// `fqdn` without `.<domain>`, which it must end with (no domain: `fqdn` as it is).
pub fn decanonicalize(fqdn: &str, domain: Option<&str>) -> Result<String, AttestError> {
    let Some(domain) = domain.filter(|d| !d.is_empty()) else { return Ok(fqdn.to_owned()) };
    let suffix = format!(".{domain}");
    fqdn.strip_suffix(&suffix).map(str::to_owned).ok_or(AttestError::Domain(suffix))
}

/// A fresh challenge (SPIRE's `IssueChallenge`).
pub fn issue_challenge() -> Result<Challenge, AttestError> {
    let nonce = wire::new_nonce().map_err(|e| AttestError::Nonce(e.to_string()))?;
    Ok(Challenge { nonce })
}

/// Checks the agent's answer to `challenge` (SPIRE's `VerifyChallengeResponse`).
pub fn verify_response(cert: &HostCertificate, challenge: &Challenge, answer: &[u8]) -> Result<(), AttestError> {
    let response = Response::from_json(answer).map_err(|e| AttestError::BadResponse(e.to_string()))?;
    let digest = wire::combine_nonces(&challenge.nonce, &response.nonce)?;
    let signature = response.signature.ok_or(AttestError::Signature(wire::VerifyError::Missing))?;
    cert.verify(&digest, &signature)?;
    Ok(())
}

/// The agent ID the template makes: `spiffe://<td>/spire/agent<path>`.
pub fn agent_id(trust_domain: &TrustDomain, template: &Template, v: &Verified) -> Result<SpiffeId, AttestError> {
    let path = template
        .execute(&TemplateData {
            plugin_name: wire::PLUGIN_NAME.into(),
            fingerprint: v.cert.fingerprint(),
            hostname: v.hostname.clone(),
            key_id: v.cert.key_id(),
            serial: v.cert.serial(),
            cert_type: v.cert.cert_type(),
            valid_after: v.cert.valid_after(),
            valid_before: v.cert.valid_before(),
            valid_principals: v.cert.principals(),
        })
        .map_err(AttestError::AgentId)?;
    let invalid = |e: String| {
        AttestError::AgentId(format!("invalid agent path suffix {}: {e}", spire_cli::flags::go_quote(&path)))
    };
    if !path.is_empty() && !path.starts_with('/') {
        return Err(invalid("path must have a leading slash".into()));
    }
    trust_domain.id_with_path(&format!("/spire/agent{path}")).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_domains() {
        assert_eq!(decanonicalize("node.example.org", None).unwrap(), "node.example.org");
        assert_eq!(decanonicalize("node.example.org", Some("example.org")).unwrap(), "node");
        let err = decanonicalize("node.other.org", Some("example.org")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to decanonicalize hostname: cert principal is not in domain \".example.org\""
        );
        assert!(decanonicalize("example.org", Some("example.org")).is_err());
    }

    #[test]
    fn payload_refusals() {
        let cas =
            Authorities::parse(["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S"])
                .unwrap();
        let plain_key = br#"{"Certificate":"AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S"}"#;
        for (payload, expected) in [
            (&b"{"[..], "failed to unmarshal data: "),
            (b"{}", "no certificate in response"),
            (br#"{"Certificate":"AQID"}"#, "failed to parse public key: "),
            (plain_key, "pubkey in response is not a certificate"),
        ] {
            let err = verify_attestation_data(payload, &cas, None, 0).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{payload:?}: {err}");
        }
    }
}
