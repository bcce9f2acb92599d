//! Certificate templates for CAs and X509-SVIDs, following SPIRE's credential builder so that what we
//! issue looks to clients exactly like what SPIRE issues.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::FromDer;

use super::{X509BuildError, parse_cert};
use crate::signing::{RcgenKey, SigningKey, with_rcgen_errors};
use crate::spiffe_id::{SpiffeId, TrustDomain};

/// How far back NotBefore is set, to absorb clock skew between server and peers.
pub const BACKDATE: Duration = Duration::from_secs(10);

/// A distinguished name in SPIRE's `ca_subject` shape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    /// `C=` values.
    pub country: Vec<String>,
    /// `O=` values.
    pub organization: Vec<String>,
    /// `OU=` values.
    pub organizational_unit: Vec<String>,
    /// `CN=`, if any.
    pub common_name: Option<String>,
}

impl Subject {
    /// SPIRE's default CA subject, `C=US, O=SPIFFE`.
    pub fn default_ca() -> Self {
        Self { country: vec!["US".into()], organization: vec!["SPIFFE".into()], ..Self::default() }
    }

    /// SPIRE's default SVID subject, `C=US, O=SPIRE`.
    pub fn default_svid() -> Self {
        Self { country: vec!["US".into()], organization: vec!["SPIRE".into()], ..Self::default() }
    }

    fn to_rcgen(&self) -> Result<DistinguishedName, X509BuildError> {
        let mut dn = DistinguishedName::new();
        for c in &self.country {
            dn.push(DnType::CountryName, printable(c)?);
        }
        for o in &self.organization {
            dn.push(DnType::OrganizationName, DnValue::Utf8String(o.clone()));
        }
        for ou in &self.organizational_unit {
            dn.push(DnType::OrganizationalUnitName, DnValue::Utf8String(ou.clone()));
        }
        if let Some(cn) = &self.common_name {
            dn.push(DnType::CommonName, DnValue::Utf8String(cn.clone()));
        }
        Ok(dn)
    }
}

fn printable(s: &str) -> Result<DnValue, X509BuildError> {
    s.try_into()
        .map(DnValue::PrintableString)
        .map_err(|_| X509BuildError::Subject(format!("{s:?} is not a printable string")))
}

/// A CA certificate and its key: what signs SVIDs and other CAs. The key may be local or held by a
/// key manager ([`SigningKey`]).
///
/// The parsed signer is kept so that signing does not re-parse the key and certificate every time:
/// a CA signs thousands of SVIDs a second.
#[derive(Debug, Clone)]
pub struct Issuer {
    cert_der: Vec<u8>,
    key: SigningKey,
    not_after: SystemTime,
    signer: std::sync::Arc<rcgen::Issuer<'static, RcgenKey>>,
}

impl Issuer {
    /// Pairs a CA certificate with its key, checking that they belong together and that the
    /// certificate may sign.
    pub fn new(cert_der: Vec<u8>, key: impl Into<SigningKey>) -> Result<Self, X509BuildError> {
        let key = key.into();
        let cert = parse_cert(&cert_der).map_err(|e| X509BuildError::Issuer(e.to_string()))?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(X509BuildError::Issuer("the private key does not match the certificate".into()));
        }
        if !cert.is_ca() {
            return Err(X509BuildError::Issuer("the certificate is not a CA (basicConstraints cA=false)".into()));
        }
        let not_after = to_system_time(cert.validity().not_after.timestamp());
        let signer = rcgen::Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key.rcgen_key())
            .map_err(|e| X509BuildError::Issuer(e.to_string()))?;
        Ok(Self { cert_der, key, not_after, signer: std::sync::Arc::new(signer) })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// When the CA expires; nothing it signs outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    fn sign(&self, params: &CertificateParams, public_key_der: &[u8]) -> Result<Vec<u8>, X509BuildError> {
        let public = rcgen::SubjectPublicKeyInfo::from_der(public_key_der)
            .map_err(|e| X509BuildError::PublicKey(e.to_string()))?;
        let cert = with_rcgen_errors(|| params.signed_by(&public, &self.signer)).map_err(sign_error)?;
        Ok(cert.der().to_vec())
    }
}

/// What a CA certificate needs.
#[derive(Debug, Clone)]
pub struct CaParams<'a> {
    /// Its URI SAN is the trust domain ID, `spiffe://<td>`.
    pub trust_domain: &'a TrustDomain,
    /// The CA's public key, SubjectPublicKeyInfo DER.
    pub public_key_der: &'a [u8],
    /// SPIRE's `ca_subject`; the serial number is added to it.
    pub subject: Subject,
    /// Issue time (NotBefore is 10 s earlier).
    pub now: SystemTime,
    /// Requested lifetime (SPIRE's `ca_ttl`), capped at the issuer's expiry.
    pub ttl: Duration,
}

/// What an X509-SVID needs.
#[derive(Debug, Clone)]
pub struct SvidParams<'a> {
    /// The identity, the one URI SAN.
    pub spiffe_id: &'a SpiffeId,
    /// The workload's public key, SubjectPublicKeyInfo DER (from its CSR).
    pub public_key_der: &'a [u8],
    /// DNS SANs; the first also becomes the CN.
    pub dns_names: &'a [String],
    /// Subject; SPIRE's default `C=US, O=SPIRE` when `None`.
    pub subject: Option<Subject>,
    /// Issue time (NotBefore is 10 s earlier).
    pub now: SystemTime,
    /// Requested lifetime, capped at the issuer's expiry.
    pub ttl: Duration,
}

/// A random serial in `[1, 2^128-1]`, as SPIRE draws them.
pub fn random_serial() -> [u8; 16] {
    loop {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
        if bytes.iter().any(|&b| b != 0) {
            return bytes;
        }
    }
}

/// SHA-1 of the subjectPublicKey bits: the key identifier (SKID/AKID) SPIRE uses.
pub fn key_identifier(public_key_der: &[u8]) -> Result<Vec<u8>, X509BuildError> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(public_key_der)
        .map_err(|e| X509BuildError::PublicKey(e.to_string()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &spki.subject_public_key.data);
    Ok(digest.as_ref().to_vec())
}

fn uri_san(id: &str) -> Result<SanType, X509BuildError> {
    Ok(SanType::URI(id.try_into().map_err(|_| X509BuildError::Subject(format!("{id:?} is not IA5")))?))
}

fn base_params(
    public_key_der: &[u8],
    now: SystemTime,
    not_after: SystemTime,
) -> Result<(CertificateParams, [u8; 16]), X509BuildError> {
    if not_after <= now {
        return Err(X509BuildError::Expired);
    }
    let serial = random_serial();
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = to_offset(now.checked_sub(BACKDATE).unwrap_or(now));
    params.not_after = to_offset(not_after);
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(public_key_der)?);
    params.use_authority_key_identifier_extension = true;
    Ok((params, serial))
}

fn ca_params(p: &CaParams<'_>, not_after: SystemTime) -> Result<CertificateParams, X509BuildError> {
    let (mut params, serial) = base_params(p.public_key_der, p.now, not_after)?;
    let mut dn = p.subject.to_rcgen()?;
    // SPIRE puts the serial, in decimal, into the subject so that successive CAs have distinct names.
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), printable(&u128::from_be_bytes(serial).to_string())?);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![uri_san(&p.trust_domain.id_string())?];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// A self-signed root CA for the trust domain, signed with `key` (whose public key must be
/// `params.public_key_der`).
pub fn self_signed_ca(params: &CaParams<'_>, key: impl Into<SigningKey>) -> Result<Vec<u8>, X509BuildError> {
    let key = key.into();
    if params.public_key_der != key.public_key_der().as_slice() {
        return Err(X509BuildError::PublicKey("the CA public key does not match its private key".into()));
    }
    let not_after = params.now + params.ttl;
    let rc = ca_params(params, not_after)?;
    let signer = key.rcgen_key();
    Ok(with_rcgen_errors(|| rc.self_signed(&signer)).map_err(sign_error)?.der().to_vec())
}

/// An intermediate CA signed by `issuer` (an upstream or downstream CA), valid no longer than it.
pub fn sign_ca(params: &CaParams<'_>, issuer: &Issuer) -> Result<Vec<u8>, X509BuildError> {
    let not_after = (params.now + params.ttl).min(issuer.not_after);
    let rc = ca_params(params, not_after)?;
    issuer.sign(&rc, params.public_key_der)
}

/// An X509-SVID leaf signed by `issuer`.
pub fn sign_svid(params: &SvidParams<'_>, issuer: &Issuer) -> Result<Vec<u8>, X509BuildError> {
    if params.spiffe_id.is_trust_domain_id() {
        return Err(X509BuildError::SvidWithoutPath(params.spiffe_id.to_string()));
    }
    let not_after = (params.now + params.ttl).min(issuer.not_after);
    let (mut rc, _) = base_params(params.public_key_der, params.now, not_after)?;
    let mut subject = params.subject.clone().unwrap_or_else(Subject::default_svid);
    if let Some(first) = params.dns_names.first() {
        subject.common_name = Some(first.clone());
    }
    rc.distinguished_name = subject.to_rcgen()?;
    let mut sans = vec![uri_san(&params.spiffe_id.to_string())?];
    for dns in params.dns_names {
        let name = dns.clone().try_into().map_err(|_| X509BuildError::DnsName(dns.clone()))?;
        sans.push(SanType::DnsName(name));
    }
    rc.subject_alt_names = sans;
    rc.is_ca = IsCa::ExplicitNoCa;
    rc.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyAgreement];
    rc.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    issuer.sign(&rc, params.public_key_der)
}

fn to_offset(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

pub(crate) fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// A PKCS#10 certificate signing request for `key`, with optional URI and DNS SANs and an empty
/// subject (the server decides the subject), as agents send for their own and workload SVIDs.
pub fn certificate_request(
    key: impl Into<SigningKey>,
    uris: &[String],
    dns_names: &[String],
) -> Result<Vec<u8>, X509BuildError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for u in uris {
        params.subject_alt_names.push(uri_san(u)?);
    }
    for d in dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName(d.clone().try_into().map_err(|_| X509BuildError::DnsName(d.clone()))?));
    }
    sign_request(&params, key)
}

/// A PKCS#10 certificate signing request of `params`, signed with `key` (local or remote).
pub fn sign_request(params: &CertificateParams, key: impl Into<SigningKey>) -> Result<Vec<u8>, X509BuildError> {
    let signer = key.into().rcgen_key();
    let csr = with_rcgen_errors(|| params.serialize_request(&signer)).map_err(sign_error)?;
    Ok(csr.der().to_vec())
}

/// A signing failure: the remote signer's own error when it was the cause, rcgen's otherwise.
fn sign_error(e: Result<crate::signing::SignError, rcgen::Error>) -> X509BuildError {
    match e {
        Ok(cause) => X509BuildError::Signer(cause),
        Err(e) => X509BuildError::Sign(e),
    }
}
