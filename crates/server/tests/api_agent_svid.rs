//! The Agent and SVID services end to end: a real SQLite datastore and CA, the services behind the
//! real auth layer, called with the generated clients over the private Unix socket (local callers
//! are admins) and over TCP with mTLS, where the client presents the X509-SVID it was issued (agents,
//! downstream servers). Nothing is mocked: agent callers are recognised by the auth layer from their
//! TLS certificate and the attested-node record, exactly as in production.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use spire_datastore::{AttestedNode, DataStore, JoinToken, NodeMask};
use spire_datastore::{SqlStore, SqliteOptions};
use spire_identity::jwt::validate_jwt_svid;
use spire_identity::x509::{Subject, verify_svid};
use spire_identity::{BundleSet, KeyType, PrivateKey, Selector, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::agent::v1 as agent_api;
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;
use spire_proto::spire::api::server::agent::v1::agent_server::AgentServer;
use spire_proto::spire::api::server::entry::v1 as entry_api;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::entry::v1::entry_server::EntryServer;
use spire_proto::spire::api::server::svid::v1 as svid_api;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::spire::api::server::svid::v1::svid_server::SvidServer;
use spire_proto::spire::api::types as pb;
use spire_server::api::agent::AgentService;
use spire_server::api::auth::AuthLayer;
use spire_server::api::entry::EntryService;
use spire_server::api::svid::SvidService;
use spire_server::api::{ServerContext, Settings};
use spire_server::ca::{Ca, CaManager, CaManagerConfig};
use spire_server::catalog::keymanager::{KeyManager, MemoryKeyManager};
use spire_server::catalog::nodeattestor::{AttestResult, Challenger, NodeAttestor, NodeAttestors};
use spire_server::endpoints::conn::TlsConn;
use spire_server::endpoints::tls::{ServerCert, server_config};
use spire_server::server_svid::{ServerSvid, identity_bundle};
use spire_tls::ServerCertCheck;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Code, Status};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

const HOUR: Duration = Duration::from_secs(3600);

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn id_proto(s: &str) -> pb::Spiffeid {
    let id = id(s);
    pb::Spiffeid { trust_domain: id.trust_domain().to_string(), path: id.path().to_owned() }
}

fn id_of(p: &pb::Spiffeid) -> String {
    format!("spiffe://{}{}", p.trust_domain, p.path)
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---------------------------------------------------------------------------------------------
// CSRs

/// What goes into a test CSR.
#[derive(Default)]
struct CsrSpec<'a> {
    uris: &'a [&'a str],
    dns: &'a [&'a str],
    cn: Option<&'a str>,
}

fn rcgen_key(key: &PrivateKey) -> rcgen::KeyPair {
    let alg = match key.key_type() {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(key.pkcs8_der()), alg).unwrap()
}

fn csr_with(key: &PrivateKey, spec: &CsrSpec<'_>) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = spec.cn {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    for u in spec.uris {
        params.subject_alt_names.push(rcgen::SanType::URI((*u).try_into().unwrap()));
    }
    for d in spec.dns {
        params.subject_alt_names.push(rcgen::SanType::DnsName((*d).try_into().unwrap()));
    }
    params.serialize_request(&rcgen_key(key)).unwrap().der().to_vec()
}

fn csr(key: &PrivateKey) -> Vec<u8> {
    csr_with(key, &CsrSpec::default())
}

/// A CSR whose signature no longer matches (last byte of the signature flipped).
fn tampered(mut der: Vec<u8>) -> Vec<u8> {
    *der.last_mut().unwrap() ^= 0x01;
    der
}

fn leaf(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn dns_sans(der: &[u8]) -> Vec<String> {
    let cert = leaf(der);
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The server

struct Fixture {
    _dir: tempfile::TempDir,
    ds: Arc<dyn DataStore>,
    ctx: Arc<ServerContext>,
    socket: PathBuf,
    port: u16,
}

fn routes(ctx: &Arc<ServerContext>, attestors: &NodeAttestors) -> Routes {
    Routes::new(EntryServer::new(EntryService::new(ctx.clone())))
        .add_service(AgentServer::new(AgentService::with_attestors(ctx.clone(), attestors.clone())))
        .add_service(SvidServer::new(SvidService::new(ctx.clone())))
}

impl Fixture {
    async fn new() -> Self {
        Self::with_attestors(NodeAttestors::new()).await
    }

    async fn with_attestors(attestors: NodeAttestors) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ds: Arc<dyn DataStore> = Arc::new(
            SqlStore::open(dir.path().join("datastore.sqlite3").to_str().unwrap(), SqliteOptions::default())
                .await
                .unwrap(),
        );
        let keys: Arc<dyn KeyManager> = Arc::new(MemoryKeyManager::new());
        let ca = Arc::new(Ca::new(td(), None));
        let config = CaManagerConfig {
            trust_domain: td(),
            ca_key_type: KeyType::EcP256,
            jwt_key_type: KeyType::EcP256,
            ca_ttl: 24 * HOUR,
            ca_subject: Subject::default_ca(),
            disable_jwt_svids: false,
        };
        let manager = CaManager::load(config, keys, None, ds.clone(), ca.clone()).await.unwrap();
        manager.rotate(SystemTime::now()).await.unwrap();

        let settings = Settings {
            default_x509_svid_ttl: HOUR,
            default_jwt_svid_ttl: Duration::from_secs(300),
            agent_ttl: 2 * HOUR,
            ..Settings::default()
        };
        let ctx = Arc::new(ServerContext::new(td(), ds.clone(), ca.clone(), settings));
        ctx.load_index().await.unwrap();

        let socket = dir.path().join("api.sock");
        serve_uds(ctx.clone(), UnixListener::bind(&socket).unwrap(), &attestors);
        let port = serve_tcp(ctx.clone(), ca, ds.clone(), &attestors).await;
        Self { _dir: dir, ds, ctx, socket, port }
    }

    /// The trust bundle as stored, which every issued SVID must chain to.
    async fn bundles(&self) -> BundleSet {
        let stored = self.ds.fetch_bundle(&td()).await.unwrap().expect("own bundle");
        identity_bundle(&stored).into()
    }

    async fn admin(&self) -> Admin {
        let ch = uds_channel(&self.socket).await;
        Admin { agent: AgentClient::new(ch.clone()), svid: SvidClient::new(ch.clone()), entry: EntryClient::new(ch) }
    }

    /// A TCP channel presenting `identity` (chain and key), or no client certificate.
    async fn tcp(&self, identity: Option<(&[Vec<u8>], &PrivateKey)>) -> Channel {
        tcp_channel(self.port, self.bundles().await, identity).await
    }

    /// Creates a join token and attests with it over the admin socket: a fresh agent.
    async fn attest_new_agent(&self) -> TestAgent {
        let mut admin = self.admin().await;
        let token = admin.create_token(600).await;
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let svid = attest(&mut admin.agent, "join_token", token.as_bytes(), csr(&key)).await.unwrap();
        TestAgent { id: id(&id_of(svid.id.as_ref().unwrap())), key, chain: svid.cert_chain }
    }
}

fn serve_uds(ctx: Arc<ServerContext>, listener: UnixListener, attestors: &NodeAttestors) {
    let routes = routes(&ctx, attestors);
    tokio::spawn(
        Server::builder()
            .layer(AuthLayer::new(ctx))
            .add_routes(routes)
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
}

/// The TCP endpoint as `endpoints::serve_tcp` builds it (server SVID, optional client SVIDs verified
/// against the bundle, peer identity handed to the auth layer), serving the services under test.
async fn serve_tcp(ctx: Arc<ServerContext>, ca: Arc<Ca>, ds: Arc<dyn DataStore>, attestors: &NodeAttestors) -> u16 {
    let cert = Arc::new(ServerCert::default());
    let bundles = Arc::new(RwLock::new(BundleSet::new()));
    let server_svid = ServerSvid::new(ca, HOUR, cert.clone(), bundles.clone());
    server_svid.rotate_if_needed(SystemTime::now()).unwrap();
    server_svid.refresh_bundles(ds.as_ref()).await.unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert, bundles).unwrap()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<TlsConn>>(16);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = tx.send(Ok(TlsConn::new(tls))).await;
            }
        }
    });
    let routes = routes(&ctx, attestors);
    tokio::spawn(
        Server::builder().layer(AuthLayer::new(ctx)).add_routes(routes).serve_with_incoming(ReceiverStream::new(rx)),
    );
    port
}

async fn uds_channel(path: &Path) -> Channel {
    let path = path.to_owned();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { tokio::net::UnixStream::connect(path).await.map(hyper_util::rt::TokioIo::new) }
        }))
        .await
        .unwrap()
}

/// Checks the server's SVID as an agent does: chains to the bundle, ID `spiffe://<td>/spire/server`.
#[derive(Debug)]
struct ServerSvidVerifier {
    bundles: BundleSet,
}

impl ServerCertCheck for ServerSvidVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: UnixTime,
    ) -> Result<(), rustls::Error> {
        let mut chain = vec![end_entity.as_ref()];
        chain.extend(intermediates.iter().map(|c| c.as_ref()));
        let svid = verify_svid(&chain, &self.bundles, SystemTime::now())
            .map_err(|e| rustls::Error::General(format!("server SVID: {e}")))?;
        if svid.spiffe_id != id("spiffe://example.org/spire/server") {
            return Err(rustls::Error::General(format!("unexpected server ID {}", svid.spiffe_id)));
        }
        Ok(())
    }
}

async fn tcp_channel(port: u16, bundles: BundleSet, identity: Option<(&[Vec<u8>], &PrivateKey)>) -> Channel {
    let builder = rustls::ClientConfig::builder_with_provider(spire_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(spire_tls::server_verifier(ServerSvidVerifier { bundles }));
    let mut config = match identity {
        Some((chain, key)) => {
            let certs = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::try_from(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Clients

struct Admin {
    agent: AgentClient<Channel>,
    svid: SvidClient<Channel>,
    entry: EntryClient<Channel>,
}

impl Admin {
    async fn create_token(&mut self, ttl: i32) -> String {
        let req = agent_api::CreateJoinTokenRequest { ttl, ..Default::default() };
        self.agent.create_join_token(req).await.unwrap().into_inner().value
    }

    async fn get_agent(&mut self, agent: &str) -> Result<pb::Agent, Status> {
        let req = agent_api::GetAgentRequest { id: Some(id_proto(agent)), output_mask: None };
        self.agent.get_agent(req).await.map(tonic::Response::into_inner)
    }

    /// Creates an entry; returns its ID.
    async fn create_entry(&mut self, entry: pb::Entry) -> String {
        let req = entry_api::BatchCreateEntryRequest { entries: vec![entry], output_mask: None };
        let result = self.entry.batch_create_entry(req).await.unwrap().into_inner().results.remove(0);
        assert_eq!(result.status.as_ref().unwrap().code, 0, "{:?}", result.status);
        result.entry.unwrap().id
    }
}

fn entry(spiffe_id: &str, parent: &str) -> pb::Entry {
    pb::Entry {
        spiffe_id: Some(id_proto(spiffe_id)),
        parent_id: Some(id_proto(parent)),
        selectors: vec![pb::Selector { r#type: "unix".into(), value: "uid:1000".into() }],
        ..Default::default()
    }
}

/// Runs AttestAgent with one Params message; the Result's SVID, or the stream's error status.
async fn attest(
    client: &mut AgentClient<Channel>,
    kind: &str,
    payload: &[u8],
    csr: Vec<u8>,
) -> Result<pb::X509svid, Status> {
    let params = agent_api::attest_agent_request::Params {
        data: Some(pb::AttestationData { r#type: kind.into(), payload: payload.to_vec() }),
        params: Some(agent_api::AgentX509svidParams { csr }),
    };
    attest_raw(
        client,
        agent_api::AttestAgentRequest { step: Some(agent_api::attest_agent_request::Step::Params(params)) },
    )
    .await
    .map(|(svid, reattestable)| {
        assert!(!reattestable, "join_token agents renew, they do not re-attest");
        svid
    })
}

async fn attest_raw(
    client: &mut AgentClient<Channel>,
    first: agent_api::AttestAgentRequest,
) -> Result<(pb::X509svid, bool), Status> {
    let mut inbound = client.attest_agent(tokio_stream::iter(vec![first])).await?.into_inner();
    let msg = inbound.message().await?.ok_or_else(|| Status::unknown("stream ended without a result"))?;
    match msg.step {
        Some(agent_api::attest_agent_response::Step::Result(r)) => Ok((r.svid.unwrap(), r.reattestable)),
        other => panic!("unexpected step {other:?}"),
    }
}

/// An attested agent: its ID, key and current SVID.
struct TestAgent {
    id: SpiffeId,
    key: PrivateKey,
    chain: Vec<Vec<u8>>,
}

impl TestAgent {
    async fn channel(&self, f: &Fixture) -> Channel {
        f.tcp(Some((&self.chain, &self.key))).await
    }

    async fn svid_client(&self, f: &Fixture) -> SvidClient<Channel> {
        SvidClient::new(self.channel(f).await)
    }
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(err.message().contains(message), "{:?} does not contain {message:?}", err.message());
}

// ---------------------------------------------------------------------------------------------
// AttestAgent with join tokens

#[tokio::test]
async fn join_token_attestation_issues_a_verifiable_agent_svid_once() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let token = admin.create_token(600).await;
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let before = now_unix();
    let svid = attest(&mut admin.agent, "join_token", token.as_bytes(), csr(&key)).await.unwrap();

    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    assert_eq!(id_of(svid.id.as_ref().unwrap()), agent_id);
    let verified = verify_svid(&svid.cert_chain, &f.bundles().await, SystemTime::now()).unwrap();
    assert_eq!(verified.spiffe_id.to_string(), agent_id);
    let cert = leaf(&svid.cert_chain[0]);
    assert_eq!(cert.public_key().raw, key.public_key_der().as_slice(), "the SVID certifies the CSR's key");
    assert_eq!(svid.expires_at, cert.validity().not_after.timestamp());
    assert!((svid.expires_at - before - 7200).abs() <= 5, "agent_ttl applies");

    let agent = admin.get_agent(&agent_id).await.unwrap();
    assert_eq!(agent.attestation_type, "join_token");
    assert_eq!(agent.x509svid_serial_number, cert.serial.to_string(), "serial recorded in decimal");
    assert_eq!(agent.x509svid_expires_at, svid.expires_at);
    assert!(!agent.banned && !agent.can_reattest && agent.selectors.is_empty());

    // Single use.
    let again = attest(&mut admin.agent, "join_token", token.as_bytes(), csr(&key)).await;
    assert_status(again, Code::InvalidArgument, "failed to attest: join token does not exist or has already been used");
    let unknown = attest(&mut admin.agent, "join_token", b"never-issued", csr(&key)).await;
    assert_status(unknown, Code::InvalidArgument, "join token does not exist or has already been used");
}

#[tokio::test]
async fn expired_join_token_is_refused_and_consumed() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    f.ds.create_join_token(JoinToken { token: "old-token".into(), expires_at: now_unix() - 10 }).await.unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let first = attest(&mut admin.agent, "join_token", b"old-token", csr(&key)).await;
    assert_status(first, Code::InvalidArgument, "join token expired");
    assert!(f.ds.fetch_join_token("old-token").await.unwrap().is_none());
    let second = attest(&mut admin.agent, "join_token", b"old-token", csr(&key)).await;
    assert_status(second, Code::InvalidArgument, "does not exist or has already been used");
}

#[tokio::test]
async fn attestation_refuses_bad_requests_before_consuming_the_token() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let token = admin.create_token(600).await;
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();

    let unknown = attest(&mut admin.agent, "tpm_magic", b"x", csr(&key)).await;
    assert_status(unknown, Code::FailedPrecondition, "could not find node attestor type \"tpm_magic\"");
    let no_csr = attest(&mut admin.agent, "join_token", token.as_bytes(), Vec::new()).await;
    assert_status(no_csr, Code::InvalidArgument, "malformed param: missing CSR");
    let bad_sig = attest(&mut admin.agent, "join_token", token.as_bytes(), tampered(csr(&key))).await;
    assert_status(bad_sig, Code::InvalidArgument, "invalid CSR signature");
    let garbage = attest(&mut admin.agent, "join_token", token.as_bytes(), b"garbage".to_vec()).await;
    assert_status(garbage, Code::InvalidArgument, "malformed CSR");
    let huge = attest(&mut admin.agent, "join_token", token.as_bytes(), vec![0x30; 70 * 1024]).await;
    assert_status(huge, Code::InvalidArgument, "CSR too large");
    let challenge_first = agent_api::AttestAgentRequest {
        step: Some(agent_api::attest_agent_request::Step::ChallengeResponse(b"hi".to_vec())),
    };
    assert_status(
        attest_raw(&mut admin.agent, challenge_first).await,
        Code::InvalidArgument,
        "malformed param: missing params",
    );
    let no_data = agent_api::AttestAgentRequest {
        step: Some(agent_api::attest_agent_request::Step::Params(agent_api::attest_agent_request::Params {
            data: None,
            params: Some(agent_api::AgentX509svidParams { csr: csr(&key) }),
        })),
    };
    assert_status(attest_raw(&mut admin.agent, no_data).await, Code::InvalidArgument, "missing attestation data");

    // None of that used up the token.
    attest(&mut admin.agent, "join_token", token.as_bytes(), csr(&key)).await.unwrap();
}

#[tokio::test]
async fn banned_agent_cannot_attest() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let token = admin.create_token(600).await;
    let agent_id = id(&format!("spiffe://example.org/spire/agent/join_token/{token}"));
    // A node record for that ID with no serial: banned.
    f.ds.create_attested_node(AttestedNode::new(agent_id.clone(), "join_token")).await.unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let result = attest(&mut admin.agent, "join_token", token.as_bytes(), csr(&key)).await;
    assert_status(result, Code::PermissionDenied, "failed to attest: agent is banned");
    assert!(f.ds.fetch_attested_node(&agent_id).await.unwrap().unwrap().is_banned());
}

/// A challenge-response attestor for the test: it challenges with the payload and wants it back
/// reversed; the agent ID and selector come from the payload.
#[derive(Debug)]
struct MirrorAttestor;

#[async_trait::async_trait]
impl NodeAttestor for MirrorAttestor {
    fn name(&self) -> &str {
        "mirror"
    }

    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        let answer = challenger.challenge(payload.to_vec()).await?;
        if answer.iter().rev().ne(payload.iter()) {
            return Err(Status::permission_denied("wrong answer"));
        }
        let name = String::from_utf8(payload.to_vec()).map_err(|_| Status::invalid_argument("not UTF-8"))?;
        Ok(AttestResult {
            agent_id: td().id_with_path(&format!("/spire/agent/mirror/{name}")).unwrap(),
            selector_values: vec![format!("name:{name}")],
            can_reattest: true,
        })
    }
}

/// Attests with [`MirrorAttestor`] over a live bidirectional stream, answering its challenge with
/// `answer(challenge)`.
async fn attest_mirror(
    client: &mut AgentClient<Channel>,
    name: &str,
    key: &PrivateKey,
    answer: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<(pb::X509svid, bool), Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let params = agent_api::attest_agent_request::Params {
        data: Some(pb::AttestationData { r#type: "mirror".into(), payload: name.as_bytes().to_vec() }),
        params: Some(agent_api::AgentX509svidParams { csr: csr(key) }),
    };
    tx.send(agent_api::AttestAgentRequest { step: Some(agent_api::attest_agent_request::Step::Params(params)) })
        .await
        .unwrap();
    let mut inbound = client.attest_agent(ReceiverStream::new(rx)).await?.into_inner();
    loop {
        let msg = inbound.message().await?.ok_or_else(|| Status::unknown("stream ended without a result"))?;
        match msg.step {
            Some(agent_api::attest_agent_response::Step::Challenge(c)) => {
                let step = agent_api::attest_agent_request::Step::ChallengeResponse(answer(&c));
                tx.send(agent_api::AttestAgentRequest { step: Some(step) }).await.unwrap();
            }
            Some(agent_api::attest_agent_response::Step::Result(r)) => return Ok((r.svid.unwrap(), r.reattestable)),
            None => panic!("empty step"),
        }
    }
}

#[tokio::test]
async fn challenge_response_attestors_run_over_the_stream_and_can_reattest() {
    let mut attestors = NodeAttestors::new();
    attestors.register(Arc::new(MirrorAttestor));
    let f = Fixture::with_attestors(attestors).await;
    let mut admin = f.admin().await;
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let reverse = |c: &[u8]| c.iter().rev().copied().collect::<Vec<u8>>();

    let wrong = attest_mirror(&mut admin.agent, "node1", &key, |c| c.to_vec()).await;
    assert_status(wrong, Code::PermissionDenied, "wrong answer");

    let (svid, reattestable) = attest_mirror(&mut admin.agent, "node1", &key, reverse).await.unwrap();
    assert!(reattestable);
    let agent_id = "spiffe://example.org/spire/agent/mirror/node1";
    assert_eq!(id_of(svid.id.as_ref().unwrap()), agent_id);
    let agent = admin.get_agent(agent_id).await.unwrap();
    assert_eq!(agent.attestation_type, "mirror");
    assert!(agent.can_reattest);
    assert_eq!(agent.selectors, vec![pb::Selector { r#type: "mirror".into(), value: "name:node1".into() }]);
    let first_serial = agent.x509svid_serial_number;

    // Re-attesting replaces the node's certificate.
    let (again, _) = attest_mirror(&mut admin.agent, "node1", &key, reverse).await.unwrap();
    let agent = admin.get_agent(agent_id).await.unwrap();
    assert_ne!(agent.x509svid_serial_number, first_serial);
    assert_eq!(agent.x509svid_serial_number, leaf(&again.cert_chain[0]).serial.to_string());
    assert_eq!(
        admin.agent.count_agents(agent_api::CountAgentsRequest { filter: None }).await.unwrap().into_inner().count,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// CreateJoinToken

#[tokio::test]
async fn create_join_token_validates_and_creates_the_alias_entry() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let req = |ttl, token: &str, agent_id: Option<&str>| agent_api::CreateJoinTokenRequest {
        ttl,
        token: token.into(),
        agent_id: agent_id.map(id_proto),
    };

    assert_status(
        admin.agent.create_join_token(req(0, "", None)).await,
        Code::InvalidArgument,
        "ttl is required, you must provide one",
    );
    let generated = admin.agent.create_join_token(req(60, "", None)).await.unwrap().into_inner();
    assert_eq!(uuid::Uuid::parse_str(&generated.value).unwrap().get_version_num(), 4);
    assert!((generated.expires_at - now_unix() - 60).abs() <= 2);
    let stored = f.ds.fetch_join_token(&generated.value).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, generated.expires_at);

    let other_td = admin.agent.create_join_token(req(60, "t1", Some("spiffe://other.org/node"))).await;
    assert_status(
        other_td,
        Code::InvalidArgument,
        "invalid agent ID: \"spiffe://other.org/node\" is not a member of trust domain",
    );
    let reserved = admin.agent.create_join_token(req(60, "t1", Some("spiffe://example.org/spire/agent/x"))).await;
    assert_status(reserved, Code::InvalidArgument, "path is in the reserved namespace");
    assert!(f.ds.fetch_join_token("t1").await.unwrap().is_none(), "no token left behind by a refused request");
    let bad_token = admin.agent.create_join_token(req(60, "a/b", None)).await;
    assert_status(bad_token, Code::InvalidArgument, "invalid token");

    let made = admin.agent.create_join_token(req(60, "my-token", Some("spiffe://example.org/node/web"))).await.unwrap();
    assert_eq!(made.into_inner().value, "my-token");
    let filter = entry_api::list_entries_request::Filter {
        by_spiffe_id: Some(id_proto("spiffe://example.org/node/web")),
        ..Default::default()
    };
    let list = entry_api::ListEntriesRequest { filter: Some(filter), ..Default::default() };
    let entries = admin.entry.list_entries(list).await.unwrap().into_inner().entries;
    assert_eq!(entries.len(), 1);
    let alias = &entries[0];
    let token_agent = "spiffe://example.org/spire/agent/join_token/my-token";
    assert_eq!(id_of(alias.parent_id.as_ref().unwrap()), token_agent);
    assert_eq!(alias.selectors, vec![pb::Selector { r#type: "spiffe_id".into(), value: token_agent.into() }]);

    // The alias makes what is registered under the agent ID available to the agent that joins with
    // the token.
    let workload = admin.create_entry(entry("spiffe://example.org/web/server", "spiffe://example.org/node/web")).await;
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let svid = attest(&mut admin.agent, "join_token", b"my-token", csr(&key)).await.unwrap();
    let agent = TestAgent { id: id(token_agent), key, chain: svid.cert_chain };
    let mut client = agent.svid_client(&f).await;
    let wkey = PrivateKey::generate(KeyType::EcP256).unwrap();
    let params = vec![svid_api::NewX509svidParams { entry_id: workload, csr: csr(&wkey) }];
    let result = client.batch_new_x509svid(svid_api::BatchNewX509svidRequest { params }).await.unwrap();
    let result = &result.get_ref().results[0];
    assert_eq!(result.status.as_ref().unwrap().code, 0, "{:?}", result.status);
    assert_eq!(id_of(result.svid.as_ref().unwrap().id.as_ref().unwrap()), "spiffe://example.org/web/server");
    assert_eq!(agent.id.to_string(), token_agent);
}

// ---------------------------------------------------------------------------------------------
// Agent callers over mTLS: RenewAgent, PostStatus

#[tokio::test]
async fn renew_agent_records_the_new_serial_until_the_agent_uses_it() {
    let f = Fixture::new().await;
    let agent = f.attest_new_agent().await;
    let mut client = AgentClient::new(agent.channel(&f).await);

    client
        .post_status(agent_api::PostStatusRequest { current_bundle_serial: 1, agent_version: "1.2.3".into() })
        .await
        .unwrap();
    let too_long = agent_api::PostStatusRequest { agent_version: "v".repeat(256), ..Default::default() };
    assert_status(client.post_status(too_long).await, Code::InvalidArgument, "agent version is too long");
    let node = f.ds.fetch_attested_node(&agent.id).await.unwrap().unwrap();
    assert_eq!(node.agent_version, "1.2.3");
    let old_serial = node.cert_serial_number.clone();

    let no_params = client.renew_agent(agent_api::RenewAgentRequest { params: None }).await;
    assert_status(no_params, Code::InvalidArgument, "params cannot be nil");
    let empty = agent_api::RenewAgentRequest { params: Some(agent_api::AgentX509svidParams { csr: vec![] }) };
    assert_status(client.renew_agent(empty).await, Code::InvalidArgument, "missing CSR");

    let new_key = PrivateKey::generate(KeyType::EcP384).unwrap();
    let req = agent_api::RenewAgentRequest { params: Some(agent_api::AgentX509svidParams { csr: csr(&new_key) }) };
    let svid = client.renew_agent(req).await.unwrap().into_inner().svid.unwrap();
    assert_eq!(id_of(svid.id.as_ref().unwrap()), agent.id.to_string());
    verify_svid(&svid.cert_chain, &f.bundles().await, SystemTime::now()).unwrap();
    let new_serial = leaf(&svid.cert_chain[0]).serial.to_string();
    let node = f.ds.fetch_attested_node(&agent.id).await.unwrap().unwrap();
    assert_eq!(node.cert_serial_number, old_serial, "the old SVID stays current until the new one is used");
    assert_eq!(node.new_cert_serial_number, new_serial);
    assert_eq!(node.new_cert_not_after, svid.expires_at);

    // Presenting the new SVID promotes it (the auth layer), and the agent is still an agent.
    let renewed = TestAgent { id: agent.id.clone(), key: new_key, chain: svid.cert_chain };
    let mut client = AgentClient::new(renewed.channel(&f).await);
    client.post_status(agent_api::PostStatusRequest::default()).await.unwrap();
    let node = f.ds.fetch_attested_node(&agent.id).await.unwrap().unwrap();
    assert_eq!(node.cert_serial_number, new_serial);
    assert!(node.new_cert_serial_number.is_empty());
    assert_eq!(node.agent_version, "1.2.3", "an empty version leaves the recorded one alone");

    // The old SVID is no longer accepted.
    let mut stale = AgentClient::new(agent.channel(&f).await);
    assert_status(
        stale.post_status(agent_api::PostStatusRequest::default()).await,
        Code::PermissionDenied,
        "expected to have serial number",
    );
}

#[tokio::test]
async fn reattestable_agents_must_not_renew() {
    let f = Fixture::new().await;
    let agent = f.attest_new_agent().await;
    let update = AttestedNode { can_reattest: true, ..AttestedNode::new(agent.id.clone(), "") };
    f.ds.update_attested_node(update, &NodeMask { can_reattest: true, ..NodeMask::default() }).await.unwrap();
    let mut client = AgentClient::new(agent.channel(&f).await);
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let req = agent_api::RenewAgentRequest { params: Some(agent_api::AgentX509svidParams { csr: csr(&key) }) };
    let err = client.renew_agent(req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), "agent must reattest instead of renew");
    assert!(!err.details().is_empty(), "PermissionDeniedDetails travel in the status details");
}

/// The `spire.api.types.PermissionDeniedDetails` reason a refusal carries (SPIRE's agent acts on it).
fn denied_reason(status: &Status) -> Option<pb::permission_denied_details::Reason> {
    use prost::Message;
    let details = spire_proto::google::rpc::Status::decode(status.details()).ok()?;
    let any = details.details.iter().find(|a| a.type_url.ends_with("/spire.api.types.PermissionDeniedDetails"))?;
    let reason = pb::PermissionDeniedDetails::decode(any.value.as_slice()).ok()?.reason;
    pb::permission_denied_details::Reason::try_from(reason).ok()
}

#[tokio::test]
async fn refused_agents_are_told_why_as_spire_tells_them() {
    use pb::permission_denied_details::Reason;
    let f = Fixture::new().await;
    async fn post(f: &Fixture, agent: &TestAgent) -> Result<tonic::Response<agent_api::PostStatusResponse>, Status> {
        AgentClient::new(agent.channel(f).await).post_status(agent_api::PostStatusRequest::default()).await
    }

    // An SVID that is no longer the agent's current one: AGENT_NOT_ACTIVE.
    let stale = f.attest_new_agent().await;
    let node = AttestedNode { cert_serial_number: "1".into(), ..AttestedNode::new(stale.id.clone(), "") };
    f.ds.update_attested_node(node, &NodeMask { cert_serial_number: true, ..NodeMask::default() }).await.unwrap();
    let err = post(&f, &stale).await.unwrap_err();
    assert_eq!((err.code(), denied_reason(&err)), (Code::PermissionDenied, Some(Reason::AgentNotActive)), "{err:?}");
    assert!(err.message().contains("expected to have serial number \"1\""), "{}", err.message());

    // Banned: AGENT_BANNED.
    let banned = f.attest_new_agent().await;
    let mut admin = f.admin().await;
    admin.agent.ban_agent(agent_api::BanAgentRequest { id: Some(id_proto(&banned.id.to_string())) }).await.unwrap();
    let err = post(&f, &banned).await.unwrap_err();
    assert_eq!((err.code(), denied_reason(&err)), (Code::PermissionDenied, Some(Reason::AgentBanned)), "{err:?}");
    assert_eq!(err.message(), format!("agent \"{}\" is banned", banned.id));

    // Evicted: AGENT_NOT_ATTESTED.
    let evicted = f.attest_new_agent().await;
    admin
        .agent
        .delete_agent(agent_api::DeleteAgentRequest { id: Some(id_proto(&evicted.id.to_string())) })
        .await
        .unwrap();
    let err = post(&f, &evicted).await.unwrap_err();
    assert_eq!((err.code(), denied_reason(&err)), (Code::PermissionDenied, Some(Reason::AgentNotAttested)), "{err:?}");
    assert_eq!(err.message(), format!("agent \"{}\" is not attested", evicted.id));
}

#[tokio::test]
async fn agent_rpcs_need_an_agent_svid() {
    let f = Fixture::new().await;
    let mut anonymous = AgentClient::new(f.tcp(None).await);
    assert_status(anonymous.post_status(agent_api::PostStatusRequest::default()).await, Code::PermissionDenied, "");
    let mut admin = f.admin().await;
    // Local admins are not agents either.
    assert_status(admin.agent.post_status(agent_api::PostStatusRequest::default()).await, Code::PermissionDenied, "");
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let params = vec![svid_api::NewX509svidParams { entry_id: "x".into(), csr: csr(&key) }];
    let batch = admin.svid.batch_new_x509svid(svid_api::BatchNewX509svidRequest { params }).await;
    assert_status(batch, Code::PermissionDenied, "");
}

// ---------------------------------------------------------------------------------------------
// BatchNewX509SVID and NewJWTSVID

#[tokio::test]
async fn agents_get_svids_only_for_their_own_entries() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let a = f.attest_new_agent().await;
    let b = f.attest_new_agent().await;

    let mut web = entry("spiffe://example.org/web", &a.id.to_string());
    web.dns_names = vec!["web.example.org".into(), "www.example.org".into()];
    web.x509_svid_ttl = 600;
    web.hint = "external".into();
    let web = admin.create_entry(web).await;
    let web_child = admin.create_entry(entry("spiffe://example.org/web/sidecar", "spiffe://example.org/web")).await;
    let db = admin.create_entry(entry("spiffe://example.org/db", &b.id.to_string())).await;

    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let rsa = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let p = |entry_id: &str, csr: Vec<u8>| svid_api::NewX509svidParams { entry_id: entry_id.into(), csr };
    let params = vec![
        p(&web, csr(&key)),
        p(&web_child, csr(&rsa)),
        p(&db, csr(&key)),
        p("no-such-entry", csr(&key)),
        p("", csr(&key)),
        p(&web, Vec::new()),
        p(&web, tampered(csr(&key))),
        p(&web, b"garbage".to_vec()),
    ];
    let before = now_unix();
    let results = a
        .svid_client(&f)
        .await
        .batch_new_x509svid(svid_api::BatchNewX509svidRequest { params })
        .await
        .unwrap()
        .into_inner()
        .results;
    let statuses: Vec<(i32, &str)> =
        results.iter().map(|r| r.status.as_ref().map(|s| (s.code, s.message.as_str())).unwrap()).collect();
    assert_eq!(statuses[0], (0, "OK"));
    assert_eq!(statuses[1], (0, "OK"));
    assert_eq!(
        statuses[2],
        (Code::NotFound as i32, "entry not found or not authorized"),
        "agent A must not get B's entry"
    );
    assert_eq!(statuses[3], (Code::NotFound as i32, "entry not found or not authorized"));
    assert_eq!(statuses[4], (Code::InvalidArgument as i32, "missing entry ID"));
    assert_eq!(statuses[5], (Code::InvalidArgument as i32, "missing CSR"));
    assert_eq!(statuses[6].0, Code::InvalidArgument as i32);
    assert!(statuses[6].1.starts_with("invalid CSR signature"), "{}", statuses[6].1);
    assert_eq!(statuses[7].0, Code::InvalidArgument as i32);
    assert!(statuses[7].1.starts_with("malformed CSR"), "{}", statuses[7].1);
    assert!(results[2..].iter().all(|r| r.svid.is_none()));

    let bundles = f.bundles().await;
    let svid = results[0].svid.as_ref().unwrap();
    assert_eq!(id_of(svid.id.as_ref().unwrap()), "spiffe://example.org/web");
    assert_eq!(svid.hint, "external");
    assert!((svid.expires_at - before - 600).abs() <= 5, "the entry's x509_svid_ttl applies");
    assert_eq!(
        verify_svid(&svid.cert_chain, &bundles, SystemTime::now()).unwrap().spiffe_id,
        id("spiffe://example.org/web")
    );
    assert_eq!(dns_sans(&svid.cert_chain[0]), ["web.example.org", "www.example.org"]);
    assert_eq!(leaf(&svid.cert_chain[0]).public_key().raw, key.public_key_der().as_slice());
    let child = results[1].svid.as_ref().unwrap();
    assert!((child.expires_at - before - 3600).abs() <= 5, "default_x509_svid_ttl when the entry has none");
    verify_svid(&child.cert_chain, &bundles, SystemTime::now()).unwrap();

    // And the other way round.
    let params = vec![p(&web, csr(&key)), p(&db, csr(&key))];
    let results = b
        .svid_client(&f)
        .await
        .batch_new_x509svid(svid_api::BatchNewX509svidRequest { params })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].status.as_ref().unwrap().code, Code::NotFound as i32);
    assert_eq!(results[1].status.as_ref().unwrap().code, 0);

    let empty = a.svid_client(&f).await.batch_new_x509svid(svid_api::BatchNewX509svidRequest { params: vec![] }).await;
    assert_status(empty, Code::InvalidArgument, "missing parameters");
}

#[tokio::test]
async fn unsupported_csr_keys_are_refused() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let a = f.attest_new_agent().await;
    let web = admin.create_entry(entry("spiffe://example.org/web", &a.id.to_string())).await;
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_csr = rcgen::CertificateParams::default().serialize_request(&ed).unwrap().der().to_vec();
    let params = vec![svid_api::NewX509svidParams { entry_id: web, csr: ed_csr }];
    let results =
        a.svid_client(&f).await.batch_new_x509svid(svid_api::BatchNewX509svidRequest { params }).await.unwrap();
    let status = results.get_ref().results[0].status.clone().unwrap();
    assert_eq!(status.code, Code::InvalidArgument as i32);
    assert!(status.message.starts_with("unsupported CSR public key"), "{}", status.message);
}

#[tokio::test]
async fn new_jwt_svid_for_authorized_entries() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let a = f.attest_new_agent().await;
    let b = f.attest_new_agent().await;
    let mut api = entry("spiffe://example.org/api", &a.id.to_string());
    api.jwt_svid_ttl = 120;
    api.hint = "internal".into();
    api.additional_attributes = Some(pb::AdditionalAttributes { jwt_svid_include_jti: true, ..Default::default() });
    let api = admin.create_entry(api).await;
    let plain = admin.create_entry(entry("spiffe://example.org/plain", &a.id.to_string())).await;
    let other = admin.create_entry(entry("spiffe://example.org/other", &b.id.to_string())).await;

    let mut client = a.svid_client(&f).await;
    let req = |entry_id: &str, audience: &[&str]| svid_api::NewJwtsvidRequest {
        entry_id: entry_id.into(),
        audience: audience.iter().map(|s| (*s).to_owned()).collect(),
    };
    assert_status(client.new_jwtsvid(req(&api, &[])).await, Code::InvalidArgument, "at least one audience is required");
    assert_status(client.new_jwtsvid(req(&other, &["svc"])).await, Code::NotFound, "entry not found or not authorized");

    let svid = client.new_jwtsvid(req(&api, &["svc", "db"])).await.unwrap().into_inner().svid.unwrap();
    assert_eq!(id_of(svid.id.as_ref().unwrap()), "spiffe://example.org/api");
    assert_eq!(svid.hint, "internal");
    assert_eq!(svid.expires_at - svid.issued_at, 120);
    let v = validate_jwt_svid(&svid.token, &f.bundles().await, &["svc"], SystemTime::now()).unwrap();
    assert_eq!(v.spiffe_id, id("spiffe://example.org/api"));
    assert_eq!(v.audience, ["svc", "db"]);
    let jti = v.claims.get("jti").and_then(|j| j.as_str()).expect("jti when the entry asks for it");
    assert_eq!(uuid::Uuid::parse_str(jti).unwrap().get_version_num(), 4);

    let plain = client.new_jwtsvid(req(&plain, &["svc"])).await.unwrap().into_inner().svid.unwrap();
    assert_eq!(plain.expires_at - plain.issued_at, 300, "default_jwt_svid_ttl");
    let v = validate_jwt_svid(&plain.token, &f.bundles().await, &["svc"], SystemTime::now()).unwrap();
    assert!(!v.claims.contains_key("jti"));
}

// ---------------------------------------------------------------------------------------------
// MintX509SVID, MintJWTSVID, NewDownstreamX509CA, WIT

#[tokio::test]
async fn mint_x509_svid_takes_id_dns_and_subject_from_the_csr() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mint = |csr: Vec<u8>, ttl: i32| svid_api::MintX509svidRequest { csr, ttl };

    let spec = CsrSpec { uris: &["spiffe://example.org/minted"], dns: &["minted.example.org"], cn: Some("minted") };
    let before = now_unix();
    let svid = admin.svid.mint_x509svid(mint(csr_with(&key, &spec), 900)).await.unwrap().into_inner().svid.unwrap();
    assert_eq!(id_of(svid.id.as_ref().unwrap()), "spiffe://example.org/minted");
    assert!((svid.expires_at - before - 900).abs() <= 5);
    verify_svid(&svid.cert_chain, &f.bundles().await, SystemTime::now()).unwrap();
    assert_eq!(dns_sans(&svid.cert_chain[0]), ["minted.example.org"]);
    let cn = |der: &[u8]| leaf(der).subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned();
    // As in SPIRE, the first DNS name becomes the CN.
    assert_eq!(cn(&svid.cert_chain[0]), "minted.example.org");

    let spec = CsrSpec { uris: &["spiffe://example.org/m2"], cn: Some("from-csr"), ..Default::default() };
    let default_ttl =
        admin.svid.mint_x509svid(mint(csr_with(&key, &spec), 0)).await.unwrap().into_inner().svid.unwrap();
    assert!((default_ttl.expires_at - before - 3600).abs() <= 5, "default_x509_svid_ttl when ttl is 0");
    assert_eq!(cn(&default_ttl.cert_chain[0]), "from-csr", "the CSR's subject is kept");

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "missing CSR"),
        (csr(&key), "CSR URI SAN is required"),
        (
            csr_with(
                &key,
                &CsrSpec { uris: &["spiffe://example.org/a", "spiffe://example.org/b"], ..Default::default() },
            ),
            "only one URI SAN is expected",
        ),
        (
            csr_with(&key, &CsrSpec { uris: &["https://example.org/a"], ..Default::default() }),
            "CSR URI SAN is invalid: scheme is missing or invalid",
        ),
        (csr_with(&key, &CsrSpec { uris: &["spiffe://other.org/a"], ..Default::default() }), "CSR URI SAN is invalid"),
        (
            csr_with(&key, &CsrSpec { uris: &["spiffe://example.org/spire/agent/x"], ..Default::default() }),
            "reserved namespace",
        ),
        (
            csr_with(&key, &CsrSpec { uris: &["spiffe://example.org/a"], dns: &["bad_-.-"], ..Default::default() }),
            "CSR DNS name is invalid: idna error\nidna: invalid label \"bad_-\"",
        ),
        (
            tampered(csr_with(&key, &CsrSpec { uris: &["spiffe://example.org/a"], ..Default::default() })),
            "failed to verify CSR signature",
        ),
    ];
    for (der, want) in cases {
        assert_status(admin.svid.mint_x509svid(mint(der, 0)).await, Code::InvalidArgument, want);
    }
}

#[tokio::test]
async fn mint_jwt_svid_for_workload_ids_of_the_trust_domain() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let req = |id: Option<&str>, audience: &[&str], ttl| svid_api::MintJwtsvidRequest {
        id: id.map(id_proto),
        audience: audience.iter().map(|s| (*s).to_owned()).collect(),
        ttl,
    };
    let svid = admin.svid.mint_jwtsvid(req(Some("spiffe://example.org/job"), &["aud"], 60)).await.unwrap();
    let svid = svid.into_inner().svid.unwrap();
    assert_eq!(svid.expires_at - svid.issued_at, 60);
    let v = validate_jwt_svid(&svid.token, &f.bundles().await, &["aud"], SystemTime::now()).unwrap();
    assert_eq!(v.spiffe_id, id("spiffe://example.org/job"));
    let default = admin.svid.mint_jwtsvid(req(Some("spiffe://example.org/job"), &["aud"], 0)).await.unwrap();
    let default = default.into_inner().svid.unwrap();
    assert_eq!(default.expires_at - default.issued_at, 300);

    assert_status(
        admin.svid.mint_jwtsvid(req(None, &["aud"], 0)).await,
        Code::InvalidArgument,
        "invalid SPIFFE ID: request must specify SPIFFE ID",
    );
    assert_status(
        admin.svid.mint_jwtsvid(req(Some("spiffe://other.org/job"), &["aud"], 0)).await,
        Code::InvalidArgument,
        "is not a member of trust domain",
    );
    assert_status(
        admin.svid.mint_jwtsvid(req(Some("spiffe://example.org/job"), &[], 0)).await,
        Code::InvalidArgument,
        "at least one audience is required",
    );
}

#[tokio::test]
async fn downstream_servers_get_a_ca_and_the_roots() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let agent = f.attest_new_agent().await;
    let mut downstream = entry("spiffe://example.org/downstream", &agent.id.to_string());
    downstream.downstream = true;
    admin.create_entry(downstream).await;

    // The downstream server's own X509-SVID, as its agent would have obtained it.
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let ds_id = id("spiffe://example.org/downstream");
    let chain =
        f.ctx.ca.sign_x509_svid(&ds_id, &key.public_key_der(), &[], None, HOUR, SystemTime::now()).unwrap().chain;
    let mut client = SvidClient::new(f.tcp(Some((&chain, &key))).await);

    let ca_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let req = svid_api::NewDownstreamX509caRequest { csr: csr(&ca_key), preferred_ttl: 1800 };
    let resp = client.new_downstream_x509ca(req).await.unwrap().into_inner();
    let ca_cert = leaf(&resp.ca_cert_chain[0]);
    assert!(ca_cert.is_ca());
    assert_eq!(ca_cert.public_key().raw, ca_key.public_key_der().as_slice());
    let lifetime = ca_cert.validity().not_after.timestamp() - ca_cert.validity().not_before.timestamp();
    assert!((lifetime - 1800).abs() <= 15, "preferred_ttl applies ({lifetime}s)");
    let stored = f.ds.fetch_bundle(&td()).await.unwrap().unwrap();
    let roots: Vec<Vec<u8>> = stored.x509_authorities.into_iter().map(|a| a.der).collect();
    assert_eq!(resp.x509_authorities, roots);
    let bad = svid_api::NewDownstreamX509caRequest { csr: tampered(csr(&ca_key)), preferred_ttl: 0 };
    assert_status(client.new_downstream_x509ca(bad).await, Code::InvalidArgument, "invalid CSR signature");

    // An agent is not a downstream server.
    let mut as_agent = agent.svid_client(&f).await;
    let req = svid_api::NewDownstreamX509caRequest { csr: csr(&ca_key), preferred_ttl: 0 };
    assert_status(as_agent.new_downstream_x509ca(req).await, Code::PermissionDenied, "");
}

#[tokio::test]
async fn wit_svids_are_unimplemented() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let mint = admin.svid.mint_witsvid(svid_api::MintWitsvidRequest::default()).await;
    assert_status(mint, Code::Unimplemented, "");
    let agent = f.attest_new_agent().await;
    let batch = agent.svid_client(&f).await.batch_new_witsvid(svid_api::BatchNewWitsvidRequest::default()).await;
    assert_status(batch, Code::Unimplemented, "");
}

// ---------------------------------------------------------------------------------------------
// Agent management: List, Count, Get, Ban, Delete

/// Stores a node the way attestation would.
async fn add_node(
    f: &Fixture,
    path: &str,
    kind: &str,
    expires_at: i64,
    can_reattest: bool,
    selectors: &[&str],
) -> SpiffeId {
    let node_id = td().id_with_path(path).unwrap();
    let node = AttestedNode {
        cert_serial_number: format!("{}", expires_at % 9973),
        cert_not_after: expires_at,
        can_reattest,
        selectors: selectors.iter().map(|s| Selector::parse(s).unwrap()).collect(),
        ..AttestedNode::new(node_id.clone(), kind)
    };
    f.ds.create_attested_node(node).await.unwrap();
    node_id
}

fn selector_match(selectors: &[&str], mode: i32) -> pb::SelectorMatch {
    pb::SelectorMatch {
        selectors: selectors
            .iter()
            .map(|s| {
                let s = Selector::parse(s).unwrap();
                pb::Selector { r#type: s.kind, value: s.value }
            })
            .collect(),
        r#match: mode,
    }
}

/// `time.Time` in the layout SPIRE's CLI sends for `-expiresBefore`.
fn go_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).unwrap().strftime("%Y-%m-%d %H:%M:%S +0000 +00").to_string()
}

#[tokio::test]
async fn list_and_count_agents_with_filters_masks_and_pages() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let now = now_unix();
    add_node(
        &f,
        "/spire/agent/x509pop/a",
        "x509pop",
        now + 100,
        true,
        &["x509pop:subject:cn:a", "x509pop:ca:fingerprint:1"],
    )
    .await;
    add_node(
        &f,
        "/spire/agent/x509pop/b",
        "x509pop",
        now + 5000,
        true,
        &["x509pop:subject:cn:b", "x509pop:ca:fingerprint:1"],
    )
    .await;
    let k8s = add_node(&f, "/spire/agent/k8s_psat/c/n1", "k8s_psat", now + 200, false, &["k8s_psat:cluster:c"]).await;
    let joined = f.attest_new_agent().await;
    admin.agent.ban_agent(agent_api::BanAgentRequest { id: Some(id_proto(&k8s.to_string())) }).await.unwrap();

    let counter = admin.agent.clone();
    let count = |filter: agent_api::count_agents_request::Filter| {
        let mut client = counter.clone();
        async move {
            client
                .count_agents(agent_api::CountAgentsRequest { filter: Some(filter) })
                .await
                .map(|r| r.into_inner().count)
        }
    };
    use agent_api::count_agents_request::Filter as CountFilter;
    assert_eq!(
        admin.agent.count_agents(agent_api::CountAgentsRequest { filter: None }).await.unwrap().into_inner().count,
        4
    );
    assert_eq!(count(CountFilter { by_attestation_type: "x509pop".into(), ..Default::default() }).await.unwrap(), 2);
    assert_eq!(count(CountFilter { by_banned: Some(true), ..Default::default() }).await.unwrap(), 1);
    assert_eq!(count(CountFilter { by_banned: Some(false), ..Default::default() }).await.unwrap(), 3);
    assert_eq!(count(CountFilter { by_can_reattest: Some(true), ..Default::default() }).await.unwrap(), 2);
    assert_eq!(count(CountFilter { by_expires_before: go_time(now + 1000), ..Default::default() }).await.unwrap(), 2);
    let superset = selector_match(&["x509pop:ca:fingerprint:1"], 2);
    assert_eq!(count(CountFilter { by_selector_match: Some(superset), ..Default::default() }).await.unwrap(), 2);
    let exact = selector_match(&["x509pop:subject:cn:a", "x509pop:ca:fingerprint:1"], 0);
    assert_eq!(count(CountFilter { by_selector_match: Some(exact), ..Default::default() }).await.unwrap(), 1);
    let any = selector_match(&["x509pop:subject:cn:b", "k8s_psat:cluster:c"], 3);
    assert_eq!(count(CountFilter { by_selector_match: Some(any), ..Default::default() }).await.unwrap(), 2);
    let bad_time = count(CountFilter { by_expires_before: "tomorrow".into(), ..Default::default() }).await;
    assert_status(bad_time, Code::InvalidArgument, "malformed expires before filter");
    let bad_mode =
        count(CountFilter { by_selector_match: Some(selector_match(&["a:b"], 9)), ..Default::default() }).await;
    assert_status(bad_mode, Code::InvalidArgument, "failed to parse selectors");

    // Paging walks every agent once, in ID order.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let req = agent_api::ListAgentsRequest { page_size: 1, page_token: token.clone(), ..Default::default() };
        let page = admin.agent.list_agents(req).await.unwrap().into_inner();
        assert!(page.agents.len() <= 1);
        seen.extend(page.agents.iter().map(|a| id_of(a.id.as_ref().unwrap())));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen, sorted);
    assert!(seen.contains(&joined.id.to_string()));

    // Filtered list with an output mask: only the masked fields (and the ID) are filled.
    let mask = pb::AgentMask { attestation_type: true, banned: true, ..Default::default() };
    let req = agent_api::ListAgentsRequest {
        filter: Some(agent_api::list_agents_request::Filter { by_banned: Some(true), ..Default::default() }),
        output_mask: Some(mask),
        ..Default::default()
    };
    let agents = admin.agent.list_agents(req).await.unwrap().into_inner().agents;
    assert_eq!(agents.len(), 1);
    let banned = &agents[0];
    assert_eq!(id_of(banned.id.as_ref().unwrap()), k8s.to_string());
    assert_eq!(banned.attestation_type, "k8s_psat");
    assert!(banned.banned);
    assert!(banned.selectors.is_empty() && banned.x509svid_expires_at == 0 && banned.x509svid_serial_number.is_empty());
    let negative = agent_api::ListAgentsRequest { page_size: -1, ..Default::default() };
    assert_status(admin.agent.list_agents(negative).await, Code::InvalidArgument, "page size");
}

#[tokio::test]
async fn get_ban_and_delete_agents() {
    let f = Fixture::new().await;
    let mut admin = f.admin().await;
    let node =
        add_node(&f, "/spire/agent/x509pop/a", "x509pop", now_unix() + 100, true, &["x509pop:subject:cn:a"]).await;
    let node_str = node.to_string();

    let full = admin.get_agent(&node_str).await.unwrap();
    assert_eq!(full.selectors, vec![pb::Selector { r#type: "x509pop".into(), value: "subject:cn:a".into() }]);
    assert!(full.can_reattest && !full.banned && !full.x509svid_serial_number.is_empty());
    let masked = admin
        .agent
        .get_agent(agent_api::GetAgentRequest {
            id: Some(id_proto(&node_str)),
            output_mask: Some(pb::AgentMask { selectors: true, ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(masked.selectors.len(), 1);
    assert!(masked.attestation_type.is_empty() && !masked.can_reattest && masked.x509svid_serial_number.is_empty());
    assert_eq!(id_of(masked.id.as_ref().unwrap()), node_str);

    assert_status(
        admin.get_agent("spiffe://example.org/spire/agent/x509pop/none").await,
        Code::NotFound,
        "agent not found",
    );
    assert_status(admin.get_agent("spiffe://example.org/workload").await, Code::InvalidArgument, "invalid agent ID");
    assert_status(
        admin.get_agent("spiffe://other.org/spire/agent/x").await,
        Code::InvalidArgument,
        "is not a member of trust domain",
    );

    // Ban: no serial, reported as banned; an agent presenting its SVID is then refused.
    let agent = f.attest_new_agent().await;
    let ban = |id: &str| agent_api::BanAgentRequest { id: Some(id_proto(id)) };
    admin.agent.ban_agent(ban(&agent.id.to_string())).await.unwrap();
    let banned = admin.get_agent(&agent.id.to_string()).await.unwrap();
    assert!(banned.banned);
    assert!(banned.x509svid_serial_number.is_empty());
    let mut client = AgentClient::new(agent.channel(&f).await);
    assert_status(client.post_status(agent_api::PostStatusRequest::default()).await, Code::PermissionDenied, "banned");
    assert_status(
        admin.agent.ban_agent(ban("spiffe://example.org/spire/agent/x/none")).await,
        Code::NotFound,
        "agent not found",
    );

    // Delete: node and selectors go; a second delete is NotFound.
    let delete = |id: &str| agent_api::DeleteAgentRequest { id: Some(id_proto(id)) };
    admin.agent.delete_agent(delete(&node_str)).await.unwrap();
    assert_status(admin.get_agent(&node_str).await, Code::NotFound, "agent not found");
    assert!(f.ds.get_node_selectors(&node).await.unwrap().is_empty());
    assert_status(admin.agent.delete_agent(delete(&node_str)).await, Code::NotFound, "agent not found");
    assert_status(
        admin.agent.delete_agent(delete("spiffe://example.org/not-an-agent")).await,
        Code::InvalidArgument,
        "invalid agent ID",
    );
}

// ---------------------------------------------------------------------------------------------
// GetAuthorizedEntries and SyncAuthorizedEntries (agent callers over mTLS)

/// Runs one SyncAuthorizedEntries exchange: the first request, then each later request is built from
/// the responses so far (None ends the stream). Returns every response received.
async fn sync_exchange(
    client: &mut EntryClient<Channel>,
    mut next: impl FnMut(&[entry_api::SyncAuthorizedEntriesResponse]) -> Option<entry_api::SyncAuthorizedEntriesRequest>,
) -> Vec<entry_api::SyncAuthorizedEntriesResponse> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(entry_api::SyncAuthorizedEntriesRequest::default()).await.unwrap();
    let mut inbound =
        client.sync_authorized_entries(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut got = Vec::new();
    let mut tx = Some(tx);
    while let Ok(Ok(Some(msg))) = tokio::time::timeout(Duration::from_secs(5), inbound.message()).await {
        let more = msg.more;
        got.push(msg);
        if !more {
            match next(&got) {
                Some(req) => tx.as_ref().unwrap().send(req).await.unwrap(),
                None => {
                    tx.take();
                    break;
                }
            }
        }
    }
    got
}

#[tokio::test]
async fn authorized_entries_are_the_agents_own_descendants() {
    let f = Fixture::new().await;
    let agent = f.attest_new_agent().await;
    let other = f.attest_new_agent().await;
    let mut admin = f.admin().await;
    let mine = admin.create_entry(entry("spiffe://example.org/a/svc", &agent.id.to_string())).await;
    let nested = admin.create_entry(entry("spiffe://example.org/a/svc/child", "spiffe://example.org/a/svc")).await;
    admin.create_entry(entry("spiffe://example.org/b/svc", &other.id.to_string())).await;

    let mut client = EntryClient::new(agent.channel(&f).await);
    let got = client.get_authorized_entries(entry_api::GetAuthorizedEntriesRequest::default()).await.unwrap();
    let mut ids: Vec<String> = got.into_inner().entries.into_iter().map(|e| e.id).collect();
    ids.sort();
    let mut want = vec![mine.clone(), nested.clone()];
    want.sort();
    assert_eq!(ids, want, "exactly the agent's entries, nested ones included, never another agent's");

    // A small set comes whole in one response.
    let responses = sync_exchange(&mut client, |_| None).await;
    assert_eq!(responses.len(), 1);
    assert!(responses[0].entry_revisions.is_empty() && !responses[0].more);
    assert_eq!(responses[0].entries.len(), 2);

    // An entry written after the first sync shows up at the next, from the index kept on writes.
    let later = admin.create_entry(entry("spiffe://example.org/a/later", &agent.id.to_string())).await;
    let got = client.get_authorized_entries(entry_api::GetAuthorizedEntriesRequest::default()).await.unwrap();
    assert!(got.get_ref().entries.iter().any(|e| e.id == later));

    // Callers without an agent SVID are refused, local admins included.
    assert_status(
        admin.entry.get_authorized_entries(entry_api::GetAuthorizedEntriesRequest::default()).await,
        Code::PermissionDenied,
        "",
    );
    let mut anonymous = EntryClient::new(f.tcp(None).await);
    assert_status(
        anonymous.get_authorized_entries(entry_api::GetAuthorizedEntriesRequest::default()).await,
        Code::PermissionDenied,
        "",
    );
}

#[tokio::test]
async fn sync_pages_revisions_then_the_entries_asked_for() {
    let f = Fixture::new().await;
    let agent = f.attest_new_agent().await;
    let mut admin = f.admin().await;
    let parent = agent.id.to_string();
    let entries: Vec<pb::Entry> = (0..520).map(|i| entry(&format!("spiffe://example.org/many/{i}"), &parent)).collect();
    let req = entry_api::BatchCreateEntryRequest { entries, output_mask: None };
    let created = admin.entry.batch_create_entry(req).await.unwrap().into_inner().results;
    assert!(created.iter().all(|r| r.status.as_ref().unwrap().code == 0));

    let mut client = EntryClient::new(agent.channel(&f).await);
    let mut asked = false;
    let responses = sync_exchange(&mut client, |so_far| {
        if asked {
            return None;
        }
        asked = true;
        // Ask for every entry whose revision was announced.
        let ids = so_far.iter().flat_map(|r| r.entry_revisions.iter().map(|e| e.id.clone())).collect();
        Some(entry_api::SyncAuthorizedEntriesRequest { output_mask: None, ids })
    })
    .await;
    let revision_pages: Vec<_> = responses.iter().filter(|r| !r.entry_revisions.is_empty()).collect();
    assert_eq!(revision_pages.len(), 2, "520 revisions in pages of 500");
    assert!(revision_pages[0].more && !revision_pages[1].more);
    let full: usize = responses.iter().map(|r| r.entries.len()).sum();
    assert_eq!(full, 520, "the entries asked for come back in full");
    assert!(responses.iter().all(|r| r.entries.len() <= 500));
}
