//! The kubelet's `GET /pods`, as SPIRE's k8s workload attestor calls it.
//!
//! The secure port (the default, 10250) is HTTPS to the node name, or to 127.0.0.1 when the agent
//! does not know its node (it then runs with host networking). The kubelet's certificate is checked
//! against `kubelet_ca_path` (default: the service account's `ca.crt`); towards 127.0.0.1 only the
//! chain is checked, not the name, since kubelet certificates rarely name 127.0.0.1 — SPIRE does the
//! same. `skip_kubelet_verification` checks nothing. The agent authenticates with the service
//! account token (`token_path`), a client certificate, or not at all. The read-only port is plain
//! HTTP to 127.0.0.1 without credentials.
//!
//! Credentials and CA are read when the plugin starts (a missing file is a configuration error) and
//! again every `reload_interval` (projected tokens rotate); a failed reload keeps the last client.
//! One connection is kept alive between requests, as Go's transport does.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use spire_cli::goerror::{chain, errno_text};
use spire_tls::{ServerCertCheck, server_verifier};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// SPIRE's timeout for one `/pods` request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest pod list read. Go reads any size; a bound keeps a confused kubelet (or whatever
/// answers on its port) from exhausting the agent's memory. Lists of thousands of pods are a few
/// tens of MiB.
const MAX_POD_LIST: usize = 256 << 20;

/// Why the kubelet could not be reached or its credentials loaded; messages are SPIRE's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KubeletError {
    /// `kubelet_ca_path` could not be read.
    #[error("unable to load kubelet CA: {0}")]
    LoadCa(String),
    /// `kubelet_ca_path` holds no usable certificate.
    #[error("unable to parse kubelet CA: {0}")]
    ParseCa(String),
    /// `certificate_path` could not be read.
    #[error("unable to load certificate: {0}")]
    LoadCertificate(String),
    /// `private_key_path` could not be read.
    #[error("unable to load private key: {0}")]
    LoadKey(String),
    /// The certificate and key do not make a usable pair.
    #[error("unable to load keypair: {0}")]
    KeyPair(String),
    /// `certificate_path` without `private_key_path`.
    #[error("the private key path is required with the certificate path")]
    KeyPathRequired,
    /// `private_key_path` without `certificate_path`.
    #[error("the certificate path is required with the private key path")]
    CertificatePathRequired,
    /// The token file could not be read.
    #[error("unable to load token: {0}")]
    LoadToken(String),
    /// The node name cannot be a TLS server name.
    #[error("invalid kubelet host {0:?}")]
    InvalidHost(String),
    /// The request failed before an answer.
    #[error("unable to perform request: {0}")]
    Request(String),
    /// The kubelet answered something other than 200; the body's start is kept, as SPIRE keeps it.
    #[error("unexpected status code on pods response: {status} {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// Up to 1 KiB of the body.
        body: String,
    },
    /// The body could not be read.
    #[error("unable to read pods response: {0}")]
    Read(String),
}

/// Where the kubelet listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://127.0.0.1:<port>` (`kubelet_read_only_port`).
    ReadOnly {
        /// The port.
        port: u16,
    },
    /// `https://<node name, or 127.0.0.1>:<port>`.
    Secure {
        /// The node name; `None` for 127.0.0.1, whose name is not checked.
        node_name: Option<String>,
        /// The port.
        port: u16,
    },
}

/// How to reach and authenticate to the kubelet, from the plugin's configuration.
#[derive(Debug, Clone)]
pub struct KubeletSettings {
    /// Where it listens.
    pub endpoint: Endpoint,
    /// Accept any certificate (`skip_kubelet_verification`).
    pub skip_verification: bool,
    /// The CA file (`kubelet_ca_path`, default the service account's).
    pub ca_path: PathBuf,
    /// The bearer token file (`token_path`, default the service account's).
    pub token_path: PathBuf,
    /// A client certificate (`certificate_path`).
    pub certificate_path: Option<PathBuf>,
    /// Its key (`private_key_path`).
    pub private_key_path: Option<PathBuf>,
    /// No credentials at all (`use_anonymous_authentication`).
    pub anonymous: bool,
}

/// The kubelet client of a configured plugin, rebuilt from its files every `reload_interval`.
#[derive(Debug)]
pub struct Kubelet {
    settings: KubeletSettings,
    reload_interval: Duration,
    current: Mutex<(Instant, Arc<KubeletClient>)>,
}

impl Kubelet {
    /// Loads the credentials and CA now: a missing or bad file is a configuration error.
    pub fn new(settings: KubeletSettings, reload_interval: Duration) -> Result<Self, KubeletError> {
        let client = Arc::new(KubeletClient::build(&settings)?);
        Ok(Self { settings, reload_interval, current: Mutex::new((Instant::now(), client)) })
    }

    /// The client to use now, reloaded from the files if it is older than the reload interval.
    /// Reading a token, CA and key pair takes microseconds, so it is done inline.
    pub fn client(&self) -> Arc<KubeletClient> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let secure = matches!(self.settings.endpoint, Endpoint::Secure { .. });
        if secure && current.0.elapsed() >= self.reload_interval {
            match KubeletClient::build(&self.settings) {
                Ok(client) => *current = (Instant::now(), Arc::new(client)),
                // As SPIRE: keep the last client and try again on the next call.
                Err(error) => tracing::warn!(%error, "Unable to load kubelet client"),
            }
        }
        current.1.clone()
    }
}

/// One kubelet client: address, TLS and credentials as loaded at one time.
pub struct KubeletClient {
    url: String,
    host: String,
    port: u16,
    authority: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    authorization: Option<HeaderValue>,
    idle: tokio::sync::Mutex<Option<SendRequest<Empty<Bytes>>>>,
}

impl fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletClient")
            .field("url", &self.url)
            .field("authenticated", &self.authorization.is_some())
            .finish_non_exhaustive()
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl KubeletClient {
    /// Reads the files `settings` names, in SPIRE's order: the CA, then the credentials.
    pub fn build(settings: &KubeletSettings) -> Result<Self, KubeletError> {
        let (host, port, secure_name) = match &settings.endpoint {
            Endpoint::ReadOnly { port } => ("127.0.0.1".to_owned(), *port, None),
            Endpoint::Secure { node_name, port } => {
                let host = node_name.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
                let name = ServerName::try_from(host.clone()).map_err(|_| KubeletError::InvalidHost(host.clone()))?;
                (host, *port, Some((name, node_name.is_some())))
            }
        };
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let scheme = if secure_name.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{authority}/pods");

        let mut tls = None;
        let mut authorization = None;
        if let Some((name, check_name)) = secure_name {
            let provider = spire_tls::provider();
            let verifier: Arc<dyn ServerCertVerifier> = if settings.skip_verification {
                server_verifier(IgnoringName { roots: None })
            } else {
                let roots = Arc::new(load_ca(&settings.ca_path)?);
                if check_name {
                    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .map_err(|e| KubeletError::ParseCa(e.to_string()))?
                } else {
                    server_verifier(IgnoringName { roots: Some(roots) })
                }
            };
            let (client_auth, token) = load_credentials(settings)?;
            let config = client_config(provider, verifier, client_auth)?;
            tls = Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name));
            if let Some(token) = token.filter(|t| !t.is_empty()) {
                let value = HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| KubeletError::LoadToken("the token is not a valid header value".into()))?;
                authorization = Some(value);
            }
        }
        Ok(Self { url, host, port, authority, tls, authorization, idle: tokio::sync::Mutex::new(None) })
    }

    /// `https://127.0.0.1:10250/pods` and the like.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body of `GET /pods`, within SPIRE's ten-second timeout.
    pub async fn get_pod_list(&self) -> Result<Bytes, KubeletError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(KubeletError::Request(format!("Get {:?}: context deadline exceeded", self.url))),
        }
    }

    async fn fetch(&self) -> Result<Bytes, KubeletError> {
        let mut idle = self.idle.lock().await;
        let mut reused = None;
        if let Some(mut sender) = idle.take().filter(|sender| !sender.is_closed())
            && sender.ready().await.is_ok()
        {
            // The kubelet may have closed an idle connection just as it was reused: a GET is safe
            // to send again on a new one, as Go's transport does.
            reused = sender.send_request(self.request()).await.ok().map(|response| (response, sender));
        }
        let (response, sender) = match reused {
            Some(found) => found,
            None => {
                let mut sender = self.connect().await?;
                let response = sender.send_request(self.request()).await.map_err(|e| self.request_error(&chain(&e)))?;
                (response, sender)
            }
        };
        let status = response.status();
        if status != hyper::StatusCode::OK {
            return Err(KubeletError::Status { status: status.as_u16(), body: body_start(response.into_body()).await });
        }
        let body = Limited::new(response.into_body(), MAX_POD_LIST).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                KubeletError::Read(format!("the pod list is larger than {MAX_POD_LIST} bytes"))
            } else {
                KubeletError::Read(e.to_string())
            }
        })?;
        *idle = Some(sender);
        Ok(body.to_bytes())
    }

    fn request(&self) -> hyper::Request<Empty<Bytes>> {
        let mut request = hyper::Request::new(Empty::new());
        *request.uri_mut() = hyper::Uri::from_static("/pods");
        let headers = request.headers_mut();
        if let Ok(host) = HeaderValue::try_from(self.authority.as_str()) {
            headers.insert(HOST, host);
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        request
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, KubeletError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.request_error(&format!("dial tcp {}: connect: {}", self.authority, errno_text(&e))))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &self.tls {
            Some((connector, name)) => Box::new(
                connector.connect(name.clone(), tcp).await.map_err(|e| self.request_error(&format!("tls: {e}")))?,
            ),
            None => Box::new(tcp),
        };
        let (sender, connection) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| self.request_error(&chain(&e)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "kubelet connection ended");
            }
        });
        Ok(sender)
    }

    fn request_error(&self, cause: &str) -> KubeletError {
        KubeletError::Request(format!("Get {:?}: {cause}", self.url))
    }
}

/// Up to the first KiB of an error answer (SPIRE reads once into a 1 KiB buffer).
async fn body_start(mut body: hyper::body::Incoming) -> String {
    let mut start = Vec::new();
    while start.len() < 1024 {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    start.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    start.truncate(1024);
    String::from_utf8_lossy(&start).into_owned()
}

/// A file for a credential, with Go's wording for a failed open.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("open {}: {}", path.display(), errno_text(&e)))
}

fn load_ca(path: &Path) -> Result<RootCertStore, KubeletError> {
    let pem = read(path).map_err(KubeletError::LoadCa)?;
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| KubeletError::ParseCa(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| KubeletError::ParseCa(format!("unable to parse \"CERTIFICATE\" PEM block {}: {e}", n + 1)))?;
    }
    if roots.is_empty() {
        return Err(KubeletError::ParseCa("no PEM blocks".into()));
    }
    Ok(roots)
}

type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate or the token, per SPIRE's precedence: anonymous, then a certificate and
/// key (both or neither), then the token.
fn load_credentials(settings: &KubeletSettings) -> Result<(Option<ClientAuth>, Option<String>), KubeletError> {
    if settings.anonymous {
        return Ok((None, None));
    }
    match (&settings.certificate_path, &settings.private_key_path) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(cert).map_err(KubeletError::LoadCertificate)?;
            let key_pem = read(key).map_err(KubeletError::LoadKey)?;
            let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem).filter_map(Result::ok).collect();
            if chain.is_empty() {
                return Err(KubeletError::KeyPair("tls: failed to find any PEM data in certificate input".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| KubeletError::KeyPair("tls: failed to find any PEM data in key input".into()))?;
            Ok((Some((chain, key)), None))
        }
        (Some(_), None) => Err(KubeletError::KeyPathRequired),
        (None, Some(_)) => Err(KubeletError::CertificatePathRequired),
        (None, None) => {
            let token = read(&settings.token_path).map_err(KubeletError::LoadToken)?;
            Ok((None, Some(String::from_utf8_lossy(&token).trim().to_owned())))
        }
    }
}

fn client_config(
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    client_auth: Option<ClientAuth>,
) -> Result<rustls::ClientConfig, KubeletError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeletError::KeyPair(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_auth {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain, key).map_err(|e| KubeletError::KeyPair(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A kubelet certificate check that ignores the name: with `roots`, the certificate must chain to
/// the CA (towards 127.0.0.1 the agent knows it talks to its own node's kubelet, whose certificate
/// names the node); without, for `skip_kubelet_verification`, any certificate is accepted. Either
/// way the handshake itself is checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct IgnoringName {
    roots: Option<Arc<RootCertStore>>,
}

impl ServerCertCheck for IgnoringName {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                spire_tls::algorithms().all,
            )?;
        }
        Ok(())
    }
}
