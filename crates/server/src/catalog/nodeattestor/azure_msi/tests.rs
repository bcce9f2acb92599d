//! The attestor against stand-ins of Azure AD (OpenID discovery, JWKS, client-credentials tokens),
//! Resource Manager and IMDS, with tokens signed by test keys published as a tenant's are.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use spire_identity::{SpiffeId, TrustDomain};
use spire_testkit::cloud::{self, Received, Reply, StandIn, TokenSigner};
use tonic::{Code, Status};

use super::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const PRINCIPAL: &str = "9b2c1b6e-0000-4a1a-8f3b-5b1d2c3e4f50";
const SUB: &str = "11111111-2222-3333-4444-555555555555";

#[derive(Debug, Default)]
struct Attested(Mutex<BTreeSet<String>>);

#[async_trait::async_trait]
impl AgentStore for Attested {
    async fn is_attested(&self, id: &SpiffeId) -> Result<bool, Status> {
        Ok(self.0.lock().unwrap().contains(&id.to_string()))
    }
}

/// Azure AD, ARM and IMDS on one stand-in.
async fn azure(signer: Arc<TokenSigner>) -> StandIn {
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let cloud = StandIn::start(
        "127.0.0.1:0",
        Arc::new(move |r: &Received| {
            let base = b.lock().unwrap().clone();
            let rg = format!("/subscriptions/{SUB}/resourceGroups/rg");
            match r.path() {
                "/common/.well-known/openid-configuration" => {
                    Reply::json(&serde_json::json!({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0", "jwks_uri": format!("{base}/common/discovery/keys")}))
                }
                "/common/discovery/keys" => Reply::json(&cloud::jwks(&[&signer])),
                p if p == format!("/{TENANT}/oauth2/v2.0/token") => {
                    let form = String::from_utf8_lossy(&r.body).into_owned();
                    if form.contains("client_secret=s3cret") {
                        Reply::json(&serde_json::json!({"access_token": "arm-token", "token_type": "Bearer", "expires_in": 3599}))
                    } else {
                        Reply::status(401, "invalid_client")
                    }
                }
                "/metadata/instance" => Reply::json(&serde_json::json!({"compute": {"name": "spire-server", "subscriptionId": SUB, "resourceGroupName": "infra"}})),
                "/metadata/identity/oauth2/token" => Reply::json(&serde_json::json!({"access_token": "arm-token"})),
                _ if r.header("authorization") != Some("Bearer arm-token") => Reply::status(401, "InvalidAuthenticationToken"),
                p if p == format!("/subscriptions/{SUB}/resources") => Reply::json(&serde_json::json!({"value": [
                    {"id": format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm1"), "name": "vm1", "type": "Microsoft.Compute/virtualMachines"}
                ]})),
                p if p == format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm1") => Reply::json(&serde_json::json!({
                    "name": "vm1", "properties": {"networkProfile": {"networkInterfaces": [{"id": format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic1")}]}}
                })),
                p if p == format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic1") => Reply::json(&serde_json::json!({
                    "name": "nic1", "properties": {
                        "networkSecurityGroup": {"id": format!("{rg}/providers/Microsoft.Network/networkSecurityGroups/nsg1")},
                        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": format!("{rg}/providers/Microsoft.Network/virtualNetworks/net1/subnets/default")}}}]
                    }
                })),
                _ => Reply::status(404, "ResourceNotFound"),
            }
        }),
    )
    .await;
    *base.lock().unwrap() = cloud.url();
    cloud
}

async fn attestor(cloud: &StandIn, tenant: &str) -> (AzureMsiAttestor, Arc<Attested>) {
    let data = format!(
        "tenants = {{\n{tenant}\n}}\ntest_only_oidc_issuer = \"{u}/common/\"\ntest_only_authority_host = \"{u}\"\ntest_only_resource_manager_endpoint = \"{u}\"\ntest_only_imds_host = \"{a}\"",
        u = cloud.url(),
        a = cloud.addr
    );
    let config = AzureMsiConfig::from_plugin(&crate::catalog::nodeattestor::test_plugin("azure_msi", &data)).unwrap();
    let agents = Arc::new(Attested::default());
    let a = AzureMsiAttestor::from_config(config, TrustDomain::parse("example.org").unwrap(), agents.clone())
        .await
        .unwrap();
    (a, agents)
}

fn app_tenant() -> String {
    format!("\"{TENANT}\" = {{ subscription_id = \"{SUB}\" app_id = \"app\" app_secret = \"s3cret\" }}")
}

fn payload(signer: &TokenSigner, resource: &str, tenant: &str, iat: i64) -> Vec<u8> {
    let token = signer.sign(&cloud::azure_msi_claims(resource, tenant, PRINCIPAL, iat));
    spire_attestation::azure_msi::AttestationData { token }.to_payload()
}

const EXPECTED: [&str; 5] = [
    "network-security-group:rg:nsg1",
    "subscription-id:11111111-2222-3333-4444-555555555555",
    "virtual-network-subnet:rg:net1:default",
    "virtual-network:rg:net1",
    "vm-name:rg:vm1",
];

#[tokio::test]
async fn a_genuine_token_is_resolved_to_its_vm_with_app_credentials() {
    let signer = Arc::new(TokenSigner::generate("aad-key-1"));
    let cloud = azure(signer.clone()).await;
    let (a, _) = attestor(&cloud, &app_tenant()).await;
    let result =
        a.attest_payload(&payload(&signer, "https://management.azure.com/", TENANT, cloud::now())).await.unwrap();
    assert_eq!(result.agent_id.to_string(), format!("spiffe://example.org/spire/agent/azure_msi/{TENANT}/{PRINCIPAL}"));
    assert_eq!(result.selector_values, EXPECTED);
    assert!(!result.can_reattest);
    let list = cloud.received().into_iter().find(|r| r.path().ends_with("/resources")).unwrap();
    assert!(
        list.path_and_query.contains(
            "%24filter=resourceType+eq+%27Microsoft.Compute%2FvirtualMachines%27+and+identity%2FprincipalId+eq+%27"
        ),
        "{}",
        list.path_and_query
    );
}

#[tokio::test]
async fn a_tenant_without_credentials_uses_the_servers_managed_identity() {
    let signer = Arc::new(TokenSigner::generate("aad-key-1"));
    let cloud = azure(signer.clone()).await;
    let (a, _) = attestor(&cloud, &format!("\"{TENANT}\" = {{ resource_id = \"api://spire\" }}")).await;
    let result = a.attest_payload(&payload(&signer, "api://spire", TENANT, cloud::now())).await.unwrap();
    assert_eq!(result.selector_values, EXPECTED);
    assert!(cloud.received().iter().any(|r| r.path() == "/metadata/instance"));
}

#[tokio::test]
async fn refusals_are_spires() {
    let signer = Arc::new(TokenSigner::generate("aad-key-1"));
    let cloud = azure(signer.clone()).await;
    let (a, _) = attestor(&cloud, &app_tenant()).await;
    let now = cloud::now();
    let stranger = TokenSigner::generate("aad-key-1");
    let other_kid = TokenSigner::generate("aad-key-2");
    let arm = "https://management.azure.com/";
    for (case, p, code, message) in [
        ("empty", Vec::new(), Code::InvalidArgument, "missing attestation payload".to_owned()),
        ("no token", b"{}".to_vec(), Code::InvalidArgument, "missing token from attestation data".into()),
        (
            "another key",
            payload(&stranger, arm, TENANT, now),
            Code::InvalidArgument,
            "unable to verify token: go-jose/go-jose: error in cryptographic primitive".into(),
        ),
        (
            "unknown kid",
            payload(&other_kid, arm, TENANT, now),
            Code::InvalidArgument,
            "key id \"aad-key-2\" not found".into(),
        ),
        (
            "other tenant",
            payload(&signer, arm, "other-tenant", now),
            Code::PermissionDenied,
            "tenant \"other-tenant\" is not authorized".into(),
        ),
        (
            "wrong audience",
            payload(&signer, "api://other", TENANT, now),
            Code::Internal,
            "unable to validate token claims: go-jose/go-jose/jwt: validation failed, invalid audience claim (aud)"
                .into(),
        ),
        (
            "expired",
            payload(&signer, arm, TENANT, now - 4000),
            Code::Internal,
            "unable to validate token claims: go-jose/go-jose/jwt: validation failed, token is expired (exp)".into(),
        ),
    ] {
        let s = a.attest_payload(&p).await.unwrap_err();
        assert_eq!((s.code(), s.message()), (code, format!("nodeattestor(azure_msi): {message}").as_str()), "{case}");
    }
}

#[tokio::test]
async fn an_attested_vm_cannot_attest_again() {
    let signer = Arc::new(TokenSigner::generate("aad-key-1"));
    let cloud = azure(signer.clone()).await;
    let (a, agents) = attestor(&cloud, &app_tenant()).await;
    let p = payload(&signer, "https://management.azure.com/", TENANT, cloud::now());
    let first = a.attest_payload(&p).await.unwrap();
    agents.0.lock().unwrap().insert(first.agent_id.to_string());
    let s = a.attest_payload(&p).await.unwrap_err();
    assert_eq!(
        (s.code(), s.message()),
        (Code::PermissionDenied, "nodeattestor(azure_msi): attestation data has already been used to attest an agent")
    );
}
