//! A gRPC channel to a SPIRE API Unix socket.
//!
//! The socket is dialled before the HTTP/2 handshake so that a missing or refusing socket is reported
//! with the system error, in grpc-go's words (`dial unix <path>: connect: no such file or directory`),
//! rather than as an opaque transport failure. That first connection is then handed to tonic; later
//! reconnections dial the path again.

use std::io;
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::CliError;
use crate::goerror::errno_text;

/// Connects to the gRPC server listening on the Unix socket at `path`.
pub(crate) async fn connect_unix(path: &str) -> Result<Channel, CliError> {
    let first = UnixStream::connect(path)
        .await
        .map_err(|e| CliError::Dial { path: path.to_owned(), reason: errno_text(&e) })?;
    let first = Arc::new(Mutex::new(Some(first)));
    let path = path.to_owned();
    // The authority is never used for routing: every request goes to the socket.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let first = Arc::clone(&first);
            let path = path.clone();
            async move {
                let ready = first.lock().map_err(|_| io::Error::other("connection slot poisoned"))?.take();
                let stream = match ready {
                    Some(stream) => stream,
                    None => UnixStream::connect(&path).await?,
                };
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| CliError::Transport(error_chain(&e)))
}

/// `e` and its sources, joined as Go joins wrapped errors.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
