//! Nested SPIRE: a downstream server D gets its CA from an upstream server U of the same trust domain
//! through UpstreamAuthority "spire". U's agent runs on D's node; D's entry at U is `-downstream`
//! and selects D's binary (`unix:path`). D's agent serves a workload, whose X509-SVID must chain
//! D-leaf → D's CA → U's root, as a workload of U (our `spire-agent api fetch x509` against U's
//! agent) sees U's bundle; D's JWT key must be published into U's bundle.
//!
//! Ours over ours, SPIRE v1.13.3 over ours, ours over SPIRE v1.13.3; then ours over ours with short
//! CA lifetimes (D's CA rotates, U's root rotates into D's bundle) and the start-up failures.

mod agent_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use agent_server::{
    AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest, bundle_from_pem, fetch_x509, tail, uid_selector,
};
use base64::Engine;
use spire_identity::x509::{certs_from_pem, verify_svid};
use spire_identity::{Bundle, BundleSet};
use spire_testkit::agent::{AgentOptions, join_token_agent_id};
use spire_testkit::peers;
use spire_testkit::process::{free_port, server_conf};
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

const DOWNSTREAM_ID: &str = "spiffe://example.org/downstream-server";
const NESTED_WORKLOAD: &str = "spiffe://example.org/nested/workload";

/// The path the agents' unix attestor reports for `binary` (symlinks resolved).
fn exe_path(binary: &Path) -> String {
    std::fs::canonicalize(binary).expect("binary path").display().to_string()
}

/// Agent options with `unix:path` selectors but no hashing of (large, debug) binaries.
fn path_selector_options(token: &str) -> AgentOptions {
    AgentOptions {
        attestors: Some(
            "    NodeAttestor \"join_token\" {\n        plugin_data {}\n    }\n    WorkloadAttestor \"unix\" {\n        \
             plugin_data {\n            discover_workload_path = true\n            workload_size_limit = -1\n        \
             }\n    }"
                .into(),
        ),
        ..AgentOptions::with_token(token)
    }
}

/// The UpstreamAuthority "spire" block pointing at `port` and `socket`.
fn spire_plugin(port: u16, socket: &Path) -> String {
    format!(
        "    UpstreamAuthority \"spire\" {{\n        plugin_data {{\n            server_address = \"127.0.0.1\"\n            \
         server_port = \"{port}\"\n            workload_api_socket = \"{}\"\n        }}\n    }}\n",
        socket.display()
    )
}

/// The upstream side: U, its agent on the downstream node, and D's entry at U.
struct Upstream<U, UA> {
    server: U,
    agent: UA,
    agent_id: String,
    _dir: tempfile::TempDir,
}

async fn upstream<U: ServerUnderTest, UA: AgentUnderTest>(
    u_bin: &Path,
    ua_bin: &Path,
    setup: &ServerSetup,
    d_bin: &Path,
    downstream: bool,
) -> Upstream<U, UA> {
    let server = U::start(u_bin, setup).await;
    let token = server.generate_token();
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = UA::start(ua_bin, dir.path(), server.port, &path_selector_options(&token)).await;
    let agent_id = join_token_agent_id(&token);
    let selector = format!("unix:path:{}", exe_path(d_bin));
    let mut args = vec!["entry", "create", "-parentID", &agent_id, "-spiffeID", DOWNSTREAM_ID, "-selector", &selector];
    if downstream {
        args.push("-downstream");
    }
    server.cli(&args);
    Upstream { server, agent, agent_id, _dir: dir }
}

/// U's X.509 roots as a workload of U gets them: our `spire-agent api fetch x509 -write` run against
/// U's agent, under an entry selecting that binary.
async fn upstream_workload_bundle<U: ServerUnderTest, UA: AgentUnderTest>(up: &Upstream<U, UA>) -> Bundle {
    let cli = peers::workspace_binary("spire-agent");
    let selector = format!("unix:path:{}", exe_path(&cli));
    up.server.cli(&[
        "entry",
        "create",
        "-parentID",
        &up.agent_id,
        "-spiffeID",
        "spiffe://example.org/upstream/workload",
        "-selector",
        &selector,
    ]);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(&cli)
            .args(["api", "fetch", "x509", "-socketPath"])
            .arg(&up.agent.socket)
            .arg("-write")
            .arg(out_dir.path())
            .output()
            .expect("api fetch");
        if out.status.success() {
            let pem = std::fs::read_to_string(out_dir.path().join("bundle.0.pem")).expect("bundle.0.pem");
            return bundle_from_pem(&pem);
        }
        assert!(Instant::now() < deadline, "no SVID for U's workload: {}", String::from_utf8_lossy(&out.stderr));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// D's agent and the nested workload's entry (this process's uid) at D.
async fn downstream_agent<D: ServerUnderTest, DA: AgentUnderTest>(server: &D, da_bin: &Path, dir: &Path) -> DA {
    let token = server.generate_token();
    let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = DA::start(da_bin, dir, server.port, &options).await;
    let parent = join_token_agent_id(&token);
    server.cli(&["entry", "create", "-parentID", &parent, "-spiffeID", NESTED_WORKLOAD, "-selector", &uid_selector()]);
    agent
}

/// The nested workload's X509-SVID chain (leaf first), once served.
async fn nested_chain(endpoint: &str, accept: impl Fn(&[Vec<u8>]) -> bool, logs: impl Fn() -> String) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match fetch_x509(endpoint).await {
            Ok(svids) => {
                if let Some(svid) = svids.iter().find(|s| s.spiffe_id().to_string() == NESTED_WORKLOAD) {
                    let chain: Vec<Vec<u8>> = svid.cert_chain().iter().map(|c| c.as_bytes().to_vec()).collect();
                    if accept(&chain) {
                        return chain;
                    }
                    last = "not the one awaited yet".into();
                } else {
                    last = "not served yet".into();
                }
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no acceptable X509-SVID for {NESTED_WORKLOAD} ({last})\n{}", logs());
}

/// Checks that `chain` is D-leaf → D's CA (→ ...) and verifies against `roots` only.
fn check_chains_to(chain: &[Vec<u8>], roots: &Bundle) {
    assert!(chain.len() >= 2, "the leaf comes with D's intermediate CA: {} certificates", chain.len());
    for der in chain {
        assert!(!roots.x509_authorities().contains(der), "a root is not sent in the chain");
    }
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let verified = verify_svid(&refs, &BundleSet::from(roots.clone()), SystemTime::now())
        .unwrap_or_else(|e| panic!("the nested SVID does not chain to U's roots: {e}"));
    assert_eq!(verified.spiffe_id.to_string(), NESTED_WORKLOAD);
}

/// The `kid`s of the JWT authorities in `bundle show -format spiffe` output.
fn jwt_kids(spiffe_bundle: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(spiffe_bundle).expect("SPIFFE bundle JSON");
    doc["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter(|k| k["use"] == "jwt-svid")
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `kid` of a JWT-SVID the nested workload gets from D's agent.
async fn nested_jwt_kid(endpoint: &str) -> String {
    let client = spiffe::WorkloadApiClient::connect_to(endpoint).await.expect("connect");
    let id = NESTED_WORKLOAD.parse().expect("SPIFFE ID");
    let jwt = client.fetch_jwt_svid(&["nested"], Some(&id)).await.expect("JWT-SVID");
    let header = jwt.token().split('.').next().expect("JWT header");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url");
    let header: serde_json::Value = serde_json::from_slice(&header).expect("header JSON");
    header["kid"].as_str().expect("kid").to_owned()
}

/// The whole nested setup and its checks, for any mix of implementations.
async fn nested<U: ServerUnderTest, UA: AgentUnderTest, D: ServerUnderTest, DA: AgentUnderTest>() {
    let (Some((u_bin, ua_bin)), Some((d_bin, da_bin))) =
        (agent_server::binaries::<U, UA>(), agent_server::binaries::<D, DA>())
    else {
        return;
    };
    let started = Instant::now();
    let up = upstream::<U, UA>(&u_bin, &ua_bin, &ServerSetup::default(), &d_bin, true).await;
    let setup = ServerSetup { extra_plugins: spire_plugin(up.server.port, &up.agent.socket), ..ServerSetup::default() };
    let down = D::start(&d_bin, &setup).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent: DA = downstream_agent(&down, &da_bin, dir.path()).await;
    let logs = || {
        format!(
            "--- {} (D) ---\n{}\n--- {} (U) ---\n{}\n--- {} (U's agent) ---\n{}",
            D::NAME,
            tail(&down.log()),
            U::NAME,
            tail(&up.server.log()),
            UA::NAME,
            tail(&up.agent.log())
        )
    };
    let chain = nested_chain(&agent.endpoint(), |_| true, logs).await;
    let roots = upstream_workload_bundle(&up).await;
    check_chains_to(&chain, &roots);

    // D's bundle carries U's roots (and nothing else: D's CA is not a root).
    let d_bundle = bundle_from_pem(&down.cli(&["bundle", "show", "-format", "pem"]));
    let mut d_roots = d_bundle.x509_authorities().to_vec();
    let mut u_roots = roots.x509_authorities().to_vec();
    d_roots.sort();
    u_roots.sort();
    assert_eq!(d_roots, u_roots, "D's bundle holds U's roots\n{}", logs());

    // D's JWT key was published upstream: U's bundle holds the key D's JWT-SVIDs name.
    let kid = nested_jwt_kid(&agent.endpoint()).await;
    let u_kids = jwt_kids(&up.server.cli(&["bundle", "show", "-format", "spiffe"]));
    assert!(u_kids.contains(&kid), "U's bundle lacks D's JWT key {kid}: {u_kids:?}\n{}", logs());
    let d_kids = jwt_kids(&down.cli(&["bundle", "show", "-format", "spiffe"]));
    assert!(d_kids.contains(&kid) && d_kids.len() >= 2, "D's bundle holds U's JWT keys and its own: {d_kids:?}");
    eprintln!("{} over {}: nested SVID checked in {:?}", U::NAME, D::NAME, started.elapsed());
}

#[tokio::test]
async fn ours_over_ours() {
    nested::<OurServer, OurAgent, OurServer, OurAgent>().await;
}

#[tokio::test]
async fn spire_upstream_ours_downstream() {
    nested::<UpstreamServer, UpstreamAgent, OurServer, OurAgent>().await;
}

#[tokio::test]
async fn ours_upstream_spire_downstream() {
    nested::<OurServer, OurAgent, UpstreamServer, UpstreamAgent>().await;
}

/// D's CA rotates (`ca_ttl = "24s"`) and still chains to U's roots; U prepares a new root at half its
/// CA's life (`ca_ttl = "60s"`, so that U's CA outlives the test) and the new root reaches D's
/// bundle through the plugin's polling. Both lifetimes fit the 10 s rotator tick: each prepared
/// authority is activated before the active one expires.
#[tokio::test]
async fn rotation_keeps_the_chain_and_follows_the_upstream_bundle() {
    let (Some((u_bin, ua_bin)), Some((d_bin, da_bin))) =
        (agent_server::binaries::<OurServer, OurAgent>(), agent_server::binaries::<OurServer, OurAgent>())
    else {
        return;
    };
    let u_setup = ServerSetup::with_config("ca_ttl = \"60s\"\n    default_x509_svid_ttl = \"10s\"");
    let up = upstream::<OurServer, OurAgent>(&u_bin, &ua_bin, &u_setup, &d_bin, true).await;
    let setup = ServerSetup {
        extra_config: "ca_ttl = \"24s\"\n    default_x509_svid_ttl = \"5s\"".into(),
        extra_plugins: spire_plugin(up.server.port, &up.agent.socket),
        ..ServerSetup::default()
    };
    let down = OurServer::start(&d_bin, &setup).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent: OurAgent = downstream_agent(&down, &da_bin, dir.path()).await;
    let logs = || format!("--- D ---\n{}\n--- U ---\n{}", tail(&down.log()), tail(&up.server.log()));

    let first = nested_chain(&agent.endpoint(), |_| true, logs).await;
    let started = Instant::now();
    let rotated = nested_chain(&agent.endpoint(), |c| c.len() >= 2 && c[1] != first[1], logs).await;
    let u_roots = bundle_from_pem(&up.server.cli(&["bundle", "show", "-format", "pem"]));
    check_chains_to(&rotated, &u_roots);
    eprintln!("D's CA rotated after {:?}", started.elapsed());

    // U prepares a new root at half its CA's life; D's bundle follows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let u_roots = certs_from_pem(&up.server.cli(&["bundle", "show", "-format", "pem"])).expect("PEM");
        let d_roots = certs_from_pem(&down.cli(&["bundle", "show", "-format", "pem"])).expect("PEM");
        if u_roots.len() >= 2 && u_roots.iter().all(|r| d_roots.contains(r)) {
            eprintln!("U's new root reached D's bundle after {:?}", started.elapsed());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "U's roots ({}) did not all reach D's bundle ({})\n{}",
            u_roots.len(),
            d_roots.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the server `binary` (ours or SPIRE's) on `plugin` as its UpstreamAuthority and returns its
/// exit output, which must come within 60 s.
async fn failed_start(binary: &Path, plugin: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = server_conf(dir.path(), free_port(), "");
    let end = conf.rfind('}').expect("plugins block");
    let conf_path: PathBuf = dir.path().join("server.conf");
    std::fs::write(&conf_path, format!("{}{plugin}{}", &conf[..end], &conf[end..])).expect("config");
    let mut child = Command::new(binary)
        .args(["run", "-config"])
        .arg(&conf_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spire-server");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            let out = child.wait_with_output().expect("output");
            panic!("the server did not fail within 60 s:\n{}", tail(&String::from_utf8_lossy(&out.stderr)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "the server should fail to start");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// An unreachable upstream, and an SVID whose entry is not `-downstream`, stop our server at start
/// with SPIRE's messages, naming the plugin. SPIRE's server, given the unreachable upstream, stops
/// with the same message.
#[tokio::test]
async fn bad_upstreams_fail_the_start_naming_the_plugin() {
    let Some((u_bin, ua_bin)) = agent_server::binaries::<OurServer, OurAgent>() else { return };
    let d_bin = peers::workspace_binary("spire-server");
    let up = upstream::<OurServer, OurAgent>(&u_bin, &ua_bin, &ServerSetup::default(), &d_bin, false).await;

    let unreachable = failed_start(&d_bin, &spire_plugin(free_port(), &up.agent.socket)).await;
    for expected in ["upstreamauthority(spire)", "unable to request a new Downstream X509CA", "onnection refused"] {
        assert!(unreachable.contains(expected), "{expected:?} missing from:\n{}", tail(&unreachable));
    }
    if let Some(spire) = peers::find("upstream-spire-server") {
        let selector = format!("unix:path:{}", exe_path(&spire));
        let id = "spiffe://example.org/spire-downstream-server";
        up.server.cli(&["entry", "create", "-parentID", &up.agent_id, "-spiffeID", id, "-selector", &selector]);
        let theirs = failed_start(&spire, &spire_plugin(free_port(), &up.agent.socket)).await;
        eprintln!("SPIRE's server:\n{}", tail(&theirs));
        for expected in ["unable to request a new Downstream X509CA", "onnection refused"] {
            assert!(theirs.contains(expected), "{expected:?} missing from SPIRE's:\n{}", tail(&theirs));
        }
    }

    let not_downstream = failed_start(&d_bin, &spire_plugin(up.server.port, &up.agent.socket)).await;
    // The upstream's authorization layer refuses a caller whose entries are not `-downstream`.
    for expected in
        ["upstreamauthority(spire)", "unable to request a new Downstream X509CA", "PermissionDenied", DOWNSTREAM_ID]
    {
        assert!(not_downstream.contains(expected), "{expected:?} missing from:\n{}", tail(&not_downstream));
    }
}
