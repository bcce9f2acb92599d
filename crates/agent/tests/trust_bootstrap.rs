//! The agent's bootstrap bundle from `trust_bundle_url` (HTTPS checked against `SSL_CERT_FILE`, or
//! plain HTTP through `trust_bundle_unix_socket`) and from `trust_bundle_spiffe_workload_api`, with a
//! real `spire-server`, real `spire-agent` processes, a real TLS bundle server made here, and the
//! independent rust-spiffe client as the workload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id, server_cli};
use spire_testkit::process::TestServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

fn server_binary() -> PathBuf {
    spire_testkit::agent::server_binary(Path::new(AGENT))
}

fn cli(server: &TestServer, args: &[&str]) -> String {
    server_cli(&server_binary(), server, args)
}

fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// An entry for this test's uid under `parent`.
fn register_uid(server: &TestServer, parent: &str, spiffe_id: &str) {
    let selector = format!("unix:uid:{}", uid());
    cli(server, &["entry", "create", "-parentID", parent, "-spiffeID", spiffe_id, "-selector", &selector]);
}

/// A CA made for the bundle server's TLS certificate.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a CA under another's name would be found, and fail on the signature.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("trust bundle test CA {}", NEXT.fetch_add(1, Ordering::Relaxed));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Self { pem, issuer: Issuer::new(params, key) }
    }

    /// Writes the CA certificate to `dir/name`, for `SSL_CERT_FILE`.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A TLS server config for `localhost`, signed by this CA.
    fn localhost(&self) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &self.issuer).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        Arc::new(config)
    }
}

/// What the bundle server answers on a path: a status line, extra headers and a body.
#[derive(Clone)]
struct Reply {
    status: &'static str,
    headers: Vec<String>,
    body: Vec<u8>,
}

impl Reply {
    fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self { status: "200 OK", headers: vec![], body: body.into() }
    }

    fn redirect(to: &str) -> Self {
        Self { status: "302 Found", headers: vec![format!("Location: {to}")], body: vec![] }
    }
}

/// The request lines the bundle server received.
type Seen = Arc<Mutex<Vec<String>>>;

/// Answers one HTTP/1.1 request on `stream` from `routes` (by path, query ignored; 404 otherwise).
async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, routes: &HashMap<String, Reply>, seen: &Seen) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let line = head.lines().next().unwrap_or_default().to_owned();
    let path = line.split(' ').nth(1).unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let reply = routes.get(path).cloned().unwrap_or(Reply { status: "404 Not Found", headers: vec![], body: vec![] });
    seen.lock().unwrap().push(line);
    let mut out = format!("HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n", reply.status, reply.body.len());
    for h in &reply.headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

/// An HTTPS bundle server on 127.0.0.1 with `tls`; its port and what it received.
async fn serve_https(tls: Arc<rustls::ServerConfig>, routes: HashMap<String, Reply>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, routes) = (Seen::default(), Arc::new(routes));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let seen_by_server = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, routes, seen) = (acceptor.clone(), routes.clone(), seen_by_server.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake: nothing to answer.
                if let Ok(stream) = acceptor.accept(tcp).await {
                    answer(stream, &routes, &seen).await;
                }
            });
        }
    });
    (port, seen)
}

/// A plain HTTP bundle server on the Unix socket `path`.
fn serve_unix(path: &Path, routes: HashMap<String, Reply>) -> Seen {
    let listener = UnixListener::bind(path).unwrap();
    let (seen, routes) = (Seen::default(), Arc::new(routes));
    let seen_by_server = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (routes, seen) = (routes.clone(), seen_by_server.clone());
            tokio::spawn(async move { answer(stream, &routes, &seen).await });
        }
    });
    seen
}

fn routes(pairs: &[(&str, Reply)]) -> HashMap<String, Reply> {
    pairs.iter().map(|(p, r)| ((*p).to_owned(), r.clone())).collect()
}

/// Agent options that bootstrap from `source` (agent-block lines) instead of insecurely.
fn bootstrapping(token: Option<&str>, source: String, env: Vec<(String, String)>) -> AgentOptions {
    AgentOptions {
        join_token: token.map(str::to_owned),
        discover_workload_path: false,
        insecure_bootstrap: false,
        extra_config: source,
        env,
        ..AgentOptions::default()
    }
}

fn ssl_cert_file(path: &Path) -> Vec<(String, String)> {
    vec![("SSL_CERT_FILE".into(), path.display().to_string())]
}

/// The X509-SVID the test's uid gets from `agent`.
async fn fetch_svid_id(agent: &TestAgent) -> String {
    let client = spiffe::WorkloadApiClient::connect_to(agent.endpoint()).await.unwrap();
    let svid = client.fetch_x509_svid().await.unwrap_or_else(|e| panic!("{e}: {}", agent.log()));
    svid.spiffe_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_pem_bundle_bootstraps_the_agent_and_is_not_needed_again() {
    let server = TestServer::start(server_binary(), "").await;
    let token = generate_token(&server_binary(), &server);
    register_uid(&server, &join_token_agent_id(&token), "spiffe://example.org/workload");
    let pem = cli(&server, &["bundle", "show"]);
    let ca = TestCa::new();
    let (port, seen) = serve_https(ca.localhost(), routes(&[("/bundle", Reply::ok(pem))])).await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem");
    let source = format!("    trust_bundle_url = \"https://localhost:{port}/bundle\"");
    let options = bootstrapping(Some(&token), source.clone(), ssl_cert_file(&ca_file));
    let mut agent = TestAgent::start(AGENT, &dir.path().join("agent"), server.port, &options).await;
    assert_eq!(fetch_svid_id(&agent).await, "spiffe://example.org/workload");
    assert_eq!(*seen.lock().unwrap(), ["GET /bundle HTTP/1.1"]);
    assert!(agent.log().contains("bootstrap trust bundle loaded"), "{}", agent.log());

    // Restarted, the agent trusts what its data directory learned: the URL is not asked again.
    agent.stop();
    let options = bootstrapping(None, source, ssl_cert_file(&ca_file));
    let agent = TestAgent::start(AGENT, &dir.path().join("agent"), server.port, &options).await;
    assert_eq!(fetch_svid_id(&agent).await, "spiffe://example.org/workload");
    assert_eq!(seen.lock().unwrap().len(), 1, "the bundle URL was fetched again: {}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_spiffe_bundle_behind_a_redirect_bootstraps_the_agent() {
    let server = TestServer::start(server_binary(), "").await;
    let token = generate_token(&server_binary(), &server);
    register_uid(&server, &join_token_agent_id(&token), "spiffe://example.org/workload");
    let json = cli(&server, &["bundle", "show", "-format", "spiffe"]);
    let ca = TestCa::new();
    let (port, seen) = serve_https(
        ca.localhost(),
        routes(&[("/moved", Reply::redirect("/bundle.json")), ("/bundle.json", Reply::ok(json))]),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let source =
        format!("    trust_bundle_url = \"https://localhost:{port}/moved\"\n    trust_bundle_format = \"spiffe\"");
    let options = bootstrapping(Some(&token), source, ssl_cert_file(&ca.write(dir.path(), "ca.pem")));
    let agent = TestAgent::start(AGENT, &dir.path().join("agent"), server.port, &options).await;
    assert_eq!(fetch_svid_id(&agent).await, "spiffe://example.org/workload");
    assert_eq!(*seen.lock().unwrap(), ["GET /moved HTTP/1.1", "GET /bundle.json HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_through_a_unix_socket_bootstraps_the_agent_with_spire_query_params() {
    let server = TestServer::start(server_binary(), "").await;
    let token = generate_token(&server_binary(), &server);
    register_uid(&server, &join_token_agent_id(&token), "spiffe://example.org/workload");
    let pem = cli(&server, &["bundle", "show"]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bundle.sock");
    let seen = serve_unix(&socket, routes(&[("/trustbundle", Reply::ok(pem))]));

    let source = format!(
        "    trust_bundle_url = \"http://localhost/trustbundle?instance=a\"\n    trust_bundle_unix_socket = \"{}\"",
        socket.display()
    );
    let options = bootstrapping(Some(&token), source, vec![]);
    let agent = TestAgent::start(AGENT, &dir.path().join("agent"), server.port, &options).await;
    assert_eq!(fetch_svid_id(&agent).await, "spiffe://example.org/workload");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let line = &seen[0];
    assert!(line.starts_with("GET /trustbundle?instance=a&spiffe-trust-domain=example.org&"), "{line}");
    for param in [
        "spire-attest-mode=bootstrap".to_owned(),
        "spire-connection-attempts=1".to_owned(),
        "spire-attest-start-time=".to_owned(),
        "spire-server-address=127.0.0.1".to_owned(),
        format!("spire-server-port={}", server.port),
    ] {
        assert!(line.contains(&param), "{param} missing from {line}");
    }
}

/// Launches an agent with `options` that must fail before attesting: it exits non-zero, its log says
/// `message`, and the server knows no agent.
async fn assert_bootstrap_fails(server: &TestServer, dir: &Path, options: &AgentOptions, message: &str) {
    let mut agent = TestAgent::launch(AGENT, dir, server.port, options);
    let status =
        agent.wait_exit(Duration::from_secs(15)).await.unwrap_or_else(|| panic!("still running: {}", agent.log()));
    assert!(!status.success(), "{}", agent.log());
    let log = agent.log();
    assert!(log.contains(message), "expected {message:?} in the agent log:\n{log}");
    assert!(!log.contains("node attestation succeeded"), "{log}");
    let token = options.join_token.as_deref().unwrap();
    let agents = cli(server, &["agent", "list"]);
    assert!(!agents.contains(token), "the agent attested: {agents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bundle_urls_stop_the_agent_before_it_attests() {
    let server = TestServer::start(server_binary(), "").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(dir.path(), "ca.pem");
    let stranger = TestCa::new();
    let (port, _) = serve_https(ca.localhost(), routes(&[("/wrong-ca.pem", Reply::ok(stranger.pem.clone()))])).await;
    let (untrusted_port, _) = serve_https(stranger.localhost(), routes(&[])).await;

    // A 404.
    let token = generate_token(&server_binary(), &server);
    let source = format!("    trust_bundle_url = \"https://localhost:{port}/missing\"");
    let options = bootstrapping(Some(&token), source, ssl_cert_file(&ca_file));
    assert_bootstrap_fails(&server, &dir.path().join("a"), &options, "error downloading trust bundle: 404 Not Found")
        .await;

    // An HTTPS server whose CA the system roots (SSL_CERT_FILE) do not hold.
    let token = generate_token(&server_binary(), &server);
    let url = format!("https://localhost:{untrusted_port}/bundle");
    let options = bootstrapping(Some(&token), format!("    trust_bundle_url = \"{url}\""), ssl_cert_file(&ca_file));
    let message =
        format!("unable to fetch trust bundle URL {url}: Get \"{url}\": tls: invalid peer certificate: UnknownIssuer");
    assert_bootstrap_fails(&server, &dir.path().join("b"), &options, &message).await;

    // A bundle that downloads fine but does not hold the server's CA.
    let token = generate_token(&server_binary(), &server);
    let source = format!("    trust_bundle_url = \"https://localhost:{port}/wrong-ca.pem\"");
    let options = bootstrapping(Some(&token), source, ssl_cert_file(&ca_file));
    assert_bootstrap_fails(
        &server,
        &dir.path().join("c"),
        &options,
        "server certificate rejected: certificate signed by unknown authority",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_agent_bootstraps_from_another_agents_workload_api() {
    // Two agents attest from 127.0.0.1 within a second.
    let server = TestServer::start(server_binary(), "ratelimit { attestation = false }").await;
    let outer_token = generate_token(&server_binary(), &server);
    let inner_token = generate_token(&server_binary(), &server);
    // The inner agent runs as this uid: it is a workload of the outer agent.
    register_uid(&server, &join_token_agent_id(&outer_token), "spiffe://example.org/inner-agent-node");
    register_uid(&server, &join_token_agent_id(&inner_token), "spiffe://example.org/nested-workload");
    let dir = tempfile::tempdir().unwrap();
    let outer_options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&outer_token) };
    let outer = TestAgent::start(AGENT, &dir.path().join("outer"), server.port, &outer_options).await;

    let source = format!("    trust_bundle_spiffe_workload_api = \"unix://{}\"", outer.socket.display());
    let options = bootstrapping(Some(&inner_token), source, vec![]);
    let inner = TestAgent::start(AGENT, &dir.path().join("inner"), server.port, &options).await;
    assert_eq!(fetch_svid_id(&inner).await, "spiffe://example.org/nested-workload");
    assert!(inner.log().contains("bootstrap trust bundle loaded"), "{}", inner.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_api_that_gives_no_bundle_stops_the_agent() {
    let server = TestServer::start(server_binary(), "").await;
    let outer_token = generate_token(&server_binary(), &server);
    // No entry for this uid on the outer agent: FetchX509Bundles is refused.
    let dir = tempfile::tempdir().unwrap();
    let outer_options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&outer_token) };
    let outer = TestAgent::start(AGENT, &dir.path().join("outer"), server.port, &outer_options).await;

    let token = generate_token(&server_binary(), &server);
    let address = format!("unix://{}", outer.socket.display());
    let source = format!("    trust_bundle_spiffe_workload_api = \"{address}\"");
    let options = bootstrapping(Some(&token), source, vec![]);
    let message = format!(
        "unable to fetch the trust bundle from the SPIFFE Workload API at {address}: rpc error: code = PermissionDenied desc = no identity issued"
    );
    assert_bootstrap_fails(&server, &dir.path().join("inner"), &options, &message).await;
}
