//! The MySQL backend on MariaDB: the conformance suite on a fresh database per test, on a real
//! MariaDB server the test starts (see `spire_testkit::databases`; skipped with a message when
//! MariaDB is not installed, unless `SPIRE_REQUIRE_DATABASES=1`, as in CI).

mod common;

use spire_datastore::conformance_tests;
use spire_testkit::databases::MariaDbServer;

async fn mysql_store() -> Option<spire_datastore::testsuite::Harness> {
    let server = MariaDbServer::shared().await?;
    Some(common::harness(server.fresh_database().await).await)
}

conformance_tests!(mysql_store);
