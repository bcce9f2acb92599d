//! The http_challenge node attestor end to end, for each pairing of our server and agent with SPIRE
//! v1.13.3's: the agent names a host (a loopback address, so that the server's fetch reaches it),
//! serves the server's nonce over HTTP on a random port, and gets the agent ID
//! `spiffe://example.org/spire/agent/http_challenge/<host>`; `agent list` and `agent show` name it
//! with its `hostname` selector, and a workload under a node alias on that selector gets its SVID.
//! Then the refusals, with both agents against our server: an agent name SPIRE's pattern refuses,
//! a host name outside `allowed_dns_patterns`, and a second attestation of a host name already
//! attested while trust on first use is on.

mod agent_server;

use std::path::Path;
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_testkit::agent::AgentOptions;
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

/// A server whose http_challenge `plugin_data` is `data`.
fn server_setup(data: &str) -> ServerSetup {
    let plugin = format!(
        "    NodeAttestor \"http_challenge\" {{\n        plugin_data {{\n            {data}\n        }}\n    }}\n"
    );
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

/// An agent attesting as `hostname` (and `agentname`, if given) on a random port.
fn agent_options(hostname: &str, agentname: Option<&str>) -> AgentOptions {
    let agentname = agentname.map(|a| format!("\n            agentname = \"{a}\"")).unwrap_or_default();
    let attestors = format!(
        "    NodeAttestor \"http_challenge\" {{\n        plugin_data {{\n            hostname = \"{hostname}\"{agentname}\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}"
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

fn agent_id(hostname: &str) -> String {
    format!("spiffe://example.org/spire/agent/http_challenge/{hostname}")
}

/// The whole flow on one pairing, the agent naming itself `hostname`.
async fn attests<S: ServerUnderTest, A: AgentUnderTest>(tag: &str, hostname: &str) {
    let (Some(server_bin), Some(agent_bin)) = (S::binary(), A::binary()) else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = S::start(&server_bin, &server_setup("")).await;
    let agent = A::start(&agent_bin, &tmp.path().join("agent"), server.port, &agent_options(hostname, None)).await;

    let listed = server.cli(&["agent", "list"]);
    assert!(listed.contains(&agent_id(hostname)), "{} lists no {}:\n{listed}\n{}", S::NAME, A::NAME, agent.log());
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id(hostname)]);
    let selector = format!("http_challenge:hostname:{hostname}");
    assert!(shown.contains(&selector), "{} lacks {selector}:\n{shown}", S::NAME);
    assert_eq!(agent_server::field(&shown, "Attestation type"), "http_challenge", "{shown}");
    // Trust on first use: the agent renews its SVID, never attests again.
    assert_eq!(agent_server::field(&shown, "Can re-attest"), "false", "{shown}");

    agent_server::node_alias_workload_gets_svid(&server, &agent, "http-challenge-nodes", tag, &selector).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server() {
    attests::<OurServer, OurAgent>("ours", "127.0.0.11").await;
}

/// SPIRE's agent serves the nonce; our server fetches and checks it.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    attests::<OurServer, UpstreamAgent>("spire-agent", "127.0.0.12").await;
}

/// Our agent serves the nonce; SPIRE's server fetches and checks it.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_server() {
    attests::<UpstreamServer, OurAgent>("spire-server", "127.0.0.13").await;
}

/// Launches an agent of `binary` expected to be refused with `message`, waits until its log or the
/// server's says so (SPIRE's agent retries a refusal other than PermissionDenied, so it may never
/// exit), checks that it did not start, and stops it.
async fn refused<A: AgentUnderTest>(
    binary: &Path,
    dir: &Path,
    server: &OurServer,
    options: &AgentOptions,
    message: &str,
) {
    pace().await;
    let mut agent = A::launch(binary, dir, server.port, options);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !agent.log().contains(message) && !server.log().contains(message) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} was not refused with {message:?}:\n{}\n{}",
            A::NAME,
            agent.log(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(agent.try_wait().is_none_or(|s| !s.success()), "{} exited successfully:\n{}", A::NAME, agent.log());
    agent.stop();
}

/// The server allows one attestation per second from an address (SPIRE's rate limit).
async fn pace() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// Our server refuses, whichever agent asks: an agent name SPIRE's pattern refuses, a host name
/// outside the allowed patterns, a host name attested before (TOFU). No refused agent is listed.
async fn our_server_refuses<A: AgentUnderTest>(prefix: &str) {
    let Some(agent_bin) = A::binary() else { return };
    let server_bin = <OurServer as ServerUnderTest>::binary().expect("our server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pattern = format!("^{}\\\\.", prefix.replace('.', "\\\\."));
    let server = OurServer::start(&server_bin, &server_setup(&format!("allowed_dns_patterns = [\"{pattern}\"]"))).await;

    let bad_name = format!("{prefix}.1");
    let options = agent_options(&bad_name, Some("a.b"));
    refused::<A>(&agent_bin, &dir.join("bad-name"), &server, &options, "agent name is not valid").await;

    let outside = "127.0.0.99";
    let message = "the requested hostname is not allowed to connect";
    refused::<A>(&agent_bin, &dir.join("outside"), &server, &agent_options(outside, None), message).await;

    let host = format!("{prefix}.2");
    pace().await;
    let first = A::start(&agent_bin, &dir.join("first"), server.port, &agent_options(&host, None)).await;
    let listed = server.cli(&["agent", "list"]);
    assert!(listed.contains(&agent_id(&host)), "{listed}\n{}", first.log());
    let message = "attestation data has already been used to attest an agent";
    refused::<A>(&agent_bin, &dir.join("second"), &server, &agent_options(&host, None), message).await;
    drop(first);

    let listed = server.cli(&["agent", "list"]);
    for host in [bad_name.as_str(), outside] {
        assert!(!listed.contains(&agent_id(host)), "{host} attested:\n{listed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_our_agent() {
    our_server_refuses::<OurAgent>("127.0.1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_spire_agent() {
    our_server_refuses::<UpstreamAgent>("127.0.2").await;
}
