//! TLS for the server's TCP endpoint: the server presents its own SVID (rotated without restarting
//! the listener), and a client certificate is optional but, when given, must be an X509-SVID that
//! chains to a bundle the server holds (AttestAgent and GetBundle work before an agent has an SVID).

use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spire_identity::{BundleSet, PrivateKey};
use spire_tls::{ClientCertCheck, client_verifier, provider, verify_peer_svid};

/// The certificate the server presents, swapped on rotation.
#[derive(Debug, Default)]
pub struct ServerCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    // The key as PKCS#8 too: the IdentityProvider host service hands it to plugins, as SPIRE's does.
    key_pkcs8: RwLock<Option<Vec<u8>>>,
}

impl ServerCert {
    /// Installs a new chain (leaf first) and key.
    pub fn set(&self, chain: &[Vec<u8>], key: &PrivateKey) -> Result<(), rustls::Error> {
        let certs: Vec<CertificateDer<'static>> = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
        let signing = provider().key_provider.load_private_key(der)?;
        *self.current.write().expect("cert lock") = Some(Arc::new(CertifiedKey::new(certs, signing)));
        *self.key_pkcs8.write().expect("cert lock") = Some(key.pkcs8_der().to_vec());
        Ok(())
    }

    /// The chain (leaf first) and its key as PKCS#8 DER, once an SVID was installed.
    pub fn identity(&self) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
        let key = self.key_pkcs8.read().expect("cert lock").clone()?;
        Some((self.chain(), key))
    }
}

impl ServerCert {
    /// The chain currently presented, leaf first.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        self.current
            .read()
            .expect("cert lock")
            .as_ref()
            .map(|k| k.cert.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default()
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("cert lock").clone()
    }
}

/// Accepts optional client X509-SVIDs that chain to the bundles the server holds.
#[derive(Debug)]
pub struct SvidClientVerifier {
    bundles: Arc<RwLock<BundleSet>>,
}

impl SvidClientVerifier {
    /// A verifier reading `bundles` at each handshake.
    pub fn new(bundles: Arc<RwLock<BundleSet>>) -> Self {
        Self { bundles }
    }
}

impl ClientCertCheck for SvidClientVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let bundles = self.bundles.read().expect("bundle lock");
        verify_peer_svid(end_entity, intermediates, &bundles, now)
            .map(|_| ())
            .map_err(|e| rustls::Error::General(format!("client X509-SVID rejected: {e}")))
    }
}

/// The rustls server configuration of the TCP endpoint (HTTP/2 only, as gRPC needs).
pub fn server_config(
    cert: Arc<ServerCert>,
    bundles: Arc<RwLock<BundleSet>>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_verifier(SvidClientVerifier::new(bundles)))
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
