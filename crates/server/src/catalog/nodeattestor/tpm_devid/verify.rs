//! The checks of a `tpm_devid` attestation, as functions: the DevID chain, the endorsement key and
//! its certificate, the AK's certification of the DevID key, the DevID key's signature, the agent
//! ID and the selectors.

use std::time::SystemTime;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use spire_attestation::tpm_devid::tpm::{self, KeyMaterial, Public};
use spire_attestation::x509pop::fingerprint;
use spire_identity::{SpiffeId, TrustDomain};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::error::AttestError;
use crate::catalog::nodeattestor::x509pop::error::AttestError as X509Error;
use crate::catalog::nodeattestor::x509pop::verify as x509;

/// Checks that `der` is one X.509 certificate (Go's `x509.ParseCertificate`).
pub fn check_parses(der: &[u8]) -> Result<(), String> {
    x509::check_parses(der)
}

/// Verifies a chain (leaf, intermediates) up to one of `roots` at `now`, any extended key usage;
/// returns the SHA-1 fingerprints of the CA certificates of the path, or Go's wording of the
/// failure.
pub fn verify_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: SystemTime,
) -> Result<Vec<String>, String> {
    x509::verify_chain(leaf, intermediates, roots, now).map_err(|e| match e {
        X509Error::Verification(m) => m,
        other => other.to_string(),
    })
}

/// Checks that the EK certificate's key is the RSA key the TPM regenerated (SPIRE's
/// `verifyEKsMatch`).
pub fn ek_matches(ek_cert: &[u8], ek_pub: &Public) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(ek_cert).map_err(|e| e.to_string())?;
    let Ok(PublicKey::RSA(from_cert)) = cert.public_key().parsed() else {
        return Err("key from certificate is not an RSA key".into());
    };
    let KeyMaterial::Rsa { modulus, .. } = &ek_pub.key else {
        return Err("key from template is not an RSA key".into());
    };
    let trim = |v: &[u8]| v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..].to_vec();
    let cert_exponent = trim(from_cert.exponent);
    let template_exponent = trim(&ek_pub.rsa_exponent().unwrap_or(65537).to_be_bytes());
    if cert_exponent != template_exponent {
        return Err("exponent mismatch".into());
    }
    if trim(from_cert.modulus) != trim(modulus) {
        return Err("modulus mismatch".into());
    }
    Ok(())
}

/// Checks the TPM object attributes that make the certification mean "this DevID key lives in the
/// EK's TPM" (SPIRE v1.13.3 checks neither). The AK must be a restricted signer created in and fixed
/// to its TPM: an unrestricted AK would sign a forged `TPMS_ATTEST` naming any key. The DevID key
/// must be fixedTPM: a copied DevID private key imported (or loaded as external) into some genuine
/// TPM can be certified there, but the TPM never sets fixedTPM on such a key.
pub fn residency_attributes(ak: &Public, devid: &Public) -> Result<(), AttestError> {
    if !ak.is_resident_restricted_signer() {
        return Err(AttestError::AkAttributes(ak.attribute_bits()));
    }
    if !devid.is_fixed_signer() {
        return Err(AttestError::DevIdAttributes(devid.attribute_bits()));
    }
    Ok(())
}

/// Checks that the AK signed `attest` and that it certifies the DevID key (SPIRE's
/// `VerifyDevIDCertification`).
pub fn verify_certification(ak: &Public, devid: &Public, attest: &[u8], signature: &[u8]) -> Result<(), String> {
    tpm::verify_rsa_signature(ak, attest, signature).map_err(|e| e.to_string())?;
    let name = tpm::certified_name(attest).map_err(|e| e.to_string())?;
    if tpm::name_matches(&name, devid).map_err(|e| e.to_string())? { Ok(()) } else { Err("certify failed".into()) }
}

/// Checks that the DevID certificate is for the key the AK certified. SPIRE v1.13.3 does not: there
/// the certification may be of any key of the TPM, unrelated to the certificate; SPIRE's agent
/// always sends the certificate's own key, so requiring it refuses no honest agent. With
/// [`residency_attributes`] it ties the certificate's key to a key that cannot leave the EK's TPM.
pub fn devid_key_matches(leaf: &[u8], devid: &Public) -> Result<(), String> {
    let mismatch = || "DevID certificate's key is not the certified DevID key".to_owned();
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let trim = |v: &[u8]| v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..].to_vec();
    match (cert.public_key().parsed(), &devid.key) {
        (Ok(PublicKey::RSA(k)), KeyMaterial::Rsa { modulus, .. }) if trim(k.modulus) == trim(modulus) => Ok(()),
        (Ok(PublicKey::EC(point)), KeyMaterial::Ecc { .. }) if devid.ecc_point().is_some_and(|p| p == point.data()) => {
            Ok(())
        }
        _ => Err(mismatch()),
    }
}

/// Checks the DevID key's signature over the nonce with the DevID certificate's key: SHA-256 with
/// PKCS#1 v1.5 for RSA, ECDSA (ASN.1) over SHA-256 for EC keys (SPIRE's `VerifyDevIDChallenge`).
pub fn verify_devid_signature(leaf: &[u8], nonce: &[u8], sig: &[u8]) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let spki = cert.public_key();
    let key = spki.subject_public_key.data.as_ref();
    let (alg, failure): (&dyn signature::VerificationAlgorithm, &str) = match spki.parsed() {
        Ok(PublicKey::RSA(_)) => (&signature::RSA_PKCS1_2048_8192_SHA256, "crypto/rsa: verification error"),
        Ok(PublicKey::EC(point)) => {
            // The uncompressed point's length names the curve (x509-parser's `key_size` says 528
            // for P-521).
            let alg: &dyn signature::VerificationAlgorithm = match point.data().len() {
                65 => &signature::ECDSA_P256_SHA256_ASN1,
                97 => &signature::ECDSA_P384_SHA256_ASN1,
                133 => &signature::ECDSA_P521_SHA256_ASN1,
                _ => return Err("unsupported private key type *ecdsa.PublicKey".into()),
            };
            (alg, "x509: ECDSA verification failure")
        }
        _ => return Err(format!("unsupported private key type {}", spki.algorithm.algorithm.to_id_string())),
    };
    UnparsedPublicKey::new(alg, key).verify(nonce, sig).map_err(|_| failure.to_owned())
}

/// `spiffe://<td>/spire/agent/tpm_devid/<SHA-1 of the DevID certificate>`.
pub fn agent_id(trust_domain: &TrustDomain, leaf: &[u8]) -> Result<SpiffeId, AttestError> {
    trust_domain
        .id_with_path(&format!("/spire/agent/{}/{}", super::NAME, fingerprint(leaf)))
        .map_err(|e| AttestError::AgentId(e.to_string()))
}

/// SPIRE's selector values: `subject:cn:` and `issuer:cn:` of the DevID certificate when set, then
/// `ca:fingerprint:` for each CA certificate of the verified path. (SPIRE's documentation says
/// `fingerprint:`; its code, which decides what entries match, says `ca:fingerprint:`.)
pub fn selectors(leaf: &[u8], ca_fingerprints: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok((_, cert)) = X509Certificate::from_der(leaf) {
        let last = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
            it.filter_map(|a| a.as_str().ok()).last().unwrap_or_default().to_owned()
        };
        let subject = last(&mut cert.subject().iter_common_name());
        let issuer = last(&mut cert.issuer().iter_common_name());
        if !subject.is_empty() {
            out.push(format!("subject:cn:{subject}"));
        }
        if !issuer.is_empty() {
            out.push(format!("issuer:cn:{issuer}"));
        }
    }
    out.extend(ca_fingerprints.iter().map(|f| format!("ca:fingerprint:{f}")));
    out
}
