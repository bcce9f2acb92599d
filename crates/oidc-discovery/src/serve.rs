//! The listeners: plain HTTP on `insecure_addr` or `listen_socket_path`, HTTPS with
//! `serving_cert_file` or with certificates from an ACME CA on `:443` (`acme`, through
//! `spire_tls::acme`: tls-alpn-01 on that port, as Go's autocert does for SPIRE), and the health
//! checks on `:<bind_port>`. HTTP/1.1 only, as SPIRE's Go
//! server is with its own TLS listener; each connection must send its headers within 10 s.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use spire_tls::acme::{ACME_TLS_ALPN, AcmeConfig, LETS_ENCRYPT_DIRECTORY};

use crate::config::{Acme, Listen, ServingCertFile};
use crate::handler::{Body, Conn, Handler};
use crate::health::Health;
use spire_tls::file_cert::{FileCert, FileCertError};

/// SPIRE's `ReadHeaderTimeout`.
const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many connections at once, so that a flood cannot exhaust memory.
const MAX_CONNECTIONS: usize = 1024;

/// Why the provider could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The ACME manager could not start (a domain that is not a DNS name, an unusable cache).
    #[error("{0}")]
    Acme(#[from] spire_tls::acme::AcmeError),
    /// A listener could not be opened.
    #[error("listen {network} {addr}: {source}")]
    Listen {
        /// `tcp` or `unix`.
        network: &'static str,
        /// The address.
        addr: String,
        /// The system error.
        source: std::io::Error,
    },
    /// The serving certificate could not be loaded.
    #[error("failed to load certificate: {0}")]
    Certificate(#[from] FileCertError),
    /// The insecure address is not `host:port`.
    #[error("{0}")]
    Address(#[from] crate::config::AddrError),
}

/// The port SPIRE's provider serves ACME certificates on (not configurable in SPIRE either).
pub const ACME_PORT: u16 = 443;

/// An opened listener, ready to serve.
pub enum Listener {
    /// Plain HTTP over TCP.
    Tcp(TcpListener),
    /// Plain HTTP over a Unix socket.
    Unix(UnixListener),
    /// HTTPS over TCP.
    Tls(TcpListener, TlsAcceptor),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(l) => f.debug_tuple("Tcp").field(l).finish(),
            Self::Unix(l) => f.debug_tuple("Unix").field(l).finish(),
            Self::Tls(l, _) => f.debug_tuple("Tls").field(l).finish(),
        }
    }
}

impl Listener {
    /// Opens the configured listener (the certificate is loaded, and its reloading or the ACME
    /// manager started, here); `domains` are the names ACME certificates are obtained for.
    pub async fn open(listen: &Listen, domains: &[String]) -> Result<Self, ServeError> {
        match listen {
            Listen::InsecureAddr(addr) => {
                let socket = crate::config::resolve_tcp_addr(addr)?;
                let l = TcpListener::bind(socket).await.map_err(|source| ServeError::Listen {
                    network: "tcp",
                    addr: addr.clone(),
                    source,
                })?;
                tracing::warn!(address = %addr, "Serving HTTP (insecure)");
                Ok(Self::Tcp(l))
            }
            Listen::Socket(path) => {
                let l = listen_unix(path)?;
                tracing::info!(network = "unix", address = %path.display(), "Serving HTTP");
                Ok(Self::Unix(l))
            }
            Listen::ServingCertFile(s) => {
                let l = listen_tls(s).await?;
                tracing::info!(
                    cert_file_path = %s.cert_file_path.display(),
                    key_file_path = %s.key_file_path.display(),
                    "Serving HTTPS using certificate loaded from disk"
                );
                Ok(l)
            }
            Listen::Acme(acme) => {
                let l = listen_acme(acme, domains).await?;
                tracing::info!("Serving HTTPS via ACME");
                Ok(l)
            }
        }
    }

    /// The TCP address, for tests that listen on port 0.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(l) | Self::Tls(l, _) => l.local_addr().ok(),
            Self::Unix(_) => None,
        }
    }
}

/// SPIRE removes a stale socket, listens, and lets anyone connect (the proxy in front decides).
fn listen_unix(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |source| ServeError::Listen { network: "unix", addr: path.display().to_string(), source };
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).map_err(err)?;
    Ok(l)
}

async fn listen_tls(s: &ServingCertFile) -> Result<Listener, ServeError> {
    let cert = Arc::new(FileCert::load(&s.cert_file_path, &s.key_file_path)?);
    Arc::clone(&cert).spawn_sync(s.file_sync_interval);
    tls_listener(s.addr, tls_config(cert)).await
}

/// ACME as SPIRE's autocert setup: certificates for `domains` (other names refused), the CA's
/// directory trusted through the system roots, `cache_dir` for the account and certificates. With
/// the cache disabled (`cache_dir = ""`) a directory of this process under the system's temporary
/// directory is used, so nothing outlives a restart, as with SPIRE.
async fn listen_acme(acme: &Acme, domains: &[String]) -> Result<Listener, ServeError> {
    let cache_dir = acme
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("oidc-discovery-provider-acme-{}", std::process::id())));
    let started = spire_tls::acme::start(AcmeConfig {
        directory_url: acme.directory_url.clone().unwrap_or_else(|| LETS_ENCRYPT_DIRECTORY.to_owned()),
        domains: domains.to_vec(),
        email: acme.email.clone(),
        cache_dir,
        tos_accepted: acme.tos_accepted,
    })?;
    if acme.tos_accepted {
        tracing::info!("ACME Terms Of Service accepted");
    }
    let mut config = tls_config(started.resolver);
    config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    tls_listener(SocketAddr::from(([0u16; 8], ACME_PORT)), config).await
}

/// TLS 1.2 and 1.3 (SPIRE's minimum is 1.2), HTTP/1.1.
fn tls_config(resolver: Arc<dyn rustls::server::ResolvesServerCert>) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(spire_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

async fn tls_listener(addr: SocketAddr, config: rustls::ServerConfig) -> Result<Listener, ServeError> {
    let l = TcpListener::bind(addr).await.map_err(|source| ServeError::Listen {
        network: "tcp",
        addr: addr.to_string(),
        source,
    })?;
    Ok(Listener::Tls(l, TlsAcceptor::from(Arc::new(config))))
}

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve(listener: Listener, handler: Arc<Handler>, log_requests: bool) {
    let respond = move |req: Request<Incoming>, conn: Conn, peer: String| {
        if log_requests {
            let agent = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::debug!(remote_addr = %peer, method = %req.method(), url = %req.uri(), user_agent = agent, "Incoming request");
        }
        handler.handle(&req, conn)
    };
    let respond = Arc::new(respond);
    match listener {
        Listener::Tcp(l) => {
            accept_loop(|| l.accept(), move |io, peer| serve_conn(io, Conn { tls: false }, peer, Arc::clone(&respond)))
                .await
        }
        Listener::Unix(l) => {
            accept_loop(
                || async { l.accept().await.map(|(s, _)| (s, "@")) },
                move |io, peer| serve_conn(io, Conn { tls: false }, peer, Arc::clone(&respond)),
            )
            .await
        }
        Listener::Tls(l, acceptor) => {
            accept_loop(
                || l.accept(),
                move |tcp, peer| {
                    let (acceptor, respond) = (acceptor.clone(), Arc::clone(&respond));
                    async move {
                        match tokio::time::timeout(READ_HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                            // An ACME CA's tls-alpn-01 validation: the handshake was all it wanted.
                            Ok(Ok(tls)) if spire_tls::acme::is_challenge(tls.get_ref().1) => {}
                            Ok(Ok(tls)) => serve_conn(tls, Conn { tls: true }, peer, respond).await,
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                },
            )
            .await
        }
    }
}

/// Serves the health checks on every interface at `port`, as SPIRE does.
pub async fn serve_health(port: u16, health: Arc<Health>) -> Result<(), ServeError> {
    let addr = std::net::SocketAddr::from(([0u16; 8], port));
    let l = TcpListener::bind(addr).await.map_err(|source| ServeError::Listen {
        network: "tcp",
        addr: format!(":{port}"),
        source,
    })?;
    let respond = Arc::new(move |req: Request<Incoming>, _: Conn, _: String| health.handle(&req));
    accept_loop(|| l.accept(), move |io, peer| serve_conn(io, Conn { tls: false }, peer, Arc::clone(&respond))).await;
    Ok(())
}

/// Accepts connections and runs `serve` for each on its own task, at most [`MAX_CONNECTIONS`] at once.
async fn accept_loop<S, P, A, AF, F, FF>(mut accept: A, serve: F)
where
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<(S, P)>>,
    P: Display,
    F: Fn(S, String) -> FF,
    FF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed");
        match accept().await {
            Ok((stream, peer)) => {
                let conn = serve(stream, peer.to_string());
                tokio::spawn(async move {
                    let _slot = slot;
                    conn.await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_conn<IO, R>(io: IO, conn: Conn, peer: String, respond: Arc<R>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Fn(Request<Incoming>, Conn, String) -> Response<Body> + Send + Sync + 'static,
{
    let peer_for_service = peer.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let response = respond(req, conn, peer_for_service.clone());
        async move { Ok::<_, Infallible>(response) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(READ_HEADER_TIMEOUT);
    if let Err(e) = http.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
