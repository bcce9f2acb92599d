//! Our agent against the real SPIRE server (v1.13.3): it attests with a join token SPIRE generated,
//! syncs the entries created with SPIRE's own CLI, and serves their X509- and JWT-SVIDs (signed by
//! SPIRE's CA) to a workload (rust-spiffe, and SPIRE's own `spire-agent api`); with short TTLs it
//! renews both the workload's SVID and its own through SPIRE's server; killed and restarted without
//! a token it resumes from its data directory. The peer is built by scripts/install-peers.sh.
//!
//! Each scenario is in `agent_server/scenarios.rs`, shared with `upstream_agent_our_server.rs`,
//! which runs it the other way round.

mod agent_server;

use agent_server::OurAgent;
use agent_server::scenarios;
use spire_testkit::upstream::UpstreamServer;

#[tokio::test]
async fn our_agent_attests_syncs_renews_and_resumes_against_spire_server() {
    scenarios::attests_syncs_renews_and_resumes::<UpstreamServer, OurAgent>().await;
}

/// Evicted (`agent evict`) or banned (`agent ban`) with SPIRE's CLI, our agent exits at its next
/// sync, as SPIRE's agent does, and having forgotten its SVID cannot resume without a new token.
#[tokio::test]
async fn our_agent_shuts_down_when_spire_server_evicts_or_bans_it() {
    scenarios::shuts_down_when_evicted_or_banned::<UpstreamServer, OurAgent>().await;
}

/// Without insecure bootstrap, our agent trusts SPIRE's server through `trust_bundle_path` (SPIRE's
/// bundle, as its `bundle show -format pem` prints it), and refuses a server its bundle does not
/// vouch for.
#[tokio::test]
async fn our_agent_bootstraps_from_spire_servers_bundle_and_refuses_another() {
    scenarios::bootstraps_from_the_servers_bundle_and_refuses_another::<UpstreamServer, OurAgent>().await;
}

/// The agent binary replaced in place, on SPIRE's server: SPIRE's agent, then ours, then SPIRE's
/// again on one data directory, without a token after the first.
#[tokio::test]
async fn our_agent_and_spire_agent_take_over_each_others_data_dir() {
    scenarios::agents_take_over_each_others_data_dir::<UpstreamServer>().await;
}

/// More authorized entries than one SyncAuthorizedEntries page (500), from SPIRE's server.
#[tokio::test]
async fn our_agent_syncs_more_entries_than_a_page_from_spire_server() {
    scenarios::syncs_more_entries_than_a_page::<UpstreamServer, OurAgent>().await;
}

/// SPIRE's server's CA rotates; our agent follows.
#[tokio::test]
async fn our_agent_follows_spire_servers_ca_rotation() {
    scenarios::follows_the_servers_ca_rotation::<UpstreamServer, OurAgent>().await;
}

/// SPIRE's server restarts; our agent keeps serving, reconnects and syncs what changed.
#[tokio::test]
async fn our_agent_reconnects_after_spire_server_restarts() {
    scenarios::reconnects_after_the_server_restarts::<UpstreamServer, OurAgent>().await;
}

/// SPIRE's server's CA under an upstream authority: our agent serves the whole chain.
#[tokio::test]
async fn our_agent_serves_chains_of_spire_server_under_an_upstream_authority() {
    scenarios::serves_chains_under_an_upstream_authority::<UpstreamServer, OurAgent>().await;
}
