//! TLS to the database, for real: the test PostgreSQL and MariaDB servers speak TLS with a certificate
//! from their own CA. SPIRE's settings (`sslmode=verify-full`, MySQL's `tls`, `root_ca_path`) become a
//! verified TLS connection the store works over; a CA that did not sign the server is refused.
//!
//! Skipped with a message when the databases are not installed, unless `SPIRE_REQUIRE_DATABASES=1`.

use std::path::PathBuf;

use spire_datastore::sql_connection::{DbTls, convert};
use spire_datastore::{DataStore, SqlOptions, SqlStore};
use sqlx::Connection;

fn tls(root_ca: PathBuf) -> DbTls {
    DbTls { root_ca_path: Some(root_ca), client_cert_path: None, client_key_path: None }
}

/// A CA that signed nothing the servers present.
fn unrelated_ca(dir: &tempfile::TempDir) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let path = dir.path().join("other-ca.pem");
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path
}

async fn store_works(url: &str) {
    let store = SqlStore::connect(SqlOptions { url: url.to_owned(), max_open_conns: 2, ..SqlOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("connect over TLS: {e}"));
    assert_eq!(store.count_bundles().await.unwrap(), 0);
}

#[tokio::test]
async fn postgres_over_verified_tls() {
    let Some(server) = spire_testkit::databases::PostgresServer::shared().await else { return };
    let db = server.fresh_database().await;
    let dsn = db.spire_connection_string().replace("sslmode=disable", "sslmode=verify-full");
    let url = convert("postgres", &dsn, &tls(server.tls_root_ca())).unwrap().url;
    store_works(&url).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl, "the connection should be TLS");

    let dir = tempfile::tempdir().unwrap();
    let wrong = convert("postgres", &dsn, &tls(unrelated_ca(&dir))).unwrap().url;
    let err = SqlStore::connect(SqlOptions { url: wrong, ..SqlOptions::default() }).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn mariadb_over_verified_tls() {
    let Some(server) = spire_testkit::databases::MariaDbServer::shared().await else { return };
    let db = server.fresh_database().await;
    // `root_ca_path` turns verification on, as in SPIRE.
    let url = convert("mysql", &db.spire_connection_string(), &tls(server.tls_root_ca())).unwrap().url;
    store_works(&url).await;
    let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
    let row: (String, String) =
        sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_version'").fetch_one(&mut conn).await.unwrap();
    assert!(row.1.starts_with("TLS"), "the connection should be TLS: {row:?}");

    let dir = tempfile::tempdir().unwrap();
    let wrong = convert("mysql", &db.spire_connection_string(), &tls(unrelated_ca(&dir))).unwrap().url;
    let err = SqlStore::connect(SqlOptions { url: wrong, ..SqlOptions::default() }).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate") || err.to_string().contains("UnknownIssuer"),
        "{err}"
    );
}
