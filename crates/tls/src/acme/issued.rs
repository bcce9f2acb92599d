//! A certificate from the ACME CA with its key, as the PEM text cached on disk (the PKCS#8 key,
//! then the chain, leaf first), checked before it is served: it must be for the domain, within its
//! validity, and match the key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::provider;

/// How long before expiry a certificate is renewed at most (Go's autocert: 30 days).
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum IssuedError {
    /// No `CERTIFICATE` PEM block.
    #[error("no certificate")]
    NoCertificate,
    /// No private key PEM block (SPIRE's cache keeps the key in its KeyManager instead).
    #[error("no private key: {0}")]
    NoKey(String),
    /// The leaf is not DER X.509.
    #[error("unparsable certificate: {0}")]
    Parse(String),
    /// The leaf does not name the domain.
    #[error("the certificate is not for {0}")]
    WrongDomain(String),
    /// Outside its validity period.
    #[error("the certificate expired")]
    Expired,
    /// The key does not sign for the certificate, or rustls cannot use it.
    #[error("unusable key: {0}")]
    Key(#[from] rustls::Error),
}

/// A servable certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Chain and signing key, for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
}

impl Issued {
    /// Reads the key and chain in `pem` and checks them for `domain` at `now`.
    pub fn parse(domain: &str, pem: &[u8], now: SystemTime) -> Result<Self, IssuedError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
        let leaf = chain.first().ok_or(IssuedError::NoCertificate)?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| IssuedError::NoKey(e.to_string()))?;
        let (_, parsed) = X509Certificate::from_der(leaf).map_err(|e| IssuedError::Parse(e.to_string()))?;
        let names = parsed.subject_alternative_name().map_err(|e| IssuedError::Parse(e.to_string()))?;
        let for_domain = names.is_some_and(|san| {
            san.value
                .general_names
                .iter()
                .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(domain)))
        });
        if !for_domain {
            return Err(IssuedError::WrongDomain(domain.to_owned()));
        }
        let at = |t: i64| UNIX_EPOCH + Duration::from_secs(t.max(0).unsigned_abs());
        let (not_before, not_after) =
            (at(parsed.validity().not_before.timestamp()), at(parsed.validity().not_after.timestamp()));
        if now >= not_after {
            return Err(IssuedError::Expired);
        }
        let signing = provider().key_provider.load_private_key(key)?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match()?;
        Ok(Self { certified: Arc::new(certified), not_before, not_after })
    }

    /// When to renew: a third of the lifetime before expiry, and at most 30 days before.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self.not_after.duration_since(self.not_before).unwrap_or_default();
        self.not_after - RENEW_BEFORE.min(lifetime / 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn pem(names: &[&str], days: i64) -> (String, SystemTime) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.self_signed(&key).unwrap();
        (format!("{}{}", key.serialize_pem(), cert.pem()), SystemTime::now())
    }

    #[test]
    fn accepts_a_valid_pair_and_renews_a_third_before_expiry() {
        let (text, now) = pem(&["example.org"], 8);
        let issued = Issued::parse("EXAMPLE.org", text.as_bytes(), now).unwrap();
        let lifetime = issued.not_after.duration_since(issued.not_before).unwrap();
        assert_eq!(issued.not_after.duration_since(issued.renew_at()).unwrap(), lifetime / 3);
        let (long, now) = pem(&["example.org"], 365);
        let issued = Issued::parse("example.org", long.as_bytes(), now).unwrap();
        assert_eq!(issued.not_after.duration_since(issued.renew_at()).unwrap(), RENEW_BEFORE);
    }

    #[test]
    fn refuses_other_domains_expired_and_keyless() {
        let (text, now) = pem(&["other.org"], 8);
        assert!(matches!(Issued::parse("example.org", text.as_bytes(), now), Err(IssuedError::WrongDomain(_))));
        let (text, now) = pem(&["example.org"], 8);
        let later = now + Duration::from_secs(9 * 24 * 3600);
        assert!(matches!(Issued::parse("example.org", text.as_bytes(), later), Err(IssuedError::Expired)));
        let chain_only: String = text.split_inclusive('\n').skip_while(|l| !l.contains("BEGIN CERTIFICATE")).collect();
        assert!(matches!(Issued::parse("example.org", chain_only.as_bytes(), now), Err(IssuedError::NoKey(_))));
        assert!(matches!(Issued::parse("example.org", b"junk", now), Err(IssuedError::NoCertificate)));
    }
}
