//! The signature checks: which certificate signs a region's documents, and whether the agent's
//! document carries AWS's signature.
//!
//! As SPIRE, the RSA-2048 PKCS#7 signature (`rsa2048`) is used when sent, else the RSA-1024 one
//! (`signature`, which SPIRE's older agents send alone). The certificates are AWS's published
//! ones, embedded (`aws_rsa2048.pem`, `aws_rsa1024.pem`); an RSA-2048 document from a region
//! without one is refused, an RSA-1024 one falls back to AWS's general certificate, as in SPIRE.
//! Certificates are not checked for expiry (SPIRE does not either: AWS's RSA-1024 general
//! certificate expired in 2024).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use spire_attestation::aws_iid::pkcs7::{SignedData, SignerInfo, oid};
use spire_attestation::aws_iid::{AttestationData, InstanceIdentityDocument};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::AttestError;

const AWS_RSA2048: &str = include_str!("aws_rsa2048.pem");
const AWS_RSA1024: &str = include_str!("aws_rsa1024.pem");

/// Which of AWS's signatures is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `instance-identity/signature`: raw PKCS#1 v1.5 over SHA-256.
    Rsa1024,
    /// `instance-identity/rsa2048`: PKCS#7 SignedData.
    Rsa2048,
}

/// The certificates documents are checked against.
#[derive(Debug, Clone)]
pub enum CaCertificates {
    /// AWS's, by region.
    Aws,
    /// `test_only_ca_certificates_path`: these (DER) for every region.
    TestOnly(Vec<Vec<u8>>),
}

impl CaCertificates {
    /// The certificates of a test-only PEM file.
    pub fn test_only(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ders = pem_blocks(&text).into_iter().map(|(_, der)| der).collect::<Vec<_>>();
        if ders.is_empty() {
            return Err(format!("{}: no certificate", path.display()));
        }
        Ok(Self::TestOnly(ders))
    }

    /// The certificates (DER) for `region`, or SPIRE's reason there are none.
    pub fn for_region(&self, region: &str, key_type: KeyType) -> Result<Vec<Vec<u8>>, String> {
        match self {
            Self::TestOnly(ders) => Ok(ders.clone()),
            Self::Aws => {
                let certs = match key_type {
                    KeyType::Rsa2048 => aws_rsa2048(),
                    KeyType::Rsa1024 => aws_rsa1024(),
                };
                let cert = match (certs.get(region), key_type) {
                    (Some(der), _) => der,
                    (None, KeyType::Rsa1024) => &certs["default"],
                    (None, KeyType::Rsa2048) => {
                        return Err(format!("unsupported region {}", spire_cli::flags::go_quote(region)));
                    }
                };
                Ok(vec![cert.clone()])
            }
        }
    }
}

fn aws_rsa2048() -> &'static BTreeMap<String, Vec<u8>> {
    static CERTS: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| by_region(AWS_RSA2048))
}

fn aws_rsa1024() -> &'static BTreeMap<String, Vec<u8>> {
    static CERTS: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| by_region(AWS_RSA1024))
}

fn by_region(text: &str) -> BTreeMap<String, Vec<u8>> {
    pem_blocks(text)
        .into_iter()
        .map(|(label, der)| (label.expect("every embedded certificate has a region"), der))
        .collect()
}

/// The CERTIFICATE blocks of a PEM text, each with the `[label]` line before it, if any.
fn pem_blocks(text: &str) -> Vec<(Option<String>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut label = None;
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(der) = body.take().and_then(|b64| STANDARD.decode(b64).ok()) {
                out.push((label.take(), der));
            }
        } else if let Some(b64) = body.as_mut() {
            b64.push_str(line);
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            label = Some(name.to_owned());
        }
    }
    out
}

/// Reads the document and checks its signature, in SPIRE's order and with its refusals.
pub fn verify_document(data: &AttestationData, cas: &CaCertificates) -> Result<InstanceIdentityDocument, AttestError> {
    let doc = InstanceIdentityDocument::parse(data.document.as_bytes())
        .map_err(|e| AttestError::BadDocument(e.to_string()))?;
    let (signature, key_type) = if data.signature_rsa2048.is_empty() {
        (&data.signature, KeyType::Rsa1024)
    } else {
        (&data.signature_rsa2048, KeyType::Rsa2048)
    };
    if signature.is_empty() {
        return Err(AttestError::MissingSignature);
    }
    let certs = cas
        .for_region(&doc.region, key_type)
        .map_err(|reason| AttestError::CaCertificate { region: doc.region.clone(), reason })?;
    match key_type {
        KeyType::Rsa1024 => verify_rsa1024(&certs[0], &data.document, signature)?,
        KeyType::Rsa2048 => {
            let content = verify_pkcs7(&certs, signature)?;
            if !same_json(&content, data.document.as_bytes()) {
                return Err(AttestError::DocumentMismatch);
            }
        }
    }
    Ok(doc)
}

/// SPIRE's RSA-1024 check: base64, then PKCS#1 v1.5 with SHA-256 over the document.
fn verify_rsa1024(cert: &[u8], document: &str, signature: &str) -> Result<(), AttestError> {
    let sig = STANDARD
        .decode(signature)
        .map_err(|e| AttestError::Rsa1024(format!("failed to decode the IID signature: {}", go_base64_error(&e))))?;
    let key = rsa_public_key(cert).map_err(AttestError::Rsa1024)?;
    UnparsedPublicKey::new(&signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, key)
        .verify(document.as_bytes(), &sig)
        .map_err(|_| {
            AttestError::Rsa1024("failed to verify the cryptographic signature: crypto/rsa: verification error".into())
        })
}

/// Go's words for a base64 error (`illegal base64 data at input byte N`).
fn go_base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        other => format!("illegal base64 data: {other}"),
    }
}

/// The PKCS#7 check, as SPIRE does it with `fullsailor/pkcs7` (the message's own certificates
/// replaced by `certs`): returns the signed content.
pub fn verify_pkcs7(certs: &[Vec<u8>], signature: &str) -> Result<Vec<u8>, AttestError> {
    // AWS serves the base64 without PEM armour; SPIRE adds it and decodes as PEM, which allows
    // line breaks and surrounding white space.
    let b64: String = signature.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(b64).map_err(|_| AttestError::Pkcs7Decode)?;
    let sd = SignedData::parse(&der).map_err(|e| AttestError::Pkcs7Parse(e.to_string()))?;
    if sd.signers.is_empty() {
        return Err(AttestError::Pkcs7Verify("pkcs7: Message has no signers".into()));
    }
    for signer in &sd.signers {
        verify_signer(&sd.content, signer, certs).map_err(AttestError::Pkcs7Verify)?;
    }
    Ok(sd.content)
}

fn verify_signer(content: &[u8], signer: &SignerInfo, certs: &[Vec<u8>]) -> Result<(), String> {
    let hash = match signer.digest_algorithm.as_slice() {
        oid::SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        oid::SHA256 => &digest::SHA256,
        _ => {
            return Err(
                "pkcs7: cannot decrypt data: only RSA, DES, DES-EDE3, AES-256-CBC and AES-128-GCM supported".into()
            );
        }
    };
    let signed: &[u8] = match &signer.signed_attributes {
        None => content,
        Some(attrs) => {
            let expected = attrs.message_digest.as_ref().ok_or("pkcs7: attribute type not in attributes")?;
            let actual = digest::digest(hash, content);
            if expected.as_slice() != actual.as_ref() {
                return Err(format!(
                    "pkcs7: Message digest mismatch\n\tExpected: {}\n\tActual  : {}",
                    hex_upper(expected),
                    hex_upper(actual.as_ref())
                ));
            }
            &attrs.der
        }
    };
    let cert = certs
        .iter()
        .find(|c| issued_as(c, &signer.issuer, &signer.serial))
        .ok_or("pkcs7: No certificate for signer")?;
    let algorithm: &dyn VerificationAlgorithm =
        match (signer.signature_algorithm.as_slice(), signer.digest_algorithm.as_slice()) {
            (oid::SHA1_WITH_RSA, _) | (oid::RSA_ENCRYPTION, oid::SHA1) => {
                &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            (oid::SHA256_WITH_RSA, _) | (oid::RSA_ENCRYPTION, _) => {
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            }
            (oid::SHA384_WITH_RSA, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (oid::SHA512_WITH_RSA, _) => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            _ => return Err("x509: cannot verify signature: algorithm unimplemented".into()),
        };
    let key = rsa_public_key(cert)?;
    UnparsedPublicKey::new(algorithm, key)
        .verify(signed, &signer.signature)
        .map_err(|_| "crypto/rsa: verification error".to_owned())
}

/// Whether `cert` is the one a SignerInfo names: the same issuer (DER) and serial number.
fn issued_as(cert: &[u8], issuer: &[u8], serial: &[u8]) -> bool {
    let Ok((_, parsed)) = X509Certificate::from_der(cert) else { return false };
    parsed.tbs_certificate.issuer.as_raw() == issuer
        && trim_integer(parsed.tbs_certificate.raw_serial()) == trim_integer(serial)
}

/// An INTEGER's content without redundant leading zero octets, so equal numbers compare equal.
fn trim_integer(bytes: &[u8]) -> &[u8] {
    let mut b = bytes;
    while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
        b = &b[1..];
    }
    b
}

/// The RSAPublicKey (PKCS#1 DER) of a certificate.
fn rsa_public_key(cert: &[u8]) -> Result<Vec<u8>, String> {
    let (_, parsed) = X509Certificate::from_der(cert).map_err(|e| format!("x509: {e}"))?;
    let spki = parsed.public_key();
    if spki.algorithm.algorithm.as_bytes() != oid::RSA_ENCRYPTION {
        return Err("x509: signature algorithm specifies an RSA public key, but have public key of another type".into());
    }
    Ok(spki.subject_public_key.data.to_vec())
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Whether two JSON texts hold the same value (AWS's document and the signed copy may differ in
/// white space only).
fn same_json(a: &[u8], b: &[u8]) -> bool {
    match (serde_json::from_slice::<serde_json::Value>(a), serde_json::from_slice::<serde_json::Value>(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_certificates_are_embedded_for_every_region_spire_knows() {
        assert_eq!(aws_rsa2048().len(), 31);
        assert!(aws_rsa1024().contains_key("default"));
        for (region, der) in aws_rsa2048().iter().chain(aws_rsa1024()) {
            assert!(rsa_public_key(der).is_ok(), "{region}");
        }
        let cas = CaCertificates::Aws;
        assert_eq!(cas.for_region("us-east-1", KeyType::Rsa2048).unwrap(), vec![aws_rsa2048()["us-east-1"].clone()]);
        assert_eq!(cas.for_region("mars-1", KeyType::Rsa2048).unwrap_err(), "unsupported region \"mars-1\"");
        assert_eq!(cas.for_region("mars-1", KeyType::Rsa1024).unwrap(), vec![aws_rsa1024()["default"].clone()]);
    }

    #[test]
    fn integers_compare_by_value() {
        assert_eq!(trim_integer(&[0, 0, 5]), [5]);
        assert_eq!(trim_integer(&[0, 0x80]), [0, 0x80]);
    }
}
