//! High availability on PostgreSQL and on MariaDB, with real processes: two `spire-server`s on one database, each
//! with its own CA key, and two `spire-agent`s — one behind a TCP load balancer preferring server A,
//! one attached to server B. Entries written through A reach workloads on B's agent (B's index
//! follows A's writes through the events table); once A is killed, A's agent moves to B through the
//! balancer and everything keeps working.
//!
//! Skipped with a message when PostgreSQL is not installed, unless `SPIRE_REQUIRE_DATABASES=1` (CI).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id, server_cli};
use spire_testkit::databases::{MariaDbServer, PostgresServer, TestDatabase};
use spire_testkit::process::TestServer;
use spire_testkit::proxy::FailoverProxy;

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

fn server_binary() -> PathBuf {
    spire_testkit::agent::server_binary(Path::new(AGENT))
}

fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn cli(server: &TestServer, args: &[&str]) -> String {
    server_cli(&server_binary(), server, args)
}

fn create_entry(server: &TestServer, parent: &str, path: &str) {
    let uid = format!("unix:uid:{}", own_uid());
    let spiffe_id = format!("spiffe://example.org{path}");
    cli(server, &["entry", "create", "-parentID", parent, "-spiffeID", &spiffe_id, "-selector", &uid]);
}

/// Polls the agent's Workload API until this process holds an X509-SVID for `path`; returns how long.
async fn wait_for_svid(agent: &TestAgent, path: &str, timeout: Duration, servers: &[&TestServer]) -> Duration {
    let started = Instant::now();
    let wanted = format!("spiffe://example.org{path}");
    let client = spiffe::WorkloadApiClient::connect_to(agent.endpoint()).await.unwrap();
    loop {
        if let Ok(svids) = client.fetch_all_x509_svids().await
            && svids.iter().any(|s| s.spiffe_id().to_string() == wanted)
        {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
            panic!(
                "no SVID for {wanted} after {timeout:?}\nagent log:\n{}\nserver logs:\n{}",
                agent.log(),
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_share_entries_and_survive_one_being_killed() {
    let Some(postgres) = PostgresServer::shared().await else { return };
    two_servers_share_entries_and_survive_one_being_killed(postgres.fresh_database().await, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_mariadb_share_entries_and_survive_one_being_killed() {
    let Some(mariadb) = MariaDbServer::shared().await else { return };
    two_servers_share_entries_and_survive_one_being_killed(mariadb.fresh_database().await, "mysql").await;
}

async fn two_servers_share_entries_and_survive_one_being_killed(database: TestDatabase, kind: &str) {
    // SPIRE's own connection string forms (libpq key=value, Go MySQL DSN), as an operator writes them.
    let datastore = format!(
        "database_type = \"{kind}\"\n            connection_string = \"{}\"",
        database.spire_connection_string()
    );
    let mut a = TestServer::start_with_datastore(server_binary(), "", Some(&datastore)).await;
    let b = TestServer::start_with_datastore(server_binary(), "", Some(&datastore)).await;

    // Each server has its own CA; the shared bundle holds both.
    let bundle = cli(&b, &["bundle", "show", "-format", "spiffe"]);
    let x509_keys = bundle.matches("\"use\": \"x509-svid\"").count() + bundle.matches("\"use\":\"x509-svid\"").count();
    assert!(x509_keys >= 2, "the bundle should hold both servers' CAs:\n{bundle}");

    let lb = FailoverProxy::start(vec![
        SocketAddr::from(([127, 0, 0, 1], a.port)),
        SocketAddr::from(([127, 0, 0, 1], b.port)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Agent 1 reaches the servers through the balancer (server A while it lives); agent 2 is B's.
    let token1 = generate_token(&server_binary(), &a);
    let agent1 = TestAgent::start(AGENT, &dir.path().join("one"), lb.port, &AgentOptions::with_token(&token1)).await;
    let token2 = generate_token(&server_binary(), &b);
    let agent2 = TestAgent::start(AGENT, &dir.path().join("two"), b.port, &AgentOptions::with_token(&token2)).await;
    assert!(lb.forwarded_to(0) > 0 && lb.forwarded_to(1) == 0, "agent 1 should have attested through server A");

    // Written through A, served by B's agent: B's index follows A's writes.
    create_entry(&a, &join_token_agent_id(&token2), "/written-on-a");
    let took = wait_for_svid(&agent2, "/written-on-a", Duration::from_secs(15), &[&a, &b]).await;
    eprintln!("{kind}: entry written through server A reached a workload through server B in {took:?}");
    create_entry(&a, &join_token_agent_id(&token1), "/on-agent-one");
    wait_for_svid(&agent1, "/on-agent-one", Duration::from_secs(15), &[&a, &b]).await;

    // Server A dies. Its agent reconnects through the balancer to B, which accepts its SVID (signed by
    // A's CA, in the shared bundle) and serves it new entries written through B.
    a.kill();
    create_entry(&b, &join_token_agent_id(&token1), "/after-a-died");
    let took = wait_for_svid(&agent1, "/after-a-died", Duration::from_secs(30), &[&b]).await;
    eprintln!("{kind}: after server A was killed, agent 1 got a new entry through server B in {took:?}");
    assert!(lb.forwarded_to(1) > 0, "agent 1 should now go through server B");
    // And what it had keeps being served.
    wait_for_svid(&agent1, "/on-agent-one", Duration::from_secs(5), &[&b]).await;
    create_entry(&b, &join_token_agent_id(&token2), "/second-on-b");
    wait_for_svid(&agent2, "/second-on-b", Duration::from_secs(15), &[&b]).await;
}
