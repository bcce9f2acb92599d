//! What the agent ⇄ server tests across implementations share: the server and the agent under test
//! ([`ServerUnderTest`], [`AgentUnderTest`], each implemented for ours and SPIRE's), the scenarios
//! both directions run ([`scenarios`]), the workload side (rust-spiffe, an independent Workload API
//! client, run by this test process, whose uid the entries select), and checks of what it receives
//! against the server's own bundle.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub(crate) mod scenarios;

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spiffe::{JwtSvid, TrustDomain, WorkloadApiClient, X509Svid};
use spire_identity::x509::{certs_from_pem, verify_svid};
use spire_identity::{Bundle, BundleSet};
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, server_cli};
use spire_testkit::peers;
use spire_testkit::process::{TestServer, server_conf};
use spire_testkit::upstream::{KeyManager, ServerOptions, UpstreamAgent, UpstreamServer};

/// Whose implementation a server or an agent under test is, for the steps where ours and SPIRE's
/// differ by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// spire-rs.
    Ours,
    /// SPIRE v1.13.3.
    Spire,
}

/// What a scenario asks of the server's configuration, whichever the server.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerSetup {
    /// Lines added to the `server` block (`agent_ttl`, `ca_ttl`).
    pub(crate) extra_config: String,
    /// Plugin blocks added to `plugins` (an `UpstreamAuthority`).
    pub(crate) extra_plugins: String,
    /// The CA need not outlive this process: SPIRE's server then keeps its keys in memory (ours
    /// keeps its disk keys either way).
    pub(crate) throwaway_keys: bool,
}

impl ServerSetup {
    /// `extra_config` added to the `server` block, the rest by default.
    pub(crate) fn with_config(extra_config: &str) -> Self {
        Self { extra_config: extra_config.to_owned(), ..Self::default() }
    }
}

/// The server under test, ours or SPIRE's; derefs to the [`TestServer`] running it (`port`,
/// `log()`, `stop()`, `restart()`).
pub(crate) trait ServerUnderTest: DerefMut<Target = TestServer> + Sized {
    /// Whose server it is.
    const SIDE: Side;
    /// `our server` or `SPIRE's server`, in messages and log headings.
    const NAME: &str;
    /// Its `spire-server` binary, or `None` (the test skipped) when it is a missing peer.
    fn binary() -> Option<PathBuf>;
    /// Starts `binary` configured as `setup` says and waits until it answers.
    async fn start(binary: &Path, setup: &ServerSetup) -> Self;
    /// Runs its own admin CLI (`spire-server <args> -socketPath <socket>`) and returns the stdout;
    /// panics if it fails.
    fn cli(&self, args: &[&str]) -> String;
    /// A fresh join token from its `token generate`.
    fn generate_token(&self) -> String;
}

/// The agent under test, ours or SPIRE's; derefs to the [`TestAgent`] running it (`socket`,
/// `endpoint()`, `log()`, `wait_for_log()`, `wait_exit()`, `stop()`).
pub(crate) trait AgentUnderTest: DerefMut<Target = TestAgent> + Sized {
    /// Whose agent it is.
    const SIDE: Side;
    /// `our agent` or `SPIRE's agent`, in messages and log headings.
    const NAME: &str;
    /// The path segment of the workload IDs and audiences the scenarios give this agent.
    const PATH: &str;
    /// Its `spire-agent` binary, or `None` (the test skipped) when it is a missing peer.
    fn binary() -> Option<PathBuf>;
    /// Starts `binary` in `dir` against the server at `127.0.0.1:<server_port>` and waits until its
    /// Workload API socket accepts connections.
    async fn start(binary: &Path, dir: &Path, server_port: u16, options: &AgentOptions) -> Self;
    /// Like [`AgentUnderTest::start`], without waiting: for agents expected to fail.
    fn launch(binary: &Path, dir: &Path, server_port: u16, options: &AgentOptions) -> Self;

    /// `spiffe://example.org/<PATH>/<name>`, a workload ID of this agent's scenarios.
    fn id(name: &str) -> String {
        format!("spiffe://example.org/{}/{name}", Self::PATH)
    }
}

/// Our `spire-server` and the binary, for its admin CLI.
#[derive(Debug)]
pub(crate) struct OurServer {
    server: TestServer,
    binary: PathBuf,
}

impl Deref for OurServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl DerefMut for OurServer {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.server
    }
}

impl ServerUnderTest for OurServer {
    const SIDE: Side = Side::Ours;
    const NAME: &str = "our server";

    fn binary() -> Option<PathBuf> {
        Some(peers::workspace_binary("spire-server"))
    }

    async fn start(binary: &Path, setup: &ServerSetup) -> Self {
        let server = TestServer::start_with_config(binary, |dir, port| {
            let conf = server_conf(dir, port, &setup.extra_config);
            let end = conf.rfind('}').expect("the plugins block");
            format!("{}{}{}", &conf[..end], setup.extra_plugins, &conf[end..])
        })
        .await;
        Self { server, binary: binary.to_owned() }
    }

    fn cli(&self, args: &[&str]) -> String {
        server_cli(&self.binary, &self.server, args)
    }

    fn generate_token(&self) -> String {
        generate_token(&self.binary, &self.server)
    }
}

impl ServerUnderTest for UpstreamServer {
    const SIDE: Side = Side::Spire;
    const NAME: &str = "SPIRE's server";

    fn binary() -> Option<PathBuf> {
        peers::require("upstream-spire-server")
    }

    async fn start(binary: &Path, setup: &ServerSetup) -> Self {
        let options = ServerOptions {
            key_manager: if setup.throwaway_keys { KeyManager::Memory } else { KeyManager::Disk },
            extra_config: setup.extra_config.clone(),
            extra_plugins: setup.extra_plugins.clone(),
            ..ServerOptions::default()
        };
        UpstreamServer::start(binary, &options).await
    }

    fn cli(&self, args: &[&str]) -> String {
        UpstreamServer::cli(self, args)
    }

    fn generate_token(&self) -> String {
        UpstreamServer::generate_token(self)
    }
}

/// Our `spire-agent`.
#[derive(Debug)]
pub(crate) struct OurAgent(TestAgent);

impl Deref for OurAgent {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.0
    }
}

impl DerefMut for OurAgent {
    fn deref_mut(&mut self) -> &mut TestAgent {
        &mut self.0
    }
}

impl AgentUnderTest for OurAgent {
    const SIDE: Side = Side::Ours;
    const NAME: &str = "our agent";
    const PATH: &str = "our-agent";

    fn binary() -> Option<PathBuf> {
        Some(peers::workspace_binary("spire-agent"))
    }

    async fn start(binary: &Path, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        Self(TestAgent::start(binary, dir, server_port, options).await)
    }

    fn launch(binary: &Path, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        Self(TestAgent::launch(binary, dir, server_port, options))
    }
}

impl AgentUnderTest for UpstreamAgent {
    const SIDE: Side = Side::Spire;
    const NAME: &str = "SPIRE's agent";
    const PATH: &str = "upstream-agent";

    fn binary() -> Option<PathBuf> {
        peers::require("upstream-spire-agent")
    }

    async fn start(binary: &Path, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        UpstreamAgent::start(binary, dir, server_port, options).await
    }

    fn launch(binary: &Path, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        UpstreamAgent::launch(binary, dir, server_port, options)
    }
}

/// The server's and the agent's binaries, or `None` (the test skipped) when a peer is missing; the
/// peer is looked up first, so that a missing one skips the test before ours are required.
pub(crate) fn binaries<S: ServerUnderTest, A: AgentUnderTest>() -> Option<(PathBuf, PathBuf)> {
    if S::SIDE == Side::Spire {
        let server = S::binary()?;
        Some((server, A::binary()?))
    } else {
        let agent = A::binary()?;
        Some((S::binary()?, agent))
    }
}

/// The tails of both logs, under headings naming whose they are.
pub(crate) fn both_logs<S: ServerUnderTest, A: AgentUnderTest>(server: &S, agent: &A) -> String {
    format!("--- {} ---\n{}\n--- {} ---\n{}", A::NAME, tail(&agent.log()), S::NAME, tail(&server.log()))
}

/// This process's effective uid (the owner of `/proc/self`), which the agents' unix attestor sees.
pub(crate) fn uid() -> u32 {
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// `unix:uid:<this process's uid>`.
pub(crate) fn uid_selector() -> String {
    format!("unix:uid:{}", uid())
}

/// What a node attestor's selectors are for: a node alias `spiffe://example.org/<group>/<tag>` on
/// `node_selector`, a workload entry (this process's uid) under it, and that workload's X509-SVID
/// from `agent` through `spire-agent api fetch x509` within 30 s.
pub(crate) async fn node_alias_workload_gets_svid<S: ServerUnderTest, A: AgentUnderTest>(
    server: &S,
    agent: &A,
    group: &str,
    tag: &str,
    node_selector: &str,
) {
    let alias = format!("spiffe://example.org/{group}/{tag}");
    server.cli(&["entry", "create", "-node", "-spiffeID", &alias, "-selector", node_selector]);
    workload_gets_svid(server, agent, &alias, tag).await;
}

/// A workload entry (this process's uid) under `parent`, and that workload's X509-SVID from `agent`
/// through `spire-agent api fetch x509` within 30 s.
pub(crate) async fn workload_gets_svid<S: ServerUnderTest, A: AgentUnderTest>(
    server: &S,
    agent: &A,
    parent: &str,
    tag: &str,
) {
    let workload = format!("spiffe://example.org/{tag}/workload");
    server.cli(&["entry", "create", "-parentID", parent, "-spiffeID", &workload, "-selector", &uid_selector()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = std::process::Command::new(peers::workspace_binary("spire-agent"))
            .args(["api", "fetch", "x509", "-socketPath"])
            .arg(&agent.socket)
            .output()
            .expect("api fetch");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && said.contains(&workload) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no SVID for {workload} from {} under {}: {said}{}\n--- agent ---\n{}",
            A::NAME,
            S::NAME,
            String::from_utf8_lossy(&out.stderr),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The last lines of a log, enough to diagnose without flooding the failure message.
pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// The X509-SVIDs the agent at `endpoint` serves this process now, or why there are none.
pub(crate) async fn fetch_x509(endpoint: &str) -> Result<Vec<X509Svid>, String> {
    let client = WorkloadApiClient::connect_to(endpoint).await.map_err(|e| e.to_string())?;
    client.fetch_all_x509_svids().await.map_err(|e| e.to_string())
}

/// Polls the Workload API at `endpoint` for up to `timeout` until it serves this process an
/// X509-SVID for `spiffe_id` that `accept` takes; `logs` says what to print on failure.
pub(crate) async fn wait_for_x509(
    endpoint: &str,
    spiffe_id: &str,
    timeout: Duration,
    accept: impl Fn(&X509Svid) -> bool,
    logs: impl Fn() -> String,
) -> X509Svid {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match fetch_x509(endpoint).await {
            Ok(svids) => {
                if let Some(svid) = svids.into_iter().find(|s| s.spiffe_id().to_string() == spiffe_id && accept(s)) {
                    return svid;
                }
                last = "not served (yet)".into();
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no acceptable X509-SVID for {spiffe_id} within {timeout:?} ({last})\n{}", logs());
}

/// The server's X.509 authorities, from `bundle show -format pem` output.
pub(crate) fn bundle_from_pem(pem: &str) -> Bundle {
    let mut bundle = Bundle::new(spire_identity::TrustDomain::parse("example.org").expect("trust domain"));
    for der in certs_from_pem(pem).expect("PEM bundle") {
        bundle.add_x509_authority(der).expect("authority");
    }
    bundle
}

/// Checks the X.509 material the agent at `endpoint` serves: the SVID for `spiffe_id` chains (with
/// our own validator) to the server's bundle `server_bundle`, and the X.509 bundle the agent hands
/// the workload holds the same authorities as the server's.
pub(crate) async fn check_x509(endpoint: &str, spiffe_id: &str, server_bundle: &Bundle) -> X509Svid {
    let client = WorkloadApiClient::connect_to(endpoint).await.expect("connect to the Workload API");
    let context = client.fetch_x509_context().await.expect("X509 context");
    let svid = context
        .svids()
        .iter()
        .find(|s| s.spiffe_id().to_string() == spiffe_id)
        .unwrap_or_else(|| panic!("no X509-SVID for {spiffe_id}"))
        .clone();
    let chain: Vec<&[u8]> = svid.cert_chain().iter().map(|c| c.as_bytes()).collect();
    let verified = verify_svid(&chain, &BundleSet::from(server_bundle.clone()), std::time::SystemTime::now())
        .unwrap_or_else(|e| panic!("the SVID does not chain to the server's bundle: {e}"));
    assert_eq!(verified.spiffe_id.to_string(), spiffe_id);

    let td = TrustDomain::new("example.org").expect("trust domain");
    let served = context.bundle_set().get(&td).expect("the agent serves the example.org bundle");
    let mut served: Vec<&[u8]> = served.authorities().iter().map(|c| c.as_bytes()).collect();
    let mut expected: Vec<&[u8]> = server_bundle.x509_authorities().iter().map(Vec::as_slice).collect();
    served.sort_unstable();
    expected.sort_unstable();
    assert_eq!(served, expected, "the agent's X.509 bundle differs from the server's");
    (*svid).clone()
}

/// Fetches a JWT-SVID for `spiffe_id` and `audience`, validates it locally with the JWT bundles the
/// agent serves and through the agent's ValidateJWTSVID, and returns it.
pub(crate) async fn check_jwt(endpoint: &str, spiffe_id: &str, audience: &str) -> JwtSvid {
    let client = WorkloadApiClient::connect_to(endpoint).await.expect("connect to the Workload API");
    let id = spiffe_id.parse().expect("SPIFFE ID");
    let jwt = client.fetch_jwt_svid(&[audience], Some(&id)).await.expect("JWT-SVID");
    assert_eq!(jwt.spiffe_id().to_string(), spiffe_id);
    let bundles = client.fetch_jwt_bundles().await.expect("JWT bundles");
    let local = JwtSvid::parse_and_validate(jwt.token(), &bundles, &[audience]).expect("JWT-SVID validates locally");
    assert_eq!(local.spiffe_id().to_string(), spiffe_id);
    let remote = client.validate_jwt_token(audience, jwt.token()).await.expect("ValidateJWTSVID");
    assert_eq!(remote.spiffe_id().to_string(), spiffe_id);
    jwt
}

/// The value printed after `label` (e.g. `Serial number`) in `agent show` output.
pub(crate) fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|r| r.trim_start_matches([' ', ':']).trim()))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"))
}

/// The trust domains of the X.509 bundles the agent at `endpoint` hands this process (its own and
/// those its entries federate with).
pub(crate) async fn served_trust_domains(endpoint: &str) -> Vec<String> {
    let client = WorkloadApiClient::connect_to(endpoint).await.expect("connect to the Workload API");
    let context = client.fetch_x509_context().await.expect("X509 context");
    let mut tds: Vec<String> = context.bundle_set().iter().map(|(td, _)| td.to_string()).collect();
    tds.sort_unstable();
    tds
}

/// Whether the DER certificate `der` names `dns` (a DNS SAN is its plain ASCII bytes).
pub(crate) fn names_dns(der: &[u8], dns: &str) -> bool {
    der.windows(dns.len()).any(|w| w == dns.as_bytes())
}

/// Writes `pem` to `<dir>/<name>` and returns the path as a string, for `-path` flags.
pub(crate) fn write_file(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write file");
    path.display().to_string()
}

/// `entry create -data` input (SPIRE's `common.RegistrationEntries` JSON) for `n` entries under
/// `parent` that select no workload of this test, only to make the agent's entry set large.
pub(crate) fn filler_entries(parent: &str, n: usize) -> String {
    let entries: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "parent_id": parent,
                "spiffe_id": format!("spiffe://example.org/filler/{i}"),
                "selectors": [{ "type": "unix", "value": "uid:999999" }],
            })
        })
        .collect();
    serde_json::json!({ "entries": entries }).to_string()
}

/// Waits (up to `timeout`) for the server's CA to rotate, as the workload of the agent at `endpoint`
/// sees it: its X.509 bundle holds a new authority besides `first_ca`, and its X509-SVID for
/// `spiffe_id` chains to that new one only. Returns the new bundle.
pub(crate) async fn wait_for_ca_rotation(
    endpoint: &str,
    spiffe_id: &str,
    first_ca: &[u8],
    timeout: Duration,
    logs: impl Fn() -> String,
) -> Bundle {
    let td = TrustDomain::new("example.org").expect("trust domain");
    let only_first = bundle_of(&[first_ca.to_vec()]);
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(client) = WorkloadApiClient::connect_to(endpoint).await {
            match client.fetch_x509_context().await {
                Ok(context) => {
                    let authorities: Vec<Vec<u8>> = context
                        .bundle_set()
                        .get(&td)
                        .map(|b| b.authorities().iter().map(|c| c.as_bytes().to_vec()).collect())
                        .unwrap_or_default();
                    let bundle = bundle_of(&authorities);
                    if let Some(svid) = context.svids().iter().find(|s| s.spiffe_id().to_string() == spiffe_id) {
                        let chain: Vec<&[u8]> = svid.cert_chain().iter().map(|c| c.as_bytes()).collect();
                        let now = std::time::SystemTime::now();
                        let by_first = verify_svid(&chain, &BundleSet::from(only_first.clone()), now).is_ok();
                        let by_bundle = verify_svid(&chain, &BundleSet::from(bundle.clone()), now).is_ok();
                        if authorities.len() >= 2 && !by_first && by_bundle {
                            return bundle;
                        }
                        last = format!("{} authorities; SVID from the first CA: {by_first}", authorities.len());
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no SVID from a rotated CA within {timeout:?} ({last})\n{}", logs());
}

/// A bundle of `example.org` holding `authorities`.
fn bundle_of(authorities: &[Vec<u8>]) -> Bundle {
    let mut bundle = Bundle::new(spire_identity::TrustDomain::parse("example.org").expect("trust domain"));
    for der in authorities {
        bundle.add_x509_authority(der.clone()).expect("authority");
    }
    bundle
}

/// An upstream CA on disk for `UpstreamAuthority "disk"`: an intermediate (its certificate and key)
/// under a root (the bundle file). Returns the plugin block and the root's DER.
pub(crate) fn disk_upstream_authority(dir: &std::path::Path) -> (String, Vec<u8>) {
    let pki = spire_testkit::pki::Pki::new(spire_identity::KeyType::EcP256);
    let cert = write_file(dir, "upstream.crt", &spire_identity::x509::certs_to_pem(&[pki.intermediate.cert_der()]));
    let key = write_file(dir, "upstream.key", &pki.intermediate.key().as_local().unwrap().to_pem());
    let root = write_file(dir, "upstream-root.crt", &spire_identity::x509::certs_to_pem(&[pki.root.cert_der()]));
    let plugin = format!(
        "    UpstreamAuthority \"disk\" {{\n        plugin_data {{\n            cert_file_path = \"{cert}\"\n            \
         key_file_path = \"{key}\"\n            bundle_file_path = \"{root}\"\n        }}\n    }}\n"
    );
    (plugin, pki.root.cert_der().to_vec())
}
