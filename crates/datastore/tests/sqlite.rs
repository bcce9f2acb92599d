//! The SQLite backend: the conformance suite on a fresh database file per test, plus what only a
//! file-backed store has (reopening, migrations, several stores on one file).

use std::sync::Arc;

use spire_datastore::testsuite::Harness;
use spire_datastore::{
    DataStore, DataStoreError, EntryFilter, RegistrationEntry, SqlStore, SqliteOptions, conformance_tests,
};
use spire_identity::{Selector, SpiffeId};

async fn sqlite_store() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_path(dir.path().join("datastore.sqlite3"), SqliteOptions::default()).await.unwrap();
    Harness::new(Arc::new(store), dir)
}

conformance_tests!(sqlite_store);

fn entry(name: &str) -> RegistrationEntry {
    RegistrationEntry::new(
        SpiffeId::parse(&format!("spiffe://example.org/{name}")).unwrap(),
        SpiffeId::parse("spiffe://example.org/agent").unwrap(),
        [Selector::parse("unix:uid:1000").unwrap()],
    )
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    let store = SqlStore::open_path(&path, SqliteOptions::default()).await.unwrap();
    let created = store.create_entry(entry("web")).await.unwrap();
    store.close().await;
    let store = SqlStore::open_path(&path, SqliteOptions::default()).await.unwrap();
    assert_eq!(store.fetch_entry(&created.id).await.unwrap(), Some(created));
    assert_eq!(store.latest_entry_event_id().await.unwrap(), 1);
}

#[tokio::test]
async fn disabled_migration_needs_a_migrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    let no_migration = SqliteOptions { disable_migration: true, ..SqliteOptions::default() };
    let err = SqlStore::open_path(&path, no_migration.clone()).await.unwrap_err();
    assert!(matches!(&err, DataStoreError::FailedPrecondition(m) if m.contains("disable_migration")), "{err:?}");
    SqlStore::open_path(&path, SqliteOptions::default()).await.unwrap().close().await;
    let store = SqlStore::open_path(&path, no_migration).await.unwrap();
    store.create_entry(entry("web")).await.unwrap();
}

#[tokio::test]
async fn accepts_paths_urls_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("url.sqlite3").display());
    let store = SqlStore::open(&url, SqliteOptions::default()).await.unwrap();
    store.create_entry(entry("web")).await.unwrap();
    assert!(dir.path().join("url.sqlite3").exists());

    for target in [":memory:", "sqlite::memory:"] {
        let store = SqlStore::open(target, SqliteOptions::default()).await.unwrap();
        let created = store.create_entry(entry("web")).await.unwrap();
        assert_eq!(store.list_entries(&EntryFilter::default(), None).await.unwrap().0, [created]);
    }
}

/// The schema keeps SPIRE's table names, so operators find their way around the file.
#[tokio::test]
async fn schema_uses_spire_table_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    SqlStore::open_path(&path, SqliteOptions::default()).await.unwrap().close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap();
    for table in [
        "attested_node_entries",
        "attested_node_entries_events",
        "bundles",
        "ca_journals",
        "dns_names",
        "federated_registration_entries",
        "federated_trust_domains",
        "join_tokens",
        "node_resolver_map_entries",
        "registered_entries",
        "registered_entries_events",
        "selectors",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} missing from {tables:?}");
    }
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
    assert_eq!(mode, "wal");
}

/// Two stores on one file stand for two server processes: their write transactions queue on the
/// file lock (BEGIN IMMEDIATE + busy timeout) instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    let first: Arc<dyn DataStore> = Arc::new(SqlStore::open_path(&path, SqliteOptions::default()).await.unwrap());
    let second: Arc<dyn DataStore> = Arc::new(SqlStore::open_path(&path, SqliteOptions::default()).await.unwrap());
    let mut tasks = Vec::new();
    for (s, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    let mut e = entry(&format!("s{s}/t{t}/e{i}"));
                    e.id = format!("s{s}-t{t}-e{i}");
                    store.create_entry(e).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(first.count_entries(&EntryFilter::default()).await.unwrap(), 120);
    assert_eq!(second.count_entries(&EntryFilter::default()).await.unwrap(), 120);
    assert_eq!(second.list_entry_events(0, 0).await.unwrap().len(), 120);
}
