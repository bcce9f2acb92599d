//! The azure_msi node attestor end to end, our agent with our server: a stand-in of Azure (IMDS
//! issuing managed-identity tokens, Azure AD's OpenID configuration and JWKS publishing the test
//! signing key as a tenant's keys are published, its client-credentials token endpoint, and
//! Resource Manager answering the resource list, VM and network interface as ARM does), tokens
//! signed by a test key. The agent ID and selectors as `spire-server agent list` and `agent show` show them, a
//! workload under a node alias on a selector getting its SVID; then the refusals, each leaving no
//! agent behind: a token signed by another key, of another tenant, for another resource, expired,
//! and a replay of the attested VM's token.
//!
//! SPIRE's agent is not paired here: it asks IMDS at the hard-coded 169.254.169.254:80, which a
//! test could only serve by adding that link-local address to the host; the payload is the same
//! `{"token": ...}` (checked byte for byte in the agent plugin's unit tests).

mod agent_server;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_server::{AgentUnderTest, OurAgent, OurServer, ServerSetup, ServerUnderTest};
use spire_testkit::agent::AgentOptions;
use spire_testkit::cloud::{self, Received, Reply, StandIn, TokenSigner};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SUB: &str = "11111111-2222-3333-4444-555555555555";
const ARM: &str = "https://management.azure.com/";

/// Azure, and the token IMDS hands out now.
struct Azure {
    standin: StandIn,
    token: Arc<Mutex<String>>,
    signer: TokenSigner,
}

async fn azure() -> Azure {
    let signer = TokenSigner::generate("test-aad-key");
    let jwks = cloud::jwks(&[&signer]);
    let token = Arc::new(Mutex::new(String::new()));
    let base = Arc::new(Mutex::new(String::new()));
    let (served, b) = (token.clone(), base.clone());
    let standin = StandIn::start(
        "127.0.0.1:0",
        Arc::new(move |r: &Received| {
            let rg = format!("/subscriptions/{SUB}/resourceGroups/nodes");
            match r.path() {
                "/metadata/identity/oauth2/token" if r.header("metadata") == Some("true") => {
                    Reply::json(&serde_json::json!({"access_token": served.lock().expect("token").clone(), "token_type": "Bearer"}))
                }
                "/common/.well-known/openid-configuration" => Reply::json(&serde_json::json!({
                    "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
                    "jwks_uri": format!("{}/common/discovery/keys", b.lock().expect("base")),
                })),
                "/common/discovery/keys" => Reply::json(&jwks),
                p if p == format!("/{TENANT}/oauth2/v2.0/token") => {
                    Reply::json(&serde_json::json!({"access_token": "arm-token", "token_type": "Bearer", "expires_in": 3599}))
                }
                _ if r.header("authorization") != Some("Bearer arm-token") => Reply::status(401, "InvalidAuthenticationToken"),
                p if p == format!("/subscriptions/{SUB}/resources") => {
                    // The principal is the last quoted word of the filter.
                    let principal = r.path_and_query.rsplit("%27").nth(1).unwrap_or_default().to_owned();
                    Reply::json(&serde_json::json!({"value": [{
                        "id": format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm-{principal}"),
                        "type": "Microsoft.Compute/virtualMachines",
                    }]}))
                }
                p if p.starts_with(&format!("{rg}/providers/Microsoft.Compute/virtualMachines/")) => Reply::json(&serde_json::json!({
                    "properties": {"networkProfile": {"networkInterfaces": [{"id": format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic0")}]}}
                })),
                p if p == format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic0") => Reply::json(&serde_json::json!({
                    "properties": {
                        "networkSecurityGroup": {"id": format!("{rg}/providers/Microsoft.Network/networkSecurityGroups/spire-nsg")},
                        "ipConfigurations": [{"properties": {"subnet": {"id": format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/agents")}}}],
                    }
                })),
                _ => Reply::status(404, "ResourceNotFound"),
            }
        }),
    )
    .await;
    *base.lock().expect("base") = standin.url();
    Azure { standin, token, signer }
}

impl Azure {
    fn issue(&self, token: String) {
        *self.token.lock().expect("token") = token;
    }

    fn token(&self, signer: &TokenSigner, resource: &str, tenant: &str, principal: &str, iat: i64) -> String {
        signer.sign(&cloud::azure_msi_claims(resource, tenant, principal, iat))
    }
}

fn server_setup(azure: &Azure) -> ServerSetup {
    let data = format!(
        "tenants = {{\n                \"{TENANT}\" = {{\n                    subscription_id = \"{SUB}\"\n                    app_id = \"spire-server\"\n                    app_secret = \"s3cret\"\n                }}\n            }}\n            test_only_oidc_issuer = \"{u}/common/\"\n            test_only_authority_host = \"{u}\"\n            test_only_resource_manager_endpoint = \"{u}\"",
        u = azure.standin.url()
    );
    let plugin =
        format!("    NodeAttestor \"azure_msi\" {{\n        plugin_data {{\n            {data}\n        }}\n    }}\n");
    ServerSetup { extra_plugins: plugin, ..ServerSetup::default() }
}

fn agent_options(azure: &Azure) -> AgentOptions {
    let attestors = format!(
        "    NodeAttestor \"azure_msi\" {{\n        plugin_data {{\n            test_only_imds_host = \"{}\"\n        }}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{}}\n    }}",
        azure.standin.addr
    );
    AgentOptions { attestors: Some(attestors), ..AgentOptions::default() }
}

fn server_and_agent() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    agent_server::binaries::<OurServer, OurAgent>()
}

#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_our_server() {
    let Some((server_bin, agent_bin)) = server_and_agent() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: &Path = tmp.path();
    let azure = azure().await;
    azure.issue(azure.token(&azure.signer, ARM, TENANT, "principal-1", cloud::now()));
    let server = OurServer::start(&server_bin, &server_setup(&azure)).await;
    let agent = OurAgent::start(&agent_bin, &dir.join("agent"), server.port, &agent_options(&azure)).await;

    let listed = server.cli(&["agent", "list"]);
    let agent_id = format!("spiffe://example.org/spire/agent/azure_msi/{TENANT}/principal-1");
    assert!(listed.contains(&agent_id), "{listed}");
    let shown = server.cli(&["agent", "show", "-spiffeID", &agent_id]);
    for selector in [
        format!("azure_msi:subscription-id:{SUB}"),
        "azure_msi:vm-name:nodes:vm-principal-1".into(),
        "azure_msi:network-security-group:nodes:spire-nsg".into(),
        "azure_msi:virtual-network:nodes:vnet".into(),
        "azure_msi:virtual-network-subnet:nodes:vnet:agents".into(),
    ] {
        assert!(shown.contains(&selector), "lacks {selector}:\n{shown}");
    }
    agent_server::node_alias_workload_gets_svid(
        &server,
        &agent,
        "azure-nodes",
        "ours",
        "azure_msi:virtual-network:nodes:vnet",
    )
    .await;
}

/// Each refusal as SPIRE words it, and no agent stored but the one that attested.
#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_forged_foreign_stale_and_replayed_tokens() {
    let Some((server_bin, agent_bin)) = server_and_agent() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: &Path = tmp.path();
    let azure = azure().await;
    let server = OurServer::start(&server_bin, &server_setup(&azure)).await;
    let now = cloud::now();
    let genuine = azure.token(&azure.signer, ARM, TENANT, "p-100", now);
    azure.issue(genuine.clone());
    drop(OurAgent::start(&agent_bin, &dir.join("first"), server.port, &agent_options(&azure)).await);
    let stranger = TokenSigner::generate("test-aad-key");
    let cases = [
        (
            "another key",
            azure.token(&stranger, ARM, TENANT, "p-101", now),
            "unable to verify token: go-jose/go-jose: error in cryptographic primitive",
        ),
        ("another tenant", azure.token(&azure.signer, ARM, "other-tenant", "p-102", now), "is not authorized"),
        (
            "another resource",
            azure.token(&azure.signer, "api://other", TENANT, "p-103", now),
            "invalid audience claim (aud)",
        ),
        ("expired", azure.token(&azure.signer, ARM, TENANT, "p-104", now - 4000), "token is expired (exp)"),
        ("replay", genuine, "attestation data has already been used to attest an agent"),
    ];
    for (case, token, _) in &cases {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        azure.issue(token.clone());
        let mut agent =
            OurAgent::launch(&agent_bin, &dir.join(case.replace(' ', "-")), server.port, &agent_options(&azure));
        let status = agent.wait_exit(Duration::from_secs(30)).await;
        assert!(status.is_some_and(|s| !s.success()), "{case}: the agent did not fail:\n{}", agent.log());
    }
    let log = server.log();
    for (case, _, message) in &cases {
        assert!(log.contains(message), "{case}: the server log lacks {message}:\n{log}");
    }
    let listed = server.cli(&["agent", "list"]);
    assert_eq!(listed.matches("spiffe://example.org/spire/agent/azure_msi/").count(), 1, "{listed}");
}
