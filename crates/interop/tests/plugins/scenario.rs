//! The end-to-end scenario on one implementation: a server whose CA key is held by the test key
//! manager and signed by the test upstream authority (a root made here with `openssl`), which
//! attests agents with the challenge node attestor (calling back into the AgentStore,
//! IdentityProvider and Metrics host services), tells the test notifier and bundle publisher its
//! bundle, and lets the test credential composer shape workload SVIDs; an agent with the agent
//! halves (challenge attestor, key manager, the test workload attestor beside the built-in `unix`).
//! A workload selected by the test workload attestor's `uid` and `label` fetches its X509-SVID and a
//! JWT-SVID. What came out is a [`Summary`], equal across implementations when they load plugins
//! alike.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use spiffe::{TrustDomain, WorkloadApiClient};
use spire_identity::x509::{certs_from_pem, verify_svid};
use spire_identity::{Bundle, BundleSet};
use spire_testkit::agent::{AgentOptions, TestAgent, server_cli};
use spire_testkit::openssl;
use spire_testkit::process::TestServer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::config::{self, LABEL, NODE_NAME, SECRET, TRUST_DOMAIN, data, external};
use super::{CONFIGURED_MESSAGE, Implementation, PLUGIN_NAMES, TestPlugins};

/// The audience of the JWT-SVID the workload asks for.
const AUDIENCE: &str = "external-plugins";

/// The server's key types, so that the test key manager signs with RSA (PKCS#1 v1.5: the X.509 CA)
/// and with P-384 (the JWT key), not only with SPIRE's default P-256.
const KEY_TYPES: &str = "    ca_key_type = \"rsa-2048\"\n    jwt_key_type = \"ec-p384\"\n";

/// How long the notifier's and publisher's files may take (SPIRE publishes the bundle when it
/// changes and every 30 s).
const FILE_TIMEOUT: Duration = Duration::from_secs(45);

/// What the scenario observed, comparable across implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The agent's SPIFFE ID, as `agent list` shows it.
    pub(crate) agent_id: String,
    /// `Attestation type` in `agent show`.
    pub(crate) attestation_type: String,
    /// The agent's selectors in `agent show`, sorted.
    pub(crate) agent_selectors: Vec<String>,
    /// The SPIFFE ID of the X509-SVID the workload got.
    pub(crate) workload_id: String,
    /// Certificates in the workload's X509-SVID chain (leaf and server CA: 2).
    pub(crate) chain_length: usize,
    /// The chain is leaf → server CA (`spiffe://example.org`, a CA) → the upstream plugin's root.
    pub(crate) chains_to_upstream_root: bool,
    /// The server CA's key, as the test key manager made it (`RSA-2048`, from `ca_key_type`).
    pub(crate) server_ca_key: String,
    /// The JWT-SVID's `alg` (`ES384`, from `jwt_key_type`, signed by the test key manager).
    pub(crate) jwt_alg: String,
    /// The X.509 bundle the agent serves is exactly the upstream root.
    pub(crate) served_bundle_is_upstream_root: bool,
    /// The OUs in the leaf's subject (the credential composer adds `composed`).
    pub(crate) subject_ous: Vec<String>,
    /// The JWT-SVID's `composed` claim, as JSON.
    pub(crate) jwt_composed_claim: Option<String>,
    /// The notifier's file holds the upstream root.
    pub(crate) notifier_file_holds_root: bool,
    /// The bundle publisher's file holds the upstream root.
    pub(crate) publisher_file_holds_root: bool,
    /// Test plugins whose Configure log line reached the server's log, sorted.
    pub(crate) server_plugins_logged: Vec<String>,
    /// Test plugins whose Configure log line reached the agent's log, sorted.
    pub(crate) agent_plugins_logged: Vec<String>,
}

/// The summary every implementation must produce.
pub(crate) fn expected() -> Summary {
    Summary {
        agent_id: agent_id(),
        attestation_type: "challenge".into(),
        agent_selectors: sorted(vec![
            format!("challenge:node_name:{NODE_NAME}"),
            "challenge:seen_before:false".into(),
            format!("challenge:server_id:spiffe://{TRUST_DOMAIN}/spire/server"),
        ]),
        workload_id: workload_id(),
        chain_length: 2,
        chains_to_upstream_root: true,
        server_ca_key: "RSA-2048".into(),
        jwt_alg: "ES384".into(),
        served_bundle_is_upstream_root: true,
        subject_ous: vec!["composed".into()],
        jwt_composed_claim: Some("true".into()),
        notifier_file_holds_root: true,
        publisher_file_holds_root: true,
        server_plugins_logged: sorted(
            ["challenge-server", "keymanager-server", "upstream", "notifier", "bundlepublisher", "credentialcomposer"]
                .map(String::from)
                .to_vec(),
        ),
        agent_plugins_logged: sorted(["challenge-agent", "keymanager-agent", "workload"].map(String::from).to_vec()),
    }
}

fn agent_id() -> String {
    format!("spiffe://{TRUST_DOMAIN}/spire/agent/challenge/{NODE_NAME}")
}

fn workload_id() -> String {
    format!("spiffe://{TRUST_DOMAIN}/external-plugins/workload")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The server's plugins: every kind an external plugin can be, but the DataStore.
fn server_plugins(plugins: &TestPlugins, dir: &Path) -> String {
    let cert = dir.join("upstream.pem");
    let key = dir.join("upstream.key");
    let notified = dir.join("notified.pem");
    let published = dir.join("published.pem");
    [
        external("KeyManager", "test_km", plugins.get("keymanager-server"), &[], ""),
        external(
            "UpstreamAuthority",
            "test_upstream",
            plugins.get("upstream"),
            &[],
            &data(&[("cert_file_path", &cert.display().to_string()), ("key_file_path", &key.display().to_string())]),
        ),
        external("NodeAttestor", "challenge", plugins.get("challenge-server"), &[], &data(&[("secret", SECRET)])),
        external(
            "Notifier",
            "test_notifier",
            plugins.get("notifier"),
            &[],
            &data(&[("path", &notified.display().to_string())]),
        ),
        external(
            "BundlePublisher",
            "test_publisher",
            plugins.get("bundlepublisher"),
            &[],
            &data(&[("path", &published.display().to_string())]),
        ),
        external("CredentialComposer", "test_composer", plugins.get("credentialcomposer"), &[], ""),
    ]
    .concat()
}

/// The agent's options: no join token; the challenge attestor, the test workload attestor beside
/// `unix`, the test key manager; the log in `<dir>/agent.log`.
fn agent_options(plugins: &TestPlugins, dir: &Path) -> AgentOptions {
    let attestors = [
        external(
            "NodeAttestor",
            "challenge",
            plugins.get("challenge-agent"),
            &[],
            &data(&[("node_name", NODE_NAME), ("secret", SECRET)]),
        ),
        external("WorkloadAttestor", "test_workload", plugins.get("workload"), &[], &data(&[("label", LABEL)])),
        "    WorkloadAttestor \"unix\" {\n        plugin_data {\n            discover_workload_path = false\n        }\n    }\n"
            .to_owned(),
    ]
    .concat();
    AgentOptions {
        attestors: Some(attestors),
        key_manager: Some(external("KeyManager", "test_km", plugins.get("keymanager-agent"), &[], "")),
        discover_workload_path: false,
        extra_config: format!("    log_file = \"{}\"\n", dir.join("agent.log").display()),
        ..AgentOptions::default()
    }
}

/// Runs the scenario on `implementation`; `None` when a peer is missing (the test skipped).
pub(crate) async fn run(implementation: Implementation) -> Option<Summary> {
    let (server_bin, agent_bin) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    openssl::ca(dir, "upstream");
    let root =
        certs_from_pem(&std::fs::read_to_string(dir.join("upstream.pem")).expect("root")).expect("root PEM").remove(0);

    let server_plugins = server_plugins(&plugins, dir);
    let server =
        TestServer::start_with_config(&server_bin, |d, port| config::server(d, port, &server_plugins, true, KEY_TYPES))
            .await;
    let agent_dir = dir.join("agent");
    let agent = TestAgent::start(&agent_bin, &agent_dir, server.port, &agent_options(&plugins, &agent_dir)).await;
    let logs = || {
        format!(
            "--- {} agent ---\n{}\n--- {} server ---\n{}",
            implementation.name(),
            agent.log(),
            implementation.name(),
            server.log()
        )
    };

    let agent_id = agent_id();
    let shown = server_cli(&server_bin, &server, &["agent", "show", "-spiffeID", &agent_id]);
    let attestation_type = field(&shown, "Attestation type").unwrap_or_default();
    let agent_selectors = sorted(
        shown
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Selectors"))
            .map(|r| r.trim_start_matches([' ', ':']).trim().to_owned())
            .collect(),
    );

    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc/self"));
    let workload_id = workload_id();
    server_cli(
        &server_bin,
        &server,
        &[
            "entry",
            "create",
            "-parentID",
            &agent_id,
            "-spiffeID",
            &workload_id,
            "-selector",
            &format!("test_workload:uid:{uid}"),
            "-selector",
            &format!("test_workload:label:{LABEL}"),
        ],
    );

    let endpoint = agent.endpoint();
    let (chain, served) = wait_for_x509(&endpoint, &workload_id, &logs).await;
    let root_bundle = {
        let mut bundle = Bundle::new(spire_identity::TrustDomain::parse(TRUST_DOMAIN).expect("trust domain"));
        bundle.add_x509_authority(root.clone()).expect("root");
        BundleSet::from(bundle)
    };
    let chain_refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let verified = verify_svid(&chain_refs, &root_bundle, SystemTime::now()).is_ok();
    let (intermediate_is_server_ca, server_ca_key) = chain.get(1).map_or((false, String::new()), |der| {
        let (_, cert) = X509Certificate::from_der(der).expect("server CA certificate");
        (cert.is_ca() && uris(&cert) == [format!("spiffe://{TRUST_DOMAIN}")], key_kind(&cert))
    });
    let (_, leaf) = X509Certificate::from_der(&chain[0]).expect("leaf");
    let subject_ous =
        leaf.subject().iter_organizational_unit().filter_map(|ou| ou.as_str().ok().map(str::to_owned)).collect();

    let (jwt_alg, jwt_composed_claim) = jwt_alg_and_claim(&endpoint, &workload_id, "composed").await;
    let notifier_file_holds_root = wait_for_file_with(&dir.join("notified.pem"), &root, FILE_TIMEOUT).await;
    let publisher_file_holds_root = wait_for_file_with(&dir.join("published.pem"), &root, FILE_TIMEOUT).await;

    Some(Summary {
        agent_id,
        attestation_type,
        agent_selectors,
        workload_id,
        chain_length: chain.len(),
        chains_to_upstream_root: verified && intermediate_is_server_ca,
        server_ca_key,
        jwt_alg,
        served_bundle_is_upstream_root: served == vec![root],
        subject_ous,
        jwt_composed_claim,
        notifier_file_holds_root,
        publisher_file_holds_root,
        server_plugins_logged: plugins_logged(&server.log()),
        agent_plugins_logged: plugins_logged(&agent.log()),
    })
}

/// The value after `label` in `agent show` output.
fn field(out: &str, label: &str) -> Option<String> {
    out.lines().find_map(|l| l.trim().strip_prefix(label).map(|r| r.trim_start_matches([' ', ':']).trim().to_owned()))
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// Polls the Workload API for up to 60 s for an X509-SVID for `spiffe_id`; returns its chain (DER,
/// leaf first) and the `example.org` X.509 authorities served beside it.
async fn wait_for_x509(endpoint: &str, spiffe_id: &str, logs: &dyn Fn() -> String) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match fetch_x509(endpoint, spiffe_id).await {
            Ok(Some(found)) => return found,
            Ok(None) => last = "not served (yet)".into(),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no X509-SVID for {spiffe_id} ({last})\n{}", logs());
}

async fn fetch_x509(endpoint: &str, spiffe_id: &str) -> Result<Option<(Vec<Vec<u8>>, Vec<Vec<u8>>)>, String> {
    let client = WorkloadApiClient::connect_to(endpoint).await.map_err(|e| e.to_string())?;
    let context = client.fetch_x509_context().await.map_err(|e| e.to_string())?;
    let Some(svid) = context.svids().iter().find(|s| s.spiffe_id().to_string() == spiffe_id) else { return Ok(None) };
    let chain = svid.cert_chain().iter().map(|c| c.as_bytes().to_vec()).collect();
    let td = TrustDomain::new(TRUST_DOMAIN).expect("trust domain");
    let served = context
        .bundle_set()
        .get(&td)
        .map(|b| b.authorities().iter().map(|c| c.as_bytes().to_vec()).collect())
        .unwrap_or_default();
    Ok(Some((chain, served)))
}

/// A JWT-SVID for `spiffe_id`: its header's `alg`, and the JSON of its claim `name` (`None` when it
/// has none).
async fn jwt_alg_and_claim(endpoint: &str, spiffe_id: &str, name: &str) -> (String, Option<String>) {
    let client = WorkloadApiClient::connect_to(endpoint).await.expect("connect to the Workload API");
    let id = spiffe_id.parse().expect("SPIFFE ID");
    let jwt = client.fetch_jwt_svid(&[AUDIENCE], Some(&id)).await.expect("JWT-SVID");
    let part = |i: usize| -> serde_json::Value {
        let b64 = jwt.token().split('.').nth(i).expect("a JWS part");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).expect("base64url");
        serde_json::from_slice(&json).expect("JSON")
    };
    let alg = part(0).get("alg").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    (alg, part(1).get(name).map(serde_json::Value::to_string))
}

/// `RSA-<bits>` or `EC-<curve OID>` for the certificate's public key.
fn key_kind(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA-{}", rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(_)) => {
            let curve = cert.public_key().algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            format!("EC-{}", curve.map(|o| o.to_id_string()).unwrap_or_default())
        }
        _ => "other".into(),
    }
}

/// Waits up to `timeout` for the PEM file at `path` to hold the certificate `der`.
async fn wait_for_file_with(path: &Path, der: &[u8], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let holds = std::fs::read_to_string(path)
            .ok()
            .and_then(|pem| certs_from_pem(&pem).ok())
            .is_some_and(|certs| certs.iter().any(|c| c == der));
        if holds || Instant::now() >= deadline {
            return holds;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The test plugins whose Configure line ([`CONFIGURED_MESSAGE`], with `test_plugin=<name>`) is in
/// `log`, sorted and deduplicated. Text (`test_plugin=name`) and JSON (`"test_plugin":"name"`) log
/// formats both count.
pub(crate) fn plugins_logged(log: &str) -> Vec<String> {
    let mut names: Vec<String> = log
        .lines()
        .filter(|line| line.contains(CONFIGURED_MESSAGE))
        .filter_map(|line| {
            PLUGIN_NAMES.iter().find(|name| {
                let text = format!("test_plugin={name}");
                let json = format!("\"test_plugin\":\"{name}\"");
                line.contains(&json)
                    || line
                        .match_indices(&text)
                        .any(|(at, _)| !line[at + text.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '-'))
            })
        })
        .map(|name| (*name).to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}
