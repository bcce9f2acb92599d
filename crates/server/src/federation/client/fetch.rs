//! One HTTPS GET of a foreign bundle endpoint and the reading of its answer, as SPIRE's
//! `client.FetchBundle`: redirects followed (at most 10, as Go's client), any status but 200 an
//! error quoting the start of the body, the body read as the trust domain's SPIFFE bundle.
//!
//! The body is untrusted input: it is read with a size limit and parsed by
//! [`Bundle::from_spiffe_json`] (fuzzed by `fuzz/fuzz_targets/bundle.rs`).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use spire_cli::goerror::chain;
use spire_identity::bundle::BundleError;
use spire_identity::{Bundle, SpiffeId, TrustDomain};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Redirects followed before giving up, as Go's `http.Client`.
const MAX_REDIRECTS: usize = 10;

/// How long one fetch may take end to end. Go's client has no overall limit (only 30 s to connect
/// and 10 s for the handshake); one stuck endpoint must not stall its updater for ever.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest bundle document read; far above any real bundle.
pub const MAX_BODY: usize = 4 << 20;

/// Why a fetch failed; the messages are SPIRE's.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request could not be made or answered (TLS refusal, connection refused, timeout...).
    #[error("failed to fetch bundle: Get {url:?}: {reason}")]
    Request {
        /// The URL asked.
        url: String,
        /// What went wrong, with its causes.
        reason: String,
    },
    /// Not 200 OK.
    #[error("unexpected status {status} fetching bundle: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// Up to 1024 bytes of the body.
        body: String,
    },
    /// Not a SPIFFE bundle document.
    #[error("failed to decode bundle: {0}")]
    Decode(String),
    /// A document that parses but cannot be a bundle.
    #[error("{0}")]
    Bundle(BundleError),
    /// An X.509 authority names another trust domain (a check SPIRE does not make).
    #[error("x509-svid entry {index} is a CA of trust domain {found:?}, not of {expected:?}")]
    ForeignAuthority {
        /// Position among the X.509 authorities.
        index: usize,
        /// The trust domain of its SPIFFE ID.
        found: String,
        /// The trust domain fetched.
        expected: String,
    },
}

/// GETs `url` with `tls` and reads the answer as `trust_domain`'s bundle.
pub async fn fetch(url: &str, trust_domain: &TrustDomain, tls: rustls::ClientConfig) -> Result<Bundle, FetchError> {
    let request_error = |reason: String| FetchError::Request { url: url.to_owned(), reason };
    let body = tokio::time::timeout(FETCH_TIMEOUT, get(url, tls))
        .await
        .map_err(|_| request_error(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())))?
        .map_err(|e| match e {
            GetError::Request(reason) => request_error(reason),
            GetError::Other(e) => e,
        })?;
    decode(trust_domain, &body)
}

enum GetError {
    Request(String),
    Other(FetchError),
}

async fn get(url: &str, tls: rustls::ClientConfig) -> Result<Bytes, GetError> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    // One client per fetch (the TLS configuration follows the bundle held), keeping no idle connection.
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
    let mut target = url::Url::parse(url).map_err(|e| GetError::Request(e.to_string()))?;
    for _ in 0..=MAX_REDIRECTS {
        target.set_fragment(None);
        let uri: hyper::Uri =
            target.as_str().parse().map_err(|e: hyper::http::uri::InvalidUri| GetError::Request(e.to_string()))?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::USER_AGENT, concat!("spire-rs-server/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| GetError::Request(e.to_string()))?;
        let response = client.request(request).await.map_err(|e| GetError::Request(chain(&e)))?;
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(hyper::header::LOCATION)
        {
            let location = location.to_str().map_err(|e| GetError::Request(e.to_string()))?;
            target = target.join(location).map_err(|e| GetError::Request(format!("bad Location: {e}")))?;
            continue;
        }
        if status != hyper::StatusCode::OK {
            let start = Limited::new(response.into_body(), 1024).collect().await;
            let body = start.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
            return Err(GetError::Other(FetchError::Status { status: status.as_u16(), body }));
        }
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await;
        return body.map(|b| b.to_bytes()).map_err(|e| GetError::Other(FetchError::Decode(e.to_string())));
    }
    Err(GetError::Request(format!("stopped after {MAX_REDIRECTS} redirects")))
}

/// Reads a fetched document as `trust_domain`'s bundle: a SPIFFE bundle whose X.509 authorities
/// carrying a SPIFFE ID all belong to `trust_domain`.
pub fn decode(trust_domain: &TrustDomain, body: &[u8]) -> Result<Bundle, FetchError> {
    let bundle = Bundle::from_spiffe_json(trust_domain.clone(), body).map_err(|e| match e {
        BundleError::Json(m) => FetchError::Decode(m),
        other => FetchError::Bundle(other),
    })?;
    for (index, der) in bundle.x509_authorities().iter().enumerate() {
        if let Some(found) = ca_trust_domain(der)
            && &found != trust_domain
        {
            return Err(FetchError::ForeignAuthority {
                index,
                found: found.as_str().to_owned(),
                expected: trust_domain.as_str().to_owned(),
            });
        }
    }
    Ok(bundle)
}

/// The trust domain of a CA certificate's SPIFFE ID (SPIRE's CAs carry `spiffe://<td>`), if any.
fn ca_trust_domain(der: &[u8]) -> Option<TrustDomain> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => SpiffeId::parse(u).ok().map(|id| id.trust_domain().clone()),
        _ => None,
    })
}
