//! The HTTP client of the cloud attestors (`gcp_iit`, `azure_msi`): key sets, OAuth tokens and the
//! providers' REST APIs. HTTPS is rustls on aws-lc-rs with the system roots; plain HTTP is allowed
//! because the metadata services are HTTP and because tests point the endpoints at stand-ins on
//! loopback. Every answer is untrusted input: read with a size limit and a timeout.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use spire_cli::goerror::chain;

/// The largest answer read (key sets and REST documents are far smaller).
pub const MAX_BODY: usize = 4 << 20;

/// How long one request may take end to end.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Expires` header, if any.
    pub expires: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// Up to 1024 bytes of the body, as SPIRE quotes an unexpected answer.
    pub fn body_start(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(1024)]).into_owned()
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> Result<HttpsClient, String> {
    static CLIENT: OnceLock<HttpsClient> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let tls = rustls::ClientConfig::builder_with_provider(spire_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(Arc::unwrap_or_clone(crate::federation::client::auth::system_roots()))
        .with_no_client_auth();
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let built: HttpsClient = Client::builder(TokioExecutor::new()).build(connector);
    Ok(CLIENT.get_or_init(|| built).clone())
}

/// Sends one request; `Err` is a transport failure, any status is `Ok`.
pub async fn send(
    method: hyper::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Response, String> {
    let uri: hyper::Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
    let mut request = hyper::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header(hyper::header::USER_AGENT, concat!("spire-rs-server/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let client = client()?;
    let exchange = async move {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let status = response.status().as_u16();
        let expires = response.headers().get(hyper::header::EXPIRES).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Response { status, expires, body })
    };
    tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
}

/// A GET.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    send(hyper::Method::GET, url, headers, None).await
}

/// `application/x-www-form-urlencoded` of `pairs`, as Go's `url.Values.Encode` (keys sorted).
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                spire_attestation::azure_msi::query_escape(k),
                spire_attestation::azure_msi::query_escape(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}
