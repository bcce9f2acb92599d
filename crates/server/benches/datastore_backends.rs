//! The SQL datastore on each backend (SQLite, PostgreSQL, MariaDB), each figure beside a baseline
//! measured in the same run on the same database:
//!
//! - entry creation throughput through `DataStore::create_entry` (one selector per entry), one writer
//!   and 8 concurrent writers, beside the database's floor for one write transaction: a raw sqlx
//!   transaction (same `Any` driver, same pool shape) inserting one row into a trivial table;
//! - with 100,000 entries (1,000 agents × 100): loading the authorized-entry index at start
//!   (`ServerContext::load_index`) beside building the same index from entries already in memory; the
//!   GetAuthorizedEntries answer for an agent with 100 entries from that index beside the conversion
//!   alone (as in `authorized_entries`); and the follower's `poll_once` applying 100 entries written
//!   by another store handle ("server A"), beside `fetch_entries` of the same 100 IDs.
//!
//! PostgreSQL and MariaDB are the testkit's servers (`spire_testkit::databases`: durability off,
//! see there); a backend whose binaries are missing is skipped with a note. SQLite runs with the
//! store's settings (WAL, `synchronous = FULL`: every commit waits for the disk).
//!
//! Run: `cargo bench -p spire-server --bench datastore_backends` (all backends), or name some:
//! `cargo bench -p spire-server --bench datastore_backends -- sqlite postgres mariadb`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spire_datastore::{DataStore, Dialect, RegistrationEntry, SqlOptions, SqlStore, SqliteOptions};
use spire_identity::{Selector, SpiffeId, TrustDomain};
use spire_server::api::convert::entry_proto;
use spire_server::api::{ServerContext, Settings};
use spire_server::authorized::EntryIndex;
use spire_server::authorized::follower::{EventCursor, poll_once};
use spire_server::ca::Ca;
use spire_testkit::databases::{MariaDbServer, PostgresServer, TestDatabase};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Writes per throughput case (ours and the raw baseline), in `BLOCKS` timed blocks.
const WRITES: usize = 4_000;
/// Blocks per throughput case; the cases take turns block by block and the median block rate is kept.
const BLOCKS: usize = 8;
/// Concurrent writers in the throughput cases.
const WRITER_COUNTS: [usize; 2] = [1, 8];
/// Entries in the database for the index and GetAuthorizedEntries figures.
const TOTAL: usize = 100_000;
/// Agents they hang under (`TOTAL / AGENTS` each).
const AGENTS: usize = 1_000;
/// Concurrent `create_entry` callers filling the database.
const FILL_WRITERS: usize = 16;
/// Index loads from the database (and in-memory builds).
const LOAD_ROUNDS: usize = 3;
/// GetAuthorizedEntries rounds.
const LOOKUP_ROUNDS: usize = 2_000;
/// Entries "server A" writes per follower poll.
const FOLLOWER_BATCH: usize = 100;
/// Follower rounds.
const FOLLOWER_ROUNDS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MariaDb => "MariaDB",
        }
    }
}

/// One empty database of a backend.
enum Db {
    Sqlite(tempfile::TempDir),
    Server(TestDatabase),
}

impl Db {
    /// A fresh database, or `None` (the testkit printed why) when the server is not installed.
    async fn fresh(backend: Backend) -> Option<Db> {
        Some(match backend {
            Backend::Sqlite => Db::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Db::Server(PostgresServer::shared().await?.fresh_database().await),
            Backend::MariaDb => Db::Server(MariaDbServer::shared().await?.fresh_database().await),
        })
    }

    fn sqlite_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("datastore.sqlite3")
    }

    /// A store on this database, as the server opens it (default options).
    async fn store(&self) -> SqlStore {
        match self {
            Db::Sqlite(dir) => SqlStore::open_path(Self::sqlite_path(dir), SqliteOptions::default()).await.unwrap(),
            Db::Server(db) => SqlStore::connect(SqlOptions { url: db.url(), ..SqlOptions::default() }).await.unwrap(),
        }
    }

    /// A raw sqlx pool on this database, shaped as the store's writer: on SQLite one connection with
    /// the store's per-connection settings (the store has already put the file in WAL mode).
    async fn raw_pool(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        match self {
            Db::Sqlite(dir) => AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = FULL").await?;
                        sqlx::Executor::execute(&mut *conn, "PRAGMA busy_timeout = 10000").await?;
                        Ok(())
                    })
                })
                .connect(&format!("sqlite://{}?mode=rwc", Self::sqlite_path(dir).display()))
                .await
                .unwrap(),
            Db::Server(db) => AnyPoolOptions::new().max_connections(100).connect(&db.url()).await.unwrap(),
        }
    }
}

/// The raw baseline's table and its one-row write transaction.
struct Raw {
    pool: AnyPool,
    dialect: Dialect,
    insert: &'static str,
}

impl Raw {
    async fn new(pool: AnyPool, dialect: Dialect) -> Self {
        let (create, insert) = match dialect {
            Dialect::Sqlite => (
                "CREATE TABLE bench_raw (id INTEGER PRIMARY KEY AUTOINCREMENT, v VARCHAR(255) NOT NULL)",
                "INSERT INTO bench_raw (v) VALUES (?)",
            ),
            Dialect::Postgres => (
                "CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, v VARCHAR(255) NOT NULL)",
                "INSERT INTO bench_raw (v) VALUES ($1)",
            ),
            Dialect::Mysql => (
                "CREATE TABLE bench_raw (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(255) NOT NULL)",
                "INSERT INTO bench_raw (v) VALUES (?)",
            ),
        };
        sqlx::query(create).execute(&pool).await.unwrap();
        Self { pool, dialect, insert }
    }

    /// One transaction inserting one row, begun as the store begins its writes.
    async fn write(&self, i: usize) {
        let mut tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await.unwrap(),
            _ => self.pool.begin().await.unwrap(),
        };
        sqlx::query(self.insert).bind(format!("row-{i}")).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn agent_id(agent: usize) -> String {
    format!("spiffe://example.org/spire/agent/join_token/node-{agent:04}")
}

/// A workload entry as an operator registers one: a service account path, the node's agent as parent,
/// one selector.
fn workload_entry(i: usize) -> RegistrationEntry {
    RegistrationEntry::new(
        id(&format!("spiffe://example.org/ns/team-{}/sa/service-{i}", i % 50)),
        id(&agent_id(i % AGENTS)),
        [Selector::new("unix", format!("uid:{}", 10_000 + i)).unwrap()],
    )
}

/// The 100,000-entry layout of `authorized_entries`: 1,000 agents with 100 entries each, every tenth
/// entry nested under the previous one, to exercise the recursion.
fn fill_entry(i: usize) -> RegistrationEntry {
    let agent = i % AGENTS;
    let parent = if i % 10 == 9 { format!("spiffe://example.org/agent{agent}/w{}", i - 1) } else { agent_id(agent) };
    let mut e = RegistrationEntry::new(
        id(&format!("spiffe://example.org/agent{agent}/w{i}")),
        id(&parent),
        [Selector::new("unix", format!("uid:{i}")).unwrap()],
    );
    e.dns_names = vec![format!("w{i}.example.org")];
    e
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_and_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

/// Runs `n` writes over `writers` concurrent tasks (`write(i)` for i in `start..start + n`); the rate.
async fn timed_writes<F, Fut>(writers: usize, start: usize, n: usize, write: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let write = Arc::new(write);
    let t = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let write = write.clone();
            tokio::spawn(async move {
                for i in (start + w..start + n).step_by(writers) {
                    write(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// What one backend measured, for the summary.
struct Figures {
    backend: Backend,
    /// (writers, raw txn/s, creates/s)
    throughput: Vec<(usize, f64, f64)>,
    fill: Duration,
    load: Duration,
    build: Duration,
    lookup: (Duration, Duration),
    conversion: (Duration, Duration),
    idle_poll: Duration,
    fetch: Duration,
    poll: Duration,
}

async fn throughput(backend: Backend) -> Option<Vec<(usize, f64, f64)>> {
    let db = Db::fresh(backend).await?;
    let store: Arc<SqlStore> = Arc::new(db.store().await);
    let raw = Arc::new(Raw::new(db.raw_pool().await, store.dialect()).await);
    let next = Arc::new(AtomicUsize::new(0));
    let block = WRITES / BLOCKS;
    let mut out = Vec::new();
    for writers in WRITER_COUNTS {
        let (mut raw_rates, mut our_rates) = (Vec::new(), Vec::new());
        for _ in 0..BLOCKS {
            let start = next.fetch_add(block, Ordering::Relaxed);
            let r = raw.clone();
            raw_rates.push(
                timed_writes(writers, start, block, move |i| {
                    let r = r.clone();
                    async move { r.write(i).await }
                })
                .await,
            );
            let s = store.clone();
            our_rates.push(
                timed_writes(writers, start, block, move |i| {
                    let s = s.clone();
                    async move {
                        s.create_entry(workload_entry(i)).await.unwrap();
                    }
                })
                .await,
            );
        }
        let (raw_rate, our_rate) = (median(raw_rates), median(our_rates));
        println!(
            "  {writers} writer(s): raw txn {raw_rate:>8.0}/s   create_entry {our_rate:>8.0}/s   ratio {:.2}",
            our_rate / raw_rate
        );
        out.push((writers, raw_rate, our_rate));
    }
    store.close().await;
    raw.pool.close().await;
    Some(out)
}

async fn with_100k(backend: Backend, throughput: Vec<(usize, f64, f64)>) -> Option<Figures> {
    let db = Db::fresh(backend).await?;
    let store = Arc::new(db.store().await);
    let ds: Arc<dyn DataStore> = store.clone();
    let td = TrustDomain::parse("example.org").unwrap();

    // Fill: FILL_WRITERS concurrent create_entry callers.
    let t = Instant::now();
    let tasks: Vec<_> = (0..FILL_WRITERS)
        .map(|w| {
            let ds = ds.clone();
            tokio::spawn(async move {
                for i in (w..TOTAL).step_by(FILL_WRITERS) {
                    ds.create_entry(fill_entry(i)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let fill = t.elapsed();
    println!(
        "  filled {TOTAL} entries with {FILL_WRITERS} concurrent create_entry callers in {:.1} s ({:.0}/s)",
        fill.as_secs_f64(),
        TOTAL as f64 / fill.as_secs_f64()
    );

    // (1) Loading the index as the server does at start, beside building it from memory.
    let ca = Arc::new(Ca::new(td.clone(), None));
    let mut loads = Vec::new();
    let mut ctx = None;
    for _ in 0..LOAD_ROUNDS {
        let c = ServerContext::new(td.clone(), ds.clone(), ca.clone(), Settings::default());
        let t = Instant::now();
        let n = c.load_index().await.unwrap();
        loads.push(t.elapsed());
        assert_eq!(n, TOTAL);
        ctx = Some(c);
    }
    let ctx = ctx.unwrap();
    let entries: Vec<RegistrationEntry> =
        ctx.index.read().unwrap().iter().map(|e| RegistrationEntry::clone(e)).collect();
    let mut builds = Vec::new();
    for _ in 0..LOAD_ROUNDS {
        let copy = entries.clone();
        let t = Instant::now();
        let mut index = EntryIndex::new(td.clone());
        for e in copy {
            index.upsert(e);
        }
        builds.push(t.elapsed());
        black_box(index);
    }
    drop(entries);
    let (load, _) = median_and_p99(loads);
    let (build, _) = median_and_p99(builds);
    println!(
        "  load_index ({TOTAL} entries, one listing): median {:.2} s; in-memory index build {:.3} s; ratio {:.1}",
        load.as_secs_f64(),
        build.as_secs_f64(),
        load.as_secs_f64() / build.as_secs_f64()
    );

    // (2) GetAuthorizedEntries for one agent, from that index.
    let agent = id(&agent_id(42));
    let found = ctx.index.read().unwrap().authorized_entries(&agent, &[]);
    assert_eq!(found.len(), TOTAL / AGENTS, "the agent sees exactly its entries");
    let (mut handler, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..LOOKUP_ROUNDS {
        let t = Instant::now();
        let entries = ctx.index.read().unwrap().authorized_entries(black_box(&agent), &[]);
        let protos: Vec<_> = entries.iter().map(|e| entry_proto(e, None)).collect();
        black_box(protos);
        handler.push(t.elapsed());

        let t = Instant::now();
        let protos: Vec<_> = found.iter().map(|e| entry_proto(e, None)).collect();
        black_box(protos);
        baseline.push(t.elapsed());
    }
    let lookup = median_and_p99(handler);
    let conversion = median_and_p99(baseline);
    println!(
        "  GetAuthorizedEntries (100 of {TOTAL}): median {:.1} µs (p99 {:.1}); conversion alone {:.1} µs; ratio {:.2}",
        us(lookup.0),
        us(lookup.1),
        us(conversion.0),
        lookup.0.as_secs_f64() / conversion.0.as_secs_f64()
    );

    // (3) The follower: "server A" (a second store on the same database) writes 100 entries; this
    // server's poll applies them.
    let server_a = db.store().await;
    let mut cursor = EventCursor::after(ds.latest_entry_event_id().await.unwrap());
    let (mut idle, mut fetches, mut polls) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..FOLLOWER_ROUNDS {
        let t = Instant::now();
        assert_eq!(poll_once(ds.as_ref(), &ctx.index, &mut cursor, Instant::now()).await.unwrap(), 0);
        idle.push(t.elapsed());

        let mut ids = Vec::with_capacity(FOLLOWER_BATCH);
        for k in 0..FOLLOWER_BATCH {
            let i = TOTAL + round * FOLLOWER_BATCH + k;
            ids.push(server_a.create_entry(workload_entry(i)).await.unwrap().id);
        }
        // The first read after another handle's writes may pay for seeing them (SQLite's WAL index,
        // cold pages): the two take turns going first.
        for step in [round % 2, 1 - round % 2] {
            let t = Instant::now();
            if step == 0 {
                let fetched = ds.fetch_entries(&ids).await.unwrap();
                fetches.push(t.elapsed());
                assert_eq!(fetched.len(), FOLLOWER_BATCH);
            } else {
                let applied = poll_once(ds.as_ref(), &ctx.index, &mut cursor, Instant::now()).await.unwrap();
                polls.push(t.elapsed());
                assert_eq!(applied, FOLLOWER_BATCH);
            }
        }
        assert!(ids.iter().all(|id| ctx.index.read().unwrap().get(id).is_some()));
    }
    let (idle_poll, _) = median_and_p99(idle);
    let (fetch, _) = median_and_p99(fetches);
    let (poll, _) = median_and_p99(polls);
    println!(
        "  follower: poll applying {FOLLOWER_BATCH} entries {:.2} ms; fetch_entries of them alone {:.2} ms (ratio {:.2}); \
         idle poll {:.2} ms",
        ms(poll),
        ms(fetch),
        poll.as_secs_f64() / fetch.as_secs_f64(),
        ms(idle_poll)
    );
    server_a.close().await;
    drop(ds);
    store.close().await;
    Some(Figures { backend, throughput, fill, load, build, lookup, conversion, idle_poll, fetch, poll })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let wanted: Vec<String> =
        std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(|a| a.to_ascii_lowercase()).collect();
    let backends: Vec<Backend> = [Backend::Sqlite, Backend::Postgres, Backend::MariaDb]
        .into_iter()
        .filter(|b| wanted.is_empty() || wanted.iter().any(|w| b.label().to_ascii_lowercase().starts_with(w.as_str())))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut all = Vec::new();
    rt.block_on(async {
        for backend in backends {
            println!("{}:", backend.label());
            let started = Instant::now();
            let Some(tp) = throughput(backend).await else {
                println!("  skipped: {} is not installed", backend.label());
                continue;
            };
            if let Some(f) = with_100k(backend, tp).await {
                all.push(f);
            }
            println!("  ({} took {:.0} s)", backend.label(), started.elapsed().as_secs_f64());
        }
    });
    println!("\nsummary (medians; ratios against the baseline of the same run)");
    println!("| backend | writers | raw txn/s | create_entry/s | ratio |");
    println!("|---|---|---|---|---|");
    for f in &all {
        for (w, raw, ours) in &f.throughput {
            println!("| {} | {w} | {raw:.0} | {ours:.0} | {:.2} |", f.backend.label(), ours / raw);
        }
    }
    println!(
        "\n| backend | fill {TOTAL} (s) | load_index (s) | in-memory build (s) | GetAuthorizedEntries µs (p99) | conversion µs | follower poll of {FOLLOWER_BATCH} (ms) | fetch_entries (ms) | idle poll (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        println!(
            "| {} | {:.1} | {:.2} | {:.3} | {:.1} ({:.1}) | {:.1} | {:.2} | {:.2} | {:.2} |",
            f.backend.label(),
            f.fill.as_secs_f64(),
            f.load.as_secs_f64(),
            f.build.as_secs_f64(),
            us(f.lookup.0),
            us(f.lookup.1),
            us(f.conversion.0),
            ms(f.poll),
            ms(f.fetch),
            ms(f.idle_poll)
        );
    }
}
