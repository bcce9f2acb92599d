//! tls-alpn-01 (RFC 8737): the CA connects to the serving port with ALPN `acme-tls/1` and the
//! domain as SNI, and expects a self-signed certificate for that domain carrying the SHA-256 of the
//! key authorization in the critical `acmeIdentifier` extension. The certificates pending
//! validation live here, keyed by domain, for the resolver to present.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::provider;

/// The ALPN protocol of tls-alpn-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Why a challenge certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// rcgen failed.
    #[error("tls-alpn-01 certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls cannot sign with the key.
    #[error("tls-alpn-01 certificate key: {0}")]
    Tls(#[from] rustls::Error),
}

/// The challenge certificate for `domain` proving `digest` (SHA-256 of the key authorization).
pub(crate) fn certificate(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, ChallengeError> {
    let mut params = CertificateParams::new(vec![domain.to_owned()])?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider().key_provider.load_private_key(der)?;
    Ok(Arc::new(CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signing)))
}

/// The challenge certificates being validated, by domain.
#[derive(Debug, Default)]
pub(crate) struct Challenges(RwLock<HashMap<String, Arc<CertifiedKey>>>);

impl Challenges {
    pub(crate) fn insert(&self, domain: &str, cert: Arc<CertifiedKey>) {
        self.0.write().expect("challenges lock").insert(domain.to_owned(), cert);
    }

    pub(crate) fn remove(&self, domain: &str) {
        self.0.write().expect("challenges lock").remove(domain);
    }

    pub(crate) fn get(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.0.read().expect("challenges lock").get(domain).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn carries_the_digest_in_a_critical_acme_identifier() {
        let digest = [7u8; 32];
        let cert = certificate("example.org", &digest).unwrap();
        let (_, parsed) = X509Certificate::from_der(&cert.cert[0]).unwrap();
        let oid = x509_parser::der_parser::oid!(1.3.6.1.5.5.7.1.31);
        let ext = parsed.extensions().iter().find(|e| e.oid == oid).expect("acmeIdentifier");
        assert!(ext.critical);
        // DER OCTET STRING of the 32-byte digest.
        assert_eq!(ext.value, [&[0x04, 32][..], &digest].concat());
        let names = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(format!("{:?}", names.value.general_names), "[DNSName(\"example.org\")]");
    }
}
