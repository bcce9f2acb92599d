//! X509-SVIDs: building CA and leaf certificates, and validating a chain against a bundle.

mod build;
mod validate;

pub use build::{
    BACKDATE, CaParams, Issuer, Subject, SvidParams, certificate_request, key_identifier, random_serial,
    self_signed_ca, sign_ca, sign_request, sign_svid,
};
pub use validate::{VerifiedSvid, X509SvidError, verify_svid};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Why a certificate could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum X509BuildError {
    /// The issuing CA certificate or key is unusable.
    #[error("invalid issuer: {0}")]
    Issuer(String),
    /// The subject public key could not be read.
    #[error("invalid public key: {0}")]
    PublicKey(String),
    /// A subject attribute cannot be encoded.
    #[error("invalid subject: {0}")]
    Subject(String),
    /// A DNS name cannot be put in a SAN.
    #[error("invalid DNS name {0:?}")]
    DnsName(String),
    /// A leaf was asked for a trust domain ID, which identifies no workload.
    #[error("an X509-SVID must have a SPIFFE ID with a path, got {0}")]
    SvidWithoutPath(String),
    /// The issuer expires before the requested validity starts.
    #[error("the issuer has expired")]
    Expired,
    /// rcgen refused to sign.
    #[error("signing failed: {0}")]
    Sign(rcgen::Error),
    /// The signing key (a key manager's) failed to sign.
    #[error("signing failed: {0}")]
    Signer(crate::signing::SignError),
}

/// Why DER or PEM certificate data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertParseError {
    /// Not a DER X.509 certificate.
    #[error("certificate {index} is not valid DER X.509: {reason}")]
    Der {
        /// Position in the input, from 0.
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// Not PEM, or no `CERTIFICATE` block.
    #[error("no PEM CERTIFICATE block found")]
    NoPem,
    /// Bytes after the last certificate.
    #[error("trailing data after certificate {0}")]
    Trailing(usize),
}

pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, CertParseError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertParseError::Trailing(0)),
        Err(e) => Err(CertParseError::Der { index: 0, reason: e.to_string() }),
    }
}

/// Splits concatenated DER certificates (the Workload API's `x509_svid` and `bundle` fields).
pub fn split_der_chain(mut data: &[u8]) -> Result<Vec<Vec<u8>>, CertParseError> {
    let mut certs = Vec::new();
    while !data.is_empty() {
        let index = certs.len();
        let (rest, _) =
            X509Certificate::from_der(data).map_err(|e| CertParseError::Der { index, reason: e.to_string() })?;
        let len = data.len() - rest.len();
        certs.push(data[..len].to_vec());
        data = rest;
    }
    Ok(certs)
}

/// Concatenates DER certificates, the inverse of [`split_der_chain`].
pub fn join_der_chain<C: AsRef<[u8]>>(certs: &[C]) -> Vec<u8> {
    certs.iter().flat_map(|c| c.as_ref().iter().copied()).collect()
}

/// Reads every `CERTIFICATE` block of a PEM text, checking each is DER X.509.
pub fn certs_from_pem(text: &str) -> Result<Vec<Vec<u8>>, CertParseError> {
    let blocks = pem::parse_many(text).map_err(|_| CertParseError::NoPem)?;
    let certs: Vec<Vec<u8>> =
        blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(|b| b.into_contents()).collect();
    if certs.is_empty() {
        return Err(CertParseError::NoPem);
    }
    for (index, der) in certs.iter().enumerate() {
        parse_cert(der).map_err(|e| match e {
            CertParseError::Der { reason, .. } => CertParseError::Der { index, reason },
            _ => CertParseError::Trailing(index),
        })?;
    }
    Ok(certs)
}

/// PEM `CERTIFICATE` blocks for DER certificates, as `bundle show` and `api fetch -write` print them.
pub fn certs_to_pem<C: AsRef<[u8]>>(certs: &[C]) -> String {
    certs.iter().map(|c| crate::pem_encode("CERTIFICATE", c.as_ref())).collect()
}
