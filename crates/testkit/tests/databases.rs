//! The database harness itself: servers start, every test gets its own database, the clients
//! connect as the test user over TCP, and the data survives a restart and a crash.

use std::process::Stdio;
use std::time::{Duration, Instant};

use spire_testkit::databases::{Engine, MariaDbServer, PostgresServer, TestDatabase};

/// Two fresh databases are distinct, reachable and isolated from each other; dropping the second
/// one removes it even while a session holds a lock in it.
async fn check_fresh_databases(a: &TestDatabase, b: TestDatabase, list_sql: &str, hold_lock_sql: &str) {
    assert_ne!(a.name(), b.name());
    assert_eq!(a.query("SELECT 1").await, "1");
    assert_eq!(b.query("SELECT 1").await, "1");
    a.query("CREATE TABLE t (x INT); INSERT INTO t VALUES (42)").await;
    assert_eq!(a.query("SELECT x FROM t").await, "42");
    assert!(b.try_query("SELECT x FROM t").await.is_err(), "table t leaked into {}", b.name());
    assert!(a.query(list_sql).await.lines().any(|l| l == b.name()));

    b.query("CREATE TABLE u (x INT)").await;
    let flag = if b.engine() == Engine::Postgres { "-c" } else { "-e" };
    let mut session = b.client_command().arg(flag).arg(hold_lock_sql).stderr(Stdio::null()).spawn().expect("client");
    let b_name = b.name().to_owned();
    let t = Instant::now();
    while !a.query(list_sql).await.lines().any(|l| l == b_name) || t.elapsed() < Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    drop(b);
    eprintln!("drop with an open session: {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(!a.query(list_sql).await.lines().any(|l| l == b_name), "{b_name} not dropped");
    assert!(!session.wait().expect("wait").success(), "the session outlived its database");
}

#[tokio::test]
async fn postgres_shared_server() {
    let t = Instant::now();
    let Some(pg) = PostgresServer::shared().await else { return };
    eprintln!("shared server: {:?}", t.elapsed());
    let t = Instant::now();
    let a = pg.fresh_database().await;
    eprintln!("fresh database: {:?}", t.elapsed());
    let b = pg.fresh_database().await;
    assert_eq!(a.engine(), Engine::Postgres);
    assert_eq!(a.engine().spire_database_type(), "postgres");
    let (port, name) = (pg.port(), a.name());
    assert_eq!(a.url(), format!("postgres://spire:spire-test-pw@127.0.0.1:{port}/{name}?sslmode=disable"));
    assert_eq!(
        a.spire_connection_string(),
        format!("dbname={name} user=spire password=spire-test-pw host=127.0.0.1 port={port} sslmode=disable")
    );
    let hold = "BEGIN; LOCK TABLE u; SELECT pg_sleep(30)";
    check_fresh_databases(&a, b, "SELECT datname FROM pg_database", hold).await;

    let t = Instant::now();
    pg.restart().await;
    eprintln!("restart: {:?}", t.elapsed());
    assert_eq!(pg.port(), port);
    assert_eq!(a.query("SELECT x FROM t").await, "42");
}

#[tokio::test]
async fn mariadb_shared_server() {
    let t = Instant::now();
    let Some(my) = MariaDbServer::shared().await else { return };
    eprintln!("shared server: {:?}", t.elapsed());
    let t = Instant::now();
    let a = my.fresh_database().await;
    eprintln!("fresh database: {:?}", t.elapsed());
    let b = my.fresh_database().await;
    assert_eq!(a.engine(), Engine::MariaDb);
    assert_eq!(a.engine().spire_database_type(), "mysql");
    let (port, name) = (my.port(), a.name());
    assert_eq!(a.url(), format!("mysql://spire:spire-test-pw@127.0.0.1:{port}/{name}?ssl-mode=disabled"));
    assert_eq!(a.spire_connection_string(), format!("spire:spire-test-pw@tcp(127.0.0.1:{port})/{name}?parseTime=true"));
    let hold = "BEGIN; INSERT INTO u VALUES (1); SELECT SLEEP(30)";
    check_fresh_databases(&a, b, "SHOW DATABASES", hold).await;
    // The test user may create and drop databases.
    a.query("CREATE DATABASE scratch_db; DROP DATABASE scratch_db").await;

    let t = Instant::now();
    my.restart().await;
    eprintln!("restart: {:?}", t.elapsed());
    assert_eq!(my.port(), port);
    assert_eq!(a.query("SELECT x FROM t").await, "42");
}

/// A dedicated server survives SIGKILL (crash recovery) and leaves nothing behind on drop.
#[tokio::test]
async fn postgres_dedicated_crash() {
    let Some(pg) = PostgresServer::dedicated().await else { return };
    let db = pg.fresh_database().await;
    db.query("CREATE TABLE t (x INT); INSERT INTO t VALUES (7)").await;
    pg.kill().await;
    assert!(!pg.is_running());
    assert!(db.try_query("SELECT 1").await.is_err());
    let t = Instant::now();
    pg.start().await;
    eprintln!("start after kill: {:?}", t.elapsed());
    assert_eq!(db.query("SELECT x FROM t").await, "7");
    let dir = pg.dir().to_path_buf();
    drop(db);
    drop(pg);
    assert!(!dir.exists());
}

/// The same for MariaDB.
#[tokio::test]
async fn mariadb_dedicated_crash() {
    let Some(my) = MariaDbServer::dedicated().await else { return };
    let db = my.fresh_database().await;
    db.query("CREATE TABLE t (x INT); INSERT INTO t VALUES (7)").await;
    my.kill().await;
    assert!(!my.is_running());
    assert!(db.try_query("SELECT 1").await.is_err());
    let t = Instant::now();
    my.start().await;
    eprintln!("start after kill: {:?}", t.elapsed());
    assert_eq!(db.query("SELECT x FROM t").await, "7");
    let dir = my.dir().to_path_buf();
    drop(db);
    drop(my);
    assert!(!dir.exists());
}
