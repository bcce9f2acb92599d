//! The bootstrap trust bundle: what the agent authenticates the server with before it has learned
//! the real bundle (SPIRE's `pkg/agent/trustbundlesources`).
//!
//! A `trust_bundle_path` file is read when the configuration is loaded, as SPIRE does; the other
//! sources are remote and are only reached when the data directory holds no bundle yet, so an agent
//! that restarts does not depend on them (see [`crate::run::start`]).
//!
//! - `trust_bundle_url`: an HTTP GET, over HTTPS checked against the system roots (Go's
//!   `http.DefaultClient`; `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured), or over plain HTTP
//!   through `trust_bundle_unix_socket`, with SPIRE's `spire-*` / `spiffe-*` query parameters.
//! - `trust_bundle_spiffe_workload_api`: the X.509 bundle of the trust domain from another SPIFFE
//!   Workload API (an agent nested under another one).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use spire_cli::goerror::{chain, errno_text};
use spire_config::agent::TrustBundleFormat;
use spire_identity::bundle::BundleError;
use spire_identity::{Bundle, TrustDomain};
use spire_proto::workload::X509BundlesRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Endpoint, Uri};

/// The largest bundle download accepted: a bundle is a few kilobytes, so anything near this is not one.
pub const MAX_BUNDLE_SIZE: usize = 1 << 20;
/// Redirects followed before giving up, as Go's HTTP client.
pub const MAX_REDIRECTS: usize = 10;
/// Go's `http.DefaultTransport` dial timeout (TCP only: SPIRE's Unix socket dialer has none).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Go's `http.DefaultTransport` TLS handshake timeout.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the Workload API may take to send its first bundle message: it answers at once when it
/// can, so a longer wait means it never will.
const WORKLOAD_API_TIMEOUT: Duration = Duration::from_secs(30);
/// The User-Agent of Go's HTTP client, sent so that bundle servers see the agent as they see SPIRE's.
const USER_AGENT: &str = "Go-http-client/1.1";

/// Where the bootstrap bundle comes from when the agent needs one (`insecure_bootstrap` is the
/// absence of one).
#[derive(Debug, Clone)]
pub enum TrustBootstrap {
    /// Already known: `trust_bundle_path`, read with the configuration.
    Bundle(Bundle),
    /// `trust_bundle_url`, downloaded when needed.
    Url(UrlSource),
    /// `trust_bundle_spiffe_workload_api`: the Workload API address (`unix:///path`, `unix:/path`,
    /// `tcp://ip:port` or a socket path), asked when needed.
    WorkloadApi(String),
}

/// `trust_bundle_url` and what SPIRE sends with it.
#[derive(Debug, Clone)]
pub struct UrlSource {
    /// `trust_bundle_url`.
    pub url: String,
    /// `trust_bundle_unix_socket`: plain HTTP through this socket instead of HTTPS.
    pub unix_socket: Option<PathBuf>,
    /// `trust_bundle_format`.
    pub format: TrustBundleFormat,
    /// `server_address`, sent as `spire-server-address` through the Unix socket.
    pub server_address: String,
    /// `server_port`, sent as `spire-server-port` through the Unix socket.
    pub server_port: u16,
}

/// Why the bootstrap bundle could not be had. URL messages are SPIRE's.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The URL (or a redirect's `Location`) is not one the agent can fetch.
    #[error("unable to parse trust bundle URL: {0}")]
    Url(String),
    /// No answer: connection, TLS or HTTP failure.
    #[error("unable to fetch trust bundle URL {url}: Get \"{target}\": {reason}")]
    Fetch {
        /// The URL as first requested (with SPIRE's query parameters through a Unix socket).
        url: String,
        /// The URL that failed (after redirects).
        target: String,
        /// Why.
        reason: String,
    },
    /// An answer other than 200 OK.
    #[error("error downloading trust bundle: {0}")]
    Status(String),
    /// The body could not be read, or is too big to be a bundle.
    #[error("unable to read from trust bundle URL {url}: {reason}")]
    Read {
        /// The URL as first requested.
        url: String,
        /// Why.
        reason: String,
    },
    /// `trust_bundle_format = "pem"` and the data is not PEM certificates.
    #[error("{0}")]
    Pem(BundleError),
    /// `trust_bundle_format = "spiffe"` and the data is not a SPIFFE bundle.
    #[error("unable to parse SPIFFE trust bundle: {0}")]
    Spiffe(BundleError),
    /// A bundle without X.509 authorities cannot authenticate the server.
    #[error("no certificates found in trust bundle")]
    Empty,
    /// The Workload API could not be asked.
    #[error("unable to fetch the trust bundle from the SPIFFE Workload API at {address}: {reason}")]
    WorkloadApi {
        /// `trust_bundle_spiffe_workload_api`.
        address: String,
        /// Why.
        reason: String,
    },
    /// The Workload API answered without this trust domain's bundle.
    #[error("the SPIFFE Workload API at {address} returned no X.509 bundle for trust domain {trust_domain}")]
    MissingBundle {
        /// `trust_bundle_spiffe_workload_api`.
        address: String,
        /// The agent's trust domain.
        trust_domain: String,
    },
}

impl TrustBootstrap {
    /// The bundle of `td` from this source, fetched now if it is remote.
    pub async fn fetch(&self, td: &TrustDomain) -> Result<Bundle, BootstrapError> {
        match self {
            Self::Bundle(b) => Ok(b.clone()),
            Self::Url(source) => {
                let body = download(source, td, SystemTime::now()).await?;
                parse_bundle(td, &body, source.format)
            }
            Self::WorkloadApi(address) => fetch_from_workload_api(address, td).await,
        }
    }

    /// Where the bundle comes from, for the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Bundle(_) => "trust_bundle_path".into(),
            Self::Url(s) => match &s.unix_socket {
                Some(socket) => format!("{} through {}", s.url, socket.display()),
                None => s.url.clone(),
            },
            Self::WorkloadApi(address) => format!("the SPIFFE Workload API at {address}"),
        }
    }
}

/// Reads a bootstrap bundle in `format`; like SPIRE, a bundle with no X.509 authority is refused.
pub fn parse_bundle(td: &TrustDomain, data: &[u8], format: TrustBundleFormat) -> Result<Bundle, BootstrapError> {
    let bundle = match format {
        TrustBundleFormat::Spiffe => Bundle::from_spiffe_json(td.clone(), data).map_err(BootstrapError::Spiffe)?,
        TrustBundleFormat::Pem => {
            let text = String::from_utf8_lossy(data);
            Bundle::from_pem(td.clone(), &text).map_err(BootstrapError::Pem)?
        }
    };
    if bundle.x509_authorities().is_empty() {
        return Err(BootstrapError::Empty);
    }
    Ok(bundle)
}

// --- trust_bundle_url ---------------------------------------------------------------------------

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One request's target, from an absolute `http(s)` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    /// The host to dial and to name in TLS, without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority without user information.
    authority: String,
    path_and_query: String,
}

fn parse_target(url: &str) -> Result<Target, String> {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let uri: Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
    let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(format!("unsupported protocol scheme {other:?}")),
        None => return Err(format!("parse {url:?}: not an absolute URL")),
    };
    let authority = uri.authority().ok_or_else(|| format!("parse {url:?}: no host"))?;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(format!("parse {url:?}: no host"));
    }
    let authority = authority.as_str().rsplit_once('@').map_or(authority.as_str(), |(_, a)| a).to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let path_and_query = if path_and_query.is_empty() { "/" } else { path_and_query }.to_owned();
    Ok(Target { https, host, port, authority, path_and_query })
}

/// `location` resolved against `base` (RFC 3986 §5.2, for the forms servers send).
fn resolve(base: &str, location: &str) -> String {
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let has_scheme = location.find(':').is_some_and(|i| {
        i > 0
            && location[..i].chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && location.as_bytes()[0].is_ascii_alphabetic()
    });
    if has_scheme {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net) = location.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(authority_end);
    let origin = format!("{scheme}://{authority}");
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = path_query.split_once('?').map_or(path_query, |(p, _)| p);
    if location.is_empty() {
        return base.to_owned();
    }
    if location.starts_with('?') {
        return format!("{origin}{path}{location}");
    }
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    let (rel_path, rel_query) = match location.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (location, None),
    };
    let mut segments: Vec<&str> = Vec::new();
    let joined = format!("{dir}{rel_path}");
    let parts: Vec<&str> = joined.split('/').skip(1).collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." if last => segments.push(""),
            "." => {}
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("{origin}/{}", segments.join("/"));
    if let Some(q) = rel_query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`; `None` for a malformed escape.
fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The URL with `params` set, as Go's `u.Query()`, `Set` and `Encode` leave it: the existing
/// parameters that parse are kept, every key is sorted, and the fragment stays.
fn with_query_params(url: &str, params: &[(&str, String)]) -> String {
    let (url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty() && !p.contains(';')) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
            pairs.push((k, v));
        }
    }
    for (key, value) in params {
        pairs.retain(|(k, _)| k != key);
        pairs.push(((*key).to_owned(), value.clone()));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect();
    let mut out = format!("{base}?{}", encoded.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `t` as Go's `time.RFC3339` prints it in UTC.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The URL actually requested: through the Unix socket SPIRE tells the bundle server who asks and why,
/// in query parameters (this agent bootstraps once per start: attempt 1, mode `bootstrap`).
fn request_url(source: &UrlSource, td: &TrustDomain, now: SystemTime) -> String {
    if source.unix_socket.is_none() {
        return source.url.clone();
    }
    with_query_params(
        &source.url,
        &[
            ("spire-attest-mode", "bootstrap".into()),
            ("spire-connection-attempts", "1".into()),
            ("spire-attest-start-time", rfc3339(now)),
            ("spire-server-address", source.server_address.clone()),
            ("spire-server-port", source.server_port.to_string()),
            ("spiffe-trust-domain", td.as_str().to_owned()),
        ],
    )
}

/// Downloads the bundle, following redirects as Go's client does.
async fn download(source: &UrlSource, td: &TrustDomain, now: SystemTime) -> Result<Vec<u8>, BootstrapError> {
    let first = request_url(source, td, now);
    tracing::debug!(url = %first, unix_socket = ?source.unix_socket, "downloading the bootstrap trust bundle");
    let fetch_error =
        |target: &str, reason: String| BootstrapError::Fetch { url: first.clone(), target: target.to_owned(), reason };
    let mut url = first.clone();
    let mut redirects = 0;
    loop {
        let target = parse_target(&url)
            .map_err(|e| if redirects == 0 { BootstrapError::Url(e) } else { fetch_error(&url, e) })?;
        let response = get(&target, source.unix_socket.as_deref()).await.map_err(|e| fetch_error(&url, e))?;
        let status = response.status();
        let location = response.headers().get(hyper::header::LOCATION).and_then(|l| l.to_str().ok());
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
            && let Some(location) = location
        {
            if redirects == MAX_REDIRECTS {
                return Err(fetch_error(&url, format!("stopped after {MAX_REDIRECTS} redirects")));
            }
            redirects += 1;
            url = resolve(&url, location);
            continue;
        }
        if status != hyper::StatusCode::OK {
            let reason = response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .or_else(|| status.canonical_reason().map(str::to_owned))
                .unwrap_or_default();
            return Err(BootstrapError::Status(format!("{} {reason}", status.as_u16()).trim_end().to_owned()));
        }
        let read_error = |reason: String| BootstrapError::Read { url: first.clone(), reason };
        let body = Limited::new(response.into_body(), MAX_BUNDLE_SIZE).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                read_error(format!("the answer is larger than {MAX_BUNDLE_SIZE} bytes, too large for a trust bundle"))
            } else {
                read_error(e.to_string())
            }
        })?;
        return Ok(body.to_bytes().to_vec());
    }
}

/// One GET on a fresh connection: through `unix_socket` when set (whatever the host), else over TCP.
async fn get(target: &Target, unix_socket: Option<&Path>) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let stream: Pin<Box<dyn Io>> = match unix_socket {
        Some(path) => Box::pin(
            UnixStream::connect(path).await.map_err(|e| format!("dial unix {}: {}", path.display(), errno_text(&e)))?,
        ),
        None => {
            let dial = TcpStream::connect((target.host.as_str(), target.port));
            let tcp = tokio::time::timeout(DIAL_TIMEOUT, dial)
                .await
                .map_err(|_| format!("dial tcp {}:{}: i/o timeout", target.host, target.port))?
                .map_err(|e| format!("dial tcp {}:{}: {}", target.host, target.port, errno_text(&e)))?;
            Box::pin(tcp)
        }
    };
    let stream = if target.https { tls(stream, &target.host).await? } else { stream };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await.map_err(|e| chain(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "trust bundle connection ended");
        }
    });
    let request = hyper::Request::get(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    sender.send_request(request).await.map_err(|e| chain(&e))
}

/// TLS to `host`, checked against the system roots (or `SSL_CERT_FILE` / `SSL_CERT_DIR`).
async fn tls(stream: Pin<Box<dyn Io>>, host: &str) -> Result<Pin<Box<dyn Io>>, String> {
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::warn!(error = %e, "could not load some system root certificates");
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(loaded.certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?}: {e}"))?;
    let connect = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream);
    let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| "net/http: TLS handshake timeout".to_owned())?
        .map_err(|e| format!("tls: {e}"))?;
    Ok(Box::pin(tls))
}

// --- trust_bundle_spiffe_workload_api -----------------------------------------------------------

/// The socket path or TCP endpoint of a Workload API address.
#[derive(Debug, PartialEq, Eq)]
enum WorkloadAddress {
    Unix(PathBuf),
    Tcp(String),
}

fn parse_workload_address(address: &str) -> Result<WorkloadAddress, String> {
    if let Some(rest) = address.strip_prefix("unix://") {
        // `unix:///path`: no authority.
        if !rest.starts_with('/') {
            return Err("a unix:// address must be absolute, as in unix:///run/spire/api.sock".into());
        }
        return Ok(WorkloadAddress::Unix(PathBuf::from(rest)));
    }
    if let Some(rest) = address.strip_prefix("unix:") {
        return Ok(WorkloadAddress::Unix(PathBuf::from(rest)));
    }
    if let Some(rest) = address.strip_prefix("tcp://") {
        return Ok(WorkloadAddress::Tcp(rest.trim_end_matches('/').to_owned()));
    }
    if address.contains("://") {
        return Err("the address must be unix:///path, tcp://ip:port or a socket path".into());
    }
    Ok(WorkloadAddress::Unix(PathBuf::from(address)))
}

/// The X.509 bundle of `td`, from the first message of FetchX509Bundles.
async fn fetch_from_workload_api(address: &str, td: &TrustDomain) -> Result<Bundle, BootstrapError> {
    let error = |reason: String| BootstrapError::WorkloadApi { address: address.to_owned(), reason };
    let channel = match parse_workload_address(address).map_err(error)? {
        WorkloadAddress::Unix(path) => {
            let endpoint = Endpoint::from_static("http://localhost");
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { UnixStream::connect(path).await.map(TokioIo::new) }
                }))
                .await
        }
        WorkloadAddress::Tcp(host_port) => {
            Endpoint::from_shared(format!("http://{host_port}")).map_err(|e| error(e.to_string()))?.connect().await
        }
    }
    .map_err(|e| error(chain(&e)))?;
    let mut request = tonic::Request::new(X509BundlesRequest {});
    request.metadata_mut().insert("workload.spiffe.io", tonic::metadata::MetadataValue::from_static("true"));
    let first = async {
        let mut stream = SpiffeWorkloadApiClient::new(channel).fetch_x509_bundles(request).await?.into_inner();
        stream.message().await
    };
    let message = tokio::time::timeout(WORKLOAD_API_TIMEOUT, first)
        .await
        .map_err(|_| error(format!("no answer within {}s", WORKLOAD_API_TIMEOUT.as_secs())))?
        .map_err(|s| error(format!("rpc error: code = {:?} desc = {}", s.code(), s.message())))?
        .ok_or_else(|| error("the stream ended without a message".into()))?;
    let der = message
        .bundles
        .get(&td.id_string())
        .ok_or_else(|| BootstrapError::MissingBundle { address: address.to_owned(), trust_domain: td.to_string() })?;
    let mut bundle = Bundle::new(td.clone());
    let certs = spire_identity::x509::split_der_chain(der).map_err(|e| error(format!("invalid bundle: {e}")))?;
    for cert in certs {
        bundle.add_x509_authority(cert).map_err(|e| error(format!("invalid bundle: {e}")))?;
    }
    if bundle.x509_authorities().is_empty() {
        return Err(BootstrapError::Empty);
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td() -> TrustDomain {
        TrustDomain::parse("example.org").unwrap()
    }

    #[test]
    fn targets() {
        let t = parse_target("https://localhost:8443/bundle?x=1#frag").unwrap();
        assert_eq!(
            t,
            Target {
                https: true,
                host: "localhost".into(),
                port: 8443,
                authority: "localhost:8443".into(),
                path_and_query: "/bundle?x=1".into(),
            }
        );
        let t = parse_target("HTTP://user:pw@[::1]").unwrap();
        assert_eq!((t.https, t.host.as_str(), t.port, t.authority.as_str()), (false, "::1", 80, "[::1]"));
        assert_eq!(t.path_and_query, "/");
        assert_eq!(parse_target("https://example.org").unwrap().port, 443);
        assert!(parse_target("ftp://example.org/x").unwrap_err().contains("unsupported protocol scheme"));
        assert!(parse_target("/relative").is_err());
    }

    #[test]
    fn redirects_resolve_like_browsers() {
        let base = "https://a.example/dir/page?q=1";
        assert_eq!(resolve(base, "https://b.example/x"), "https://b.example/x");
        assert_eq!(resolve(base, "//c.example/y"), "https://c.example/y");
        assert_eq!(resolve(base, "/root?z"), "https://a.example/root?z");
        assert_eq!(resolve(base, "other"), "https://a.example/dir/other");
        assert_eq!(resolve(base, "../up/b.pem"), "https://a.example/up/b.pem");
        assert_eq!(resolve(base, "?only"), "https://a.example/dir/page?only");
        assert_eq!(resolve("http://h", "x"), "http://h/x");
    }

    #[test]
    fn unix_socket_requests_carry_spire_query_params_in_go_order() {
        let source = UrlSource {
            url: "http://localhost/tb?instance=a b&z=1#f".into(),
            unix_socket: Some("/run/tb.sock".into()),
            format: TrustBundleFormat::Pem,
            server_address: "spire-server".into(),
            server_port: 8081,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            request_url(&source, &td(), at),
            "http://localhost/tb?instance=a+b&spiffe-trust-domain=example.org&spire-attest-mode=bootstrap&\
             spire-attest-start-time=2023-11-14T22%3A13%3A20Z&spire-connection-attempts=1&\
             spire-server-address=spire-server&spire-server-port=8081&z=1#f"
        );
        let https = UrlSource { url: "https://h/b?x=1".into(), unix_socket: None, ..source };
        assert_eq!(request_url(&https, &td(), at), "https://h/b?x=1");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T01:01:01Z");
    }

    #[test]
    fn workload_addresses() {
        assert_eq!(parse_workload_address("unix:///tmp/a.sock").unwrap(), WorkloadAddress::Unix("/tmp/a.sock".into()));
        assert_eq!(parse_workload_address("unix:/tmp/a.sock").unwrap(), WorkloadAddress::Unix("/tmp/a.sock".into()));
        assert_eq!(parse_workload_address("/tmp/a.sock").unwrap(), WorkloadAddress::Unix("/tmp/a.sock".into()));
        assert_eq!(parse_workload_address("tcp://127.0.0.1:1").unwrap(), WorkloadAddress::Tcp("127.0.0.1:1".into()));
        assert!(parse_workload_address("unix://host/x").is_err());
        assert!(parse_workload_address("http://x").is_err());
    }

    #[test]
    fn empty_and_malformed_bundles_are_refused() {
        assert!(matches!(
            parse_bundle(&td(), br#"{"keys":[]}"#, TrustBundleFormat::Spiffe),
            Err(BootstrapError::Empty)
        ));
        let e = parse_bundle(&td(), b"not json", TrustBundleFormat::Spiffe).unwrap_err();
        assert!(e.to_string().starts_with("unable to parse SPIFFE trust bundle: "), "{e}");
        assert!(parse_bundle(&td(), b"no pem here", TrustBundleFormat::Pem).is_err());
    }

    /// A Unix socket HTTP server answering every request with `response`, as written.
    fn raw_http_server(path: &Path, response: Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let (mut head, mut chunk) = (Vec::new(), [0u8; 1024]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = stream.write_all(&response).await;
                });
            }
        });
    }

    async fn fetch_through(response: &[u8]) -> Result<Bundle, BootstrapError> {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("http.sock");
        raw_http_server(&socket, response.to_vec());
        let source = TrustBootstrap::Url(UrlSource {
            url: "http://localhost/start".into(),
            unix_socket: Some(socket),
            format: TrustBundleFormat::Pem,
            server_address: "127.0.0.1".into(),
            server_port: 8081,
        });
        source.fetch(&td()).await
    }

    #[tokio::test]
    async fn http_answers_other_than_a_bundle_are_errors() {
        let e = fetch_through(b"HTTP/1.1 503 Busy Now\r\nContent-Length: 0\r\n\r\n").await.unwrap_err();
        assert_eq!(e.to_string(), "error downloading trust bundle: 503 Busy Now");

        let mut huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BUNDLE_SIZE + 1).into_bytes();
        huge.resize(huge.len() + MAX_BUNDLE_SIZE + 1, b'A');
        let e = fetch_through(&huge).await.unwrap_err().to_string();
        assert!(
            e.starts_with("unable to read from trust bundle URL http://localhost/start?spiffe-trust-domain="),
            "{e}"
        );
        assert!(e.contains("too large for a trust bundle"), "{e}");

        let e = fetch_through(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n").await;
        let e = e.unwrap_err().to_string();
        assert!(e.ends_with("Get \"http://localhost/again\": stopped after 10 redirects"), "{e}");

        let e = fetch_through(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await.unwrap_err();
        assert!(matches!(e, BootstrapError::Pem(_)), "{e}");
    }

    #[tokio::test]
    async fn unreachable_sources_fail_with_spire_messages() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let source = TrustBootstrap::Url(UrlSource {
            url: "http://localhost/bundle".into(),
            unix_socket: Some(socket.clone()),
            format: TrustBundleFormat::Pem,
            server_address: "127.0.0.1".into(),
            server_port: 8081,
        });
        let e = source.fetch(&td()).await.unwrap_err().to_string();
        assert!(
            e.starts_with("unable to fetch trust bundle URL http://localhost/bundle?spiffe-trust-domain=example.org&"),
            "{e}"
        );
        assert!(e.ends_with(&format!("dial unix {}: no such file or directory", socket.display())), "{e}");

        let api = TrustBootstrap::WorkloadApi(format!("unix://{}", socket.display()));
        let e = api.fetch(&td()).await.unwrap_err().to_string();
        assert!(e.starts_with("unable to fetch the trust bundle from the SPIFFE Workload API at unix://"), "{e}");
    }
}
