//! The database restarted under load, with real processes: a `spire-server` on its own PostgreSQL and
//! MariaDB servers, eight writers creating entries through the server's API, and the database stopped
//! and started again (cleanly, then killed as in a crash) while they write. The server must not die,
//! callers must see Unavailable (never an internal error nor a hang), every acknowledged write must be
//! there afterwards, and the server must serve writes again once the database is back.
//!
//! Skipped with a message when the databases are not installed, unless `SPIRE_REQUIRE_DATABASES=1`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spire_proto::spire::api::server::entry::v1 as entry;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::types as pb;
use spire_testkit::databases::{MariaDbServer, PostgresServer, TestDatabase};
use spire_testkit::process::TestServer;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");
const WRITERS: usize = 8;

fn new_entry(path: &str) -> pb::Entry {
    pb::Entry {
        spiffe_id: Some(pb::Spiffeid { trust_domain: "example.org".into(), path: path.into() }),
        parent_id: Some(pb::Spiffeid { trust_domain: "example.org".into(), path: "/agent".into() }),
        selectors: vec![pb::Selector { r#type: "unix".into(), value: "uid:1000".into() }],
        ..Default::default()
    }
}

/// What the writers saw.
#[derive(Debug, Default)]
struct Outcome {
    acknowledged: BTreeSet<String>,
    unavailable: usize,
    other: Vec<String>,
}

/// Creates entries from `WRITERS` tasks until `stop`; one entry per call.
async fn write_until(server: &TestServer, stop: Arc<std::sync::atomic::AtomicBool>) -> Outcome {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut client = EntryClient::new(server.channel().await);
        let (stop, outcome) = (stop.clone(), outcome.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let path = format!("/w{w}/e{n}");
                let request = entry::BatchCreateEntryRequest { entries: vec![new_entry(&path)], output_mask: None };
                let call = tokio::time::timeout(Duration::from_secs(30), client.batch_create_entry(request)).await;
                {
                    let mut o = outcome.lock().unwrap();
                    match call {
                        Err(_) => o.other.push(format!("{path}: no answer in 30 s")),
                        Ok(Err(status)) => o.other.push(format!("{path}: call failed: {status}")),
                        Ok(Ok(resp)) => {
                            let result = resp.into_inner().results.pop().unwrap();
                            let status = result.status.unwrap();
                            match Code::from(status.code) {
                                Code::Ok => {
                                    o.acknowledged.insert(result.entry.unwrap().id);
                                }
                                Code::Unavailable => o.unavailable += 1,
                                code => o.other.push(format!("{path}: {code:?} {}", status.message)),
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(outcome).unwrap().into_inner().unwrap()
}

async fn all_entry_ids(server: &TestServer) -> BTreeSet<String> {
    let mut client = EntryClient::new(server.channel().await);
    let mut ids = BTreeSet::new();
    let mut token = String::new();
    loop {
        let resp = client
            .list_entries(entry::ListEntriesRequest { page_size: 500, page_token: token.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        ids.extend(resp.entries.into_iter().map(|e| e.id));
        if resp.next_page_token.is_empty() {
            return ids;
        }
        token = resp.next_page_token;
    }
}

/// Runs the load, applies `fault` to the database halfway, and checks the outcome.
async fn survive(database: TestDatabase, kind: &str, fault: impl AsyncFnOnce()) {
    let datastore = format!(
        "database_type = \"{kind}\"\n            connection_string = \"{}\"",
        database.spire_connection_string()
    );
    let mut server = TestServer::start_with_datastore(BIN, "", Some(&datastore)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let server = &server;
        async move { write_until(server, stop).await }
    };
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        fault().await;
        // Writes go on for a while after the database is back.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let (outcome, ()) = tokio::join!(load, chaos);
    assert!(server.try_wait().is_none(), "the server died: {}", server.log());
    assert!(outcome.other.is_empty(), "callers must see OK or Unavailable only: {:?}", outcome.other);
    let stored = all_entry_ids(&server).await;
    let lost: Vec<&String> = outcome.acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged entries lost: {lost:?}");
    eprintln!(
        "{kind}: {} writes acknowledged, {} answered Unavailable during the outage, none lost",
        outcome.acknowledged.len(),
        outcome.unavailable
    );
    // And it keeps working.
    let started = Instant::now();
    let mut client = EntryClient::new(server.channel().await);
    let request = entry::BatchCreateEntryRequest { entries: vec![new_entry("/after")], output_mask: None };
    let result = client.batch_create_entry(request).await.unwrap().into_inner().results.pop().unwrap();
    assert_eq!(result.status.unwrap().code, 0, "a write after recovery failed");
    assert!(started.elapsed() < Duration::from_secs(10));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_and_crashed_under_load() {
    let Some(db_server) = PostgresServer::dedicated().await else { return };
    survive(db_server.fresh_database().await, "postgres", async || db_server.restart().await).await;
    survive(db_server.fresh_database().await, "postgres", async || {
        db_server.kill().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        db_server.start().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restarted_and_crashed_under_load() {
    let Some(db_server) = MariaDbServer::dedicated().await else { return };
    survive(db_server.fresh_database().await, "mysql", async || db_server.restart().await).await;
    survive(db_server.fresh_database().await, "mysql", async || {
        db_server.kill().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        db_server.start().await;
    })
    .await;
}
