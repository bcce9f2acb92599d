//! Two `spire-server` processes on one database: the time from an entry written through server A to
//! its X509-SVID reaching a workload subscribed through an agent attached to server B, beside the same
//! write made through server B itself (no cross-server propagation), measured in the same run.
//!
//! Per backend (PostgreSQL, MariaDB, and SQLite with both servers on one database file on this
//! machine): a fresh database, servers A and B (release binaries, the testkit's config), one release
//! `spire-agent` attested to B with `sync_interval = "5s"` (SPIRE's default) and the `unix` attestor
//! without `discover_workload_path`. This process holds a FetchX509SVID stream open as the workload;
//! a reader task timestamps every update the stream delivers. Each sample runs `spire-server entry
//! create` (selector `unix:uid:<this uid>`, parent the agent) against A's or B's socket and waits for
//! the first update carrying the new SPIFFE ID; the time is from just before the CLI starts. Samples
//! come in pairs, one write through A then one through B, each made the same random 0–5 s after the
//! update that delivered the previous sample (a sync), so the pairs cover every phase of the agent's
//! sync cycle and the two writes of a pair meet the same phase.
//!
//! PostgreSQL and MariaDB are the testkit's servers (`spire_testkit::databases`); a backend whose
//! binaries are missing is skipped with a note.
//!
//! Run: `cargo build --release -p spire-server --bin spire-server` once, then
//! `cargo bench -p spire-agent --bench ha_propagation` (all backends), or name some:
//! `cargo bench -p spire-agent --bench ha_propagation -- postgres mariadb sqlite`.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use spire_proto::workload::X509svidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_testkit::agent::{AgentOptions, TestAgent};
use spire_testkit::databases::{MariaDbServer, PostgresServer, TestDatabase};
use spire_testkit::process::TestServer;
use support::{agent_id, channel, fetch_x509, join_token, quantile, uid, with_header};
use tokio::sync::mpsc;

/// The agent's sync interval (SPIRE's default), as configured and as a duration.
const SYNC_INTERVAL: &str = "5s";
const SYNC: Duration = Duration::from_secs(5);
/// Samples per path (through A, through B) and backend.
const SAMPLES: usize = 10;
/// Longest random pause before a write.
const MAX_PAUSE: Duration = SYNC;
/// A sample that takes longer than this fails the bench.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    MariaDb,
    Sqlite,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::MariaDb => "MariaDB",
            Backend::Sqlite => "SQLite (one file, both servers on this machine)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MariaDb => "mariadb",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The shared database and the DataStore "sql" plugin_data body that points at it.
enum Shared {
    Server(TestDatabase),
    Sqlite(tempfile::TempDir),
}

impl Shared {
    async fn fresh(backend: Backend) -> Option<Shared> {
        Some(match backend {
            Backend::Postgres => Shared::Server(PostgresServer::shared().await?.fresh_database().await),
            Backend::MariaDb => Shared::Server(MariaDbServer::shared().await?.fresh_database().await),
            Backend::Sqlite => Shared::Sqlite(tempfile::tempdir().unwrap()),
        })
    }

    fn datastore(&self) -> String {
        let (kind, connection_string) = match self {
            Shared::Server(db) => (db.engine().spire_database_type(), db.spire_connection_string()),
            Shared::Sqlite(dir) => ("sqlite3", dir.path().join("shared.sqlite3").display().to_string()),
        };
        format!("database_type = \"{kind}\"\n            connection_string = \"{connection_string}\"")
    }
}

/// xorshift64*, seeded from the clock: the pauses only need to be spread, not secret.
struct Pauses(u64);

impl Pauses {
    fn new() -> Self {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
        Self(nanos | 1)
    }

    fn next(&mut self) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        MAX_PAUSE.mul_f64((x >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// `spire-server entry create` for this process's uid against the server at `socket`.
fn create_entry(socket: PathBuf, parent: String, spiffe_id: String) {
    let selector = format!("unix:uid:{}", uid());
    let out = Command::new(support::server_binary())
        .args(["entry", "create", "-parentID", &parent, "-spiffeID", &spiffe_id, "-selector", &selector])
        .arg("-socketPath")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "entry create: {}", String::from_utf8_lossy(&out.stderr));
}

/// One update of the stream: when it arrived and the SPIFFE IDs it carries.
type Update = (Instant, Vec<String>);

struct Samples {
    backend: Backend,
    via_a: Vec<Duration>,
    via_b: Vec<Duration>,
}

async fn run(backend: Backend) -> Option<Samples> {
    let shared = Shared::fresh(backend).await?;
    let datastore = shared.datastore();
    let a = TestServer::start_with_datastore(support::server_binary(), "", Some(&datastore)).await;
    let b = TestServer::start_with_datastore(support::server_binary(), "", Some(&datastore)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&b);
    let options = AgentOptions {
        join_token: Some(token.clone()),
        sync_interval: SYNC_INTERVAL.into(),
        discover_workload_path: false,
        ..AgentOptions::default()
    };
    let agent = TestAgent::start(support::AGENT, &dir.path().join("agent"), b.port, &options).await;
    let parent = agent_id(&token);
    let prefix = format!("spiffe://example.org/ha-bench/{}", backend.key());

    // A first entry, so that the stream has something to answer with.
    create_entry(b.socket.clone(), parent.clone(), format!("{prefix}/anchor"));
    let ch = channel(&agent.socket).await;
    let deadline = Instant::now() + TIMEOUT;
    while fetch_x509(&ch).await.is_err() {
        assert!(Instant::now() < deadline, "no SVID for the anchor entry: {}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = SpiffeWorkloadApiClient::new(ch.clone()).max_decoding_message_size(64 << 20);
    let mut stream = client.fetch_x509svid(with_header(X509svidRequest {})).await.unwrap().into_inner();
    let (tx, mut updates) = mpsc::unbounded_channel::<Update>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(msg)) = stream.message().await {
            let at = Instant::now();
            if tx.send((at, msg.svids.into_iter().map(|s| s.spiffe_id).collect())).is_err() {
                break;
            }
        }
    });

    let mut pauses = Pauses::new();
    // When the stream last delivered an update (a sync that changed something): where in the sync
    // cycle a write falls.
    let mut last_update = Instant::now();
    let (mut via_a, mut via_b) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        // Both writes of a pair fall at the same point of the sync cycle: the same pause after the
        // update that delivered the previous sample.
        let pause = pauses.next();
        for (name, server) in [("a", &a), ("b", &b)] {
            tokio::time::sleep(pause).await;
            while let Ok((at, _)) = updates.try_recv() {
                last_update = last_update.max(at);
            }
            let wanted = format!("{prefix}/{name}-{i}");
            let (socket, parent, id) = (server.socket.clone(), parent.clone(), wanted.clone());
            let start = Instant::now();
            tokio::task::spawn_blocking(move || create_entry(socket, parent, id)).await.unwrap();
            let written = start.elapsed();
            let took = loop {
                let update = tokio::time::timeout_at((start + TIMEOUT).into(), updates.recv()).await;
                match update {
                    Ok(Some((at, ids))) if ids.contains(&wanted) => break at.duration_since(start),
                    Ok(Some((at, _))) => last_update = last_update.max(at),
                    Ok(None) => panic!("the FetchX509SVID stream ended: {}", agent.log()),
                    Err(_) => panic!("{wanted} not delivered after {TIMEOUT:?}: {}", agent.log()),
                }
            };
            println!(
                "  sample {i:>2} through server {}: {:>6.0} ms (written {:>5.0} ms after the previous update; \
                 entry create returned after {:.0} ms)",
                name.to_uppercase(),
                support::ms(took),
                support::ms(start.duration_since(last_update)),
                support::ms(written)
            );
            last_update = start + took;
            let samples = if name == "a" { &mut via_a } else { &mut via_b };
            samples.push(took);
        }
    }
    reader.abort();
    drop(agent);
    drop((a, b));
    drop(shared);
    Some(Samples { backend, via_a, via_b })
}

fn main() {
    let wanted: Vec<String> =
        std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(|a| a.to_ascii_lowercase()).collect();
    let backends: Vec<Backend> = [Backend::Postgres, Backend::MariaDb, Backend::Sqlite]
        .into_iter()
        .filter(|b| wanted.is_empty() || wanted.iter().any(|w| b.key().starts_with(w.as_str())))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut all = Vec::new();
    rt.block_on(async {
        for backend in backends {
            println!("{}: agent sync interval {SYNC_INTERVAL}, {SAMPLES} samples per path", backend.label());
            match run(backend).await {
                Some(s) => all.push(s),
                None => println!("  skipped: not installed"),
            }
        }
    });
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "\nentry written -> SVID delivered on the open stream (sync interval {SYNC_INTERVAL}, target <= 2 intervals)"
    );
    println!("| backend | written through | median (s) | max (s) | median / interval | max / interval |");
    println!("|---|---|---|---|---|---|");
    for s in &all {
        for (path, v) in [("server B (baseline)", &s.via_b), ("server A", &s.via_a)] {
            let (med, max) = (quantile(v, 0.5), quantile(v, 1.0));
            println!(
                "| {} | {path} | {:.2} | {:.2} | {:.2} | {:.2} |",
                s.backend.label(),
                secs(med),
                secs(max),
                secs(med) / secs(SYNC),
                secs(max) / secs(SYNC)
            );
        }
        let mut diffs: Vec<f64> = s.via_a.iter().zip(&s.via_b).map(|(a, b)| secs(*a) - secs(*b)).collect();
        diffs.sort_by(f64::total_cmp);
        // A pair more than a second apart: B's index had not polled A's write before the agent's sync.
        let missed = diffs.iter().filter(|d| **d > 1.0).count();
        println!(
            "| {} | A − B, per pair (same phase) | {:+.2} | {:+.2} | {missed} of {} pairs one sync later | |",
            s.backend.label(),
            diffs[(diffs.len() - 1) / 2],
            diffs[diffs.len() - 1],
            diffs.len()
        );
    }
}
