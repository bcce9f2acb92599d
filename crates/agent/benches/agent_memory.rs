//! The resident memory of a `spire-agent run` process holding 1,000 X509-SVIDs, beside the same process
//! right after it started with no entries (the baseline, same run).
//!
//! A real `spire-server` and a real release `spire-agent` (INFO logs, 5 s sync, disk keys, `unix`
//! attestor with its default config). VmRSS is read from `/proc/<agent pid>/status` once the agent is up
//! with 0 entries; then 1,000 entries (selector `unix:uid:<this uid>`, parent the agent) are created with
//! `spire-server entry create -data`, FetchX509SVID is polled until it returns all 1,000 SVIDs, and VmRSS
//! is read again, then once more after two further sync cycles (sampled every 100 ms meanwhile).
//!
//! Run: `cargo build --release -p spire-server --bin spire-server` once, then
//! `cargo bench -p spire-agent --bench agent_memory`.

mod support;

use std::time::{Duration, Instant};

use prost::Message as _;
use support::{AgentProcess, channel, fetch_x509};

const ENTRIES: usize = 1_000;

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let server = support::start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = support::join_token(&server);
    let agent = AgentProcess::start(&dir.path().join("agent"), server.port, &token, false).await;
    // Up, attested, first sync done (the socket opens after it); let one background sync pass.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let base_rss = agent.status_kb("VmRSS");
    let ch = channel(&agent.socket).await;
    let denied = fetch_x509(&ch).await.expect_err("no entries yet");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let t = Instant::now();
    support::create_entries(&server, dir.path(), &support::agent_id(&token), "bench", ENTRIES);
    let created = t.elapsed();
    let mut peak = base_rss;
    let deadline = Instant::now() + Duration::from_secs(120);
    let resp = loop {
        peak = peak.max(agent.status_kb("VmRSS"));
        match fetch_x509(&ch).await {
            Ok(r) if r.svids.len() == ENTRIES => break r,
            _ if Instant::now() > deadline => panic!("the agent did not serve {ENTRIES} SVIDs: {}", agent.log()),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let served = t.elapsed();
    let full_rss = agent.status_kb("VmRSS");
    // Two more sync cycles (5 s each), sampling as they go.
    let until = Instant::now() + Duration::from_secs(11);
    while Instant::now() < until {
        peak = peak.max(agent.status_kb("VmRSS"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later_rss = agent.status_kb("VmRSS");
    peak = peak.max(full_rss).max(later_rss);
    // Still all there after the syncs.
    assert_eq!(fetch_x509(&ch).await.unwrap().svids.len(), ENTRIES);

    println!(
        "spire-agent resident memory (VmRSS of pid {}), {ENTRIES} entries for uid {}",
        agent.pid(),
        support::uid()
    );
    let row = |label: &str, kb: u64| {
        println!("  {label:<46} {:>6.1} MiB  (+{:.1} MiB)", mb(kb), mb(kb.saturating_sub(base_rss)));
    };
    row("0 entries, after start (baseline)", base_rss);
    row(&format!("{ENTRIES} SVIDs cached, when first served in full"), full_rss);
    row(&format!("{ENTRIES} SVIDs cached, after 2 more syncs"), later_rss);
    row("highest sample (every 100 ms) from creation on", peak);
    println!(
        "  entries created in {:.2} s; all {ENTRIES} SVIDs served {:.2} s after; one response of {:.2} MB",
        created.as_secs_f64(),
        (served - created).as_secs_f64(),
        resp.encoded_len() as f64 / 1e6
    );
}
