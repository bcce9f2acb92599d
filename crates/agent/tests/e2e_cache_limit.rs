//! Acceptance tests of the agent's X509-SVID cache limit with real processes: a `spire-server` and a
//! `spire-agent` run with `x509_svid_cache_max_size`, and this test process as the workload.
//!
//! - with more entries than the limit, only up to the limit are minted before any workload asks
//!   (the agent's debug line "X509-SVID cache updated" reports `cached=`), the prefetched ones being the
//!   first by entry ID; a workload whose entries were not prefetched waits for its first answer until
//!   all its SVIDs are minted (as SPIRE's subscribers do), beyond the (soft) limit, while the
//!   unsubscribed extras are evicted; they stay while its stream is open, and go once it closes;
//! - entries with `disable_x509_svid_prefetch` are minted only when a workload they match asks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spiffe::{WorkloadApiClient, WorkloadApiError};
use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::types as pb;
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id};
use spire_testkit::process::TestServer;
use tokio_stream::StreamExt;

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

const LOG_LINE: &str = "X509-SVID cache updated";

fn server_binary() -> PathBuf {
    spire_testkit::agent::server_binary(Path::new(AGENT))
}

fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn id(path: &str) -> String {
    format!("spiffe://example.org{path}")
}

/// An entry to create: ID (also the SPIFFE ID path), uid selector, `disable_x509_svid_prefetch`.
struct Spec {
    id: &'static str,
    uid: u32,
    no_prefetch: bool,
}

fn spec(id: &'static str, uid: u32) -> Spec {
    Spec { id, uid, no_prefetch: false }
}

fn lazy(id: &'static str, uid: u32) -> Spec {
    Spec { id, uid, no_prefetch: true }
}

/// An agent process started with an extra line in its `agent { }` block; killed when dropped.
struct Agent {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The `cached=` value of every "X509-SVID cache updated" line so far.
    fn cached_counts(&self) -> Vec<usize> {
        self.log().lines().filter(|l| l.contains(LOG_LINE)).filter_map(|l| field(l, "cached")).collect()
    }

    async fn client(&self) -> WorkloadApiClient {
        WorkloadApiClient::connect_to(format!("unix:{}", self.socket.display())).await.unwrap()
    }

    /// Fetches this process's X509-SVIDs until there are `n` of them; returns their sorted IDs.
    async fn wait_for_svids(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let client = self.client().await;
        loop {
            let got = match client.fetch_all_x509_svids().await {
                Ok(svids) => {
                    let mut ids: Vec<String> = svids.iter().map(|s| s.spiffe_id().to_string()).collect();
                    ids.sort();
                    ids
                }
                Err(WorkloadApiError::NoIdentityIssued) => vec![],
                Err(e) => panic!("FetchX509SVID failed: {e}"),
            };
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "only {got:?} after {timeout:?}; agent log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name=<digits>` in a log line.
fn field(line: &str, name: &str) -> Option<usize> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = line[at..].chars().skip_while(|c| *c == '"').take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A server with `entries` parented to a join-token agent, and that agent started with `extra_config`.
async fn deploy(entries: &[Spec], extra_config: &str) -> (TestServer, Agent) {
    let server = TestServer::start(server_binary(), "").await;
    let token = generate_token(&server_binary(), &server);
    let agent_id = join_token_agent_id(&token);
    let agent_path = agent_id.strip_prefix("spiffe://example.org").unwrap().to_owned();
    let td_id = |path: &str| Some(pb::Spiffeid { trust_domain: "example.org".into(), path: path.into() });
    let request = BatchCreateEntryRequest {
        entries: entries
            .iter()
            .map(|s| pb::Entry {
                id: s.id.into(),
                spiffe_id: td_id(&format!("/{}", s.id)),
                parent_id: td_id(&agent_path),
                selectors: vec![pb::Selector { r#type: "unix".into(), value: format!("uid:{}", s.uid) }],
                additional_attributes: s.no_prefetch.then_some(pb::AdditionalAttributes {
                    disable_x509_svid_prefetch: true,
                    jwt_svid_include_jti: false,
                }),
                ..Default::default()
            })
            .collect(),
        output_mask: None,
    };
    let results = EntryClient::new(server.channel().await).batch_create_entry(request).await.unwrap().into_inner();
    for r in &results.results {
        assert_eq!(r.status.as_ref().map(|s| s.code), Some(0), "entry creation failed: {:?}", r.status);
    }

    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(&public).unwrap();
    let socket = public.join("api.sock");
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let config = TestAgent::config(dir.path(), server.port, &socket, &options).replacen(
        "agent {\n",
        &format!("agent {{\n    {extra_config}\n"),
        1,
    );
    assert!(config.contains(extra_config));
    std::fs::write(dir.path().join("agent.conf"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = Command::new(AGENT)
        .args(["run", "-config"])
        .arg(dir.path().join("agent.conf"))
        .args(["-joinToken", &token])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut agent = Agent { child, dir, socket };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::UnixStream::connect(&agent.socket).await.is_err() {
        if let Some(status) = agent.child.try_wait().unwrap() {
            panic!("spire-agent exited with {status}: {}", agent.log());
        }
        assert!(Instant::now() < deadline, "spire-agent did not open its socket: {}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, agent)
}

#[tokio::test]
async fn only_the_limit_is_prefetched_and_a_subscriber_gets_its_svids_beyond_it() {
    let uid = own_uid();
    // The other uids' entries sort first, so they are the ones prefetched.
    let (_server, agent) = deploy(
        &[
            spec("a-other-1", 4_242_401),
            spec("a-other-2", 4_242_402),
            spec("b-mine-1", uid),
            spec("b-mine-2", uid),
            spec("b-mine-3", uid),
            spec("b-mine-4", uid),
        ],
        "x509_svid_cache_max_size = 2",
    )
    .await;

    // Before any workload asks: two SVIDs, the first two entries by ID, none of ours.
    assert_eq!(agent.cached_counts(), [2], "agent log:\n{}", agent.log());
    // A few more syncs change nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agent.cached_counts(), [2], "agent log:\n{}", agent.log());

    // A workload subscribes: as in SPIRE, its first answer waits until all four of its SVIDs are minted.
    let started = Instant::now();
    let client = agent.client().await;
    let mut stream = Box::pin(client.stream_x509_svids().await.unwrap());
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("no answer in 5 s");
    let first = first.expect("stream ended").unwrap_or_else(|e| panic!("{e}; agent log:\n{}", agent.log()));
    eprintln!("the subscriber got its SVIDs after {:?}", started.elapsed());
    assert_eq!(first.spiffe_id().to_string(), id("/b-mine-1"));
    assert_eq!(
        agent.wait_for_svids(4, Duration::from_secs(1)).await,
        ["/b-mine-1", "/b-mine-2", "/b-mine-3", "/b-mine-4"].map(id)
    );
    // The limit is soft: four subscribed SVIDs are cached, and the two unsubscribed ones were evicted.
    let counts = agent.cached_counts();
    assert_eq!(counts.last(), Some(&4), "agent log:\n{}", agent.log());
    let log = agent.log();
    let line = log.lines().rfind(|l| l.contains(LOG_LINE)).unwrap();
    assert_eq!(field(line, "evicted"), Some(2), "{line}");
    assert_eq!(field(line, "minted"), Some(4), "{line}");

    // While the stream is open, nothing changes any more (a subscriber's SVIDs are never evicted).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agent.cached_counts(), counts, "agent log:\n{}", agent.log());

    // Once it is gone, the cache shrinks back to the limit.
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent.cached_counts().last() != Some(&2) {
        assert!(Instant::now() < deadline, "the cache kept {:?}; agent log:\n{}", agent.cached_counts(), agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn entries_without_prefetch_are_minted_only_on_demand() {
    let uid = own_uid();
    let (_server, agent) =
        deploy(&[spec("eager", uid), lazy("lazy", uid), lazy("other-lazy", 4_242_401)], "x509_svid_cache_max_size = 0")
            .await;

    // Under the (default) limit, every entry but the two without prefetch has its SVID at once.
    assert_eq!(agent.cached_counts(), [1], "agent log:\n{}", agent.log());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agent.cached_counts(), [1], "agent log:\n{}", agent.log());

    // Asking makes this workload a subscriber: its lazy entry is minted at the next SVID sync and the
    // answer waits for it; the other uid's is not minted.
    let started = Instant::now();
    let svids =
        tokio::time::timeout(Duration::from_secs(5), async { agent.client().await.fetch_all_x509_svids().await })
            .await
            .expect("no answer in 5 s")
            .unwrap();
    eprintln!("the lazy SVID came after {:?}", started.elapsed());
    let mut ids: Vec<String> = svids.iter().map(|s| s.spiffe_id().to_string()).collect();
    ids.sort();
    assert_eq!(ids, [id("/eager"), id("/lazy")]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agent.cached_counts(), [1, 2], "agent log:\n{}", agent.log());
}
