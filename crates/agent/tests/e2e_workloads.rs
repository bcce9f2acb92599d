//! Acceptance tests of the agent with real processes only: a `spire-server`, a `spire-agent`, and
//! workloads that are processes of their own (this test binary, re-executed as another uid where the
//! uid matters) using the independent rust-spiffe client.
//!
//! - isolation: workloads of different uids each get exactly their own identity, a workload without
//!   an entry gets PermissionDenied "no identity issued", and the Workload API's argument errors;
//! - rotation: one open X509-SVID stream receives the renewed SVID before the old one expires, an
//!   entry update (a new DNS name), and the entry's deletion (PermissionDenied, then the stream ends);
//! - server outage: the agent serves its cache while the server is down, then resumes syncing;
//! - a banned agent exits non-zero and says why.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use spiffe::transport::TransportError;
use spiffe::{WorkloadApiClient, WorkloadApiError, X509Svid};
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::{JwtBundlesRequest, JwtsvidRequest, X509svidRequest};
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id, server_cli};
use spire_testkit::process::{TestServer, uds_channel};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Code, Request};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

/// Tells [`workload_helper`] which agent socket to talk to.
const WORKLOAD_SOCKET_ENV: &str = "SPIRE_E2E_WORKLOAD_SOCKET";

/// Starts the one line of JSON [`workload_helper`] prints.
const RESULT_PREFIX: &str = "E2E_WORKLOAD_RESULT ";

fn server_binary() -> PathBuf {
    spire_testkit::agent::server_binary(Path::new(AGENT))
}

fn id(path: &str) -> String {
    format!("spiffe://example.org{path}")
}

fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A registration entry parented to the test's agent.
struct EntrySpec {
    id: &'static str,
    path: &'static str,
    selector: String,
    extra: Vec<&'static str>,
}

impl EntrySpec {
    fn new(id: &'static str, path: &'static str, selector: impl Into<String>) -> Self {
        Self { id, path, selector: selector.into(), extra: Vec::new() }
    }

    fn with(mut self, extra: &[&'static str]) -> Self {
        self.extra.extend_from_slice(extra);
        self
    }
}

/// A server, an agent attested to it with a join token, and the entries created before the agent
/// started (so that its first sync, which happens before it opens its socket, already has them).
struct Deployment {
    server: TestServer,
    agent: TestAgent,
    agent_id: String,
    _dir: tempfile::TempDir,
}

impl Deployment {
    async fn start(entries: &[EntrySpec]) -> Self {
        let server = TestServer::start(server_binary(), "").await;
        let token = generate_token(&server_binary(), &server);
        let agent_id = join_token_agent_id(&token);
        for e in entries {
            let args = entry_args("create", &agent_id, e);
            server_cli(&server_binary(), &server, &args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let dir = tempfile::tempdir().unwrap();
        // No binary hashing: the workloads are this (large) test binary.
        let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
        let agent = TestAgent::start(AGENT, dir.path(), server.port, &options).await;
        Self { server, agent, agent_id, _dir: dir }
    }

    fn cli(&self, args: &[&str]) -> String {
        server_cli(&server_binary(), &self.server, args)
    }

    fn entry(&self, command: &str, e: &EntrySpec) {
        let args = entry_args(command, &self.agent_id, e);
        self.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// A new Workload API connection from this test process.
    async fn client(&self) -> WorkloadApiClient {
        WorkloadApiClient::connect_to(self.agent.endpoint()).await.unwrap()
    }
}

fn entry_args(command: &str, agent_id: &str, e: &EntrySpec) -> Vec<String> {
    let mut args: Vec<String> =
        ["entry", command, "-entryID", e.id, "-parentID", agent_id, "-selector", &e.selector].map(String::from).into();
    args.extend(["-spiffeID".into(), id(e.path)]);
    args.extend(e.extra.iter().map(|a| a.to_string()));
    args
}

/// How rust-spiffe reported an error: its `NoIdentityIssued`, or the gRPC code and message.
fn describe(e: &WorkloadApiError) -> String {
    match e {
        WorkloadApiError::NoIdentityIssued => "NoIdentityIssued".into(),
        WorkloadApiError::Transport(TransportError::Status(s)) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

/// The generated Workload API client on the agent socket, which adds no metadata by itself.
async fn raw_client(socket: &Path) -> SpiffeWorkloadApiClient<Channel> {
    SpiffeWorkloadApiClient::new(uds_channel(socket).await)
}

fn with_header<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("workload.spiffe.io", "true".parse().unwrap());
    request
}

/// The leaf of an X509-SVID as the tests look at it.
#[derive(Debug, PartialEq)]
struct Leaf {
    serial: String,
    not_after: i64,
    dns: Vec<String>,
}

impl Leaf {
    fn of(svid: &X509Svid) -> Self {
        let (_, cert) = X509Certificate::from_der(svid.leaf().as_bytes()).unwrap();
        let dns = cert
            .subject_alternative_name()
            .unwrap()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some((*d).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { serial: cert.raw_serial_as_string(), not_after: cert.validity().not_after.timestamp(), dns }
    }
}

/// The next item of `stream`, `None` when it ended; panics after `timeout`.
async fn next<S: Stream + Unpin>(stream: &mut S, timeout: Duration, what: &str, agent: &TestAgent) -> Option<S::Item> {
    tokio::time::timeout(timeout, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?} waiting for {what}; agent log:\n{}", agent.log()))
}

/// Runs [`workload_helper`] as `uid` (and gid `uid`) against `socket`; returns what it printed.
async fn run_workload_as(uid: u32, socket: &Path) -> Value {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "workload_helper", "--ignored", "--nocapture", "--quiet", "--test-threads=1"])
        .env(WORKLOAD_SOCKET_ENV, socket)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the workload running as uid {uid} did not finish in 30 s"))
        .unwrap_or_else(|e| panic!("cannot run the test binary as uid {uid} (must be readable by all users): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.split_once(RESULT_PREFIX).map(|(_, r)| r.to_owned()));
    let line = line.unwrap_or_else(|| {
        panic!(
            "the workload running as uid {uid} printed no result ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&line).unwrap()
}

/// Run as a child process by [`workloads_of_different_uids_get_only_their_own_identity`]: a tiny
/// workload that asks the agent for its X509-SVIDs, bundles and a JWT-SVID with rust-spiffe, and for the raw
/// first FetchX509SVID message with the generated client, then prints the outcomes as one JSON line.
#[tokio::test]
#[ignore = "helper: run as a workload process, as another uid, by the isolation test"]
async fn workload_helper() {
    let Some(socket) = std::env::var_os(WORKLOAD_SOCKET_ENV) else { return };
    let socket = PathBuf::from(socket);
    let client = WorkloadApiClient::connect_to(format!("unix:{}", socket.display())).await.unwrap();
    let x509 = match client.fetch_all_x509_svids().await {
        Ok(svids) => json!({ "ids": svids.iter().map(|s| s.spiffe_id().to_string()).collect::<Vec<_>>() }),
        Err(e) => json!({ "error": describe(&e) }),
    };
    let bundles = match client.fetch_x509_bundles().await {
        Ok(set) => json!({ "trust_domains": set.iter().map(|(td, _)| td.to_string()).collect::<Vec<_>>() }),
        Err(e) => json!({ "error": describe(&e) }),
    };
    let jwt = match client.fetch_jwt_svid(["e2e"], None).await {
        Ok(svid) => json!({ "id": svid.spiffe_id().to_string() }),
        Err(e) => json!({ "error": describe(&e) }),
    };
    let status = |s: tonic::Status| json!({ "code": format!("{:?}", s.code()), "message": s.message() });
    let raw = match raw_client(&socket).await.fetch_x509svid(with_header(X509svidRequest::default())).await {
        Ok(response) => match response.into_inner().message().await {
            Ok(Some(m)) => json!({ "ids": m.svids.iter().map(|s| s.spiffe_id.clone()).collect::<Vec<_>>() }),
            Ok(None) => json!({ "error": "the stream ended without a message" }),
            Err(s) => status(s),
        },
        Err(s) => status(s),
    };
    println!(
        "{RESULT_PREFIX}{}",
        json!({ "uid": own_uid(), "x509": x509, "bundles": bundles, "jwt": jwt, "raw": raw })
    );
}

#[tokio::test]
async fn workloads_of_different_uids_get_only_their_own_identity() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run workloads as other users");
        return;
    }
    let d = Deployment::start(&[
        EntrySpec::new("uid1001", "/uid1001", "unix:uid:1001"),
        EntrySpec::new("uid1002", "/uid1002", "unix:uid:1002"),
    ])
    .await;
    let socket = &d.agent.socket;
    let (a, b, c) =
        tokio::join!(run_workload_as(1001, socket), run_workload_as(1002, socket), run_workload_as(1003, socket));
    for (uid, report) in [(1001, &a), (1002, &b)] {
        let expected = id(&format!("/uid{uid}"));
        let context = format!("uid {uid}: {report}\nagent log:\n{}", d.agent.log());
        assert_eq!(report["uid"], uid, "{context}");
        // Exactly one SVID, its own, through rust-spiffe and on the wire.
        assert_eq!(report["x509"], json!({ "ids": [expected] }), "{context}");
        assert_eq!(report["raw"], json!({ "ids": [expected] }), "{context}");
        assert_eq!(report["bundles"], json!({ "trust_domains": ["example.org"] }), "{context}");
        assert_eq!(report["jwt"], json!({ "id": expected }), "{context}");
    }
    // A uid without an entry: PermissionDenied "no identity issued", which rust-spiffe maps.
    let context = format!("uid 1003: {c}\nagent log:\n{}", d.agent.log());
    assert_eq!(c["uid"], 1003, "{context}");
    assert_eq!(c["x509"], json!({ "error": "NoIdentityIssued" }), "{context}");
    assert_eq!(c["jwt"], json!({ "error": "NoIdentityIssued" }), "{context}");
    assert_eq!(c["bundles"], json!({ "error": "NoIdentityIssued" }), "{context}");
    assert_eq!(c["raw"], json!({ "code": "PermissionDenied", "message": "no identity issued" }), "{context}");

    // Without the security header (or with another value), every call is InvalidArgument.
    let mut raw = raw_client(socket).await;
    let missing = (Code::InvalidArgument, "security header missing from request");
    let err = raw.fetch_x509svid(X509svidRequest::default()).await.unwrap_err();
    assert_eq!((err.code(), err.message()), missing);
    let audience = JwtsvidRequest { audience: vec!["e2e".into()], spiffe_id: String::new() };
    let err = raw.fetch_jwtsvid(audience).await.unwrap_err();
    assert_eq!((err.code(), err.message()), missing);
    let err = raw.fetch_jwt_bundles(JwtBundlesRequest::default()).await.unwrap_err();
    assert_eq!((err.code(), err.message()), missing);
    let mut wrong = Request::new(X509svidRequest::default());
    wrong.metadata_mut().insert("workload.spiffe.io", "True".parse().unwrap());
    let err = raw.fetch_x509svid(wrong).await.unwrap_err();
    assert_eq!((err.code(), err.message()), missing);

    // FetchJWTSVID without an audience (rust-spiffe sends the empty list as it is).
    let err = d.client().await.fetch_jwt_svid(Vec::<&str>::new(), None).await.unwrap_err();
    assert_eq!(describe(&err), "InvalidArgument: audience must be specified");
}

#[tokio::test]
async fn a_subscribed_workload_sees_rotation_entry_updates_and_deletion_on_one_stream() {
    // 16 s, backdated 10 s by the server: renewed at half of that 26 s life, 3 s after each mint.
    let entry =
        EntrySpec::new("rotating", "/rotating", format!("unix:uid:{}", own_uid())).with(&["-x509SVIDTTL", "16"]);
    let d = Deployment::start(std::slice::from_ref(&entry)).await;
    let client = d.client().await;
    // rust-spiffe's raw stream: one FetchX509SVID call, never reconnected.
    let mut stream = Box::pin(client.stream_x509_svids().await.unwrap());
    let agent = &d.agent;

    let first = next(&mut stream, Duration::from_secs(5), "the first SVID", agent).await.unwrap().unwrap();
    assert_eq!(first.spiffe_id().to_string(), id("/rotating"));
    let first = Leaf::of(&first);
    assert!(first.dns.is_empty(), "{first:?}");

    // Rotation: renewed at half of its life, pushed before the old one expires.
    let rotated = loop {
        let svid = next(&mut stream, Duration::from_secs(8), "a rotated SVID", agent).await;
        let svid = svid.expect("the stream ended").unwrap_or_else(|e| panic!("{e}: {}", agent.log()));
        let leaf = Leaf::of(&svid);
        if leaf.serial != first.serial {
            break leaf;
        }
    };
    assert!(unix_now() < first.not_after, "the rotated SVID arrived after the old one expired: {first:?} {rotated:?}");
    assert!(rotated.not_after > first.not_after, "{first:?} {rotated:?}");

    // An entry update reaches the subscriber: the entry's new revision is re-minted at the next sync
    // (sooner than the next rotation, due about 3 s after the last one).
    let updated_entry = EntrySpec::new("rotating", "/rotating", entry.selector.clone()).with(&[
        "-x509SVIDTTL",
        "16",
        "-dns",
        "new.example.org",
    ]);
    d.entry("update", &updated_entry);
    let updated_at = Instant::now();
    loop {
        let svid = next(&mut stream, Duration::from_secs(5), "the updated SVID", agent).await;
        let svid = svid.expect("the stream ended").unwrap_or_else(|e| panic!("{e}: {}", agent.log()));
        assert_eq!(svid.spiffe_id().to_string(), id("/rotating"));
        if Leaf::of(&svid).dns == ["new.example.org"] {
            break;
        }
    }
    assert!(updated_at.elapsed() < Duration::from_millis(2500), "entry update took {:?}", updated_at.elapsed());

    // Deleting the entry withdraws the identity: the stream reports PermissionDenied "no identity
    // issued" (rust-spiffe's NoIdentityIssued), then ends, as SPIRE's does.
    d.cli(&["entry", "delete", "-entryID", "rotating"]);
    let error = loop {
        match next(&mut stream, Duration::from_secs(5), "the identity's withdrawal", agent).await {
            Some(Ok(_)) => continue, // a rotation racing the deletion
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert!(matches!(error, WorkloadApiError::NoIdentityIssued), "{error:?}");
    assert!(next(&mut stream, Duration::from_secs(5), "the end of the stream", agent).await.is_none());
    // And a new connection gets nothing either.
    let err = d.client().await.fetch_x509_svid().await.unwrap_err();
    assert!(matches!(err, WorkloadApiError::NoIdentityIssued), "{err:?}");
}

#[tokio::test]
async fn the_agent_serves_its_cache_while_the_server_is_down_and_resumes_syncing() {
    let selector = format!("unix:uid:{}", own_uid());
    let mut d = Deployment::start(&[EntrySpec::new("cached", "/cached", selector.clone())]).await;
    let client = d.client().await;
    let before = Leaf::of(&client.fetch_x509_svid().await.unwrap());
    let jwt_before = client.fetch_jwt_svid(["outage"], None).await.unwrap();
    // A stream opened before the outage, kept open through it.
    let mut stream = Box::pin(client.stream_x509_contexts().await.unwrap());
    let ids = |ctx: &spiffe::X509Context| ctx.svids().iter().map(|s| s.spiffe_id().to_string()).collect::<Vec<_>>();
    let first = next(&mut stream, Duration::from_secs(5), "the first X509 context", &d.agent).await.unwrap().unwrap();
    assert_eq!(ids(&first), [id("/cached")]);

    let logged = d.agent.log().len();
    d.server.stop();
    assert!(
        d.agent.wait_for_log("sync failed", logged, Duration::from_secs(10)).await,
        "the agent did not notice the outage:\n{}",
        d.agent.log()
    );
    // A new connection, while the server is known to be down: the cached SVID, bundle and JWT-SVID.
    let client = d.client().await;
    let during = client.fetch_x509_svid().await.unwrap_or_else(|e| panic!("{e}: {}", d.agent.log()));
    assert_eq!(during.spiffe_id().to_string(), id("/cached"));
    assert_eq!(Leaf::of(&during), before);
    let td = spiffe::TrustDomain::new("example.org").unwrap();
    assert!(client.fetch_x509_bundles().await.unwrap().get(&td).is_some());
    let jwt_during = client.fetch_jwt_svid(["outage"], None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jwt_during.token(), jwt_before.token());

    // Back up (same port, data and keys): an entry created now reaches the agent once its backoff
    // (doubling from the 200 ms sync interval while the server was down) lets it sync again.
    d.server.restart().await;
    d.entry("create", &EntrySpec::new("after-restart", "/after-restart", selector));
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(20);
    loop {
        let ids: Vec<String> = match d.client().await.fetch_all_x509_svids().await {
            Ok(svids) => svids.iter().map(|s| s.spiffe_id().to_string()).collect(),
            Err(e) => panic!("{e}: {}", d.agent.log()),
        };
        if ids.contains(&id("/after-restart")) {
            assert!(ids.contains(&id("/cached")), "{ids:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not resync after the restart: {ids:?}\n{}", d.agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("resynced {:?} after the restart", restarted.elapsed());
    // The stream that was open all along got the new identity too.
    let ctx = next(&mut stream, Duration::from_secs(5), "the context with the new entry", &d.agent).await;
    let ctx = ctx.expect("the stream ended").unwrap_or_else(|e| panic!("{e}: {}", d.agent.log()));
    assert_eq!(ids(&ctx), [id("/after-restart"), id("/cached")]);
}

#[tokio::test]
async fn a_banned_agent_stops_and_says_why() {
    let mut d = Deployment::start(&[EntrySpec::new("ban", "/ban", format!("unix:uid:{}", own_uid()))]).await;
    d.client().await.fetch_x509_svid().await.unwrap();

    let out = d.cli(&["agent", "ban", "-spiffeID", &d.agent_id]);
    assert_eq!(out, "Agent banned successfully\n");
    let banned = Instant::now();
    let Some(status) = d.agent.wait_exit(Duration::from_secs(5)).await else {
        panic!("the banned agent is still running after 5 s:\n{}", d.agent.log());
    };
    assert!(!status.success(), "{status}");
    let log = d.agent.log();
    assert!(log.contains("no longer authorized") && log.contains("is banned"), "{log}");
    eprintln!("the banned agent exited ({status}) {:?} after the ban", banned.elapsed());

    // It forgot its SVID, so restarted without a token it cannot come back.
    let logged = log.len();
    let mut again = TestAgent::launch(AGENT, &d.agent.dir, d.server.port, &AgentOptions::default());
    let Some(status) = again.wait_exit(Duration::from_secs(10)).await else {
        panic!("the banned agent, restarted, is running:\n{}", again.log());
    };
    assert!(!status.success(), "{status}");
    assert!(!again.socket.exists(), "the banned agent opened its Workload API socket");
    let log = again.log();
    assert!(log[logged..].contains("no valid SVID and no join token"), "{log}");
}
