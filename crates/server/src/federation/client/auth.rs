//! How a foreign bundle endpoint is authenticated: the rustls client configurations of the two
//! profiles, as SPIRE's bundle client builds them.
//!
//! * `https_web`: Web PKI against the system roots (`rustls-native-certs`, so `SSL_CERT_FILE` and
//!   `SSL_CERT_DIR` apply as they do to Go's system pool), hostname checked. A name mismatch on a
//!   certificate carrying a SPIFFE ID gets SPIRE's hint to use `https_spiffe` instead.
//! * `https_spiffe`: the chain must lead to an X.509 authority of the bundle we hold for the endpoint
//!   SPIFFE ID's trust domain and the leaf must be an X509-SVID with exactly that ID; no hostname
//!   check (SPIFFE authentication replaces it).

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use spire_identity::{Bundle, BundleSet, SpiffeId};
use spire_tls::{ServerCertCheck, provider, server_verifier, verify_peer_svid};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why no TLS configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No system root could be loaded for `https_web`.
    #[error("no system root certificates are available to authenticate the bundle endpoint: {0}")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The system roots, loaded once per process as Go loads its system pool.
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!(error = %e, "failed to load a system root certificate");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
            tracing::debug!(added, ignored, "loaded system root certificates");
            Arc::new(roots)
        })
        .clone()
}

/// The client configuration of `https_web` with `roots`.
pub fn web(roots: Arc<RootCertStore>) -> Result<rustls::ClientConfig, AuthError> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| AuthError::NoRoots(e.to_string()))?;
    client_config(server_verifier(WebCheck { inner }))
}

/// The client configuration of `https_spiffe`: `endpoint_bundle` is the bundle we hold for
/// `endpoint_id`'s trust domain.
pub fn spiffe(endpoint_id: SpiffeId, endpoint_bundle: Bundle) -> Result<rustls::ClientConfig, AuthError> {
    let mut bundles = BundleSet::new();
    bundles.insert(endpoint_bundle);
    client_config(server_verifier(SpiffeCheck { endpoint_id, bundles }))
}

fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<rustls::ClientConfig, AuthError> {
    // TLS 1.2 and 1.3, as SPIRE's client (Go's default minimum is 1.2).
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Web PKI, with SPIRE's hint when the certificate names a SPIFFE ID instead of the host.
#[derive(Debug)]
struct WebCheck {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertCheck for WebCheck {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, &[], now) {
            Ok(_) => Ok(()),
            Err(
                e @ rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ),
            ) => match spiffe_id_of(end_entity) {
                Some(id) => Err(rustls::Error::General(format!(
                    "failed to authenticate bundle endpoint using web authentication but the server certificate \
                     contains SPIFFE ID {:?}: maybe use https_spiffe instead of https_web: {e}",
                    id.to_string()
                ))),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

/// The first URI SAN of `der`, when it is a SPIFFE ID.
fn spiffe_id_of(der: &[u8]) -> Option<SpiffeId> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let uri = san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    })?;
    SpiffeId::parse(uri).ok()
}

/// SPIFFE authentication of the endpoint (go-spiffe's `tlsconfig.AuthorizeID`).
#[derive(Debug)]
struct SpiffeCheck {
    endpoint_id: SpiffeId,
    bundles: BundleSet,
}

impl ServerCertCheck for SpiffeCheck {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let verified = verify_peer_svid(end_entity, intermediates, &self.bundles, now)
            .map_err(|e| rustls::Error::General(format!("x509svid: could not verify leaf certificate: {e}")))?;
        if verified.spiffe_id != self.endpoint_id {
            return Err(rustls::Error::General(format!("unexpected ID {:?}", verified.spiffe_id.to_string())));
        }
        Ok(())
    }
}
