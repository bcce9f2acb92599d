//! The server's HTTP GET of the agent's challenge answer: plain HTTP/1.1 to the attested host name
//! and port, bounded in time and size, as SPIRE's `VerifyChallenge` does it with Go's client.
//!
//! The host name is resolved and dialled as given (each address in turn) and sent as the `Host`
//! header with the port; it never goes through URL parsing, so nothing in it (an `@`, say) can
//! redirect the request elsewhere. The status code is not looked at, only the body, as in SPIRE.
//! Unlike Go's default client, redirects are not followed and no `HTTP_PROXY` is used: the
//! answer must come from the host the agent named.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// SPIRE's time limit for the whole fetch.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The first `limit` bytes of the body served at `http://<host>:<port><path>`, or an error worded
/// as Go's client words it (`Get "<url>": …`).
pub async fn get(host: &str, port: i64, path: &str, limit: usize, timeout: Duration) -> Result<Vec<u8>, String> {
    let url = format!("http://{host}:{port}{path}");
    let fail = |e: String| format!("Get {}: {e}", spire_cli::flags::go_quote(&url));
    match tokio::time::timeout(timeout, fetch(host, port, path, limit)).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail("context deadline exceeded".into())),
    }
}

async fn fetch(host: &str, port: i64, path: &str, limit: usize) -> Result<Vec<u8>, String> {
    let port16 = u16::try_from(port).map_err(|_| format!("dial tcp: address {port}: invalid port"))?;
    let addrs = tokio::net::lookup_host((host, port16)).await.map_err(|e| format!("dial tcp: lookup {host}: {e}"))?;
    let mut stream = None;
    let mut last_error = format!("dial tcp: lookup {host}: no such host");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("dial tcp {addr}: connect: {e}"),
        }
    }
    let stream = stream.ok_or(last_error)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::USER_AGENT, "Go-http-client/1.1")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let mut body = sender.send_request(request).await.map_err(|e| e.to_string())?.into_body();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(frame) = body.frame().await else { break };
            if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        out.truncate(limit);
        Ok(out)
    }
    .await;
    connection.abort();
    result
}
