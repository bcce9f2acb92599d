//! A Workload API server with fixed content, for tests whose subject is a client (rust-spiffe's
//! `X509Source`, spiffe-rustls) rather than the agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use spire_identity::PrivateKey;
use spire_identity::x509::join_der_chain;
use spire_proto::workload::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse, WitsvidRequest, WitsvidResponse,
    X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest, X509svidResponse,
};
use tokio::net::UnixListener;
use tokio_stream::Stream;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What the server hands out: one X509-SVID and the bundle of its trust domain.
#[derive(Debug, Clone)]
pub struct StaticIdentity {
    /// The SVID's SPIFFE ID.
    pub spiffe_id: String,
    /// Leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's key.
    pub key: PrivateKey,
    /// Trust domain ID (`spiffe://example.org`) of the bundle.
    pub trust_domain_id: String,
    /// The bundle's X.509 authorities, DER.
    pub authorities: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct StaticWorkloadApi(StaticIdentity);

fn once<T: Send + 'static>(item: T) -> BoxStream<T> {
    // Streams stay open after the first message, as a real agent's do.
    Box::pin(tokio_stream::StreamExt::chain(tokio_stream::once(Ok(item)), tokio_stream::pending()))
}

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not served by the static test Workload API"))
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for StaticWorkloadApi {
    type FetchX509SVIDStream = BoxStream<X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<JwtBundlesResponse>;
    type FetchWITSVIDStream = BoxStream<WitsvidResponse>;
    type FetchWITBundlesStream = BoxStream<WitBundlesResponse>;

    async fn fetch_x509svid(&self, _: Request<X509svidRequest>) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let id = &self.0;
        let svid = X509svid {
            spiffe_id: id.spiffe_id.clone(),
            x509_svid: join_der_chain(&id.chain),
            x509_svid_key: id.key.pkcs8_der().to_vec(),
            bundle: join_der_chain(&id.authorities),
            hint: String::new(),
        };
        Ok(Response::new(once(X509svidResponse { svids: vec![svid], crl: vec![], federated_bundles: HashMap::new() })))
    }

    async fn fetch_x509_bundles(
        &self,
        _: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let bundles = HashMap::from([(self.0.trust_domain_id.clone(), join_der_chain(&self.0.authorities))]);
        Ok(Response::new(once(X509BundlesResponse { crl: vec![], bundles })))
    }

    async fn fetch_jwtsvid(&self, _: Request<JwtsvidRequest>) -> Result<Response<JwtsvidResponse>, Status> {
        unimplemented()
    }

    async fn fetch_jwt_bundles(
        &self,
        _: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        unimplemented()
    }

    async fn validate_jwtsvid(
        &self,
        _: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        unimplemented()
    }

    async fn fetch_witsvid(&self, _: Request<WitsvidRequest>) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        unimplemented()
    }

    async fn fetch_wit_bundles(
        &self,
        _: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        unimplemented()
    }
}

/// Serves `identity` on a new Unix socket in `dir` until the runtime stops; returns the socket path.
pub fn serve_static_workload_api(identity: StaticIdentity, dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("workload.sock");
    let listener = UnixListener::bind(&path)?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(StaticWorkloadApi(identity)))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    Ok(path)
}
