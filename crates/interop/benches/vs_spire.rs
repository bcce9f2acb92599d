//! Side by side with the real SPIRE v1.13.3, in the same run on the same machine: our release
//! `spire-server` / `spire-agent` and SPIRE's, each pair started from the same config text (SPIRE's
//! keys, which ours reads unchanged), measured alternately so that the machine's noise hits both.
//!
//! Measured, for each implementation:
//! 1. FetchX509SVID latency on an open connection (time to the first stream message), p50 and p99;
//! 2. the wall time of a whole `spire-agent api fetch x509 -silent` process, each binary against its
//!    own agent;
//! 3. BatchNewX509SVID throughput: the bench attests as an agent (join token, AttestAgent with a
//!    CSR), then, over mTLS with that SVID, asks for SVIDs for entries parented to it;
//! 4. the agent's VmRSS with 1,000 cached X509-SVIDs (entries no caller matches, so the agent holds
//!    them but never builds a response with them);
//! 5. the server's VmRSS with 10,000 entries.
//!
//! Needs SPIRE (`scripts/install-peers.sh spire`) and our release binaries in the target directory
//! this bench is built into (`cargo build --release -p spire-server -p spire-agent`). Run:
//! `cargo bench -p spire-interop --bench vs_spire` (all parts), or name parts after `--`:
//! `latency process throughput agent-memory server-memory`.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prost::Message as _;
use spire_agent::node::attest_join_token;
use spire_agent::server_client::{AgentIdentity, ServerClient};
use spire_identity::x509::certificate_request;
use spire_identity::{BundleSet, KeyType, PrivateKey, TrustDomain};
use spire_proto::spire::agent::debug::v1::GetInfoRequest;
use spire_proto::spire::agent::debug::v1::debug_client::DebugClient;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::entry::v1::{BatchCreateEntryRequest, CountEntriesRequest};
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::spire::api::server::svid::v1::{BatchNewX509svidRequest, NewX509svidParams};
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::{X509svidRequest, X509svidResponse};
use spire_testkit::agent::{generate_token, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::process::{TestServer, uds_channel};
use tonic::transport::Channel;

/// FetchX509SVID on an open connection: `LAT_ROUNDS` blocks of `LAT_BLOCK` calls per implementation.
const LAT_ROUNDS: usize = 20;
const LAT_BLOCK: usize = 250;
/// Whole `api fetch x509` processes per implementation.
const PROCESS_RUNS: usize = 50;
/// BatchNewX509SVID: entries (one CSR each per round), CSRs per request, rounds per case.
const ISSUE_ENTRIES: usize = 500;
const ISSUE_BATCH: usize = 50;
const ISSUE_ROUNDS: usize = 10;
/// Requests in flight in the concurrent case (one HTTP/2 connection).
const ISSUE_IN_FLIGHT: usize = 4;
/// Entries for the agent-memory and server-memory parts.
const AGENT_ENTRIES: usize = 1_000;
const SERVER_ENTRIES: usize = 10_000;
/// Entries per BatchCreateEntry request.
const CREATE_BATCH: usize = 500;
/// The agents' sync interval (SPIRE's default), set explicitly in both configs.
const SYNC: Duration = Duration::from_secs(5);

/// One implementation under test: its two binaries.
#[derive(Debug, Clone)]
struct Implementation {
    name: &'static str,
    server: PathBuf,
    agent: PathBuf,
}

/// The server config both implementations run, character for character: SQLite, disk KeyManager,
/// EC P-256 CA, join_token, INFO logs to `<dir>/server.log` (SPIRE's default level; at DEBUG SPIRE
/// logs a line per signed SVID), SPIRE's default TTLs written out, and both rate limits off (the
/// per-IP signing limit would cap SPIRE at 500 SVIDs/s; the attestation limit, one per second, only
/// slows the bench's own start-up).
fn server_config(dir: &Path, port: u16) -> String {
    format!(
        r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{dir}/api.sock"
    trust_domain = "example.org"
    data_dir = "{dir}/data"
    log_level = "INFO"
    log_file = "{dir}/server.log"
    ca_key_type = "ec-p256"
    ca_ttl = "24h"
    default_x509_svid_ttl = "1h"
    agent_ttl = "1h"
    ratelimit {{
        attestation = false
        signing = false
    }}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{dir}/data/datastore.sqlite3"
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            keys_path = "{dir}/data/keys.json"
        }}
    }}
}}
"#,
        dir = dir.display()
    )
}

/// The agent config both implementations run: join_token, disk keys, EC P-256 workload keys, the
/// `unix` workload attestor without `discover_workload_path`, a 5 s sync, SPIRE's default cache size
/// written out, and an admin socket (SPIRE serves its Debug API there; ours accepts the key and
/// serves nothing).
fn agent_config(dir: &Path, server_port: u16, log_level: &str) -> String {
    format!(
        r#"agent {{
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{dir}/public/api.sock"
    admin_socket_path = "{dir}/admin/admin.sock"
    data_dir = "{dir}/data"
    log_level = "{log_level}"
    log_file = "{dir}/agent.log"
    insecure_bootstrap = true
    workload_x509_svid_key_type = "ec-p256"
    x509_svid_cache_max_size = 1000
    experimental {{
        sync_interval = "{sync}s"
    }}
}}

plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            directory = "{dir}/data"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{
            discover_workload_path = false
        }}
    }}
}}
"#,
        dir = dir.display(),
        sync = SYNC.as_secs()
    )
}

async fn start_server(imp: &Implementation) -> TestServer {
    TestServer::start_with_config(&imp.server, server_config).await
}

/// A `spire-agent run` process with [`agent_config`] in its own temp dir; killed on drop.
struct AgentProc {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    _tmp: tempfile::TempDir,
}

impl AgentProc {
    /// Starts `imp`'s agent with `token` and waits for its Workload API socket (both implementations
    /// open it after attesting and syncing).
    async fn start(imp: &Implementation, server: &TestServer, token: &str, log_level: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        for sub in ["public", "admin", "data"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("agent.conf"), agent_config(&dir, server.port, log_level)).unwrap();
        let stderr = std::fs::File::create(dir.join("agent.stderr")).unwrap();
        let child = Command::new(&imp.agent)
            .args(["run", "-config"])
            .arg(dir.join("agent.conf"))
            .args(["-joinToken", token])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let socket = dir.join("public/api.sock");
        let mut agent = Self { child, dir, socket, _tmp: tmp };
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::UnixStream::connect(&agent.socket).await.is_err() {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("{} agent exited with {status}: {}", imp.name, agent.log());
            }
            assert!(Instant::now() < deadline, "{} agent did not open its socket: {}", imp.name, agent.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        agent
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("agent.log"), read("agent.stderr"))
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// This process's uid, from its `/proc` entry.
fn uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn spiffe_id(path: &str) -> Option<Spiffeid> {
    Some(Spiffeid { trust_domain: "example.org".into(), path: path.into() })
}

/// An entry in `example.org` for `parent` (a full SPIFFE ID) with the single selector `unix:<value>`.
fn entry(path: &str, parent: &str, selector: &str) -> Entry {
    let parent = parent.strip_prefix("spiffe://example.org").expect("an example.org ID");
    Entry {
        spiffe_id: spiffe_id(path),
        parent_id: spiffe_id(parent),
        selectors: vec![Selector { r#type: "unix".into(), value: selector.into() }],
        ..Entry::default()
    }
}

/// Creates `entries` through the server's Entry API (BatchCreateEntry over the private socket),
/// `CREATE_BATCH` per request; returns their IDs and the time the requests took.
async fn create_entries(server: &TestServer, entries: Vec<Entry>) -> (Vec<String>, Duration) {
    let mut client = EntryClient::new(uds_channel(&server.socket).await);
    let mut ids = Vec::with_capacity(entries.len());
    let mut took = Duration::ZERO;
    for chunk in entries.chunks(CREATE_BATCH) {
        let t = Instant::now();
        let resp = client
            .batch_create_entry(BatchCreateEntryRequest { entries: chunk.to_vec(), output_mask: None })
            .await
            .unwrap()
            .into_inner();
        took += t.elapsed();
        for r in resp.results {
            let status = r.status.unwrap_or_default();
            assert_eq!(status.code, 0, "BatchCreateEntry: {}", status.message);
            ids.push(r.entry.expect("the created entry").id);
        }
    }
    (ids, took)
}

async fn count_entries(server: &TestServer) -> i32 {
    let mut client = EntryClient::new(uds_channel(&server.socket).await);
    client.count_entries(CountEntriesRequest { filter: None }).await.unwrap().into_inner().count
}

/// FetchX509SVID (with the `workload.spiffe.io` header): the first message; the stream is dropped.
async fn fetch_x509(channel: &Channel) -> Result<X509svidResponse, tonic::Status> {
    let mut client = SpiffeWorkloadApiClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut req = tonic::Request::new(X509svidRequest {});
    req.metadata_mut().insert("workload.spiffe.io", tonic::metadata::MetadataValue::from_static("true"));
    let mut stream = client.fetch_x509svid(req).await?.into_inner();
    stream.message().await?.ok_or_else(|| tonic::Status::unknown("the stream ended without a message"))
}

/// Polls FetchX509SVID until it serves `n` SVIDs (entries reach each agent at its next sync).
async fn wait_for_svids(channel: &Channel, n: usize, what: &str) -> X509svidResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match fetch_x509(channel).await {
            Ok(r) if r.svids.len() == n => return r,
            other if Instant::now() > deadline => panic!("{what}: no {n} SVIDs in time: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The `q`-quantile (nearest rank) of `samples`.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    let rank = ((s.len() as f64 * q).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One summary row: ours, SPIRE's, and ours ÷ SPIRE's.
struct Row {
    what: String,
    ours: f64,
    spire: f64,
    unit: &'static str,
    better: &'static str,
}

fn row(rows: &mut Vec<Row>, what: impl Into<String>, ours: f64, spire: f64, unit: &'static str, better: &'static str) {
    let what = what.into();
    println!("  {what:<52} ours {ours:>10.2} {unit:<8} SPIRE {spire:>10.2} {unit:<8} ours/SPIRE {:.2}", ours / spire);
    rows.push(Row { what, ours, spire, unit, better });
}

/// Part 1 and 2: one agent per implementation (INFO logs), one entry for this uid on each.
async fn latency_and_process(ours: &Implementation, spire: &Implementation, parts: &[String], rows: &mut Vec<Row>) {
    let imps = [ours, spire];
    let mut servers = Vec::new();
    let mut agents = Vec::new();
    for imp in imps {
        let server = start_server(imp).await;
        let token = generate_token(&imp.server, &server);
        let parent = join_token_agent_id(&token);
        create_entries(&server, vec![entry("/bench/workload", &parent, &format!("uid:{}", uid()))]).await;
        agents.push(AgentProc::start(imp, &server, &token, "INFO").await);
        servers.push(server);
    }
    let mut channels = Vec::new();
    for (imp, agent) in imps.iter().zip(&agents) {
        let ch = uds_channel(&agent.socket).await;
        let resp = wait_for_svids(&ch, 1, imp.name).await;
        println!(
            "{}: FetchX509SVID first message {} bytes ({} SVID, {} bytes of bundle)",
            imp.name,
            resp.encoded_len(),
            resp.svids.len(),
            resp.svids[0].bundle.len()
        );
        channels.push(ch);
    }

    if parts.iter().any(|p| p == "latency") {
        // Warm-up, then blocks in turn; the implementation going first alternates.
        for ch in &channels {
            for _ in 0..200 {
                fetch_x509(ch).await.unwrap();
            }
        }
        let mut samples = [Vec::new(), Vec::new()];
        for round in 0..LAT_ROUNDS {
            for k in 0..2 {
                let i = (round + k) % 2;
                for _ in 0..LAT_BLOCK {
                    let t = Instant::now();
                    let resp = fetch_x509(&channels[i]).await.unwrap();
                    samples[i].push(t.elapsed());
                    assert_eq!(resp.svids.len(), 1);
                }
            }
        }
        println!("FetchX509SVID on one open connection, {LAT_ROUNDS} blocks of {LAT_BLOCK} calls each, in turn:");
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let (o, s) = (us(quantile(&samples[0], q)), us(quantile(&samples[1], q)));
            row(rows, format!("FetchX509SVID, open connection, {name}"), o, s, "µs", "lower");
        }
    }

    if parts.iter().any(|p| p == "process") {
        // 0, 1: `api fetch x509` of ours and SPIRE's; 2, 3: their `--help` (usage on stderr, exit 0),
        // the binaries' start-up and exit alone (no socket, no call). Our binaries lack `-version`.
        let fetch = |agent: &AgentProc| {
            ["api", "fetch", "x509", "-socketPath", agent.socket.to_str().unwrap(), "-silent"]
                .map(String::from)
                .to_vec()
        };
        let help = vec!["--help".to_owned()];
        let cases: [(&Path, Vec<String>); 4] = [
            (&ours.agent, fetch(&agents[0])),
            (&spire.agent, fetch(&agents[1])),
            (&ours.agent, help.clone()),
            (&spire.agent, help),
        ];
        let run = |program: &Path, args: &[String]| {
            let t = Instant::now();
            let status = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
            let took = t.elapsed();
            assert!(status.success(), "{} {args:?}: {status}", program.display());
            took
        };
        for _ in 0..3 {
            run(Path::new("/bin/true"), &[]);
            for (program, args) in &cases {
                run(program, args);
            }
        }
        let mut samples: [Vec<Duration>; 5] = Default::default();
        for round in 0..PROCESS_RUNS {
            samples[4].push(run(Path::new("/bin/true"), &[]));
            for k in 0..2 {
                let i = (round + k) % 2;
                samples[i].push(run(cases[i].0, &cases[i].1));
                samples[i + 2].push(run(cases[i + 2].0, &cases[i + 2].1));
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "`spire-agent api fetch x509 -silent` and `spire-agent --help`, whole process, {PROCESS_RUNS} runs each, \
             in turn (/bin/true median {:.2} ms; binaries: ours {:.1} MB, SPIRE {:.1} MB):",
            ms(quantile(&samples[4], 0.5)),
            std::fs::metadata(&ours.agent).unwrap().len() as f64 / 1e6,
            std::fs::metadata(&spire.agent).unwrap().len() as f64 / 1e6,
        );
        for (q, name) in [(0.5, "median"), (0.9, "p90")] {
            let (o, s) = (ms(quantile(&samples[0], q)), ms(quantile(&samples[1], q)));
            row(rows, format!("api fetch x509 process, {name}"), o, s, "ms", "lower");
        }
        let (o, s) = (ms(quantile(&samples[2], 0.5)), ms(quantile(&samples[3], 0.5)));
        row(rows, "spire-agent --help process (start-up only), median", o, s, "ms", "lower");
    }
}

/// A client that attested to a server as an agent and asks it for workload SVIDs.
struct Issuer {
    channel: Channel,
    params: Vec<NewX509svidParams>,
}

impl Issuer {
    /// Attests to `server` with a fresh join token (AttestAgent, a CSR for a new P-256 key), creates
    /// `ISSUE_ENTRIES` entries parented to the agent ID it got, and makes one CSR per entry.
    async fn attest(imp: &Implementation, server: &TestServer) -> Self {
        let token = generate_token(&imp.server, server);
        let td = TrustDomain::parse("example.org").unwrap();
        let client =
            ServerClient::new(format!("127.0.0.1:{}", server.port), &td, Arc::new(RwLock::new(BundleSet::new())), true);
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let svid = attest_join_token(&client, &token, &(&key).into()).await.unwrap();
        client.set_identity(AgentIdentity { chain: svid.chain, key: key.into() });
        let channel = client.channel().await.unwrap();
        let parent = join_token_agent_id(&token);
        let entries = (0..ISSUE_ENTRIES)
            .map(|i| entry(&format!("/issue/{i}"), &parent, &format!("uid:{}", 200_000 + i)))
            .collect();
        let (ids, _) = create_entries(server, entries).await;
        let params = ids
            .into_iter()
            .map(|entry_id| {
                let key = PrivateKey::generate(KeyType::EcP256).unwrap();
                NewX509svidParams { entry_id, csr: certificate_request(&key, &[], &[]).unwrap() }
            })
            .collect();
        let issuer = Self { channel, params };
        // SPIRE's server sees new entries once its entry cache has reloaded: wait until every entry
        // is authorized for this agent.
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = issuer.issue(&issuer.params).await {
            assert!(Instant::now() < deadline, "{}: entries never authorized: {e}", imp.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        issuer
    }

    /// One BatchNewX509SVID; every result must be OK.
    async fn issue(&self, params: &[NewX509svidParams]) -> Result<(), String> {
        let resp = SvidClient::new(self.channel.clone())
            .batch_new_x509svid(BatchNewX509svidRequest { params: params.to_vec() })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        match resp.results.iter().find(|r| r.status.as_ref().is_none_or(|s| s.code != 0) || r.svid.is_none()) {
            Some(bad) => Err(format!("{:?}", bad.status)),
            None => Ok(()),
        }
    }

    /// One round: every entry's CSR once, in batches of `ISSUE_BATCH`, `in_flight` requests at a
    /// time over the one connection; SVIDs per second.
    async fn round(self: &Arc<Self>, in_flight: usize) -> f64 {
        let batches: Vec<std::ops::Range<usize>> =
            (0..self.params.len()).step_by(ISSUE_BATCH).map(|s| s..(s + ISSUE_BATCH).min(self.params.len())).collect();
        let t = Instant::now();
        let mut lanes = tokio::task::JoinSet::new();
        for lane in 0..in_flight {
            let this = Arc::clone(self);
            let mine: Vec<_> = batches.iter().skip(lane).step_by(in_flight).cloned().collect();
            lanes.spawn(async move {
                for range in mine {
                    this.issue(&this.params[range]).await.unwrap();
                }
            });
        }
        while let Some(done) = lanes.join_next().await {
            done.unwrap();
        }
        self.params.len() as f64 / t.elapsed().as_secs_f64()
    }
}

/// Part 3: BatchNewX509SVID against each server.
async fn throughput(ours: &Implementation, spire: &Implementation, rows: &mut Vec<Row>) {
    let mut servers = Vec::new();
    let mut issuers = Vec::new();
    for imp in [ours, spire] {
        let server = start_server(imp).await;
        issuers.push(Arc::new(Issuer::attest(imp, &server).await));
        servers.push(server);
    }
    // The round trip of a one-CSR request: the fixed cost under every batch.
    let mut single = [Vec::new(), Vec::new()];
    for round in 0..ISSUE_ROUNDS * 20 {
        for k in 0..2 {
            let i = (round + k) % 2;
            let t = Instant::now();
            issuers[i].issue(&issuers[i].params[..1]).await.unwrap();
            single[i].push(t.elapsed());
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let [o, s] = single.map(|v| us(quantile(&v, 0.5)));
    row(rows, "BatchNewX509SVID with 1 CSR, round trip p50", o, s, "µs", "lower");
    println!(
        "BatchNewX509SVID over mTLS as an attested agent, {ISSUE_ENTRIES} entries, batches of {ISSUE_BATCH} \
         EC P-256 CSRs, {ISSUE_ROUNDS} rounds per case, in turn:"
    );
    for in_flight in [1, ISSUE_IN_FLIGHT] {
        for issuer in &issuers {
            issuer.round(in_flight).await;
        }
        let mut rates = [Vec::new(), Vec::new()];
        for round in 0..ISSUE_ROUNDS {
            for k in 0..2 {
                let i = (round + k) % 2;
                rates[i].push(issuers[i].round(in_flight).await);
            }
        }
        let [o, s] = rates.map(median_f);
        row(rows, format!("BatchNewX509SVID, {in_flight} request(s) in flight"), o, s, "SVIDs/s", "higher");
    }
}

/// How many X509-SVIDs an agent holds, by the signal its implementation gives: SPIRE's Debug API
/// (`GetInfo.cached_x509_svids_count` on the admin socket; SPIRE caches that answer for 5 s), and
/// our agent's DEBUG line `X509-SVID cache updated ... cached=<n>` (ours has no admin API).
async fn cached_svids(imp: &Implementation, agent: &AgentProc) -> usize {
    if imp.name == "SPIRE" {
        let mut debug = DebugClient::new(uds_channel(&agent.dir.join("admin/admin.sock")).await);
        let info = debug.get_info(GetInfoRequest {}).await.unwrap().into_inner();
        usize::try_from(info.cached_x509_svids_count).unwrap_or(0)
    } else {
        let log = std::fs::read_to_string(agent.dir.join("agent.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("X509-SVID cache updated"))
            .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("cached=")))
            .filter_map(|n| n.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .next_back()
            .unwrap_or(0)
    }
}

/// Part 4: an agent (DEBUG logs, for our agent's signal; the same level for both) holding
/// `AGENT_ENTRIES` SVIDs. Each implementation in turn, so neither competes with the other for CPU.
async fn agent_memory(ours: &Implementation, spire: &Implementation, rows: &mut Vec<Row>) {
    let mut results = Vec::new();
    for imp in [ours, spire] {
        let server = start_server(imp).await;
        let token = generate_token(&imp.server, &server);
        let agent = AgentProc::start(imp, &server, &token, "DEBUG").await;
        // Attested, first sync done; let one more pass.
        tokio::time::sleep(SYNC + Duration::from_secs(1)).await;
        let base = rss_kib(agent.pid());
        let parent = join_token_agent_id(&token);
        // Selectors no process has (uids nobody runs as): the SVIDs are minted by prefetch and held.
        let entries = (0..AGENT_ENTRIES)
            .map(|i| entry(&format!("/cached/{i}"), &parent, &format!("uid:{}", 100_000 + i)))
            .collect();
        let t = Instant::now();
        create_entries(&server, entries).await;
        let mut peak = base;
        let deadline = Instant::now() + Duration::from_secs(180);
        while cached_svids(imp, &agent).await < AGENT_ENTRIES {
            assert!(
                Instant::now() < deadline,
                "{}: the agent did not cache {AGENT_ENTRIES} SVIDs: {}",
                imp.name,
                agent.log()
            );
            peak = peak.max(rss_kib(agent.pid()));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let full_after = t.elapsed();
        let full = rss_kib(agent.pid());
        // Two more syncs, sampled.
        let until = Instant::now() + 2 * SYNC + Duration::from_secs(1);
        while Instant::now() < until {
            peak = peak.max(rss_kib(agent.pid()));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let settled = rss_kib(agent.pid());
        peak = peak.max(full).max(settled);
        println!(
            "{}: agent VmRSS {:.1} MiB with 0 entries; {AGENT_ENTRIES} SVIDs cached {:.1} s after the entries were \
             created: {:.1} MiB then, {:.1} MiB two syncs later, peak {:.1} MiB",
            imp.name,
            mib(base),
            full_after.as_secs_f64(),
            mib(full),
            mib(settled),
            mib(peak)
        );
        results.push((base, settled, peak));
    }
    let (o, s) = (results[0], results[1]);
    row(rows, "agent VmRSS, 0 entries", mib(o.0), mib(s.0), "MiB", "lower");
    row(
        rows,
        format!("agent VmRSS, {AGENT_ENTRIES} cached SVIDs (two syncs later)"),
        mib(o.1),
        mib(s.1),
        "MiB",
        "lower",
    );
    row(rows, format!("agent VmRSS, {AGENT_ENTRIES} cached SVIDs, peak"), mib(o.2), mib(s.2), "MiB", "lower");
}

/// Part 5: a fresh server each, `SERVER_ENTRIES` entries created through its Entry API (100 parent
/// agents × 100, batches of `CREATE_BATCH`, the two servers' batches in turn), then 20 s to settle.
async fn server_memory(ours: &Implementation, spire: &Implementation, rows: &mut Vec<Row>) {
    let imps = [ours, spire];
    let mut servers = Vec::new();
    for imp in imps {
        servers.push(start_server(imp).await);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let pids: Vec<u32> = servers.iter().map(server_pid).collect();
    let base: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let entries: Vec<Entry> = (0..SERVER_ENTRIES)
        .map(|i| {
            let parent = format!("spiffe://example.org/spire/agent/join_token/node-{}", i / 100);
            entry(&format!("/ns/team-{}/sa/service-{i}", i / 100), &parent, &format!("uid:{i}"))
        })
        .collect();
    let mut took = [Duration::ZERO; 2];
    let mut peak = base.clone();
    for chunk in entries.chunks(CREATE_BATCH) {
        for (i, server) in servers.iter().enumerate() {
            took[i] += create_entries(server, chunk.to_vec()).await.1;
            peak[i] = peak[i].max(rss_kib(pids[i]));
        }
    }
    for (imp, server) in imps.iter().zip(&servers) {
        assert_eq!(count_entries(server).await, SERVER_ENTRIES as i32, "{}", imp.name);
    }
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        for (i, pid) in pids.iter().enumerate() {
            peak[i] = peak[i].max(rss_kib(*pid));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    for (i, imp) in imps.iter().enumerate() {
        println!(
            "{}: server VmRSS {:.1} MiB with 0 entries, {:.1} MiB 20 s after {SERVER_ENTRIES} entries (peak {:.1} MiB); \
             creating them took {:.1} s ({:.0} entries/s)",
            imp.name,
            mib(base[i]),
            mib(settled[i]),
            mib(peak[i]),
            took[i].as_secs_f64(),
            SERVER_ENTRIES as f64 / took[i].as_secs_f64()
        );
    }
    row(rows, "server VmRSS, 0 entries", mib(base[0]), mib(base[1]), "MiB", "lower");
    row(
        rows,
        format!("server VmRSS, {SERVER_ENTRIES} entries (20 s later)"),
        mib(settled[0]),
        mib(settled[1]),
        "MiB",
        "lower",
    );
    row(rows, format!("server VmRSS, {SERVER_ENTRIES} entries, peak"), mib(peak[0]), mib(peak[1]), "MiB", "lower");
    let rate = |d: Duration| SERVER_ENTRIES as f64 / d.as_secs_f64();
    row(rows, "BatchCreateEntry, batches of 500", rate(took[0]), rate(took[1]), "entries/s", "higher");
}

/// The PID of `server`'s process: [`TestServer`] does not expose it, so it is the process whose
/// command line names the server's config file (each server has its own temp dir).
fn server_pid(server: &TestServer) -> u32 {
    let config = server.dir.join("server.conf");
    let config = config.to_str().unwrap();
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(proc_entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|arg| arg == config.as_bytes()) {
            return pid;
        }
    }
    panic!("no process runs with {config}");
}

#[tokio::main]
async fn main() {
    let Some([spire_server, spire_agent]) = peers::require_all(["upstream-spire-server", "upstream-spire-agent"])
    else {
        return;
    };
    // target/release/deps/vs_spire-<hash> → target/release.
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    for name in ["spire-server", "spire-agent"] {
        assert!(
            release.join(name).exists(),
            "{} is missing: run `cargo build --release -p spire-server -p spire-agent` first",
            release.join(name).display()
        );
    }
    let ours =
        Implementation { name: "ours", server: release.join("spire-server"), agent: release.join("spire-agent") };
    let spire = Implementation { name: "SPIRE", server: spire_server, agent: spire_agent };
    let all = ["latency", "process", "throughput", "agent-memory", "server-memory"];
    let mut parts: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if parts.is_empty() {
        parts = all.map(String::from).to_vec();
    }
    for p in &parts {
        assert!(all.contains(&p.as_str()), "unknown part {p:?}; parts: {all:?}");
    }
    let version = Command::new(&spire.server).arg("-version").output().unwrap();
    println!(
        "ours: {}\nSPIRE {}: {}",
        release.display(),
        format!("{}{}", String::from_utf8_lossy(&version.stdout), String::from_utf8_lossy(&version.stderr)).trim(),
        spire.server.display()
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());

    let mut rows = Vec::new();
    let has = |p: &str| parts.iter().any(|x| x == p);
    if has("latency") || has("process") {
        latency_and_process(&ours, &spire, &parts, &mut rows).await;
    }
    if has("throughput") {
        throughput(&ours, &spire, &mut rows).await;
    }
    if has("agent-memory") {
        agent_memory(&ours, &spire, &mut rows).await;
    }
    if has("server-memory") {
        server_memory(&ours, &spire, &mut rows).await;
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at end: {}", load.trim());
    println!("| measure | ours | SPIRE v1.13.3 | ours/SPIRE | better |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2} {} | {:.2} {} | {:.2} | {} |",
            r.what,
            r.ours,
            r.unit,
            r.spire,
            r.unit,
            r.ours / r.spire,
            r.better
        );
    }
}
