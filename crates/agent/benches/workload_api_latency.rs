//! FetchX509SVID latency through the agent's Workload API, on an open connection and with a fresh
//! connection per call, beside raw tonic services over a Unix socket measured in the same run.
//!
//! A real `spire-server` process (temp dir, SQLite, join token), an entry for this process's uid, and
//! the agent started in-process with `spire_agent::run::start` (memory key manager, the `unix` workload
//! attestor with its default config: `discover_workload_path = false`). All servers and the client
//! share one multi-threaded tokio runtime (one worker per core).
//!
//! Measured, per call, the time to the first message of the response:
//! - agent FetchX509SVID: header check, peer lookup, unix attestation (reads `/proc/<pid>/status`,
//!   resolves user and group names), cache lookup, response build; the first message of the stream.
//! - agent Health/Check: the same server, socket and connection, no attestation (the agent's floor).
//! - echo (the baseline): a tonic server on its own Unix socket whose unary FetchJWTSVID returns a
//!   constant message padded to the encoded size of the agent's X509-SVID response; no work at all.
//! - static FetchX509SVID: the same tonic server returning the agent's own response bytes as the first
//!   message of a stream it keeps open, like the agent does (same RPC shape, no attestation).
//!
//! Run: `cargo build --release -p spire-server --bin spire-server` once, then
//! `cargo bench -p spire-agent --bench workload_api_latency`.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use spire_agent::node_attestor::JoinTokenAttestor;
use spire_agent::run::{AgentSettings, start};
use spire_agent::workload_attestor::{UnixAttestor, UnixConfig, WorkloadAttestor, WorkloadAttestors};
use spire_identity::{KeyType, TrustDomain};
use spire_keymanager::MemoryKeyManager;
use spire_proto::grpc::health::v1::HealthCheckRequest;
use spire_proto::grpc::health::v1::health_client::HealthClient;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse, WitsvidRequest, WitsvidResponse,
    X509BundlesRequest, X509BundlesResponse, X509svidRequest, X509svidResponse,
};
use support::{channel, fetch_x509, quantile, us, with_header};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Calls per case on the open connection: `ROUNDS` blocks of `BLOCK`, the cases taking turns.
const ROUNDS: usize = 20;
const BLOCK: usize = 250;
/// Calls per case with a fresh connection each.
const FRESH_ROUNDS: usize = 20;
const FRESH_BLOCK: usize = 25;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The baseline server: constant answers, no header check, no attestation.
#[derive(Debug, Clone)]
struct Static {
    x509: X509svidResponse,
    echo: JwtsvidResponse,
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Static {
    type FetchX509SVIDStream = BoxStream<X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<JwtBundlesResponse>;
    type FetchWITSVIDStream = BoxStream<WitsvidResponse>;
    type FetchWITBundlesStream = BoxStream<WitBundlesResponse>;

    async fn fetch_x509svid(&self, _: Request<X509svidRequest>) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        // One message, then held open until the client goes away, as the agent's stream is.
        let stream = tokio_stream::once(Ok(self.x509.clone())).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_jwtsvid(&self, _: Request<JwtsvidRequest>) -> Result<Response<JwtsvidResponse>, Status> {
        Ok(Response::new(self.echo.clone()))
    }

    async fn fetch_x509_bundles(
        &self,
        _: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn fetch_jwt_bundles(
        &self,
        _: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn validate_jwtsvid(
        &self,
        _: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn fetch_witsvid(&self, _: Request<WitsvidRequest>) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn fetch_wit_bundles(
        &self,
        _: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        Err(Status::unimplemented(""))
    }
}

/// A unary answer padded to exactly `size` encoded bytes.
fn padded_echo(size: usize) -> JwtsvidResponse {
    let mut pad = size;
    loop {
        let r = JwtsvidResponse {
            svids: vec![Jwtsvid {
                spiffe_id: "spiffe://example.org/echo".into(),
                svid: "x".repeat(pad),
                hint: String::new(),
            }],
        };
        match r.encoded_len() {
            n if n == size || pad == 0 => return r,
            n if n > size => pad -= 1,
            _ => pad += 1,
        }
    }
}

fn serve_static(socket: &std::path::Path, service: Static) {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
}

async fn agent_fetch(ch: &Channel) {
    let resp = fetch_x509(ch).await.unwrap();
    assert_eq!(resp.svids.len(), 1);
}

async fn agent_health(ch: &Channel) {
    let resp = HealthClient::new(ch.clone()).check(HealthCheckRequest::default()).await.unwrap();
    assert_eq!(resp.into_inner().status, 1);
}

async fn echo(ch: &Channel) {
    let req = with_header(JwtsvidRequest { audience: vec!["bench".into()], spiffe_id: String::new() });
    let resp = SpiffeWorkloadApiClient::new(ch.clone()).fetch_jwtsvid(req).await.unwrap();
    assert_eq!(resp.into_inner().svids.len(), 1);
}

async fn static_fetch(ch: &Channel) {
    let resp = fetch_x509(ch).await.unwrap();
    assert_eq!(resp.svids.len(), 1);
}

/// Times `block` calls of `f` and appends them to `out`.
async fn timed<F, Fut>(out: &mut Vec<Duration>, block: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..block {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
}

fn line(name: &str, samples: &[Duration], baseline: &[Duration]) {
    let (p50, p99) = (quantile(samples, 0.5), quantile(samples, 0.99));
    let ratio = p50.as_secs_f64() / quantile(baseline, 0.5).as_secs_f64();
    println!("  {name:<44} p50 {:>8.1} µs   p99 {:>8.1} µs   {ratio:.2}x echo p50", us(p50), us(p99));
}

#[tokio::main]
async fn main() {
    let server = support::start_server().await;
    let token = support::join_token(&server);
    let uid = support::uid();
    let dir = tempfile::tempdir().unwrap();
    support::create_entries(&server, dir.path(), &support::agent_id(&token), "bench", 1);

    let attestor: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::new(UnixConfig::default()));
    let socket = dir.path().join("agent.sock");
    let agent = start(AgentSettings {
        trust_domain: TrustDomain::parse("example.org").unwrap(),
        server_address: format!("127.0.0.1:{}", server.port),
        data_dir: dir.path().join("data"),
        socket_path: socket.clone(),
        node_attestor: Arc::new(JoinTokenAttestor::new(Some(token))),
        trust_bootstrap: None,
        insecure_bootstrap: true,
        workload_key_type: KeyType::EcP256,
        availability_target: None,
        sync_interval: Duration::from_secs(5),
        jwt_cache_max: 1000,
        x509_cache_max: 1000,
        allow_unauthenticated_verifiers: false,
        allowed_foreign_jwt_claims: Vec::new(),
        keys: Arc::new(MemoryKeyManager::new()),
        attestor: Arc::new(WorkloadAttestors::new([attestor])),
    })
    .await
    .unwrap();

    let agent_ch = channel(&socket).await;
    let x509 = fetch_x509(&agent_ch).await.unwrap();
    assert_eq!(x509.svids.len(), 1, "uid {uid} gets exactly the bench entry");
    let size = x509.encoded_len();
    let static_socket = dir.path().join("static.sock");
    serve_static(&static_socket, Static { x509, echo: padded_echo(size) });
    let static_ch = channel(&static_socket).await;

    println!("Workload API latency, agent in-process, uid {uid}; response {size} bytes (1 X509-SVID, P-256)");
    println!("open connection: {ROUNDS} rounds x {BLOCK} calls per case, cases in turn");
    let (mut fetch, mut health, mut base, mut stat) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm-up.
    timed(&mut Vec::new(), 200, || agent_fetch(&agent_ch)).await;
    timed(&mut Vec::new(), 200, || echo(&static_ch)).await;
    for _ in 0..ROUNDS {
        timed(&mut base, BLOCK, || echo(&static_ch)).await;
        timed(&mut fetch, BLOCK, || agent_fetch(&agent_ch)).await;
        timed(&mut stat, BLOCK, || static_fetch(&static_ch)).await;
        timed(&mut health, BLOCK, || agent_health(&agent_ch)).await;
    }
    line("echo: unary, same payload size (baseline)", &base, &base);
    line("static FetchX509SVID stream, same bytes", &stat, &base);
    line("agent Health/Check (no attestation)", &health, &base);
    line("agent FetchX509SVID", &fetch, &base);
    let open_fetch = quantile(&fetch, 0.5);

    // Where the difference goes: the attestation step alone, called directly (same process, same PID).
    let pid = i32::try_from(std::process::id()).unwrap();
    let unix = UnixAttestor::new(UnixConfig::default());
    let plugins = WorkloadAttestors::new([Arc::new(unix) as Arc<dyn WorkloadAttestor>]);
    let watcher = spire_agent::peer::PeerTracker::new().watch(pid).unwrap();
    let (mut by_pid, mut caller, mut check) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        timed(&mut check, BLOCK, || {
            watcher.check().unwrap();
            std::future::ready(())
        })
        .await;
        timed(&mut by_pid, BLOCK, || async {
            std::hint::black_box(plugins.attest_pid(pid).await.unwrap());
        })
        .await;
        timed(&mut caller, BLOCK, || async {
            std::hint::black_box(plugins.attest(&watcher).await.unwrap());
        })
        .await;
    }
    println!("attestation alone, called in-process (not over the socket):");
    let step = |name: &str, samples: &[Duration]| {
        println!(
            "  {name:<48} p50 {:>8.1} µs   p99 {:>8.1} µs",
            us(quantile(samples, 0.5)),
            us(quantile(samples, 0.99))
        )
    };
    step("unix attestor by PID (opens /proc/<pid>/status)", &by_pid);
    step("unix attestor for a caller + Watcher::check", &caller);
    step("Watcher::check alone (pidfd, owner)", &check);

    println!("fresh connection per call (connect + HTTP/2 handshake + call): {FRESH_ROUNDS} x {FRESH_BLOCK} per case");
    let (mut fresh_fetch, mut fresh_base) = (Vec::new(), Vec::new());
    for _ in 0..FRESH_ROUNDS {
        timed(&mut fresh_base, FRESH_BLOCK, || async { echo(&channel(&static_socket).await).await }).await;
        timed(&mut fresh_fetch, FRESH_BLOCK, || async { agent_fetch(&channel(&socket).await).await }).await;
    }
    line("echo, new connection (baseline)", &fresh_base, &fresh_base);
    line("agent connect + attest + FetchX509SVID", &fresh_fetch, &fresh_base);
    println!(
        "  connect + attest + fetch = {:.2}x the open-connection FetchX509SVID p50",
        quantile(&fresh_fetch, 0.5).as_secs_f64() / open_fetch.as_secs_f64()
    );
    agent.shutdown().await;
}
