//! A re-attestable (`k8s_psat`) agent whose SVID expired while the server was down recovers when the
//! server comes back: it attests again over a connection without a client certificate, as SPIRE's
//! rotator does. Both servers refuse an expired client certificate in the TLS handshake, so an agent
//! presenting its SVID there could never get a new one.
//!
//! Runs against a real Kubernetes API server ([`Cluster`], skipped when its peers are missing), with
//! our server and, when installed, SPIRE's.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use spire_agent::manager::sync::svid_validity;
use spire_agent::storage::Storage;
use spire_testkit::agent::{AgentOptions, TestAgent};
use spire_testkit::kube::{Cluster, PodSpec, agent_k8s_psat_plugin};
use spire_testkit::peers;
use spire_testkit::process::{TestServer, server_conf};
use spire_testkit::upstream::{ServerOptions, UpstreamServer};

const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

/// The agent SVID's lifetime: the agent re-attests after about half of it.
const AGENT_TTL: &str = "agent_ttl = \"20s\"";

/// One test's node, agent pod and token on the shared cluster.
struct World {
    cluster: &'static Cluster,
    /// The cluster's name in the server's `clusters` and the agent's `cluster`.
    name: String,
    dir: tempfile::TempDir,
    token_path: PathBuf,
}

impl World {
    /// A node `node-<tag>`, a running pod `spire/spire-agent-<tag>` on it and a projected token for
    /// that pod in a file; `None` when the cluster's peers are missing.
    async fn new(tag: &str) -> Option<World> {
        let cluster = Cluster::shared().await?;
        let node = cluster.create_node(&format!("node-{tag}"), &[]).await;
        let pod = cluster
            .create_pod(PodSpec {
                namespace: "spire",
                name: &format!("spire-agent-{tag}"),
                service_account: "spire-agent",
                node: node.metadata.name.as_deref().expect("node name"),
                labels: &[],
                containers: &[("spire-agent", "ghcr.io/spire-rs/spire-agent:0.1.0")],
            })
            .await;
        let pod: Pod = cluster.set_pod_running(&pod, &[]).await;
        let token = cluster.pod_token("spire-agent", &pod, &["spire-server"], 3600).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let token_path = dir.path().join("agent-token");
        std::fs::write(&token_path, token).expect("write the token");
        Some(World { cluster, name: format!("cluster-{tag}"), dir, token_path })
    }

    /// The server's `NodeAttestor "k8s_psat"` block for this world's cluster.
    fn server_plugin(&self) -> String {
        self.cluster.server_k8s_psat_plugin(&self.name, "")
    }

    /// Agent options attesting through k8s_psat with this world's token.
    fn agent_options(&self) -> AgentOptions {
        let attestors = format!(
            "{}    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
            agent_k8s_psat_plugin(&self.name, &self.token_path)
        );
        AgentOptions {
            sync_interval: "500ms".into(),
            discover_workload_path: false,
            attestors: Some(attestors),
            ..AgentOptions::default()
        }
    }
}

/// Our server with `plugin` added to its plugins.
async fn our_server(plugin: &str) -> TestServer {
    let binary = spire_testkit::agent::server_binary(Path::new(AGENT));
    TestServer::start_with_config(binary, |dir, port| {
        let conf = server_conf(dir, port, AGENT_TTL);
        let end = conf.rfind('}').expect("the plugins block");
        format!("{}{plugin}{}", &conf[..end], &conf[end..])
    })
    .await
}

/// The agent SVID leaf in the agent's data directory.
fn stored_leaf(agent: &TestAgent) -> Vec<u8> {
    let data = Storage::new(&agent.dir.join("data")).load().expect("agent data");
    data.svid.into_iter().next().expect("a stored agent SVID")
}

/// When `leaf` expires.
fn expiry(leaf: &[u8]) -> SystemTime {
    let (_, expires) = svid_validity(&[leaf.to_vec()]).expect("a readable SVID");
    UNIX_EPOCH + Duration::from_secs(u64::try_from(expires).expect("after 1970"))
}

/// Stops `server` until the agent's SVID has expired, starts it again, and expects the agent to
/// attest again within 40 s with a fresh SVID.
async fn recovers_after_expiry(server: &mut TestServer, agent: &mut TestAgent) {
    server.stop();
    let held = stored_leaf(agent);
    let expired = expiry(&held) + Duration::from_secs(2);
    if let Ok(wait) = expired.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    assert_eq!(stored_leaf(agent), held, "no server, no new SVID");
    assert!(agent.try_wait().is_none(), "the agent must wait for the server: {}", agent.log());

    server.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let leaf = stored_leaf(agent);
        if leaf != held && expiry(&leaf) > SystemTime::now() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never attested again after its SVID expired:\n{}\nserver:\n{}",
            agent.log(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(agent.log().contains("agent SVID renewed by re-attestation"), "{}", agent.log());
    assert!(agent.try_wait().is_none(), "{}", agent.log());
}

#[tokio::test]
async fn an_expired_svid_is_replaced_by_attesting_again_to_our_server() {
    let Some(world) = World::new("expired-ours").await else { return };
    let mut server = our_server(&world.server_plugin()).await;
    let mut agent = TestAgent::start(AGENT, &world.dir.path().join("agent"), server.port, &world.agent_options()).await;
    recovers_after_expiry(&mut server, &mut agent).await;
}

#[tokio::test]
async fn an_expired_svid_is_replaced_by_attesting_again_to_spire_server() {
    let Some(binary) = peers::require("upstream-spire-server") else { return };
    let Some(world) = World::new("expired-spire").await else { return };
    let options = ServerOptions {
        extra_config: AGENT_TTL.into(),
        extra_plugins: world.server_plugin(),
        ..ServerOptions::default()
    };
    let mut server = UpstreamServer::start(binary, &options).await;
    let mut agent = TestAgent::start(AGENT, &world.dir.path().join("agent"), server.port, &world.agent_options()).await;
    recovers_after_expiry(&mut server, &mut agent).await;
}
