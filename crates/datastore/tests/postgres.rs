//! The PostgreSQL backend: the conformance suite on a fresh database per test, on a real PostgreSQL
//! server the test starts (see `spire_testkit::databases`; skipped with a message when PostgreSQL is
//! not installed, unless `SPIRE_REQUIRE_DATABASES=1`, as in CI).

mod common;

use spire_datastore::conformance_tests;
use spire_testkit::databases::PostgresServer;

async fn postgres_store() -> Option<spire_datastore::testsuite::Harness> {
    let server = PostgresServer::shared().await?;
    Some(common::harness(server.fresh_database().await).await)
}

conformance_tests!(postgres_store);

/// `ro_connection_string`: listings read the replica, lookups by key and events the primary. A second,
/// empty database stands in for a replica that has not caught up yet.
#[tokio::test]
async fn listings_read_the_replica_and_lookups_the_primary() {
    use spire_datastore::{DataStore, EntryFilter, RegistrationEntry, SqlOptions, SqlStore};
    use spire_identity::{Selector, SpiffeId};

    let Some(server) = PostgresServer::shared().await else { return };
    let (primary, replica) = (server.fresh_database().await, server.fresh_database().await);
    // The "replica" gets the schema, as a real one would by replication.
    SqlStore::connect(SqlOptions { url: replica.url(), ..SqlOptions::default() }).await.unwrap().close().await;
    let options = SqlOptions { url: primary.url(), read_only_url: Some(replica.url()), ..SqlOptions::default() };
    let store = SqlStore::connect(options).await.unwrap();
    let entry = store
        .create_entry(RegistrationEntry::new(
            SpiffeId::parse("spiffe://example.org/web").unwrap(),
            SpiffeId::parse("spiffe://example.org/agent").unwrap(),
            [Selector::parse("unix:uid:1000").unwrap()],
        ))
        .await
        .unwrap();
    assert_eq!(store.fetch_entry(&entry.id).await.unwrap(), Some(entry.clone()));
    assert_eq!(store.latest_entry_event_id().await.unwrap(), 1);
    assert!(store.list_entries(&EntryFilter::default(), None).await.unwrap().0.is_empty(), "listed from the replica");
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 0);
}

/// Lookups by many IDs: IDs with quotes, commas, braces, backslashes or blanks match nothing rather
/// than break the statement.
#[tokio::test]
async fn fetch_entries_with_odd_ids() {
    use spire_datastore::{DataStore, RegistrationEntry, SqlOptions, SqlStore};
    use spire_identity::{Selector, SpiffeId};

    let Some(server) = PostgresServer::shared().await else { return };
    let db = server.fresh_database().await;
    let store = SqlStore::connect(SqlOptions { url: db.url(), ..SqlOptions::default() }).await.unwrap();
    let entry = store
        .create_entry(RegistrationEntry::new(
            SpiffeId::parse("spiffe://example.org/web").unwrap(),
            SpiffeId::parse("spiffe://example.org/agent").unwrap(),
            [Selector::parse("unix:uid:1000").unwrap()],
        ))
        .await
        .unwrap();
    let ids: Vec<String> = ["a\"b", "x,y", "{z}", "\\", "NULL", " ", ""]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([entry.id.clone()])
        .collect();
    let found = store.fetch_entries(&ids).await.unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), [&entry.id]);
    assert_eq!(found[&entry.id], entry);
}
