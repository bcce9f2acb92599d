//! The agent's connection to the server: TLS that accepts only a server presenting
//! `spiffe://<td>/spire/server` with a chain to the agent's trust bundle, and that presents the agent's
//! own SVID once it has one (except for attestation: [`ServerClient::channel_without_identity`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use spire_identity::{BundleSet, SigningKey, SpiffeId, TrustDomain};
use spire_tls::{ServerCertCheck, provider, server_verifier, verify_peer_svid};
use tonic::transport::{Channel, Endpoint, Uri};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The connection failed.
    #[error("failed to connect to the server at {addr}: {}", with_causes(source))]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// An error and its causes, as "a: b: c": tonic's transport error alone says only "transport error",
/// while the cause says what to fix (e.g. the server's certificate is not signed by the trust bundle).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        cause = e.source();
    }
    text
}

/// The agent's credentials: its SVID chain and key.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// Leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The agent's key: here, or in an external KeyManager that signs with it.
    pub key: SigningKey,
}

/// Builds connections to the server.
#[derive(Debug, Clone)]
pub struct ServerClient {
    addr: String,
    server_id: SpiffeId,
    bundles: Arc<RwLock<BundleSet>>,
    identity: Arc<RwLock<Option<AgentIdentity>>>,
    insecure_bootstrap: Arc<RwLock<bool>>,
    /// Held shared by a sync and exclusively while the agent SVID is replaced: a re-attestation
    /// retires the old SVID at once on the server (SPIRE's `RotMtx`), so a sync must not straddle it.
    rotation: Arc<tokio::sync::RwLock<()>>,
}

/// Checks the server's certificate: its SPIFFE ID always, its chain unless bootstrapping insecurely.
#[derive(Debug)]
struct ServerVerifier {
    server_id: SpiffeId,
    bundles: BundleSet,
    insecure: bool,
}

fn uri_san(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => Some((*u).to_owned()),
        _ => None,
    })
}

impl ServerCertCheck for ServerVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let id = if self.insecure {
            uri_san(end_entity.as_ref())
        } else {
            let verified = verify_peer_svid(end_entity, intermediates, &self.bundles, now)
                .map_err(|e| rustls::Error::General(format!("server certificate rejected: {e}")))?;
            Some(verified.spiffe_id.to_string())
        };
        if id.as_deref() != Some(self.server_id.to_string().as_str()) {
            return Err(rustls::Error::General(format!(
                "expected server SPIFFE ID {:?}, got {:?}",
                self.server_id.to_string(),
                id.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl ServerClient {
    /// A client for the server at `addr` (`host:port`) of `trust_domain`, trusting `bundles`.
    pub fn new(
        addr: String,
        trust_domain: &TrustDomain,
        bundles: Arc<RwLock<BundleSet>>,
        insecure_bootstrap: bool,
    ) -> Self {
        Self {
            addr,
            server_id: trust_domain.id_with_path("/spire/server").expect("valid path"),
            bundles,
            identity: Arc::default(),
            insecure_bootstrap: Arc::new(RwLock::new(insecure_bootstrap)),
            rotation: Arc::default(),
        }
    }

    /// Held for a call that authenticates with the agent SVID (a sync, a JWT-SVID mint): no SVID
    /// rotation happens meanwhile.
    pub async fn sync_guard(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.rotation.clone().read_owned().await
    }

    /// Held while the agent SVID is replaced: waits for the sync in flight, if any (each of which
    /// gives up on a silent server after SPIRE's 30 s, so this wait is bounded).
    pub async fn rotation_guard(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.rotation.clone().write_owned().await
    }

    /// Uses `identity` as the client certificate from now on.
    pub fn set_identity(&self, identity: AgentIdentity) {
        *self.identity.write().expect("identity lock") = Some(identity);
    }

    /// The current identity.
    pub fn identity(&self) -> Option<AgentIdentity> {
        self.identity.read().expect("identity lock").clone()
    }

    /// Stops trusting any server certificate: called once a bundle has been obtained.
    pub fn end_insecure_bootstrap(&self) {
        *self.insecure_bootstrap.write().expect("bootstrap lock") = false;
    }

    /// The trust bundles the client verifies the server against.
    pub fn bundles(&self) -> &Arc<RwLock<BundleSet>> {
        &self.bundles
    }

    /// A fresh connection with the current bundle, presenting the current identity (if any).
    pub async fn channel(&self) -> Result<Channel, ClientError> {
        self.connect(self.identity()).await
    }

    /// A fresh connection with the current bundle that presents no client certificate: for
    /// AttestAgent, which proves the node by its attestation data. The agent SVID may have expired
    /// (the server was down for over half its TTL), and both servers refuse an expired client
    /// certificate in the handshake, so presenting it would stop the agent from ever recovering
    /// (SPIRE's rotator re-attests over such a connection, `serverConn`).
    pub async fn channel_without_identity(&self) -> Result<Channel, ClientError> {
        self.connect(None).await
    }

    /// Connects, presenting `identity` as the client certificate when there is one.
    async fn connect(&self, identity: Option<AgentIdentity>) -> Result<Channel, ClientError> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config(identity)?));
        let addr = self.addr.clone();
        let connect_addr = addr.clone();
        Endpoint::try_from(format!("http://{addr}"))
            .map_err(|source| ClientError::Connect { addr: addr.clone(), source })?
            .connect_timeout(Duration::from_secs(10))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let (connector, addr) = (connector.clone(), connect_addr.clone());
                async move {
                    let tcp = connect_tcp(&addr).await?;
                    let name = ServerName::try_from("spire-server").expect("static name");
                    let tls = connector.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            }))
            .await
            .map_err(|source| ClientError::Connect { addr, source })
    }

    /// TLS verifying the server against the current bundle, with `identity` as the client
    /// certificate when there is one.
    fn tls_config(&self, identity: Option<AgentIdentity>) -> Result<rustls::ClientConfig, ClientError> {
        let verifier = ServerVerifier {
            server_id: self.server_id.clone(),
            bundles: self.bundles.read().expect("bundle lock").clone(),
            insecure: *self.insecure_bootstrap.read().expect("bootstrap lock"),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(server_verifier(verifier));
        let mut config = match identity {
            Some(id) => {
                let certs = id.chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
                match id.key.as_local() {
                    Some(local) => {
                        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(local.pkcs8_der().to_vec()));
                        builder.with_client_auth_cert(certs, key)?
                    }
                    None => builder.with_client_cert_resolver(crate::remote_tls::client_cert(certs, id.key)),
                }
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// Connects to the server with Nagle's algorithm off, as Go's net package does for SPIRE's agent. A
/// gRPC request goes out as several small writes (HEADERS, then DATA); with Nagle on, the second
/// waits for the ACK of the first, which the server delays by up to 40 ms: every RPC to the server
/// took about 44 ms on loopback, whatever its size.
async fn connect_tcp(addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_connections_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tcp = connect_tcp(&addr).await.unwrap();
        assert!(tcp.nodelay().unwrap());
    }

    #[tokio::test]
    async fn only_the_identity_less_channel_keeps_the_svid_to_itself() {
        let pki = spire_testkit::pki::Pki::new(spire_identity::KeyType::EcP256);
        let (addr, mut presented) = testing::recording_server(&pki).await;
        let client = testing::client_with_expired_svid(&addr, &pki);
        let c = client.clone();
        let with = tokio::spawn(async move { c.channel().await });
        assert_eq!(testing::next(&mut presented).await, 2, "leaf and intermediate");
        let without = tokio::spawn(async move { client.channel_without_identity().await });
        assert_eq!(testing::next(&mut presented).await, 0);
        with.abort();
        without.abort();
    }
}

/// A TLS server that answers nothing, to see what the client presents.
#[cfg(test)]
pub(crate) mod testing {
    use spire_testkit::pki::{Pki, leaf_params, sign_with};
    use spire_tls::{ClientCertCheck, client_verifier};

    use super::*;

    /// Accepts any client certificate, and none, so that the client's choice shows.
    #[derive(Debug)]
    struct AnyClient;

    impl ClientCertCheck for AnyClient {
        fn check(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: UnixTime) -> Result<(), rustls::Error> {
            Ok(())
        }
    }

    /// A server for `spiffe://example.org/spire/server` issued by `pki`: its address, and how many
    /// certificates each client presented in its handshake (connections are held open, unanswered).
    pub(crate) async fn recording_server(pki: &Pki) -> (String, tokio::sync::mpsc::UnboundedReceiver<usize>) {
        let (chain, key) = pki.leaf("spiffe://example.org/spire/server", &[]);
        let certs = chain.into_iter().map(CertificateDer::from).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(client_verifier(AnyClient))
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (presented, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = presented.send(tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len));
                    open.push(tls);
                }
            }
        });
        (addr, rx)
    }

    /// A client of `addr` trusting `pki`, holding an agent SVID from `pki` that expired in 2020.
    pub(crate) fn client_with_expired_svid(addr: &str, pki: &Pki) -> ServerClient {
        let td = TrustDomain::parse("example.org").unwrap();
        let client = ServerClient::new(addr.into(), &td, Arc::new(RwLock::new(pki.bundles())), false);
        let mut params = leaf_params("spiffe://example.org/spire/agent/k8s_psat/c/node");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 2);
        let (leaf, key) = sign_with(&mut params, &pki.intermediate);
        client.set_identity(AgentIdentity { chain: vec![leaf, pki.intermediate.cert_der().to_vec()], key: key.into() });
        client
    }

    /// The next handshake's certificate count, failing after 10 s.
    pub(crate) async fn next(presented: &mut tokio::sync::mpsc::UnboundedReceiver<usize>) -> usize {
        tokio::time::timeout(Duration::from_secs(10), presented.recv())
            .await
            .expect("a handshake within 10 s")
            .expect("the server runs")
    }
}
