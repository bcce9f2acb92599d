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
