//! The server's listeners: TCP with mTLS for agents and remote admins, and the private Unix socket for
//! local administration (local callers are admin). Both run the same services behind the same
//! authorization layer; Debug, Logger and health are served on the Unix socket only.

pub mod conn;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use spire_identity::BundleSet;
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::api::ServerContext;
use crate::api::agent::AgentService;
use crate::api::auth::AuthLayer;
use crate::api::bundle::BundleService;
use crate::api::entry::EntryService;
use crate::api::svid::SvidService;
use crate::api::trustdomain::TrustDomainService;
use conn::TlsConn;
use tls::ServerCert;

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Binding a socket failed.
    #[error("failed to listen on {what}: {source}")]
    Bind {
        /// The address or path.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Creating the private socket failed.
    #[error(transparent)]
    Uds(#[from] spire_uds::BindError),
    /// TLS setup failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Adds the services served on both listeners to `routes`.
fn api_routes(ctx: &Arc<ServerContext>, routes: Routes) -> Routes {
    use spire_proto::spire::api::server::agent::v1::agent_server::AgentServer;
    use spire_proto::spire::api::server::bundle::v1::bundle_server::BundleServer;
    use spire_proto::spire::api::server::entry::v1::entry_server::EntryServer;
    use spire_proto::spire::api::server::svid::v1::svid_server::SvidServer;
    use spire_proto::spire::api::server::trustdomain::v1::trust_domain_server::TrustDomainServer;
    routes
        .add_service(EntryServer::new(EntryService::new(ctx.clone())))
        .add_service(BundleServer::new(BundleService::new(ctx.clone())))
        .add_service(TrustDomainServer::new(TrustDomainService::new(ctx.clone())))
        .add_service(AgentServer::new(AgentService::new(ctx.clone())))
        .add_service(SvidServer::new(SvidService::new(ctx.clone())))
}

/// Binds the private Unix socket with SPIRE's mode (0770, owner and group: every local caller is
/// an admin), from the moment it exists; see [`spire_uds::bind`].
pub fn bind_uds(path: &Path) -> Result<UnixListener, EndpointError> {
    Ok(spire_uds::bind(path, spire_uds::ADMIN_MODE)?)
}

/// Serves the private API on `listener` until `shutdown` resolves, whatever `:authority` the
/// clients send ([`spire_uds::incoming`]).
pub async fn serve_uds(
    ctx: Arc<ServerContext>,
    listener: UnixListener,
    extra: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EndpointError> {
    Server::builder()
        .layer(AuthLayer::new(ctx.clone()))
        .add_routes(api_routes(&ctx, extra))
        .serve_with_incoming_shutdown(spire_uds::incoming(listener, Some), shutdown)
        .await?;
    Ok(())
}

/// Serves the API over mTLS on `listener` until `shutdown` resolves. Handshakes run in their own
/// tasks so that a slow or hostile client cannot hold up the accept loop.
pub async fn serve_tcp(
    ctx: Arc<ServerContext>,
    listener: TcpListener,
    cert: Arc<ServerCert>,
    bundles: Arc<RwLock<BundleSet>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EndpointError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(cert, bundles)?));
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<TlsConn>>(64);
    let accept_loop = tokio::spawn(async move {
        loop {
            let Ok(tcp) = accept_tcp(&listener).await else { continue };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await;
                if let Ok(Ok(stream)) = handshake {
                    let _ = tx.send(Ok(TlsConn::new(stream))).await;
                }
            });
        }
    });
    let result = Server::builder()
        .layer(AuthLayer::new(ctx.clone()))
        .add_routes(api_routes(&ctx, Routes::default()))
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await;
    accept_loop.abort();
    Ok(result?)
}

/// Binds the TCP listener.
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, EndpointError> {
    TcpListener::bind(addr).await.map_err(|source| EndpointError::Bind { what: addr.to_string(), source })
}

/// The next connection, with Nagle's algorithm off, as Go's net package sets it for SPIRE's server:
/// `serve_with_incoming` ignores tonic's own `tcp_nodelay`. With Nagle on, a response written in
/// several small pieces waits for the client's delayed ACK (up to 40 ms) before the second piece.
async fn accept_tcp(listener: &TcpListener) -> std::io::Result<tokio::net::TcpStream> {
    let (tcp, _) = listener.accept().await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { tokio::net::TcpStream::connect(addr).await.unwrap() });
        let tcp = accept_tcp(&listener).await.unwrap();
        assert!(tcp.nodelay().unwrap());
        client.await.unwrap();
    }
}
