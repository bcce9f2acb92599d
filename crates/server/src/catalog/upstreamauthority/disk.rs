//! UpstreamAuthority "disk": a CA certificate and key on disk (`cert_file_path`, `key_file_path`) and,
//! when that CA is not itself a root, the roots in `bundle_file_path`.
//!
//! The files are read at every mint so that an operator can rotate them in place, as with SPIRE.

use std::path::{Path, PathBuf};

use spire_identity::PrivateKey;
use spire_identity::x509::{CaParams, Issuer, certs_from_pem, sign_ca};

use super::{CaRequest, MintedCa, UpstreamAuthority, UpstreamAuthorityError};

/// Paths of the upstream CA material.
#[derive(Debug, Clone)]
pub struct DiskUpstreamAuthority {
    cert_file_path: PathBuf,
    key_file_path: PathBuf,
    bundle_file_path: Option<PathBuf>,
}

/// The upstream material as read from disk.
struct Loaded {
    issuer: Issuer,
    /// The certificates of `cert_file_path` when a separate bundle names the roots.
    chain: Vec<Vec<u8>>,
    roots: Vec<Vec<u8>>,
}

fn read(path: &Path) -> Result<String, UpstreamAuthorityError> {
    std::fs::read_to_string(path)
        .map_err(|e| UpstreamAuthorityError::File { path: path.display().to_string(), reason: e.to_string() })
}

impl DiskUpstreamAuthority {
    /// Checks the files once so that a bad configuration fails at startup.
    pub fn new(
        cert_file_path: PathBuf,
        key_file_path: PathBuf,
        bundle_file_path: Option<PathBuf>,
    ) -> Result<Self, UpstreamAuthorityError> {
        let this = Self { cert_file_path, key_file_path, bundle_file_path };
        this.load()?;
        Ok(this)
    }

    fn load(&self) -> Result<Loaded, UpstreamAuthorityError> {
        let file_err =
            |path: &Path, reason: String| UpstreamAuthorityError::File { path: path.display().to_string(), reason };
        let certs =
            certs_from_pem(&read(&self.cert_file_path)?).map_err(|e| file_err(&self.cert_file_path, e.to_string()))?;
        let key = PrivateKey::from_pem(&read(&self.key_file_path)?)
            .map_err(|e| file_err(&self.key_file_path, e.to_string()))?;
        let (ca, intermediates) = certs.split_first().expect("certs_from_pem returns at least one");
        let issuer = Issuer::new(ca.clone(), key).map_err(|e| UpstreamAuthorityError::Invalid(e.to_string()))?;
        let roots = match &self.bundle_file_path {
            Some(path) => certs_from_pem(&read(path)?).map_err(|e| file_err(path, e.to_string()))?,
            None if intermediates.is_empty() => vec![ca.clone()],
            None => {
                return Err(UpstreamAuthorityError::Invalid(
                    "cert_file_path holds a chain, so bundle_file_path must name its roots".into(),
                ));
            }
        };
        let intermediates = if self.bundle_file_path.is_some() { certs } else { Vec::new() };
        Ok(Loaded { issuer, chain: intermediates, roots })
    }
}

#[async_trait::async_trait]
impl UpstreamAuthority for DiskUpstreamAuthority {
    async fn mint_x509_ca(&self, request: CaRequest<'_>) -> Result<MintedCa, UpstreamAuthorityError> {
        let Loaded { issuer, chain: upstream_chain, roots: upstream_roots } = self.load()?;
        let der = sign_ca(
            &CaParams {
                trust_domain: request.trust_domain,
                public_key_der: request.public_key_der,
                subject: request.subject,
                now: request.now,
                ttl: request.ttl,
            },
            &issuer,
        )
        .map_err(|e| UpstreamAuthorityError::Sign(e.to_string()))?;
        // The upstream CA itself is part of the chain unless it is one of the roots.
        let mut chain = vec![der];
        chain.extend(upstream_chain.into_iter().filter(|c| !upstream_roots.contains(c)));
        Ok(MintedCa { chain, upstream_roots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::x509::{Subject, certs_to_pem, verify_svid};
    use spire_identity::{Bundle, KeyType};
    use spire_testkit::pki::{Pki, now, td};

    #[tokio::test]
    async fn mints_a_ca_under_the_upstream_root() {
        let pki = Pki::new(KeyType::EcP256);
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("upstream.crt");
        let key = dir.path().join("upstream.key");
        std::fs::write(&cert, certs_to_pem(&[pki.root.cert_der()])).unwrap();
        std::fs::write(&key, pki.root.key().as_local().unwrap().to_pem()).unwrap();
        let ua = DiskUpstreamAuthority::new(cert, key, None).unwrap();

        let ca_key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let minted = ua
            .mint_x509_ca(CaRequest {
                trust_domain: &td(),
                public_key_der: &ca_key.public_key_der(),
                csr: &[],
                subject: Subject::default_ca(),
                now: now(),
                ttl: std::time::Duration::from_secs(3600),
            })
            .await
            .unwrap();
        assert_eq!(minted.chain.len(), 1);
        assert_eq!(minted.upstream_roots, vec![pki.root.cert_der().to_vec()]);

        // A leaf under the minted CA validates against the upstream root.
        let issuer = Issuer::new(minted.chain[0].clone(), ca_key).unwrap();
        let leaf_key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let leaf = spire_identity::x509::sign_svid(
            &spire_identity::x509::SvidParams {
                spiffe_id: &spire_testkit::pki::id("spiffe://example.org/w"),
                public_key_der: &leaf_key.public_key_der(),
                dns_names: &[],
                subject: None,
                now: now(),
                ttl: std::time::Duration::from_secs(60),
            },
            &issuer,
        )
        .unwrap();
        let mut bundle = Bundle::new(td());
        bundle.add_x509_authority(pki.root.cert_der().to_vec()).unwrap();
        verify_svid(&[leaf, minted.chain[0].clone()], &bundle.into(), now()).unwrap();
    }

    #[test]
    fn mismatched_key_is_refused_at_startup() {
        let pki = Pki::new(KeyType::EcP256);
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("upstream.crt");
        let key = dir.path().join("upstream.key");
        std::fs::write(&cert, certs_to_pem(&[pki.root.cert_der()])).unwrap();
        std::fs::write(&key, PrivateKey::generate(KeyType::EcP256).unwrap().to_pem()).unwrap();
        let err = DiskUpstreamAuthority::new(cert, key.clone(), None).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        let err = DiskUpstreamAuthority::new(dir.path().join("missing"), key, None).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
