//! What the PostgreSQL and MySQL test binaries share.

use std::sync::Arc;

use spire_datastore::testsuite::Harness;
use spire_datastore::{SqlOptions, SqlStore};
use spire_testkit::databases::TestDatabase;

/// A store on `database`, which the harness keeps (dropping it drops the database).
pub(crate) async fn harness(database: TestDatabase) -> Harness {
    let options = SqlOptions { url: database.url(), max_open_conns: 8, ..SqlOptions::default() };
    let store = SqlStore::connect(options).await.unwrap_or_else(|e| panic!("connect to {}: {e}", database.name()));
    Harness::new(Arc::new(store), database)
}
