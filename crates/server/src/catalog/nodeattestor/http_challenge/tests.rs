//! The attestation flow against real HTTP listeners on 127.0.0.1, with a real datastore behind the
//! TOFU check.

use std::sync::Arc;
use std::time::Duration;

use spire_attestation::http_challenge::{Challenge, RESPONSE};
use spire_datastore::{AttestedNode, DataStore, SqlStore, SqliteOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;

use super::*;
use crate::catalog::nodeattestor::DataStoreAgentStore;

/// What the test agent serves for a nonce.
type Answer = fn(&str) -> Option<String>;

/// The agent's side: answers the challenge with a newline and serves [`Answer`] of the nonce on
/// its listener (`None`: accept, then never answer).
struct Agent {
    listener: Option<TcpListener>,
    answer: Answer,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Agent {
    async fn new(answer: Answer) -> (Self, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (Self { listener: Some(listener), answer, requests: Arc::default() }, port)
    }
}

#[async_trait::async_trait]
impl Challenger for Agent {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status> {
        let nonce = Challenge::from_json(&challenge).unwrap().nonce;
        let listener = self.listener.take().expect("one challenge");
        let (answer, requests) = (self.answer, self.requests.clone());
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let n = conn.read(&mut head).await.unwrap();
            requests.lock().unwrap().push(String::from_utf8_lossy(&head[..n]).into_owned());
            match answer(&nonce) {
                Some(body) => {
                    let response =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    conn.write_all(response.as_bytes()).await.unwrap();
                }
                None => tokio::time::sleep(Duration::from_secs(60)).await,
            }
        });
        Ok(RESPONSE.to_vec())
    }
}

fn right(nonce: &str) -> Option<String> {
    Some(format!("{nonce}\n"))
}

async fn datastore() -> (tempfile::TempDir, Arc<dyn DataStore>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ds.sqlite3");
    let ds: Arc<dyn DataStore> =
        Arc::new(SqlStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
    (dir, ds)
}

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn attestor(data: &str, ds: &Arc<dyn DataStore>) -> HttpChallengeAttestor {
    let config = HttpChallengeConfig::from_plugin(&config::test_plugin(data)).unwrap();
    HttpChallengeAttestor::new(config, td(), Arc::new(DataStoreAgentStore(ds.clone())))
}

fn payload(hostname: &str, agentname: &str, port: i64) -> Vec<u8> {
    AttestationData { hostname: hostname.into(), agentname: agentname.into(), port }.to_json()
}

#[tokio::test]
async fn the_nonce_served_over_http_attests_the_host() {
    let (_dir, ds) = datastore().await;
    let (mut agent, port) = Agent::new(right).await;
    let result = attestor("", &ds).attest(&payload("127.0.0.1", "default", port.into()), &mut agent).await.unwrap();
    assert_eq!(result.agent_id.to_string(), "spiffe://example.org/spire/agent/http_challenge/127.0.0.1");
    assert_eq!(result.selector_values, ["hostname:127.0.0.1"]);
    assert!(!result.can_reattest, "TOFU agents renew instead");
    let request = agent.requests.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("GET /.well-known/spiffe/nodeattestor/http_challenge/default/challenge HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.to_lowercase().contains(&format!("host: 127.0.0.1:{port}\r\n")), "{request}");
}

#[tokio::test]
async fn tofu_refuses_a_host_already_attested_and_off_allows_reattestation() {
    let (_dir, ds) = datastore().await;
    let id = agent_id(&td(), "127.0.0.1").unwrap();
    ds.create_attested_node(AttestedNode::new(id, NAME.to_owned())).await.unwrap();
    let (mut agent, port) = Agent::new(right).await;
    let err = attestor("", &ds).attest(&payload("127.0.0.1", "default", port.into()), &mut agent).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "nodeattestor(http_challenge): attestation data has already been used to attest an agent"
    );

    // Without TOFU (a configuration SPIRE allows only with root ports) the same host attests again.
    let mut config = HttpChallengeConfig::from_plugin(&config::test_plugin("")).unwrap();
    config.tofu = false;
    let plain = HttpChallengeAttestor::new(config, td(), Arc::new(DataStoreAgentStore(ds.clone())));
    let (mut agent, port) = Agent::new(right).await;
    let result = plain.attest(&payload("127.0.0.1", "default", port.into()), &mut agent).await.unwrap();
    assert!(result.can_reattest);
}

#[tokio::test]
async fn a_wrong_or_missing_answer_is_refused() {
    let (_dir, ds) = datastore().await;
    let a = attestor("", &ds);
    let (mut agent, port) = Agent::new(|_| Some("not the nonce\n".into())).await;
    let err = a.attest(&payload("127.0.0.1", "default", port.into()), &mut agent).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().starts_with("nodeattestor(http_challenge): challenge verification failed: expected nonce \""),
        "{}",
        err.message()
    );
    assert!(err.message().ends_with("but got \"not the nonce\\n\""), "{}", err.message());

    // A long body is read only up to 64 bytes.
    let (mut agent, port) = Agent::new(|n| Some(format!("{n}{}", "x".repeat(1000)))).await;
    let err = a.attest(&payload("127.0.0.1", "default", port.into()), &mut agent).await.unwrap_err();
    let got = err.message().rsplit("but got ").next().unwrap();
    assert_eq!(got.len(), 64 + 2, "{got}");

    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = a.attest(&payload("127.0.0.1", "default", closed_port.into()), &mut Silent).await.unwrap_err();
    let expected = format!(
        "nodeattestor(http_challenge): challenge verification failed: Get \"http://127.0.0.1:{closed_port}/.well-known/spiffe/nodeattestor/http_challenge/default/challenge\": dial tcp 127.0.0.1:{closed_port}: connect: "
    );
    assert!(err.message().starts_with(&expected), "{}", err.message());

    // An agent that accepts and never answers.
    let (mut agent, port) = Agent::new(|_| None).await;
    let err = attestor("", &ds)
        .with_fetch_timeout(Duration::from_millis(300))
        .attest(&payload("127.0.0.1", "default", port.into()), &mut agent)
        .await
        .unwrap_err();
    assert!(err.message().ends_with(": context deadline exceeded"), "{}", err.message());
}

/// A challenger that must not be reached.
struct NoChallenge;

#[async_trait::async_trait]
impl Challenger for NoChallenge {
    async fn challenge(&mut self, _: Vec<u8>) -> Result<Vec<u8>, Status> {
        panic!("challenged");
    }
}

/// Answers the challenge, serves nothing.
struct Silent;

#[async_trait::async_trait]
impl Challenger for Silent {
    async fn challenge(&mut self, _: Vec<u8>) -> Result<Vec<u8>, Status> {
        Ok(RESPONSE.to_vec())
    }
}

#[tokio::test]
async fn payloads_are_checked_before_any_challenge_in_spire_order() {
    let (_dir, ds) = datastore().await;
    let cases: &[(&str, Vec<u8>, Code, &str)] = &[
        ("", Vec::new(), Code::InvalidArgument, "missing attestation payload"),
        ("", b"{".to_vec(), Code::InvalidArgument, "failed to unmarshal data: "),
        (
            "",
            br#"{"port":"80"}"#.to_vec(),
            Code::InvalidArgument,
            "failed to unmarshal data: json: cannot unmarshal string",
        ),
        (
            "required_port = 80",
            payload("h", "default", 8080),
            Code::InvalidArgument,
            "port 8080 is not allowed to be used by this server",
        ),
        (
            "allow_non_root_ports = false",
            payload("h", "default", 1024),
            Code::InvalidArgument,
            "port 1024 is not allowed to be >= 1024",
        ),
        // The port is judged before the agent name.
        ("required_port = 80", payload("h", "a.b", 81), Code::InvalidArgument, "port 81 is not allowed"),
        ("", payload("h", "a.b", 80), Code::InvalidArgument, "agent name is not valid"),
        ("", payload("h", "a", 80), Code::InvalidArgument, "agent name is not valid"),
        ("", payload("h", "a1b", 80), Code::InvalidArgument, "agent name is not valid"),
        ("", payload("h", "", 80), Code::InvalidArgument, "agent name is not valid"),
        ("", payload("h", &"a".repeat(33), 80), Code::InvalidArgument, "agent name is not valid"),
        ("", payload("localhost", "default", 80), Code::PermissionDenied, "you can not use localhost as a hostname"),
        (
            r#"allowed_dns_patterns = ["p[0-9]\\.example\\.com"]"#,
            payload("q1.example.com", "default", 80),
            Code::PermissionDenied,
            "the requested hostname is not allowed to connect",
        ),
    ];
    for (config, payload, code, message) in cases {
        let err = attestor(config, &ds).attest(payload, &mut NoChallenge).await.unwrap_err();
        assert_eq!(err.code(), *code, "{config} {}", String::from_utf8_lossy(payload));
        let full = format!("nodeattestor(http_challenge): {message}");
        assert!(err.message().starts_with(&full), "{}: {}", String::from_utf8_lossy(payload), err.message());
    }
}

#[tokio::test]
async fn names_spire_accepts_reach_the_challenge_and_unfetchable_ones_fail_after_it() {
    let (_dir, ds) = datastore().await;
    // Patterns match anywhere in the name, as Go's regexp finds; `default1`, `a-`, `_A` (`_` is inside `A-z`) are agent
    // names SPIRE's pattern takes.
    let a = attestor(r#"allowed_dns_patterns = ["example\\.com"]"#, &ds);
    for (payload, message) in [
        (payload("node.example.com.evil", "default1", 0), "port is invalid"),
        (payload("a/example.com", "a-", 80), "hostname can not contain a slash"),
        (payload("example.com", "_A", -1), "port is invalid"),
    ] {
        let err = a.attest(&payload, &mut Silent).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert_eq!(err.message(), format!("nodeattestor(http_challenge): challenge verification failed: {message}"));
    }
    // An empty host name passes the checks SPIRE makes first and fails after the challenge.
    let err = attestor("", &ds).attest(&payload("", "default", 80), &mut Silent).await.unwrap_err();
    assert_eq!(err.message(), "nodeattestor(http_challenge): challenge verification failed: hostname must be set");
    let err =
        attestor("", &ds).attest(&payload("no-such-host.invalid", "default", 70000), &mut Silent).await.unwrap_err();
    assert!(err.message().ends_with("dial tcp: address 70000: invalid port"), "{}", err.message());
}

#[test]
fn agent_ids_must_be_valid_spiffe_ids() {
    assert_eq!(
        agent_id(&td(), "h.example.com").unwrap().to_string(),
        "spiffe://example.org/spire/agent/http_challenge/h.example.com"
    );
    let err = agent_id(&td(), "a b").unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(
        err.to_string().starts_with("failed to make spiffe id: invalid agent path suffix \"/http_challenge/a b\": "),
        "{err}"
    );
}
