//! `serving_cert_file`: the HTTPS certificate and key read from disk and re-read every
//! `file_sync_interval`; a replacement that cannot be loaded keeps the previous pair, as SPIRE's
//! disk certificate manager does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why the pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("open {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("tls: failed to find any PEM data in certificate input")]
    NoCertificate,
    /// The key file holds no usable key.
    #[error("tls: failed to find any PEM data in key input: {0}")]
    NoKey(String),
    /// rustls refuses the key or it does not match the certificate.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}

type Contents = (Vec<u8>, Vec<u8>);

/// The current certificate, reloaded from its files.
#[derive(Debug)]
pub struct FileCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Contents)>,
}

impl FileCert {
    /// Loads the pair; failing here stops the provider at start.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let contents = read_pair(cert_path, key_path)?;
        let key = certified_key(&contents)?;
        Ok(Self { cert_path: cert_path.into(), key_path: key_path.into(), current: RwLock::new((key, contents)) })
    }

    /// Re-reads the files; whether the certificate changed.
    pub fn reload(&self) -> Result<bool, CertError> {
        let contents = read_pair(&self.cert_path, &self.key_path)?;
        if self.current.read().expect("cert lock").1 == contents {
            return Ok(false);
        }
        let key = certified_key(&contents)?;
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
                    Err(e) => tracing::error!("Failed to load certificate: {e}"),
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

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<Contents, CertError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| CertError::Read { path: path.into(), source });
    Ok((read(cert_path)?, read(key_path)?))
}

fn certified_key((cert, key): &Contents) -> Result<Arc<CertifiedKey>, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| CertError::NoKey(e.to_string()))?;
    let signing = spire_tls::provider().key_provider.load_private_key(key)?;
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
    fn reloads_on_change_and_keeps_the_old_pair_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let fc = FileCert::load(&c, &k).unwrap();
        assert!(!fc.reload().unwrap());
        let (c2, k2) = write_pair(dir.path(), "b");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k2, &k).unwrap();
        assert!(fc.reload().unwrap());
        std::fs::write(&k, "garbage").unwrap();
        assert!(fc.reload().is_err());
        assert!(FileCert::load(&c, &k).is_err());
    }
}
