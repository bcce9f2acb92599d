//! A lazily connected gRPC channel to a Unix socket: the provider starts before the server or agent
//! it polls, and each poll dials again if the socket was not there yet (as grpc-go's client does).

use std::path::Path;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// A channel whose connections go to `path`.
pub(super) fn connect_lazy(path: &Path) -> Channel {
    let path = path.to_owned();
    // The authority is never used for routing: every request goes to the socket.
    Endpoint::from_static("http://localhost").connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    }))
}
