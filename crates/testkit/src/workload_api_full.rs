//! A scriptable Workload API server (plus `grpc.health.v1.Health`) on a Unix socket, for tests whose
//! subject is a Workload API client such as `spire-agent api ...`.
//!
//! Unlike [`crate::workload_api`], every RPC answers what the test sets: a message, a gRPC error, or
//! nothing at all (to exercise client timeouts). X509-SVID streams stay open and can be fed further
//! messages or ended, so watchers can be tested. The server checks the `workload.spiffe.io: true`
//! security header as SPIRE's middleware does and records what each call carried, so a test can assert
//! that the client always sent it.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use spire_proto::grpc::health::v1::health_check_response::ServingStatus;
use spire_proto::grpc::health::v1::health_server::{Health, HealthServer};
use spire_proto::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use spire_proto::workload::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse, WitsvidRequest, WitsvidResponse,
    X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest, X509svidResponse,
};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The security header every Workload API call must carry.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// What an RPC answers.
#[derive(Debug, Clone)]
pub enum Reply<T> {
    /// This message (the first message, for a stream).
    Message(T),
    /// This status.
    Error(Status),
    /// Nothing, ever: the call hangs until the client gives up.
    Hang,
}

impl<T> Default for Reply<T> {
    /// What SPIRE answers a caller with no registration entry.
    fn default() -> Self {
        Self::Error(Status::permission_denied("no identity issued"))
    }
}

/// One call the server received: the method and the security header's value, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCall {
    /// `FetchX509SVID`, `FetchJWTSVID`, `FetchJWTBundles`, `ValidateJWTSVID` or `Health/Check`.
    pub method: &'static str,
    /// The `workload.spiffe.io` metadata value, `None` when absent.
    pub header: Option<String>,
}

/// Answers ValidateJWTSVID; tests usually validate with `spire_identity::jwt::validate_jwt_svid`.
pub type Validator = Arc<dyn Fn(&ValidateJwtsvidRequest) -> Result<ValidateJwtsvidResponse, Status> + Send + Sync>;

/// An update for open X509-SVID streams: a message, or the end of the stream (status OK).
#[derive(Debug, Clone)]
enum Push {
    Message(Box<X509svidResponse>),
    End,
}

struct State {
    x509: Mutex<Reply<X509svidResponse>>,
    jwt_svid: Mutex<Reply<JwtsvidResponse>>,
    jwt_bundles: Mutex<Reply<JwtBundlesResponse>>,
    validator: Mutex<Option<Validator>>,
    health: Mutex<Reply<ServingStatus>>,
    calls: Mutex<Vec<SeenCall>>,
    jwt_requests: Mutex<Vec<JwtsvidRequest>>,
    validate_requests: Mutex<Vec<ValidateJwtsvidRequest>>,
    x509_streams: Mutex<usize>,
    pushes: broadcast::Sender<Push>,
}

impl State {
    /// Records the call and applies SPIRE's security header check (`pkg/agent/endpoints/middleware.go`):
    /// exactly one `workload.spiffe.io` value, equal to `true`.
    fn admit<T>(&self, method: &'static str, req: &Request<T>) -> Result<(), Status> {
        let values: Vec<String> =
            req.metadata().get_all(SECURITY_HEADER).iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
        self.calls.lock().unwrap().push(SeenCall { method, header: values.first().cloned() });
        if values.len() != 1 || values[0] != "true" {
            return Err(Status::invalid_argument("security header missing from request"));
        }
        Ok(())
    }
}

/// A running scriptable Workload API server; it serves until the runtime stops. Cloning shares it.
#[derive(Clone)]
pub struct WorkloadApiFixture {
    state: Arc<State>,
    path: PathBuf,
}

impl std::fmt::Debug for WorkloadApiFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadApiFixture").field("path", &self.path).finish_non_exhaustive()
    }
}

impl WorkloadApiFixture {
    /// Serves on a new socket `workload.sock` in `dir`. Until told otherwise, X.509 and JWT calls fail
    /// with SPIRE's `PermissionDenied: no identity issued` and health checks report `SERVING`.
    pub fn serve(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("workload.sock");
        let listener = UnixListener::bind(&path)?;
        let state = Arc::new(State {
            x509: Mutex::default(),
            jwt_svid: Mutex::default(),
            jwt_bundles: Mutex::default(),
            validator: Mutex::default(),
            health: Mutex::new(Reply::Message(ServingStatus::Serving)),
            calls: Mutex::default(),
            jwt_requests: Mutex::default(),
            validate_requests: Mutex::default(),
            x509_streams: Mutex::default(),
            pushes: broadcast::channel(16).0,
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(SpiffeWorkloadApiServer::from_arc(Arc::new(Service(Arc::clone(&state)))))
                .add_service(HealthServer::from_arc(Arc::new(Service(Arc::clone(&state)))))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Ok(Self { state, path })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// What each new FetchX509SVID stream gets first.
    pub fn set_x509(&self, reply: Reply<X509svidResponse>) {
        *self.state.x509.lock().unwrap() = reply;
    }

    /// Sends `resp` on every open FetchX509SVID stream.
    pub fn push_x509(&self, resp: X509svidResponse) {
        let _ = self.state.pushes.send(Push::Message(Box::new(resp)));
    }

    /// Ends every open FetchX509SVID stream with status OK, as an agent shutting down would.
    pub fn end_x509_streams(&self) {
        let _ = self.state.pushes.send(Push::End);
    }

    /// How many FetchX509SVID streams were opened.
    pub fn x509_streams_opened(&self) -> usize {
        *self.state.x509_streams.lock().unwrap()
    }

    /// The answer to FetchJWTSVID.
    pub fn set_jwt_svid(&self, reply: Reply<JwtsvidResponse>) {
        *self.state.jwt_svid.lock().unwrap() = reply;
    }

    /// The first message of FetchJWTBundles streams.
    pub fn set_jwt_bundles(&self, reply: Reply<JwtBundlesResponse>) {
        *self.state.jwt_bundles.lock().unwrap() = reply;
    }

    /// How ValidateJWTSVID answers.
    pub fn set_validator(&self, validator: Validator) {
        *self.state.validator.lock().unwrap() = Some(validator);
    }

    /// What `grpc.health.v1.Health/Check` answers.
    pub fn set_health(&self, reply: Reply<ServingStatus>) {
        *self.state.health.lock().unwrap() = reply;
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<SeenCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Every FetchJWTSVID request received so far.
    pub fn jwt_requests(&self) -> Vec<JwtsvidRequest> {
        self.state.jwt_requests.lock().unwrap().clone()
    }

    /// Every ValidateJWTSVID request received so far.
    pub fn validate_requests(&self) -> Vec<ValidateJwtsvidRequest> {
        self.state.validate_requests.lock().unwrap().clone()
    }
}

/// One X509-SVID as the Workload API carries it.
pub fn x509_svid(spiffe_id: &str, chain: &[Vec<u8>], key_pkcs8: &[u8], bundle: &[Vec<u8>], hint: &str) -> X509svid {
    X509svid {
        spiffe_id: spiffe_id.to_owned(),
        x509_svid: spire_identity::x509::join_der_chain(chain),
        x509_svid_key: key_pkcs8.to_vec(),
        bundle: spire_identity::x509::join_der_chain(bundle),
        hint: hint.to_owned(),
    }
}

struct Service(Arc<State>);

async fn answer<T>(reply: Reply<T>) -> Result<T, Status> {
    match reply {
        Reply::Message(m) => Ok(m),
        Reply::Error(s) => Err(s),
        Reply::Hang => std::future::pending().await,
    }
}

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not served by the scriptable test Workload API"))
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Service {
    type FetchX509SVIDStream = BoxStream<X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<JwtBundlesResponse>;
    type FetchWITSVIDStream = BoxStream<WitsvidResponse>;
    type FetchWITBundlesStream = BoxStream<WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        req: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        self.0.admit("FetchX509SVID", &req)?;
        let first = self.0.x509.lock().unwrap().clone();
        let first = match first {
            Reply::Message(m) => Some(m),
            Reply::Error(s) => return Err(s),
            Reply::Hang => None,
        };
        // Subscribe before counting the stream, so that a push made once a test sees the count lands.
        let mut pushes = self.0.pushes.subscribe();
        *self.0.x509_streams.lock().unwrap() += 1;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            if let Some(m) = first
                && tx.send(Ok(m)).await.is_err()
            {
                return;
            }
            loop {
                tokio::select! {
                    push = pushes.recv() => match push {
                        Ok(Push::Message(m)) => {
                            if tx.send(Ok(*m)).await.is_err() {
                                return;
                            }
                        }
                        Ok(Push::End) | Err(broadcast::error::RecvError::Closed) => return,
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                    },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_x509_bundles(
        &self,
        _: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        unimplemented()
    }

    async fn fetch_jwtsvid(&self, req: Request<JwtsvidRequest>) -> Result<Response<JwtsvidResponse>, Status> {
        self.0.admit("FetchJWTSVID", &req)?;
        self.0.jwt_requests.lock().unwrap().push(req.get_ref().clone());
        let reply = self.0.jwt_svid.lock().unwrap().clone();
        answer(reply).await.map(Response::new)
    }

    async fn fetch_jwt_bundles(
        &self,
        req: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.0.admit("FetchJWTBundles", &req)?;
        let reply = self.0.jwt_bundles.lock().unwrap().clone();
        let first = match reply {
            Reply::Message(m) => Some(Ok(m)),
            Reply::Error(s) => return Err(s),
            Reply::Hang => None,
        };
        // The stream stays open after its first message, as an agent's does.
        let stream = tokio_stream::StreamExt::chain(tokio_stream::iter(first), tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn validate_jwtsvid(
        &self,
        req: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        self.0.admit("ValidateJWTSVID", &req)?;
        self.0.validate_requests.lock().unwrap().push(req.get_ref().clone());
        let validator = self.0.validator.lock().unwrap().clone();
        match validator {
            Some(v) => v(req.get_ref()).map(Response::new),
            None => Err(Status::unimplemented("no validator set")),
        }
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

#[tonic::async_trait]
impl Health for Service {
    type WatchStream = BoxStream<HealthCheckResponse>;

    async fn check(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        // SPIRE's health service needs no security header; record what came anyway.
        let header = req.metadata().get(SECURITY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.0.calls.lock().unwrap().push(SeenCall { method: "Health/Check", header });
        let reply = self.0.health.lock().unwrap().clone();
        answer(reply).await.map(|s| Response::new(HealthCheckResponse { status: s as i32 }))
    }

    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        unimplemented()
    }

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        unimplemented()
    }
}
