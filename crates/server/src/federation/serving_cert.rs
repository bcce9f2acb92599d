//! The `https_web` profile's `serving_cert_file`: a certificate chain and key read from disk and
//! re-read every `file_sync_interval`, so that an operator (or cert-manager) replacing the files
//! changes what the endpoint presents without a restart. A replacement that cannot be read keeps the
//! previous certificate, as SPIRE's disk certificate manager does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spire_tls::provider;

/// Why the serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ServingCertError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` PEM block.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    /// The key file holds no usable private key.
    #[error("{path}: no PEM private key found (PKCS#8, SEC1 or PKCS#1): {reason}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// rustls cannot sign with the key, or it does not match the certificate.
    #[error("unusable certificate/key pair: {0}")]
    Tls(#[from] rustls::Error),
}

/// The file contents last loaded, to notice a change.
type Contents = (Vec<u8>, Vec<u8>);

/// A certificate and key from files, reloaded when they change.
#[derive(Debug)]
pub struct FileCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Contents)>,
}

impl FileCert {
    /// Loads the pair; an unreadable pair stops the server at start.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, ServingCertError> {
        let contents = read_pair(cert_path, key_path)?;
        let key = certified_key(cert_path, key_path, &contents)?;
        Ok(Self { cert_path: cert_path.into(), key_path: key_path.into(), current: RwLock::new((key, contents)) })
    }

    /// Re-reads the files; returns whether the certificate changed.
    pub fn reload(&self) -> Result<bool, ServingCertError> {
        let contents = read_pair(&self.cert_path, &self.key_path)?;
        if self.current.read().expect("cert lock").1 == contents {
            return Ok(false);
        }
        let key = certified_key(&self.cert_path, &self.key_path, &contents)?;
        *self.current.write().expect("cert lock") = (key, contents);
        Ok(true)
    }

    /// Reloads every `interval` until the task is aborted.
    pub fn spawn_sync(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                match self.reload() {
                    Ok(true) => {
                        tracing::info!(cert = %self.cert_path.display(), "bundle endpoint certificate reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "failed to reload the bundle endpoint certificate"),
                }
            }
        })
    }
}

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").0.clone())
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<Contents, ServingCertError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| ServingCertError::Read { path: path.into(), source });
    Ok((read(cert_path)?, read(key_path)?))
}

fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    (cert, key): &Contents,
) -> Result<Arc<CertifiedKey>, ServingCertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(ServingCertError::NoCertificate(cert_path.into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| ServingCertError::NoKey { path: key_path.into(), reason: e.to_string() })?;
    let signing = provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::{KeyType, PrivateKey};

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn loads_and_reloads_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let fc = FileCert::load(&c, &k).unwrap();
        let first = fc.current.read().unwrap().0.cert[0].clone();
        assert!(!fc.reload().unwrap());
        let (c2, k2) = write_pair(dir.path(), "b");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k2, &k).unwrap();
        assert!(fc.reload().unwrap());
        assert_ne!(fc.current.read().unwrap().0.cert[0], first);
    }

    #[test]
    fn a_broken_replacement_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let fc = FileCert::load(&c, &k).unwrap();
        let first = fc.current.read().unwrap().0.cert[0].clone();
        std::fs::write(&c, "not a certificate").unwrap();
        assert!(matches!(fc.reload(), Err(ServingCertError::NoCertificate(_))));
        assert_eq!(fc.current.read().unwrap().0.cert[0], first);
        // A key that does not match the certificate is refused too.
        let (c2, _) = write_pair(dir.path(), "b");
        std::fs::copy(&c2, &c).unwrap();
        let other = PrivateKey::generate(KeyType::EcP256).unwrap();
        std::fs::write(&k, other.to_pem()).unwrap();
        assert!(matches!(fc.reload(), Err(ServingCertError::Tls(_))));
    }

    #[test]
    fn missing_files_are_named() {
        let err = FileCert::load(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    }
}
