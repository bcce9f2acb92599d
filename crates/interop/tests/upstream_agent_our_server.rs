//! The real SPIRE agent (v1.13.3) against our server: it attests with one of our join tokens, syncs
//! the entries our server authorizes, and serves their X509- and JWT-SVIDs (signed by our CA) to a
//! workload (rust-spiffe, and SPIRE's own `spire-agent api`); with short TTLs it renews both the
//! workload's SVID and its own through our server; killed and restarted without a token it resumes
//! from its data directory. The peer is built by scripts/install-peers.sh.
//!
//! Each scenario is in `agent_server/scenarios.rs`, shared with `our_agent_upstream_server.rs`,
//! which runs it the other way round.

mod agent_server;

use agent_server::OurServer;
use agent_server::scenarios;
use spire_testkit::upstream::UpstreamAgent;

#[tokio::test]
async fn spire_agent_attests_syncs_renews_and_resumes_against_our_server() {
    scenarios::attests_syncs_renews_and_resumes::<OurServer, UpstreamAgent>().await;
}

/// Evicted (`agent evict`) or banned (`agent ban`) on our server, SPIRE's agent learns why from the
/// PermissionDenied details of its next sync, removes its SVID and shuts down (a join-token agent
/// cannot re-attest).
#[tokio::test]
async fn spire_agent_shuts_down_when_our_server_evicts_or_bans_it() {
    scenarios::shuts_down_when_evicted_or_banned::<OurServer, UpstreamAgent>().await;
}

/// Without insecure bootstrap, SPIRE's agent trusts our server through `trust_bundle_path` (our
/// server's bundle, as `bundle show -format pem` prints it), and refuses a server its bundle does not
/// vouch for.
#[tokio::test]
async fn spire_agent_bootstraps_from_our_servers_bundle_and_refuses_another() {
    scenarios::bootstraps_from_the_servers_bundle_and_refuses_another::<OurServer, UpstreamAgent>().await;
}

/// The agent binary replaced in place, on our server: SPIRE's agent, then ours, then SPIRE's again
/// on one data directory, without a token after the first.
#[tokio::test]
async fn our_agent_and_spire_agent_take_over_each_others_data_dir() {
    scenarios::agents_take_over_each_others_data_dir::<OurServer>().await;
}

/// More authorized entries than one SyncAuthorizedEntries page (500), from our server.
#[tokio::test]
async fn spire_agent_syncs_more_entries_than_a_page_from_our_server() {
    scenarios::syncs_more_entries_than_a_page::<OurServer, UpstreamAgent>().await;
}

/// Our server's CA rotates; SPIRE's agent follows.
#[tokio::test]
async fn spire_agent_follows_our_servers_ca_rotation() {
    scenarios::follows_the_servers_ca_rotation::<OurServer, UpstreamAgent>().await;
}

/// Our server restarts; SPIRE's agent keeps serving, reconnects and syncs what changed.
#[tokio::test]
async fn spire_agent_reconnects_after_our_server_restarts() {
    scenarios::reconnects_after_the_server_restarts::<OurServer, UpstreamAgent>().await;
}

/// Our server's CA under an upstream authority: SPIRE's agent serves the whole chain.
#[tokio::test]
async fn spire_agent_serves_chains_of_our_server_under_an_upstream_authority() {
    scenarios::serves_chains_under_an_upstream_authority::<OurServer, UpstreamAgent>().await;
}
