//! Attestation through external plugins (`plugin_cmd`, spire-plugin-sdk plugins in Go run by
//! `spire-plugin-host`) beside the built-in equivalent, in the same run and process, in turns.
//!
//! 1. Workload attestation of this process's own PID through the agent's attestor API
//!    (`WorkloadAttestors::attest_pid`, what the Workload API runs for a caller): the built-in `unix`
//!    attestor (the baseline) against the external `workload` test plugin (`label = "blue"`), which
//!    reads `/proc/<pid>/status` and counts each attestation through the Metrics host service, so
//!    each call is a gRPC call to the plugin and one from the plugin back to the host.
//! 2. Node attestation, the agent half and the server half together, in process (no TLS, no server
//!    process, no SVID): the payload goes from the agent half to the server half, the challenge back
//!    and its answer forth, until the server half names the agent. The baseline is the built-in
//!    `x509pop` pair (a P-256 leaf under a CA: chain check, one signature over the challenge); the
//!    external pair is `challenge-agent` + `challenge-server` (an HMAC over a nonce; the server half
//!    asks the AgentStore and IdentityProvider host services, answered here with NotFound and a
//!    fixed identity, and counts through Metrics), each behind the facade its daemon uses.
//!
//! Run: `cargo bench -p spire-interop --bench external_attestation` (needs the test plugins,
//! `scripts/install-peers.sh spire-plugins`, and `openssl`; prints that it is skipped otherwise).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spire_agent::external::{
    ExternalConfig, ExternalNodeAttestor, ExternalPlugins, ExternalWorkloadAttestor, NODE_ATTESTOR_SERVICE,
    WORKLOAD_ATTESTOR_SERVICE,
};
use spire_agent::node_attestor::{Attempt, NodeAttestor as AgentNodeAttestor, X509PopAttestor, X509PopConfig};
use spire_agent::workload_attestor::{UnixAttestor, UnixConfig, WorkloadAttestor, WorkloadAttestors};
use spire_config::PluginConfig;
use spire_identity::TrustDomain;
use spire_plugin_host::{ExternalPlugin, HostServices, PluginMetrics, Spec, Timeouts};
use spire_proto::spire::hostservice::server::agentstore::v1 as agentstorev1;
use spire_proto::spire::hostservice::server::identityprovider::v1 as identityproviderv1;
use spire_server::catalog::external::nodeattestor as server_external;
use spire_server::catalog::nodeattestor::x509pop::template::{DEFAULT, Template};
use spire_server::catalog::nodeattestor::{
    AttestResult, Challenger, NodeAttestor as ServerNodeAttestor, X509PopAttestor as X509PopServer,
};
use spire_testkit::{openssl, peers};
use tonic::{Request, Response, Status};

const TRUST_DOMAIN: &str = "example.org";
const SECRET: &str = "open sesame";

/// Workload attestations per case, after [`WORKLOAD_WARMUP`].
const WORKLOAD_ROUNDS: usize = 3000;
const WORKLOAD_WARMUP: usize = 100;
/// Node attestations per case, after [`NODE_WARMUP`].
const NODE_ROUNDS: usize = 400;
const NODE_WARMUP: usize = 20;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some([workload, challenge_agent, challenge_server]) = peers::require_all([
        "spire-test-plugin-workload",
        "spire-test-plugin-challenge-agent",
        "spire-test-plugin-challenge-server",
    ]) else {
        return;
    };
    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", uptime.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

    let external = ExternalPlugins::new();
    workload_attestation(&external, &workload).await;
    node_attestation(&external, &challenge_agent, &challenge_server).await;
    external.shutdown().await;

    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", uptime.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
}

/// A `plugin_cmd` block of the agent, as its configuration decodes it.
fn agent_plugin(plugin_type: &str, name: &str, cmd: &Path, data: &str) -> ExternalConfig {
    let mut config = PluginConfig::built_in(plugin_type, name, data).expect("plugin data");
    config.plugin_cmd = Some(cmd.display().to_string());
    ExternalConfig::from_plugin(&config).expect("plugin_cmd").expect("plugin data")
}

async fn workload_attestation(external: &ExternalPlugins, cmd: &Path) {
    let plugin = agent_plugin("WorkloadAttestor", "test_workload", cmd, "label = \"blue\"");
    let channel = external.start(&plugin, TRUST_DOMAIN, WORKLOAD_ATTESTOR_SERVICE).await.expect("workload plugin");
    let plugin: Arc<dyn WorkloadAttestor> = Arc::new(ExternalWorkloadAttestor::new("test_workload", channel));
    let unix: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::new(UnixConfig::default()));
    let cases = [WorkloadAttestors::new([unix]), WorkloadAttestors::new([plugin])];
    let pid = i32::try_from(std::process::id()).expect("pid");

    for attestors in &cases {
        let shown: Vec<String> =
            attestors.attest_pid(pid).await.expect("attest").iter().map(ToString::to_string).collect();
        println!("  {:?}: {}", attestors, shown.join(", "));
    }
    let expected = external.metrics().get("test_workload_attestations", &[]).map(|m| m.counter);
    assert_eq!(expected, Some(1.0), "the plugin counts through the Metrics host service");

    let mut samples = [Vec::with_capacity(WORKLOAD_ROUNDS), Vec::with_capacity(WORKLOAD_ROUNDS)];
    for round in 0..WORKLOAD_WARMUP + WORKLOAD_ROUNDS {
        for (case, attestors) in cases.iter().enumerate() {
            let started = Instant::now();
            let selectors = attestors.attest_pid(pid).await.expect("attest");
            let took = started.elapsed();
            assert!(!selectors.is_empty());
            if round >= WORKLOAD_WARMUP {
                samples[case].push(took);
            }
        }
    }
    println!(
        "\nworkload attestation of this process (WorkloadAttestors::attest_pid), {WORKLOAD_ROUNDS} calls per case in turns after {WORKLOAD_WARMUP} of warm-up"
    );
    report(&[("unix, built-in (baseline)", &samples[0]), ("test_workload, external", &samples[1])]);
}

async fn node_attestation(external: &ExternalPlugins, agent_cmd: &Path, server_cmd: &Path) {
    // Built-in x509pop: a CA and a P-256 leaf; the server trusts the CA.
    let pki = tempfile::tempdir().expect("temp dir");
    openssl::ca(pki.path(), "ca");
    openssl::leaf(pki.path(), "ca", "node", "ec", "1");
    openssl::leaf_with(
        pki.path(),
        "ca",
        "server",
        "ec",
        "1",
        &format!("subjectAltName=URI:spiffe://{TRUST_DOMAIN}/spire/server\n"),
    );
    let read = |name: &str| std::fs::read_to_string(pki.path().join(name)).expect(name);
    let roots = spire_identity::x509::certs_from_pem(&read("ca.pem")).expect("CA");
    let td = TrustDomain::parse(TRUST_DOMAIN).expect("trust domain");
    let x509pop_server = X509PopServer::new(td, roots, Template::parse(DEFAULT).expect("template"));
    let x509pop_agent = X509PopAttestor::new(X509PopConfig {
        private_key_path: pki.path().join("node.key"),
        certificate_path: pki.path().join("node.pem"),
        intermediates_path: None,
    });

    // External: challenge-agent through the agent's facade, challenge-server through the server's,
    // offered the server's three host services.
    let plugin = agent_plugin(
        "NodeAttestor",
        "challenge",
        agent_cmd,
        &format!("node_name = \"bench-node\"\nsecret = \"{SECRET}\""),
    );
    let channel = external.start(&plugin, TRUST_DOMAIN, NODE_ATTESTOR_SERVICE).await.expect("challenge-agent");
    let challenge_agent = ExternalNodeAttestor::new("challenge", channel);
    let identity = FixedIdentity {
        cert_chain: spire_identity::x509::certs_from_pem(&read("server.pem")).expect("server cert"),
        private_key: pem_body(&read("server.key")),
    };
    let metrics = PluginMetrics::new();
    let host = HostServices::new()
        .with(agentstorev1::agent_store_server::AgentStoreServer::new(NoAgents))
        .with(identityproviderv1::identity_provider_server::IdentityProviderServer::new(identity))
        .with(metrics.service());
    let spec = Spec {
        plugin_type: "NodeAttestor".into(),
        name: "challenge".into(),
        cmd: server_cmd.to_owned(),
        args: Vec::new(),
        checksum: None,
    };
    let server_plugin = ExternalPlugin::start(&spec, host, Timeouts::default()).await.expect("challenge-server");
    server_plugin.require(&[server_external::SERVICE]).expect("a server NodeAttestor");
    server_plugin.configure(TRUST_DOMAIN, &format!("secret = \"{SECRET}\"")).await.expect("configure");
    let challenge_server = server_external::ExternalNodeAttestor::new("challenge", server_plugin.channel());

    let pairs: [(&dyn AgentNodeAttestor, &dyn ServerNodeAttestor); 2] =
        [(&x509pop_agent, &x509pop_server), (&challenge_agent, &challenge_server)];
    for (agent, server) in pairs {
        let result = attest(agent, server).await;
        println!("  {} → {} {:?}", agent.name(), result.agent_id, result.selector_values);
    }
    assert_eq!(metrics.get("challenge_attestations", &[]).map(|m| m.counter), Some(1.0));

    let mut samples = [Vec::with_capacity(NODE_ROUNDS), Vec::with_capacity(NODE_ROUNDS)];
    for round in 0..NODE_WARMUP + NODE_ROUNDS {
        for (case, (agent, server)) in pairs.iter().enumerate() {
            let started = Instant::now();
            attest(*agent, *server).await;
            let took = started.elapsed();
            if round >= NODE_WARMUP {
                samples[case].push(took);
            }
        }
    }
    println!(
        "\nnode attestation, agent half + server half in process, {NODE_ROUNDS} attestations per case in turns after {NODE_WARMUP} of warm-up"
    );
    report(&[
        ("x509pop, built-in (baseline; P-256 leaf, one challenge)", &samples[0]),
        ("challenge-agent + challenge-server, external (one challenge)", &samples[1]),
    ]);
    server_plugin.shutdown().await;
}

/// One attestation: the agent half's payload to the server half, its challenges relayed back, until
/// the server half names the agent.
async fn attest(agent: &dyn AgentNodeAttestor, server: &dyn ServerNodeAttestor) -> AttestResult {
    let mut attempt = agent.begin().await.expect("begin");
    let payload = attempt.payload().await.expect("payload");
    let mut relay = Relay { attempt };
    server.attest(&payload, &mut relay).await.unwrap_or_else(|e| panic!("{}: {e}", agent.name()))
}

/// The Agent service's part: relays the server half's challenges to the agent's attempt.
struct Relay<'a> {
    attempt: Box<dyn Attempt + 'a>,
}

#[tonic::async_trait]
impl Challenger for Relay<'_> {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status> {
        self.attempt.challenge(&challenge).await.map_err(|e| Status::internal(e.to_string()))
    }
}

/// An AgentStore with no attested agent (every agent attests for the first time).
#[derive(Debug, Clone, Copy)]
struct NoAgents;

#[tonic::async_trait]
impl agentstorev1::agent_store_server::AgentStore for NoAgents {
    async fn get_agent_info(
        &self,
        _request: Request<agentstorev1::GetAgentInfoRequest>,
    ) -> Result<Response<agentstorev1::GetAgentInfoResponse>, Status> {
        Err(Status::not_found("no such agent"))
    }
}

/// An IdentityProvider answering one fixed server X509-SVID (its URI SAN is all the plugin reads).
#[derive(Debug, Clone)]
struct FixedIdentity {
    cert_chain: Vec<Vec<u8>>,
    private_key: Vec<u8>,
}

#[tonic::async_trait]
impl identityproviderv1::identity_provider_server::IdentityProvider for FixedIdentity {
    async fn fetch_x509_identity(
        &self,
        _request: Request<identityproviderv1::FetchX509IdentityRequest>,
    ) -> Result<Response<identityproviderv1::FetchX509IdentityResponse>, Status> {
        Ok(Response::new(identityproviderv1::FetchX509IdentityResponse {
            identity: Some(identityproviderv1::X509Identity {
                cert_chain: self.cert_chain.clone(),
                private_key: self.private_key.clone(),
            }),
            bundle: None,
        }))
    }
}

/// The DER inside a one-block PEM file.
fn pem_body(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body")
}

/// The `q` quantile of sorted `samples`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    // Nearest rank: small sample counts make interpolation meaningless.
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 and p99 per case, and each case's p50 and p99 over the first case's.
fn report(cases: &[(&str, &Vec<Duration>)]) {
    let stats: Vec<(Duration, Duration)> = cases
        .iter()
        .map(|(_, samples)| {
            let mut sorted = (*samples).clone();
            sorted.sort();
            (quantile(&sorted, 0.50), quantile(&sorted, 0.99))
        })
        .collect();
    let (base50, base99) = stats[0];
    println!("| case | p50 | p99 | p50 ÷ baseline p50 | p99 ÷ baseline p99 |");
    println!("|---|---|---|---|---|");
    for ((name, _), (p50, p99)) in cases.iter().zip(&stats) {
        println!(
            "| {name} | {} | {} | {:.2} | {:.2} |",
            show(*p50),
            show(*p99),
            p50.as_secs_f64() / base50.as_secs_f64(),
            p99.as_secs_f64() / base99.as_secs_f64()
        );
    }
}

fn show(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 1000.0 { format!("{:.2} ms", micros / 1000.0) } else { format!("{micros:.1} µs") }
}
