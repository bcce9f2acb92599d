//! The registrar's listeners: HTTPS for the admission webhooks, plain HTTP for metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// The largest request body read: an AdmissionReview of a large pod is tens of kilobytes; the API
/// server caps objects at 3 MiB.
pub const MAX_BODY: usize = 4 << 20;

/// Connections served at once; the API server makes a few, Prometheus one.
const MAX_CONNECTIONS: usize = 256;

/// How long a client may take over a TLS handshake, its request headers, or its body: the API server
/// sends a review in one go, and a client that trickles bytes only holds a connection slot.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is not `host:port` / `:port`.
    #[error("invalid listen address {0:?}: use host:port or :port")]
    Address(String),
    /// Binding failed.
    #[error("unable to listen on {addr}: {source}")]
    Bind {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Go's listen address syntax: `:8443` is every interface.
pub fn listen_addr(addr: &str) -> Result<SocketAddr, ListenError> {
    let full = if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.to_owned() };
    if let Ok(parsed) = full.parse() {
        return Ok(parsed);
    }
    // A host name (`localhost:8443`): resolve it once.
    std::net::ToSocketAddrs::to_socket_addrs(&full)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ListenError::Address(addr.to_owned()))
}

/// Binds `addr` (Go syntax).
pub async fn bind(addr: &str) -> Result<TcpListener, ListenError> {
    let socket = listen_addr(addr)?;
    TcpListener::bind(socket).await.map_err(|source| ListenError::Bind { addr: addr.to_owned(), source })
}

/// A request as the handlers see it: method, path, content type and the whole body.
#[derive(Debug)]
pub struct SimpleRequest {
    /// `POST`...
    pub method: hyper::Method,
    /// The path, without the query.
    pub path: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body (at most [`MAX_BODY`]).
    pub body: Bytes,
}

/// A response: status, content type, body.
pub type SimpleResponse = (StatusCode, &'static str, Vec<u8>);

/// `text/plain` `status` with `message`, as Go's `http.Error` writes it.
pub fn error(status: StatusCode, message: &str) -> SimpleResponse {
    (status, "text/plain; charset=utf-8", format!("{message}\n").into_bytes())
}

/// Serves `handler` on `listener`, over TLS when `tls` is given, until the listener fails.
pub async fn serve<H, F>(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, handler: H)
where
    H: Fn(SimpleRequest) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = SimpleResponse> + Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, stop accepting until a connection ends (the kernel's backlog holds the rest).
        let slot = Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(respond(req, handler).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(IO_TIMEOUT);
            builder.http2().timer(TokioTimer::new()).keep_alive_interval(IO_TIMEOUT);
            let result = match acceptor {
                Some(acceptor) => match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn respond<H, F>(req: Request<Incoming>, handler: H) -> Response<Full<Bytes>>
where
    H: Fn(SimpleRequest) -> F,
    F: Future<Output = SimpleResponse>,
{
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(IO_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return build(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or unreadable")),
        Err(_) => return build(error(StatusCode::REQUEST_TIMEOUT, "request body not received in time")),
    };
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = SimpleRequest { method: parts.method, path: parts.uri.path().to_owned(), content_type, body };
    build(handler(request).await)
}

fn build((status, content_type, body): SimpleResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_listen_addresses() {
        assert_eq!(listen_addr(":8443").unwrap().to_string(), "0.0.0.0:8443");
        assert_eq!(listen_addr("127.0.0.1:9443").unwrap().to_string(), "127.0.0.1:9443");
        assert!(listen_addr("nonsense").is_err());
    }
}
