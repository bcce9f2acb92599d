//! The gcp_iit node attestor end to end, our server with our agent and with SPIRE v1.13.3's agent:
//! a stand-in of Google (the GCE metadata server issuing identity tokens, the certificate endpoint
//! publishing the signing key as `{kid: PEM certificate}` as Google does, the OAuth token endpoint
//! and Compute Engine's `instances.get`), tokens signed by a test key. The agent ID and selectors
//! as `spire-server agent list` shows them, a workload under a node alias on a selector getting its
//! SVID; then the refusals, each leaving no agent behind: a token signed by another key, for
//! another project, for another audience, expired, and a replay of the attested instance's token.

mod agent_server;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_testkit::agent::AgentOptions;
use spire_testkit::cloud::{self, Received, Reply, StandIn, TokenSigner};
use spire_testkit::upstream::UpstreamAgent;

const AUDIENCE: &str = "spire-gcp-node-attestor";

/// Google, and the token its metadata server hands out now.
struct Google {
    standin: StandIn,
    token: Arc<Mutex<String>>,
    signer: TokenSigner,
}

async fn google() -> Google {
    let signer = TokenSigner::generate("test-google-key");
    let certs = cloud::google_certs(&[&signer]);
    let token = Arc::new(Mutex::new(String::new()));
    let served = token.clone();
    let standin = StandIn::start(
        "127.0.0.1:0",
        Arc::new(move |r: &Received| match r.path() {
            "/computeMetadata/v1/instance/service-accounts/default/identity" => {
                let wanted = format!("audience={AUDIENCE}&format=full");
                if r.header("metadata-flavor") != Some("Google") || !r.path_and_query.ends_with(&wanted) {
                    return Reply::status(400, "bad request");
                }
                Reply::text(&served.lock().expect("token").clone())
            }
            "/oauth2/v1/certs" => Reply::json(&certs),
            "/token" => Reply::json(
                &serde_json::json!({"access_token": "ya29.test", "token_type": "Bearer", "expires_in": 3599}),
            ),
            p if p.starts_with("/compute/v1/projects/proj/zones/us-west1-b/instances/") => {
                Reply::json(&serde_json::json!({
                    "kind": "compute#instance",
                    "name": p.rsplit('/').next(),
                    "tags": {"items": ["spire-node"]},
                    "serviceAccounts": [{"email": "node@proj.iam.gserviceaccount.com"}],
                    "labels": {"env": "test"},
                    "metadata": {"items": [{"key": "role", "value": "worker"}]},
                }))
            }
            _ => Reply::status(404, "not found"),
        }),
    )
    .await;
    Google { standin, token, signer }
}

impl Google {
    fn issue(&self, token: String) {
        *self.token.lock().expect("token") = token;
    }

    fn token(&self, signer: &TokenSigner, audience: &str, project: &str, instance: &str, iat: i64) -> String {
        signer.sign(&cloud::gce_identity_claims(
            audience,
            project,
            "us-west1-b",
            instance,
            &format!("vm-{instance}"),
            iat,
        ))
    }
}

fn server_setup(google: &Google, dir: &Path) -> ServerSetup {
    let key_file = dir.join("service-account.json");
    let key = serde_json::json!({
        "type": "service_account", "project_id": "proj", "private_key_id": "k1",
        "private_key": TokenSigner::generate("sa").private_key_pem(),
        "client_email": "spire-server@proj.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", google.standin.url()),
    });
    std::fs::write(&key_file, key.to_string()).expect("write the key file");
    let data = format!(
        "projectid_allow_list = [\"proj\"]\n            use_instance_metadata = true\n            allowed_label_keys = [\"env\"]\n            allowed_metadata_keys = [\"role\"]\n            service_account_file = \"{}\"\n            test_only_certs_url = \"{u}/oauth2/v1/certs\"\n            test_only_compute_endpoint = \"{u}/compute/v1/\"",
        key_file.display(),
        u = google.standin.url()
    );
    let plugin =
        format!("    NodeAttestor \"gcp_iit\" {{\n        plugin_data {{\n            {data}\n        }}\n    }}\n");
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(google: &Google) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"gcp_iit\" {{\n        plugin_data {{\n            identity_token_host = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        google.standin.addr
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

/// The whole flow with agent `A` against our server.
async fn attests<A: AgentUnderTest>(tag: &str) {
    let Some((server_bin, agent_bin)) = agent_server::binaries::<OurServer, A>() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    let google = google().await;
    google.issue(google.token(&google.signer, AUDIENCE, "proj", "4711", cloud::now()));
    let server = OurServer::start(&server_bin, &server_setup(&google, &dir)).await;
    let agent = A::start(&agent_bin, &dir.join("agent"), server.port, &agent_options(&google)).await;

    let listed = server.cli(&["agent", "list"]);
    let agent_id = "spiffe://example.org/spire/agent/gcp_iit/proj/4711";
    assert!(listed.contains(agent_id), "{listed}");
    let shown = server.cli(&["agent", "show", "-spiffeID", agent_id]);
    for selector in [
        "gcp_iit:project-id:proj",
        "gcp_iit:zone:us-west1-b",
        "gcp_iit:instance-name:vm-4711",
        "gcp_iit:tag:spire-node",
        "gcp_iit:sa:node@proj.iam.gserviceaccount.com",
        "gcp_iit:label:env:test",
        "gcp_iit:metadata:role:worker",
    ] {
        assert!(shown.contains(selector), "{} lacks {selector}:\n{shown}", A::NAME);
    }
    assert!(shown.contains("Can re-attest     : false"), "{shown}");
    agent_server::node_alias_workload_gets_svid(&server, &agent, "gcp-nodes", tag, "gcp_iit:project-id:proj").await;
    // The agent asked the metadata server as SPIRE's agent does.
    let asked = google.standin.received();
    assert!(asked.iter().any(|r| r.path_and_query
        == "/computeMetadata/v1/instance/service-accounts/default/identity?audience=spire-gcp-node-attestor&format=full"));
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server() {
    attests::<OurAgent>("ours").await;
}

/// SPIRE's agent, pointed at the stand-in with its own `identity_token_host`.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server() {
    attests::<UpstreamAgent>("spire-agent").await;
}

/// Each refusal as SPIRE words it, and no agent stored but the one that attested.
#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_forged_foreign_stale_and_replayed_tokens() {
    let Some((server_bin, agent_bin)) = agent_server::binaries::<OurServer, OurAgent>() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    let google = google().await;
    let server = OurServer::start(&server_bin, &server_setup(&google, &dir)).await;
    let now = cloud::now();
    let genuine = google.token(&google.signer, AUDIENCE, "proj", "100", now);
    google.issue(genuine.clone());
    let first = OurAgent::start(&agent_bin, &dir.join("first"), server.port, &agent_options(&google)).await;
    drop(first);
    let stranger = TokenSigner::generate("test-google-key");
    let cases = [
        ("another key", google.token(&stranger, AUDIENCE, "proj", "101", now), "error in cryptographic primitive"),
        (
            "another project",
            google.token(&google.signer, AUDIENCE, "elsewhere", "102", now),
            "identity token project ID \\\"elsewhere\\\" is not in the allow list",
        ),
        (
            "another audience",
            google.token(&google.signer, "someone-else", "proj", "103", now),
            "invalid audience claim (aud)",
        ),
        ("expired", google.token(&google.signer, AUDIENCE, "proj", "104", now - 7200), "token is expired (exp)"),
        ("replay", genuine, "attestation data has already been used to attest an agent"),
    ];
    for (case, token, _) in &cases {
        // The server allows one attestation per second from an address (SPIRE's rate limit).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        google.issue(token.clone());
        let mut agent =
            OurAgent::launch(&agent_bin, &dir.join(case.replace(' ', "-")), server.port, &agent_options(&google));
        let status = agent.wait_exit(Duration::from_secs(30)).await;
        assert!(status.is_some_and(|s| !s.success()), "{case}: the agent did not fail:\n{}", agent.log());
    }
    let log = server.log();
    for (case, _, message) in &cases {
        let unescaped = message.replace("\\\"", "\"");
        assert!(log.contains(message) || log.contains(&unescaped), "{case}: the server log lacks {message}:\n{log}");
    }
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("spiffe://example.org/spire/agent/gcp_iit/").count(), 1, "{listed}");
    assert!(listed.contains("spiffe://example.org/spire/agent/gcp_iit/proj/100"), "{listed}");
}
