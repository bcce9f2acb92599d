//! The checks of an `x509pop` attestation, as functions: the chain, the challenge, the response,
//! the agent ID and the selectors.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::signature::{self, RsaPssSaltLength, UnparsedPublicKey};
use rustls::pki_types::{CertificateDer, UnixTime};
use spire_attestation::x509pop::{
    self as wire, Challenge, EcdsaSignatureResponse, NonceChallenge, Response, RsaSignatureResponse,
};
use spire_identity::{SpiffeId, TrustDomain};
use webpki::{ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::error::AttestError;
use super::template::{Template, TemplateData};

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// A leaf's public key, as far as the challenge is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKey {
    /// The DER `RSAPublicKey`.
    Rsa(Vec<u8>),
    /// An uncompressed P-256 point.
    P256(Vec<u8>),
    /// An uncompressed P-384 point.
    P384(Vec<u8>),
    /// An uncompressed P-521 point.
    P521(Vec<u8>),
    /// Anything else (the OID), which cannot be challenged.
    Unsupported(String),
}

/// What attestation needs from the leaf.
#[derive(Debug, Clone)]
pub struct LeafInfo {
    /// The DER.
    pub der: Vec<u8>,
    /// Its public key.
    pub key: LeafKey,
    /// Whether its key usage includes digitalSignature (absent key usage: no).
    pub digital_signature: bool,
    /// The subject's (last) CN, empty if none.
    pub subject_cn: String,
    /// The subject's serialNumber attribute.
    pub subject_serial_number: String,
    /// The issuer's CN.
    pub issuer_cn: String,
    /// The serial number, as SPIRE writes it.
    pub serial_hex: String,
    /// The URI SANs.
    pub uris: Vec<String>,
}

/// Checks that `der` is one X.509 certificate.
pub fn check_parses(der: &[u8]) -> Result<(), String> {
    match X509Certificate::from_der(der) {
        Ok(([], _)) => Ok(()),
        Ok(_) => Err("x509: trailing data".into()),
        Err(e) => Err(format!("x509: malformed certificate: {e}")),
    }
}

/// The modulus size in bits of a certificate's RSA key; `None` for other keys (or unparsable DER,
/// which the caller refuses on its own).
pub fn rsa_key_bits(der: &[u8]) -> Option<usize> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    match cert.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => Some(rsa.key_size()),
        _ => None,
    }
}

impl LeafInfo {
    /// Reads the leaf.
    pub fn parse(der: &[u8]) -> Result<Self, AttestError> {
        check_parses(der).map_err(AttestError::BadLeaf)?;
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| AttestError::BadLeaf(e.to_string()))?;
        let spki = cert.public_key();
        let point = spki.subject_public_key.data.to_vec();
        let key = match spki.algorithm.algorithm.to_id_string().as_str() {
            RSA_ENCRYPTION => LeafKey::Rsa(point),
            EC_PUBLIC_KEY => match point.len() {
                65 => LeafKey::P256(point),
                97 => LeafKey::P384(point),
                133 => LeafKey::P521(point),
                _ => LeafKey::Unsupported("*ecdsa.PublicKey (unsupported curve)".into()),
            },
            other => LeafKey::Unsupported(other.to_owned()),
        };
        let digital_signature = matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.digital_signature());
        let last = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
            it.filter_map(|a| a.as_str().ok()).last().unwrap_or_default().to_owned()
        };
        let uris = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            der: der.to_vec(),
            key,
            digital_signature,
            subject_cn: last(&mut cert.subject().iter_common_name()),
            subject_serial_number: last(
                &mut cert.subject().iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER),
            ),
            issuer_cn: last(&mut cert.issuer().iter_common_name()),
            serial_hex: wire::serial_number_hex(cert.raw_serial()),
            uris,
        })
    }

    /// `key -> value` of each `x509pop://<td>/<key>/<value>` URI SAN (the last one of a key wins).
    pub fn uri_san_selectors(&self, trust_domain: &str) -> BTreeMap<String, String> {
        let prefix = format!("x509pop://{trust_domain}/");
        let mut out = BTreeMap::new();
        for uri in &self.uris {
            let Some(rest) = uri.strip_prefix(&prefix) else { continue };
            let path = rest.split(['?', '#']).next().unwrap_or_default();
            match path.trim_matches('/').split_once('/') {
                Some((key, value)) => {
                    out.insert(key.to_owned(), value.to_owned());
                }
                None => tracing::warn!("cannot extract x509pop san selectors from {uri}"),
            }
        }
        out
    }
}

/// Any extended key usage, as SPIRE's `ExtKeyUsageAny`.
struct AnyEku;

impl ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// Verifies `leaf` up to one of `roots` through `intermediates` at `now`; returns the SHA-1
/// fingerprints of the path's CA certificates (intermediates, then the root), leaf excluded.
pub fn verify_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: SystemTime,
) -> Result<Vec<String>, AttestError> {
    let verification = |m: String| AttestError::Verification(m);
    let root_ders: Vec<CertificateDer<'_>> = roots.iter().map(|r| CertificateDer::from(r.as_slice())).collect();
    let anchors: Vec<(usize, rustls::pki_types::TrustAnchor<'_>)> = root_ders
        .iter()
        .enumerate()
        .filter_map(|(i, r)| webpki::anchor_from_trusted_cert(r).ok().map(|a| (i, a)))
        .collect();
    let anchor_list: Vec<_> = anchors.iter().map(|(_, a)| a.clone()).collect();
    let inter_ders: Vec<CertificateDer<'_>> =
        intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| verification(format!("x509: {e}")))?;
    let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let path = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchor_list,
            &inter_ders,
            UnixTime::since_unix_epoch(since),
            AnyEku,
            None,
            None,
        )
        .map_err(|e| verification(go_verify_error(&e)))?;
    let mut fingerprints: Vec<String> =
        path.intermediate_certificates().map(|c| wire::fingerprint(c.der().as_ref())).collect();
    let anchor = path.anchor();
    if let Some((i, _)) = anchors
        .iter()
        .find(|(_, a)| a.subject == anchor.subject && a.subject_public_key_info == anchor.subject_public_key_info)
    {
        fingerprints.push(wire::fingerprint(&roots[*i]));
    }
    let mut seen = std::collections::HashSet::new();
    fingerprints.retain(|f| seen.insert(f.clone()));
    Ok(fingerprints)
}

/// webpki's verdict in the words of Go's `x509.Verify` where they match.
fn go_verify_error(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => "x509: certificate signed by unknown authority".into(),
        webpki::Error::CertExpired { time, not_after } => format!(
            "x509: certificate has expired or is not yet valid: current time {} is after {}",
            rfc3339(time.as_secs()),
            rfc3339(not_after.as_secs())
        ),
        webpki::Error::CertNotValidYet { time, not_before } => format!(
            "x509: certificate has expired or is not yet valid: current time {} is before {}",
            rfc3339(time.as_secs()),
            rfc3339(not_before.as_secs())
        ),
        other => format!("x509: {other:?}"),
    }
}

fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| secs.to_string(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// A fresh challenge for the leaf's key (SPIRE's `GenerateChallenge`).
pub fn generate_challenge(leaf: &LeafInfo) -> Result<Challenge, AttestError> {
    if !leaf.digital_signature {
        return Err(AttestError::Challenge("certificate not intended for digital signature use".into()));
    }
    let mut nonce = vec![0; wire::NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| AttestError::Challenge("unable to generate nonce".into()))?;
    let nonce = Some(NonceChallenge { nonce });
    match &leaf.key {
        LeafKey::Rsa(_) => Ok(Challenge { rsa_signature: nonce, ecdsa_signature: None }),
        LeafKey::P256(_) | LeafKey::P384(_) | LeafKey::P521(_) => {
            Ok(Challenge { rsa_signature: None, ecdsa_signature: nonce })
        }
        LeafKey::Unsupported(kind) => Err(AttestError::Challenge(format!("unsupported public key type {kind}"))),
    }
}

/// Why a response does not prove possession (SPIRE's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The challenge was for RSA and the response is not.
    #[error("expecting RSA response")]
    ExpectingRsa,
    /// The challenge was for ECDSA and the response is not.
    #[error("expecting ECDSA response")]
    ExpectingEcdsa,
    /// A nonce is not 32 bytes.
    #[error(transparent)]
    Nonce(#[from] wire::NonceError),
    /// The RSA signature does not verify.
    #[error("RSA signature verify failed")]
    Rsa,
    /// The ECDSA signature does not verify.
    #[error("ECDSA signature verify failed")]
    Ecdsa,
    /// The key cannot be challenged.
    #[error("unsupported public key type {0}")]
    Unsupported(String),
    /// The challenge does not match the key (never the case for ours).
    #[error("challenge does not match the key")]
    Mismatch,
}

/// Checks `response` to `challenge` against `key` (SPIRE's `VerifyChallengeResponse`).
pub fn verify_response(key: &LeafKey, challenge: &Challenge, response: &Response) -> Result<(), ResponseError> {
    match key {
        LeafKey::Rsa(public) => {
            let c = challenge.rsa_signature.as_ref().ok_or(ResponseError::Mismatch)?;
            let r = response.rsa_signature.as_ref().ok_or(ResponseError::ExpectingRsa)?;
            verify_rsa(public, c, r)
        }
        LeafKey::P256(point) | LeafKey::P384(point) | LeafKey::P521(point) => {
            let c = challenge.ecdsa_signature.as_ref().ok_or(ResponseError::Mismatch)?;
            let r = response.ecdsa_signature.as_ref().ok_or(ResponseError::ExpectingEcdsa)?;
            verify_ecdsa(key, point, c, r)
        }
        LeafKey::Unsupported(kind) => Err(ResponseError::Unsupported(kind.clone())),
    }
}

fn verify_rsa(public: &[u8], c: &NonceChallenge, r: &RsaSignatureResponse) -> Result<(), ResponseError> {
    let message = wire::signed_message(&c.nonce, &r.nonce)?;
    // Go signs with the longest salt (PSSSaltLengthAuto) and verifies whatever salt was used; the
    // two lengths in use are that one and the digest's (what most other signers use).
    const MAX: signature::RsaParameters =
        signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
    let verified = UnparsedPublicKey::new(&MAX, public).verify(&message, &r.signature).is_ok()
        || UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, public).verify(&message, &r.signature).is_ok();
    if verified { Ok(()) } else { Err(ResponseError::Rsa) }
}

/// ECDSA over `SHA256(challenge || response)`, whatever the curve: Go signs that 32-byte digest as
/// it is, which for P-384 and P-521 is the same integer as the digest zero-padded to SHA-384 or
/// SHA-512 length.
fn verify_ecdsa(
    key: &LeafKey,
    point: &[u8],
    c: &NonceChallenge,
    r: &EcdsaSignatureResponse,
) -> Result<(), ResponseError> {
    let combined = wire::combine_nonces(&c.nonce, &r.nonce)?;
    let (alg, digest, field_len) = ecdsa_params(key, &combined).ok_or(ResponseError::Ecdsa)?;
    let fixed = |v: &[u8]| -> Option<Vec<u8>> {
        let v = strip_zeros(v);
        if v.len() > field_len {
            return None;
        }
        let mut out = vec![0; field_len - v.len()];
        out.extend_from_slice(v);
        Some(out)
    };
    let (Some(rr), Some(ss)) = (fixed(&r.r), fixed(&r.s)) else { return Err(ResponseError::Ecdsa) };
    let sig = [rr, ss].concat();
    UnparsedPublicKey::new(alg, point).verify_digest(&digest, &sig).map_err(|_| ResponseError::Ecdsa)
}

/// The verification algorithm, the digest to verify and the field length for an EC key.
pub fn ecdsa_params(
    key: &LeafKey,
    combined: &[u8; 32],
) -> Option<(&'static signature::EcdsaVerificationAlgorithm, Digest, usize)> {
    let padded = |alg: &'static digest::Algorithm| {
        let mut v = vec![0; alg.output_len() - combined.len()];
        v.extend_from_slice(combined);
        Digest::import_less_safe(&v, alg).ok()
    };
    Some(match key {
        LeafKey::P256(_) => (&signature::ECDSA_P256_SHA256_FIXED, padded(&digest::SHA256)?, 32),
        LeafKey::P384(_) => (&signature::ECDSA_P384_SHA384_FIXED, padded(&digest::SHA384)?, 48),
        LeafKey::P521(_) => (&signature::ECDSA_P521_SHA512_FIXED, padded(&digest::SHA512)?, 66),
        _ => return None,
    })
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    &v[start..]
}

/// In `spiffe` mode, the path of the leaf's first URI SAN of scheme `spiffe` (as Go's `url.Parse`
/// and `EscapedPath` read it: `?` and `#` end the path, an opaque URI has none) after
/// `svid_prefix`. The URI's host must be `trust_domain` (SPIRE does not check it; with an
/// UpstreamAuthority root shared by several trust domains, another domain's SVID would otherwise
/// pass).
pub fn svid_path_trimmed(leaf: &LeafInfo, trust_domain: &str, svid_prefix: &str) -> Result<String, AttestError> {
    let rest = leaf
        .uris
        .iter()
        .find_map(|u| {
            let (scheme, rest) = u.split_once(':')?;
            scheme.eq_ignore_ascii_case("spiffe").then_some(rest)
        })
        .ok_or(AttestError::NoSvid)?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.find('/').map_or((after, ""), |i| (&after[..i], &after[i..]));
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                Some(_) => return Err(AttestError::NoSvid),
                None => authority,
            };
            if !host.eq_ignore_ascii_case(trust_domain) {
                return Err(AttestError::SvidTrustDomain(trust_domain.to_owned()));
            }
            path
        }
        None if rest.starts_with('/') => return Err(AttestError::SvidTrustDomain(trust_domain.to_owned())),
        None => "",
    };
    path.strip_prefix(svid_prefix).map(str::to_owned).ok_or(AttestError::SvidPrefix)
}

/// The agent ID the template makes for `leaf`.
pub fn agent_id(
    trust_domain: &TrustDomain,
    template: &Template,
    leaf: &LeafInfo,
    svid_path_trimmed: &str,
    sans: &BTreeMap<String, String>,
) -> Result<SpiffeId, AttestError> {
    let path = template
        .execute(&TemplateData {
            plugin_name: wire::PLUGIN_NAME.into(),
            fingerprint: wire::fingerprint(&leaf.der),
            trust_domain: trust_domain.as_str().into(),
            serial_number_hex: leaf.serial_hex.clone(),
            svid_path_trimmed: svid_path_trimmed.to_owned(),
            subject_common_name: leaf.subject_cn.clone(),
            subject_serial_number: leaf.subject_serial_number.clone(),
            issuer_common_name: leaf.issuer_cn.clone(),
            uri_san_selectors: sans.clone(),
        })
        .map_err(AttestError::AgentId)?;
    trust_domain.id_with_path(&format!("/spire/agent{path}")).map_err(|e| {
        AttestError::AgentId(format!("invalid agent path suffix {}: {e}", spire_cli::flags::go_quote(&path)))
    })
}

/// The selector values: `subject:cn:`, one `ca:fingerprint:` per CA of the path, `serialnumber:`,
/// then `san:<key>:<value>` (sorted by key).
pub fn selectors(leaf: &LeafInfo, ca_fingerprints: &[String], sans: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    if !leaf.subject_cn.is_empty() {
        out.push(format!("subject:cn:{}", leaf.subject_cn));
    }
    out.extend(ca_fingerprints.iter().map(|f| format!("ca:fingerprint:{f}")));
    out.push(format!("serialnumber:{}", leaf.serial_hex));
    out.extend(sans.iter().map(|(k, v)| format!("san:{k}:{v}")));
    out
}
