//! PKCS#10 certificate signing requests, as agents and admins send them to the Agent and SVID
//! services.
//!
//! A CSR is untrusted input from the network, so everything is checked before its key goes near the
//! CA: a size cap (the parser never sees more than [`MAX_CSR_SIZE`] bytes), a DER parse that must
//! consume every byte, the self-signature (proof that the requester holds the private key, which
//! SPIRE checks too), and the key type, limited to what SPIRE issues with and what our TLS stack
//! accepts: EC P-256/P-384 and RSA of 2048 to 8192 bits.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spire_identity::x509::Subject;
use tonic::Status;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384,
    OID_NIST_HASH_SHA512, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ECDSA_WITH_SHA512,
};
use x509_parser::prelude::FromDer;
use x509_parser::signature_algorithm::SignatureAlgorithm;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

/// Largest CSR accepted. Real ones are well under 4 KiB (an RSA-8192 CSR is about 2.2 KiB); the cap
/// bounds what an unauthenticated AttestAgent caller can make the parser chew on.
pub const MAX_CSR_SIZE: usize = 64 * 1024;

/// Smallest and largest RSA modulus accepted, in bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The key types a CSR may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrKey {
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// RSA, with the modulus size in bits.
    Rsa(usize),
}

/// What the services use from a verified CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr {
    /// The requester's public key, SubjectPublicKeyInfo DER: what gets certified.
    pub public_key_der: Vec<u8>,
    /// Its type.
    pub key: CsrKey,
    /// URI SANs from the extension request, in order.
    pub uris: Vec<String>,
    /// DNS SANs from the extension request, in order.
    pub dns_names: Vec<String>,
    /// The subject, in the parts our certificate templates carry; `None` when the CSR's is empty.
    pub subject: Option<Subject>,
}

/// Why a CSR was refused. Every case is the requester's fault, so every case is InvalidArgument; the
/// variants exist so that each RPC can word the message as SPIRE does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Over [`MAX_CSR_SIZE`].
    #[error("CSR too large: {0} bytes, at most {MAX_CSR_SIZE} are accepted")]
    TooLarge(usize),
    /// Not a DER PKCS#10 request.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// The self-signature does not verify, or uses an algorithm we do not accept.
    #[error("invalid CSR signature: {0}")]
    Signature(String),
    /// The key is not one we certify.
    #[error("unsupported CSR public key: {0}")]
    Key(String),
}

impl CsrError {
    /// The detail after the RPC-specific prefix.
    pub fn detail(&self) -> String {
        match self {
            Self::TooLarge(_) => self.to_string(),
            Self::Malformed(m) | Self::Signature(m) | Self::Key(m) => m.clone(),
        }
    }
}

impl From<CsrError> for Status {
    fn from(e: CsrError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// Parses and verifies a DER CSR.
pub fn parse(der: &[u8]) -> Result<Csr, CsrError> {
    if der.len() > MAX_CSR_SIZE {
        return Err(CsrError::TooLarge(der.len()));
    }
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!("{} trailing bytes after the request", rest.len())));
    }
    let info = &csr.certification_request_info;
    let key = check_key(&info.subject_pki)?;
    verify_signature(&csr, key)?;
    let (uris, dns_names) = sans(&csr)?;
    Ok(Csr { public_key_der: info.subject_pki.raw.to_vec(), key, uris, dns_names, subject: subject(&info.subject) })
}

/// The key type, refusing curves and sizes outside SPIRE's set.
pub fn check_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<CsrKey, CsrError> {
    let alg = &spki.algorithm;
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok(CsrKey::EcP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(CsrKey::EcP384),
            Some(c) => Err(CsrError::Key(format!("EC curve {c} is not supported: use P-256 or P-384"))),
            None => Err(CsrError::Key("EC key without a named curve".into())),
        };
    }
    if alg.algorithm == OID_PKCS1_RSAENCRYPTION {
        let parsed = spki.parsed().map_err(|e| CsrError::Key(format!("unreadable RSA key: {e}")))?;
        let x509_parser::public_key::PublicKey::RSA(rsa) = parsed else {
            return Err(CsrError::Key("unreadable RSA key".into()));
        };
        let bits = modulus_bits(rsa.modulus);
        if !RSA_BITS.contains(&bits) {
            return Err(CsrError::Key(format!("RSA key of {bits} bits: use 2048 to 8192 bits")));
        }
        return Ok(CsrKey::Rsa(bits));
    }
    Err(CsrError::Key(format!("key algorithm {} is not supported: use EC P-256, EC P-384 or RSA", alg.algorithm)))
}

/// Size of a big-endian unsigned integer in bits, ignoring leading zeros.
fn modulus_bits(modulus: &[u8]) -> usize {
    let digits = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    digits.len() * 8 - digits[0].leading_zeros() as usize
}

/// Checks the self-signature with aws-lc-rs. SHA-1 based algorithms are refused: nothing that talks
/// to SPIRE produces them.
fn verify_signature(csr: &X509CertificationRequest<'_>, key: CsrKey) -> Result<(), CsrError> {
    let oid = &csr.signature_algorithm.algorithm;
    let ec = |p256: &'static dyn VerificationAlgorithm, p384: &'static dyn VerificationAlgorithm| match key {
        CsrKey::EcP256 => Ok(p256),
        CsrKey::EcP384 => Ok(p384),
        CsrKey::Rsa(_) => Err(CsrError::Signature("an ECDSA signature needs an EC key".into())),
    };
    let rsa = |alg: &'static dyn VerificationAlgorithm| match key {
        CsrKey::Rsa(_) => Ok(alg),
        _ => Err(CsrError::Signature("an RSA signature needs an RSA key".into())),
    };
    let alg: &'static dyn VerificationAlgorithm = if *oid == OID_SIG_ECDSA_WITH_SHA256 {
        ec(&signature::ECDSA_P256_SHA256_ASN1, &signature::ECDSA_P384_SHA256_ASN1)?
    } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
        ec(&signature::ECDSA_P256_SHA384_ASN1, &signature::ECDSA_P384_SHA384_ASN1)?
    } else if *oid == OID_SIG_ECDSA_WITH_SHA512 {
        ec(&signature::ECDSA_P256_SHA512_ASN1, &signature::ECDSA_P384_SHA512_ASN1)?
    } else if *oid == OID_PKCS1_SHA256WITHRSA {
        rsa(&signature::RSA_PKCS1_2048_8192_SHA256)?
    } else if *oid == OID_PKCS1_SHA384WITHRSA {
        rsa(&signature::RSA_PKCS1_2048_8192_SHA384)?
    } else if *oid == OID_PKCS1_SHA512WITHRSA {
        rsa(&signature::RSA_PKCS1_2048_8192_SHA512)?
    } else if *oid == OID_PKCS1_RSASSAPSS {
        rsa(pss_algorithm(csr)?)?
    } else {
        return Err(CsrError::Signature(format!("signature algorithm {oid} is not supported")));
    };
    let public = &csr.certification_request_info.subject_pki.subject_public_key.data;
    UnparsedPublicKey::new(alg, public)
        .verify(csr.certification_request_info.raw, &csr.signature_value.data)
        .map_err(|_| CsrError::Signature("the signature does not match the request's public key".into()))
}

fn pss_algorithm(csr: &X509CertificationRequest<'_>) -> Result<&'static dyn VerificationAlgorithm, CsrError> {
    let Ok(SignatureAlgorithm::RSASSA_PSS(params)) = SignatureAlgorithm::try_from(&csr.signature_algorithm) else {
        return Err(CsrError::Signature("unreadable RSASSA-PSS parameters".into()));
    };
    let hash = params.hash_algorithm_oid();
    if *hash == OID_NIST_HASH_SHA256 {
        Ok(&signature::RSA_PSS_2048_8192_SHA256)
    } else if *hash == OID_NIST_HASH_SHA384 {
        Ok(&signature::RSA_PSS_2048_8192_SHA384)
    } else if *hash == OID_NIST_HASH_SHA512 {
        Ok(&signature::RSA_PSS_2048_8192_SHA512)
    } else {
        Err(CsrError::Signature(format!("RSASSA-PSS with hash {hash} is not supported")))
    }
}

/// URI and DNS SANs from the request's extensionRequest attribute.
fn sans(csr: &X509CertificationRequest<'_>) -> Result<(Vec<String>, Vec<String>), CsrError> {
    let (mut uris, mut dns) = (Vec::new(), Vec::new());
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(u) => uris.push((*u).to_owned()),
                        GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                        _ => {}
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(CsrError::Malformed(format!("unreadable requested extension: {error}")));
            }
            _ => {}
        }
    }
    Ok((uris, dns))
}

/// The parts of the subject our templates carry (C, O, OU, CN); other attributes are dropped.
fn subject(name: &X509Name<'_>) -> Option<Subject> {
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned)).collect::<Vec<_>>()
    };
    let s = Subject {
        country: strings(&mut name.iter_country()),
        organization: strings(&mut name.iter_organization()),
        organizational_unit: strings(&mut name.iter_organizational_unit()),
        common_name: strings(&mut name.iter_common_name()).into_iter().next(),
    };
    (s != Subject::default()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignores_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }

    fn make_csr(key: &spire_identity::PrivateKey, sans: Vec<rcgen::SanType>, cn: Option<&str>) -> Vec<u8> {
        let alg = match key.key_type() {
            spire_identity::KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            spire_identity::KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            _ => &rcgen::PKCS_RSA_SHA256,
        };
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der());
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, alg).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
            params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme");
        }
        params.subject_alt_names = sans;
        params.serialize_request(&pair).unwrap().der().to_vec()
    }

    #[test]
    fn reads_key_sans_and_subject_of_every_supported_key_type() {
        use spire_identity::{KeyType, PrivateKey};
        for (t, want) in [
            (KeyType::EcP256, CsrKey::EcP256),
            (KeyType::EcP384, CsrKey::EcP384),
            (KeyType::Rsa2048, CsrKey::Rsa(2048)),
        ] {
            let key = PrivateKey::generate(t).unwrap();
            let sans = vec![
                rcgen::SanType::URI("spiffe://example.org/w".try_into().unwrap()),
                rcgen::SanType::DnsName("w.example.org".try_into().unwrap()),
            ];
            let csr = parse(&make_csr(&key, sans, Some("w"))).unwrap();
            assert_eq!(csr.key, want);
            assert_eq!(csr.public_key_der, key.public_key_der());
            assert_eq!(csr.uris, ["spiffe://example.org/w"]);
            assert_eq!(csr.dns_names, ["w.example.org"]);
            let subject = csr.subject.unwrap();
            assert_eq!(subject.common_name.as_deref(), Some("w"));
            assert_eq!(subject.organization, ["Acme"]);
        }
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let bare = parse(&make_csr(&key, vec![], None)).unwrap();
        assert!(bare.uris.is_empty() && bare.dns_names.is_empty() && bare.subject.is_none());
    }

    #[test]
    fn refuses_bad_signatures_and_keys() {
        let key = spire_identity::PrivateKey::generate(spire_identity::KeyType::EcP256).unwrap();
        let mut der = make_csr(&key, vec![], Some("w"));
        *der.last_mut().unwrap() ^= 1;
        assert!(matches!(parse(&der), Err(CsrError::Signature(_))));
        let mut trailing = make_csr(&key, vec![], None);
        trailing.push(0);
        assert!(matches!(parse(&trailing), Err(CsrError::Malformed(_))));

        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let der = rcgen::CertificateParams::default().serialize_request(&ed).unwrap().der().to_vec();
        assert!(matches!(parse(&der), Err(CsrError::Key(_))));
        assert_eq!(
            Status::from(CsrError::TooLarge(70_000)).message(),
            "CSR too large: 70000 bytes, at most 65536 are accepted"
        );
    }

    #[test]
    fn refuses_oversized_and_garbage_input() {
        assert_eq!(parse(&vec![0u8; MAX_CSR_SIZE + 1]), Err(CsrError::TooLarge(MAX_CSR_SIZE + 1)));
        assert!(matches!(parse(b"not a csr"), Err(CsrError::Malformed(_))));
        assert!(matches!(parse(&[]), Err(CsrError::Malformed(_))));
    }
}
