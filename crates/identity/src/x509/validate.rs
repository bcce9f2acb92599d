//! X509-SVID validation (X509-SVID.md §5): every SPIFFE rule on the leaf and on each signing
//! certificate, then RFC 5280 path validation against the bundle of the SVID's trust domain.
//!
//! The SPIFFE rules are checked first and one by one so that each failure says which rule broke;
//! path building, signatures and validity periods are left to rustls-webpki, which does them well.

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME};

use super::build::to_system_time;
use super::parse_cert;
use crate::bundle::BundleSet;
use crate::spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};

/// Why an X509-SVID was rejected; one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X509SvidError {
    /// No certificates at all.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// A certificate is not DER X.509.
    #[error("certificate {index} cannot be parsed: {reason}")]
    Malformed {
        /// Position in the chain (0 is the leaf).
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// The leaf must carry exactly one URI SAN.
    #[error("leaf certificate must have exactly one URI SAN, found {0}")]
    UriSanCount(usize),
    /// The leaf's URI SAN is not a SPIFFE ID.
    #[error("leaf certificate URI SAN is not a valid SPIFFE ID: {0}")]
    BadSpiffeId(SpiffeIdError),
    /// The leaf's SPIFFE ID is a trust domain ID.
    #[error("leaf certificate SPIFFE ID {0} has no path: a workload identity needs one")]
    LeafWithoutPath(String),
    /// The leaf says it is a CA.
    #[error("leaf certificate must not be a CA (basicConstraints has cA=true)")]
    LeafIsCa,
    /// The leaf has no key usage extension.
    #[error("leaf certificate has no key usage extension; it must have one, marked critical")]
    LeafKeyUsageMissing,
    /// The leaf's key usage is not critical.
    #[error("leaf certificate key usage extension must be marked critical")]
    LeafKeyUsageNotCritical,
    /// The leaf may not sign.
    #[error("leaf certificate key usage must include digitalSignature")]
    LeafMissingDigitalSignature,
    /// The leaf may sign certificates.
    #[error("leaf certificate key usage must not include keyCertSign")]
    LeafHasKeyCertSign,
    /// The leaf may sign CRLs.
    #[error("leaf certificate key usage must not include cRLSign")]
    LeafHasCrlSign,
    /// The leaf's extended key usage lacks one of the two TLS purposes.
    #[error("leaf certificate extended key usage must include both serverAuth and clientAuth, missing {0}")]
    LeafExtKeyUsage(&'static str),
    /// Empty subject with a non-critical SAN extension.
    #[error("leaf certificate has an empty subject, so its SAN extension must be marked critical")]
    LeafSanNotCritical,
    /// A signing certificate is not a CA.
    #[error("signing certificate {index} must be a CA (basicConstraints cA=true)")]
    SigningNotCa {
        /// Position in the chain.
        index: usize,
    },
    /// A signing certificate has no key usage extension.
    #[error("signing certificate {index} has no key usage extension; it must have one, marked critical")]
    SigningKeyUsageMissing {
        /// Position in the chain.
        index: usize,
    },
    /// A signing certificate's key usage is not critical.
    #[error("signing certificate {index} key usage extension must be marked critical")]
    SigningKeyUsageNotCritical {
        /// Position in the chain.
        index: usize,
    },
    /// A signing certificate may not sign certificates.
    #[error("signing certificate {index} key usage must include keyCertSign")]
    SigningMissingKeyCertSign {
        /// Position in the chain.
        index: usize,
    },
    /// A signing certificate's SPIFFE ID has a path.
    #[error("signing certificate {index} SPIFFE ID {id} must not have a path")]
    SigningIdWithPath {
        /// Position in the chain.
        index: usize,
        /// The offending ID.
        id: String,
    },
    /// No bundle for the SVID's trust domain.
    #[error("no X.509 bundle for trust domain {0:?}")]
    NoBundle(String),
    /// The bundle holds no X.509 authorities.
    #[error("the X.509 bundle for trust domain {0:?} has no authorities")]
    EmptyBundle(String),
    /// No path to any authority of the bundle.
    #[error("certificate signed by unknown authority: no chain to the bundle of trust domain {0:?}")]
    UnknownAuthority(String),
    /// A signature in the chain does not verify.
    #[error("certificate signature is invalid")]
    BadSignature,
    /// A certificate in the chain has expired.
    #[error("certificate has expired")]
    Expired,
    /// A certificate in the chain is not yet valid.
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// Any other path-validation failure (name constraints, path length, unsupported algorithm...).
    #[error("certificate chain is invalid: {0}")]
    Path(String),
}

/// What a successful validation establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSvid {
    /// The SVID's identity.
    pub spiffe_id: SpiffeId,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

/// Validates an X509-SVID chain (leaf first, DER) against `bundles`, at time `now`.
pub fn verify_svid<C: AsRef<[u8]>>(
    chain: &[C],
    bundles: &BundleSet,
    now: SystemTime,
) -> Result<VerifiedSvid, X509SvidError> {
    let (leaf_der, signing) = chain.split_first().ok_or(X509SvidError::EmptyChain)?;
    let leaf = parse_at(leaf_der.as_ref(), 0)?;
    let spiffe_id = check_leaf(&leaf)?;
    for (i, der) in signing.iter().enumerate() {
        check_signing(&parse_at(der.as_ref(), i + 1)?, i + 1)?;
    }

    let td = spiffe_id.trust_domain();
    let bundle = bundles.get(td).ok_or_else(|| X509SvidError::NoBundle(td.to_string()))?;
    verify_path(leaf_der.as_ref(), signing, bundle.x509_authorities(), td, now)?;
    Ok(VerifiedSvid { spiffe_id, not_after: to_system_time(leaf.validity().not_after.timestamp()) })
}

fn parse_at(der: &[u8], index: usize) -> Result<X509Certificate<'_>, X509SvidError> {
    parse_cert(der).map_err(|e| X509SvidError::Malformed { index, reason: e.to_string() })
}

fn uri_sans(cert: &X509Certificate<'_>) -> Result<(Vec<String>, bool), X509SvidError> {
    let Some(ext) = cert.get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME).map_err(malformed_leaf)? else {
        return Ok((Vec::new(), false));
    };
    let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() else {
        return Err(malformed_leaf("unparseable subjectAltName"));
    };
    let uris = san
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect();
    Ok((uris, ext.critical))
}

fn malformed_leaf(e: impl ToString) -> X509SvidError {
    X509SvidError::Malformed { index: 0, reason: e.to_string() }
}

fn check_leaf(cert: &X509Certificate<'_>) -> Result<SpiffeId, X509SvidError> {
    let (uris, san_critical) = uri_sans(cert)?;
    if uris.len() != 1 {
        return Err(X509SvidError::UriSanCount(uris.len()));
    }
    let id = SpiffeId::parse(&uris[0]).map_err(X509SvidError::BadSpiffeId)?;
    if id.is_trust_domain_id() {
        return Err(X509SvidError::LeafWithoutPath(id.to_string()));
    }
    if cert.subject().iter_attributes().next().is_none() && !san_critical {
        return Err(X509SvidError::LeafSanNotCritical);
    }
    if cert.basic_constraints().map_err(malformed_leaf)?.is_some_and(|bc| bc.value.ca) {
        return Err(X509SvidError::LeafIsCa);
    }
    let ku_ext = cert.get_extension_unique(&OID_X509_EXT_KEY_USAGE).map_err(malformed_leaf)?;
    let ku_ext = ku_ext.ok_or(X509SvidError::LeafKeyUsageMissing)?;
    let ParsedExtension::KeyUsage(ku) = ku_ext.parsed_extension() else {
        return Err(malformed_leaf("unparseable key usage"));
    };
    if !ku_ext.critical {
        return Err(X509SvidError::LeafKeyUsageNotCritical);
    }
    if !ku.digital_signature() {
        return Err(X509SvidError::LeafMissingDigitalSignature);
    }
    if ku.key_cert_sign() {
        return Err(X509SvidError::LeafHasKeyCertSign);
    }
    if ku.crl_sign() {
        return Err(X509SvidError::LeafHasCrlSign);
    }
    if let Some(eku) = cert.extended_key_usage().map_err(malformed_leaf)? {
        if !eku.value.server_auth {
            return Err(X509SvidError::LeafExtKeyUsage("serverAuth"));
        }
        if !eku.value.client_auth {
            return Err(X509SvidError::LeafExtKeyUsage("clientAuth"));
        }
    }
    Ok(id)
}

fn check_signing(cert: &X509Certificate<'_>, index: usize) -> Result<(), X509SvidError> {
    let malformed = |e: x509_parser::error::X509Error| X509SvidError::Malformed { index, reason: e.to_string() };
    if !cert.basic_constraints().map_err(malformed)?.is_some_and(|bc| bc.value.ca) {
        return Err(X509SvidError::SigningNotCa { index });
    }
    let ku_ext = cert.get_extension_unique(&OID_X509_EXT_KEY_USAGE).map_err(malformed)?;
    let ku_ext = ku_ext.ok_or(X509SvidError::SigningKeyUsageMissing { index })?;
    if !ku_ext.critical {
        return Err(X509SvidError::SigningKeyUsageNotCritical { index });
    }
    match ku_ext.parsed_extension() {
        ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() => {}
        _ => return Err(X509SvidError::SigningMissingKeyCertSign { index }),
    }
    if let Some(san) = cert.subject_alternative_name().map_err(malformed)? {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Ok(id) = SpiffeId::parse(uri)
                && !id.is_trust_domain_id()
            {
                return Err(X509SvidError::SigningIdWithPath { index, id: id.to_string() });
            }
        }
    }
    Ok(())
}

fn verify_path<C: AsRef<[u8]>>(
    leaf: &[u8],
    intermediates: &[C],
    authorities: &[Vec<u8>],
    td: &TrustDomain,
    now: SystemTime,
) -> Result<(), X509SvidError> {
    if authorities.is_empty() {
        return Err(X509SvidError::EmptyBundle(td.to_string()));
    }
    let authority_ders: Vec<CertificateDer<'_>> =
        authorities.iter().map(|a| CertificateDer::from(a.as_slice())).collect();
    // An authority webpki cannot read is skipped; if none is left the chain has no anchor.
    let anchors: Vec<_> = authority_ders.iter().filter_map(|a| webpki::anchor_from_trusted_cert(a).ok()).collect();
    let intermediates: Vec<CertificateDer<'_>> =
        intermediates.iter().map(|c| CertificateDer::from(c.as_ref())).collect();
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| X509SvidError::Path(e.to_string()))?;
    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(since_epoch),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| match e {
        webpki::Error::UnknownIssuer => X509SvidError::UnknownAuthority(td.to_string()),
        webpki::Error::InvalidSignatureForPublicKey => X509SvidError::BadSignature,
        webpki::Error::CertExpired { .. } => X509SvidError::Expired,
        webpki::Error::CertNotValidYet { .. } => X509SvidError::NotYetValid,
        other => X509SvidError::Path(format!("{other:?}")),
    })
}
