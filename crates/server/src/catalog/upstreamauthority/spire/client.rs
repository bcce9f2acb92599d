//! The connection to the upstream SPIRE server: mTLS presenting our X509-SVID from the Workload
//! API, accepting only `spiffe://<td>/spire/server` chaining to the bundle the agent gives us. The
//! connection is rebuilt whenever the agent rotates the SVID or the bundle.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use spire_identity::{Bundle, BundleSet, SpiffeId, TrustDomain};
use spire_tls::{ServerCertCheck, provider, server_verifier, verify_peer_svid};
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint, Uri};

use super::workload::{WorkloadSvid, X509Source, causes};

/// How long a start-up waits for the agent's first SVID.
const FIRST_SVID_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds (and reuses) connections to the upstream server.
#[derive(Debug)]
pub(super) struct UpstreamConnector {
    addr: String,
    trust_domain: TrustDomain,
    server_id: SpiffeId,
    require_pq_kem: bool,
    source: X509Source,
    /// The connection and the SVID it presents.
    cached: Mutex<Option<(Arc<WorkloadSvid>, Channel)>>,
}

/// Accepts the upstream server's SVID: the expected ID, chaining to the agent's bundle.
#[derive(Debug)]
struct UpstreamServerCheck {
    server_id: SpiffeId,
    bundles: BundleSet,
}

impl ServerCertCheck for UpstreamServerCheck {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let verified = verify_peer_svid(end_entity, intermediates, &self.bundles, now)
            .map_err(|e| rustls::Error::General(format!("upstream server certificate rejected: {e}")))?;
        if verified.spiffe_id != self.server_id {
            return Err(rustls::Error::General(format!(
                "unexpected ID {:?}: expected {:?}",
                verified.spiffe_id.to_string(),
                self.server_id.to_string()
            )));
        }
        Ok(())
    }
}

impl UpstreamConnector {
    /// A connector to `addr` (`host:port`) for a server of `trust_domain`, with SVIDs from `source`.
    pub(super) fn new(addr: String, trust_domain: TrustDomain, require_pq_kem: bool, source: X509Source) -> Self {
        let server_id = trust_domain.id_with_path("/spire/server").expect("valid path");
        Self { addr, trust_domain, server_id, require_pq_kem, source, cached: Mutex::new(None) }
    }

    /// A connection presenting the current SVID.
    pub(super) async fn channel(&self) -> Result<Channel, String> {
        let svid = self.source.current(FIRST_SVID_TIMEOUT).await?;
        let mut cached = self.cached.lock().await;
        if let Some((presented, channel)) = cached.as_ref()
            && **presented == *svid
        {
            return Ok(channel.clone());
        }
        let channel = self.connect(&svid).await?;
        *cached = Some((svid, channel.clone()));
        Ok(channel)
    }

    /// Forgets the connection, so that the next call dials again (after a transport failure).
    pub(super) async fn reset(&self) {
        *self.cached.lock().await = None;
    }

    async fn connect(&self, svid: &WorkloadSvid) -> Result<Channel, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config(svid)?));
        let addr = self.addr.clone();
        Endpoint::try_from(format!("http://{addr}"))
            .map_err(|e| format!("invalid upstream address {addr:?}: {}", causes(&e)))?
            .connect_timeout(Duration::from_secs(10))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let (connector, addr) = (connector.clone(), addr.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect(&addr).await?;
                    tcp.set_nodelay(true)?;
                    let name = ServerName::try_from("spire-server").expect("static name");
                    let tls = connector.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            }))
            .await
            .map_err(|e| format!("connection to the upstream server at {} failed: {}", self.addr, causes(&e)))
    }

    fn tls_config(&self, svid: &WorkloadSvid) -> Result<rustls::ClientConfig, String> {
        let mut bundle = Bundle::new(self.trust_domain.clone());
        for der in &svid.bundle {
            bundle.add_x509_authority(der.clone()).map_err(|e| format!("Workload API bundle: {e}"))?;
        }
        let check = UpstreamServerCheck { server_id: self.server_id.clone(), bundles: BundleSet::from(bundle) };
        let mut provider = (*provider()).clone();
        if self.require_pq_kem {
            provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768];
        }
        let certs = svid.chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.key.pkcs8_der().to_vec()));
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(server_verifier(check))
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("X509-SVID from the Workload API: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}
