//! The webhook's TLS: its serving certificate, and the API server's client certificate checked
//! against `cacert_path` unless `insecure_skip_client_verification`.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use spire_tls::provider;

/// Why the webhook's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The serving certificate or key could not be read.
    #[error("unable to load server keypair ({cert_path}, {key_path}): {reason}")]
    Keypair {
        /// `cert_path`.
        cert_path: String,
        /// `key_path`.
        key_path: String,
        /// Why.
        reason: String,
    },
    /// The client CA could not be read.
    #[error("unable to read cacert file {path}: {reason}")]
    ClientCa {
        /// `cacert_path`.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A server configuration presenting `cert_path`/`key_path`, requiring a client certificate issued
/// by `cacert_path` unless that is `None`.
pub fn server_config(
    cert_path: &str,
    key_path: &str,
    cacert_path: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let keypair_error =
        |reason: String| TlsError::Keypair { cert_path: cert_path.to_owned(), key_path: key_path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| keypair_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(keypair_error("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| keypair_error(e.to_string()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| keypair_error(e.to_string()))?;
    let builder = match cacert_path {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_error = |reason: String| TlsError::ClientCa { path: path.to_owned(), reason };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
                roots.add(cert.map_err(|e| ca_error(e.to_string()))?).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("no certificate in the file".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| keypair_error(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
