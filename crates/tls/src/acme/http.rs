//! The HTTP client the ACME protocol runs over: hyper with our rustls configuration (aws-lc-rs, the
//! system roots), so the directory's certificate is checked as any other web client would check it
//! and no second crypto provider enters the tree. `SSL_CERT_FILE` / `SSL_CERT_DIR` replace the
//! system roots (rustls-native-certs), which is how a private ACME CA is trusted.

use bytes::Bytes;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, HttpClient};

use crate::provider;

/// The hyper client, cheap to clone (one connection pool).
pub(crate) type AcmeHttp = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No usable root certificate was found.
    #[error("no system root certificates to check the ACME directory with ({0})")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("ACME client TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A client trusting the system roots, over HTTPS only.
pub(crate) fn client() -> Result<AcmeHttp, HttpError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(HttpError::NoRoots(errors.join("; ")));
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// `client` as instant-acme takes it.
pub(crate) fn boxed(client: &AcmeHttp) -> Box<dyn HttpClient> {
    Box::new(client.clone())
}
