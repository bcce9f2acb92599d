//! The SPIFFE bundle endpoint (`server.federation.bundle_endpoint`): an HTTPS listener answering
//! `GET /` with this trust domain's bundle as a SPIFFE bundle document (JWKS with `use`,
//! `spiffe_sequence` and `spiffe_refresh_hint` = the configured `refresh_hint`), as SPIRE's does.
//! Federated servers poll it; the bundle is read from the datastore on each request so that CA
//! rotations, and bundles changed by other servers sharing the datastore, are served at once.
//!
//! Profiles: `https_spiffe` presents the server's own rotating X509-SVID
//! (`spiffe://<td>/spire/server`); `https_web` presents a certificate from `serving_cert_file`,
//! reloaded every `file_sync_interval`; `https_web` with `acme` presents a certificate obtained from
//! the ACME CA (`spire_tls::acme`, proven by tls-alpn-01 on this listener, cached under
//! `<data_dir>/bundle-acme` and renewed before expiry).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::ResolvesServerCert;
use spire_config::federation::{Acme, BundleEndpoint, BundleEndpointProfile};
use spire_datastore::DataStore;
use spire_identity::TrustDomain;
use spire_tls::acme::{ACME_TLS_ALPN, AcmeConfig, AcmeError, LETS_ENCRYPT_DIRECTORY};
use spire_tls::file_cert::{FileCert, FileCertError};
use spire_tls::provider;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::endpoints::tls::ServerCert;
use crate::server_svid::identity_bundle;

/// How long a client may take to finish the handshake or send its request headers (SPIRE's
/// `ReadHeaderTimeout` is 10 s).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; beyond it the accept loop waits (the kernel's backlog holds the
/// rest), so that a flood of idle clients on this public port cannot exhaust file descriptors.
const MAX_CONNECTIONS: usize = 256;

/// Why the bundle endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum BundleEndpointError {
    /// The `acme` settings are unusable (a domain name that is not a DNS name, an unusable cache).
    #[error("server.federation.bundle_endpoint acme: {0}")]
    Acme(#[from] AcmeError),
    /// The listener could not be bound.
    #[error("bundle endpoint: cannot listen on {addr}: {source}")]
    Bind {
        /// `address:port`.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `serving_cert_file` pair is unusable.
    #[error("bundle endpoint serving_cert_file: {0}")]
    ServingCert(#[from] FileCertError),
    /// rustls refused the configuration.
    #[error("bundle endpoint TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Refuses what this build cannot serve, before anything is started: an ACME `domain_name` that is
/// not a DNS name (it names the certificate and its cache file).
pub fn check(config: &BundleEndpoint) -> Result<(), BundleEndpointError> {
    match &config.profile {
        Some(BundleEndpointProfile::HttpsWebAcme(acme)) if !spire_tls::acme::valid_domain(&acme.domain_name) => {
            Err(AcmeError::Domain(acme.domain_name.clone()).into())
        }
        _ => Ok(()),
    }
}

/// SPIRE's ACME settings for the bundle endpoint: Let's Encrypt unless `directory_url` is set, the
/// cache in `<data_dir>/bundle-acme`.
fn acme_config(acme: &Acme, data_dir: &Path) -> AcmeConfig {
    AcmeConfig {
        directory_url: acme.directory_url.clone().unwrap_or_else(|| LETS_ENCRYPT_DIRECTORY.to_owned()),
        domains: vec![acme.domain_name.clone()],
        email: acme.email.clone(),
        cache_dir: data_dir.join("bundle-acme"),
        tos_accepted: acme.tos_accepted,
    }
}

/// A started bundle endpoint.
#[derive(Debug)]
pub struct Started {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The accept loop and, for `serving_cert_file`, the file sync; aborted at shutdown.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds `config`'s address and serves `trust_domain`'s bundle from `ds`; `server_cert` is the
/// server's own SVID, presented by the `https_spiffe` profile; ACME caches under `data_dir`.
pub async fn start(
    config: &BundleEndpoint,
    data_dir: &Path,
    trust_domain: TrustDomain,
    ds: Arc<dyn DataStore>,
    server_cert: Arc<ServerCert>,
) -> Result<Started, BundleEndpointError> {
    check(config)?;
    let mut tasks = Vec::new();
    let resolver: Arc<dyn ResolvesServerCert> = match &config.profile {
        None | Some(BundleEndpointProfile::HttpsSpiffe) => server_cert,
        Some(BundleEndpointProfile::HttpsWebServingCert(files)) => {
            let cert = Arc::new(FileCert::load(files.cert_file_path.as_ref(), files.key_file_path.as_ref())?);
            tasks.push(cert.clone().spawn_sync(files.file_sync_interval));
            cert
        }
        Some(BundleEndpointProfile::HttpsWebAcme(acme)) => {
            let started = spire_tls::acme::start(acme_config(acme, data_dir))?;
            tasks.push(started.task);
            started.resolver
        }
    };
    // rustls speaks TLS 1.2 and 1.3 only, the minimum SPIRE sets.
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    if matches!(config.profile, Some(BundleEndpointProfile::HttpsWebAcme(_))) {
        tls.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    let addr = format!("{}:{}", config.address, config.port);
    let bind_err = |source| BundleEndpointError::Bind { addr: addr.clone(), source };
    let listener = TcpListener::bind((config.address.as_str(), config.port)).await.map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let source = Arc::new(Source { trust_domain, ds, refresh_hint: config.refresh_hint });
    tasks.insert(0, tokio::spawn(serve(listener, TlsAcceptor::from(Arc::new(tls)), source)));
    tracing::info!(address = %local, "serving bundle endpoint");
    Ok(Started { addr: local, tasks })
}

/// Where the served bundle comes from.
struct Source {
    trust_domain: TrustDomain,
    ds: Arc<dyn DataStore>,
    refresh_hint: Duration,
}

impl Source {
    /// The bundle document, indented as SPIRE's `json.MarshalIndent` writes it.
    async fn document(&self) -> Result<String, String> {
        let stored = self.ds.fetch_bundle(&self.trust_domain).await.map_err(|e| e.to_string())?;
        let stored = stored.ok_or_else(|| format!("no bundle stored for {}", self.trust_domain.as_str()))?;
        let mut bundle = identity_bundle(&stored);
        bundle.refresh_hint = Some(self.refresh_hint.as_secs()).filter(|&s| s != 0);
        Ok(bundle.to_spiffe_json_pretty())
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, source: Arc<Source>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "bundle endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, source) = (acceptor.clone(), source.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "bundle endpoint TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            if spire_tls::acme::is_challenge(tls.get_ref().1) {
                return; // the ACME CA's tls-alpn-01 validation: the handshake was all it wanted
            }
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(respond(&req, &source).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(IO_TIMEOUT);
            if let Err(e) = http.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "bundle endpoint connection ended with an error");
            }
        });
    }
}

async fn respond(req: &Request<Incoming>, source: &Source) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
    }
    if req.uri().path() != "/" {
        return text(StatusCode::NOT_FOUND, "404 page not found");
    }
    match source.document().await {
        Ok(json) => Response::builder()
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .expect("valid response"),
        Err(e) => {
            tracing::error!(error = %e, "Unable to retrieve local bundle");
            text(StatusCode::INTERNAL_SERVER_ERROR, "500 unable to retrieve local bundle")
        }
    }
}

/// A plain-text error as Go's `http.Error` writes it.
fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(Bytes::from(format!("{message}\n"))))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_config::federation::Acme;

    fn endpoint(profile: Option<BundleEndpointProfile>) -> BundleEndpoint {
        BundleEndpoint { address: "127.0.0.1".into(), port: 0, refresh_hint: Duration::from_secs(300), profile }
    }

    #[test]
    fn acme_needs_a_dns_name_and_defaults_to_lets_encrypt() {
        let acme = |domain: &str| Acme {
            directory_url: None,
            domain_name: domain.into(),
            email: "admin@example.org".into(),
            tos_accepted: true,
        };
        assert!(check(&endpoint(Some(BundleEndpointProfile::HttpsWebAcme(acme("example.org"))))).is_ok());
        let err = check(&endpoint(Some(BundleEndpointProfile::HttpsWebAcme(acme("../x"))))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("server.federation.bundle_endpoint acme") && message.contains("../x"), "{message}");
        assert!(check(&endpoint(None)).is_ok());
        assert!(check(&endpoint(Some(BundleEndpointProfile::HttpsSpiffe))).is_ok());
        let config = acme_config(&acme("example.org"), Path::new("/data"));
        assert_eq!(config.directory_url, LETS_ENCRYPT_DIRECTORY);
        assert_eq!(config.cache_dir, Path::new("/data/bundle-acme"));
    }

    /// `curl -k` (the certificate is not what this test is about) of `url`: status and body.
    fn curl(url: &str) -> (String, String) {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-k", "--max-time", "10", "-w", "\n%{http_code}", url])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_owned(), body.to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_stored_bundle_is_a_500() {
        use spire_config::federation::ServingCertFile;
        use spire_datastore::{SqlStore, SqliteOptions};

        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let files = ServingCertFile {
            cert_file_path: cert_path.display().to_string(),
            key_file_path: key_path.display().to_string(),
            file_sync_interval: Duration::from_secs(3600),
        };
        let ds: Arc<dyn DataStore> = Arc::new(
            SqlStore::open(dir.path().join("ds.sqlite3").to_str().unwrap(), SqliteOptions::default()).await.unwrap(),
        );
        let td = TrustDomain::parse("example.org").unwrap();
        let config = endpoint(Some(BundleEndpointProfile::HttpsWebServingCert(files)));
        let started = start(&config, dir.path(), td, ds, Arc::new(ServerCert::default())).await.unwrap();
        let url = format!("https://127.0.0.1:{}/", started.addr.port());
        let (status, body) = tokio::task::spawn_blocking(move || curl(&url)).await.unwrap();
        assert_eq!((status.as_str(), body.as_str()), ("500", "500 unable to retrieve local bundle\n"));
        for task in started.tasks {
            task.abort();
        }
    }
}
