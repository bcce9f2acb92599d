//! A serving certificate and key read from disk and re-read every `file_sync_interval`, so that an
//! operator (or cert-manager) replacing the files changes what an endpoint presents without a
//! restart. A replacement that cannot be loaded keeps the previous pair, as SPIRE's disk certificate
//! manager does; the error texts are those of Go's `tls.LoadX509KeyPair`, which that manager
//! reports. Used by the server's bundle endpoint and by the OIDC Discovery Provider.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileCertError {
    /// A file could not be read.
    #[error("open {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("tls: failed to find any PEM data in certificate input ({0})")]
    NoCertificate(PathBuf),
    /// The key file holds no usable key (PKCS#8, SEC1 or PKCS#1).
    #[error("tls: failed to find any PEM data in key input ({path}): {reason}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// rustls refuses the key, or it does not match the certificate.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}

/// The file contents last loaded, to notice a change.
type Contents = (Vec<u8>, Vec<u8>);

/// The current certificate, reloaded from its files.
#[derive(Debug)]
pub struct FileCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Contents)>,
}

impl FileCert {
    /// Loads the pair; failing here stops the endpoint at start.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, FileCertError> {
        let contents = read_pair(cert_path, key_path)?;
        let key = certified_key(cert_path, key_path, &contents)?;
        Ok(Self { cert_path: cert_path.into(), key_path: key_path.into(), current: RwLock::new((key, contents)) })
    }

    /// Re-reads the files; whether the certificate changed.
    pub fn reload(&self) -> Result<bool, FileCertError> {
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
                        tracing::info!(cert_file_path = %self.cert_path.display(), "Loaded provided certificate")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "Failed to load certificate"),
                }
            }
        })
    }

    /// The certificate chain presented now.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.read().expect("cert lock").0.cert.clone()
    }
}

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").0.clone())
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<Contents, FileCertError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| FileCertError::Read { path: path.into(), source });
    Ok((read(cert_path)?, read(key_path)?))
}

fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    (cert, key): &Contents,
) -> Result<Arc<CertifiedKey>, FileCertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(FileCertError::NoCertificate(cert_path.into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| FileCertError::NoKey { path: key_path.into(), reason: e.to_string() })?;
    let signing = crate::provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let first = fc.chain();
        assert!(!fc.reload().unwrap());
        let (c2, k2) = write_pair(dir.path(), "b");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k2, &k).unwrap();
        assert!(fc.reload().unwrap());
        assert_ne!(fc.chain(), first);
    }

    #[test]
    fn a_broken_replacement_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let fc = FileCert::load(&c, &k).unwrap();
        let first = fc.chain();
        std::fs::write(&c, "not a certificate").unwrap();
        assert!(matches!(fc.reload(), Err(FileCertError::NoCertificate(_))));
        assert_eq!(fc.chain(), first);
        // A key that does not match the certificate is refused too.
        let (c2, _) = write_pair(dir.path(), "b");
        let (_, k3) = write_pair(dir.path(), "c");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k3, &k).unwrap();
        assert!(matches!(fc.reload(), Err(FileCertError::Tls(_))));
        std::fs::write(&k, "garbage").unwrap();
        assert!(matches!(fc.reload(), Err(FileCertError::NoKey { .. })));
        assert_eq!(fc.chain(), first);
        assert!(FileCert::load(&c, &k).is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let err = FileCert::load(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    }
}
