//! The attestor against a stand-in of Google's certificate endpoint and Compute API, with tokens
//! signed by test keys published as Google publishes its own.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use spire_identity::{SpiffeId, TrustDomain};
use spire_testkit::cloud::{self, Reply, StandIn, TokenSigner};
use tonic::{Code, Status};

use super::*;
use crate::catalog::nodeattestor::AgentStore;

/// Agents attested so far, in memory.
#[derive(Debug, Default)]
struct Attested(Mutex<BTreeSet<String>>);

#[async_trait::async_trait]
impl AgentStore for Attested {
    async fn is_attested(&self, id: &SpiffeId) -> Result<bool, Status> {
        Ok(self.0.lock().unwrap().contains(&id.to_string()))
    }
}

struct Setup {
    google: StandIn,
    signer: Arc<TokenSigner>,
    _dir: tempfile::TempDir,
    sa_file: String,
}

async fn setup() -> Setup {
    let signer = Arc::new(TokenSigner::generate("google-key-1"));
    let published = cloud::google_certs(&[&signer]);
    let google = StandIn::start(
        "127.0.0.1:0",
        Arc::new(move |r: &cloud::Received| match r.path() {
            "/oauth2/v1/certs" => Reply::json(&published),
            "/token" => Reply::json(
                &serde_json::json!({"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer"}),
            ),
            "/compute/v1/projects/proj/zones/us-west1-b/instances/vm-1" => {
                if r.header("authorization") != Some("Bearer ya29.test") {
                    return Reply::status(401, "unauthenticated");
                }
                Reply::json(&serde_json::json!({
                    "kind": "compute#instance", "name": "vm-1",
                    "tags": {"items": ["web", "blue"]},
                    "serviceAccounts": [{"email": "node@proj.iam.gserviceaccount.com"}],
                    "labels": {"env": "prod", "secret": "x"},
                    "metadata": {"items": [{"key": "role", "value": "db"}, {"key": "big", "value": "0123456789"}]},
                }))
            }
            _ => Reply::status(404, "not found"),
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sa_file = dir.path().join("sa.json");
    let key = serde_json::json!({
        "type": "service_account", "project_id": "proj", "private_key_id": "k1",
        "private_key": TokenSigner::generate("sa").private_key_pem(),
        "client_email": "spire@proj.iam.gserviceaccount.com", "token_uri": format!("{}/token", google.url()),
    });
    std::fs::write(&sa_file, key.to_string()).unwrap();
    Setup { google, signer, sa_file: sa_file.display().to_string(), _dir: dir }
}

fn attestor(s: &Setup, extra: &str) -> (GcpIitAttestor, Arc<Attested>) {
    let data = format!(
        "projectid_allow_list = [\"proj\"]\ntest_only_certs_url = \"{}/oauth2/v1/certs\"\ntest_only_compute_endpoint = \"{}/compute/v1/\"\nservice_account_file = \"{}\"\n{extra}",
        s.google.url(),
        s.google.url(),
        s.sa_file
    );
    let config = GcpIitConfig::from_plugin(&crate::catalog::nodeattestor::test_plugin("gcp_iit", &data)).unwrap();
    let agents = Arc::new(Attested::default());
    (GcpIitAttestor::new(config, TrustDomain::parse("example.org").unwrap(), agents.clone()), agents)
}

fn token(signer: &TokenSigner, audience: &str, project: &str, iat: i64) -> Vec<u8> {
    signer.sign(&cloud::gce_identity_claims(audience, project, "us-west1-b", "4711", "vm-1", iat)).into_bytes()
}

fn refusal(result: Result<AttestResult, Status>) -> (Code, String) {
    let s = result.unwrap_err();
    (s.code(), s.message().to_owned())
}

#[tokio::test]
async fn a_genuine_token_names_the_instance() {
    let s = setup().await;
    let (a, _) = attestor(&s, "");
    let result = a.attest_payload(&token(&s.signer, "spire-gcp-node-attestor", "proj", cloud::now())).await.unwrap();
    assert_eq!(result.agent_id.to_string(), "spiffe://example.org/spire/agent/gcp_iit/proj/4711");
    assert_eq!(result.selector_values, ["project-id:proj", "zone:us-west1-b", "instance-name:vm-1"]);
    assert!(!result.can_reattest);
}

#[tokio::test]
async fn instance_metadata_adds_tags_accounts_and_allowed_labels_and_metadata() {
    let s = setup().await;
    let (a, _) = attestor(
        &s,
        "use_instance_metadata = true\nallowed_label_keys = [\"env\"]\nallowed_metadata_keys = [\"role\"]",
    );
    let result = a.attest_payload(&token(&s.signer, "spire-gcp-node-attestor", "proj", cloud::now())).await.unwrap();
    assert_eq!(
        result.selector_values,
        [
            "project-id:proj",
            "zone:us-west1-b",
            "instance-name:vm-1",
            "tag:web",
            "tag:blue",
            "sa:node@proj.iam.gserviceaccount.com",
            "label:env:prod",
            "metadata:role:db",
        ]
    );
    // The service account key signed an assertion exchanged at its token_uri.
    let token_request = s.google.received().into_iter().find(|r| r.path() == "/token").expect("a token request");
    let form = String::from_utf8(token_request.body).unwrap();
    assert!(
        form.starts_with("assertion=")
            && form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{form}"
    );
    let (a, _) =
        attestor(&s, "use_instance_metadata = true\nallowed_metadata_keys = [\"big\"]\nmax_metadata_value_size = 4");
    let (code, message) =
        refusal(a.attest_payload(&token(&s.signer, "spire-gcp-node-attestor", "proj", cloud::now())).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::Internal, "nodeattestor(gcp_iit): metadata \"big\" exceeded value limit (10 > 4)")
    );
}

#[tokio::test]
async fn refusals_are_spires() {
    let s = setup().await;
    let (a, _) = attestor(&s, "");
    let now = cloud::now();
    let stranger = TokenSigner::generate("google-key-1");
    let unknown_kid = TokenSigner::generate("other-kid");
    for (case, payload, code, message) in [
        ("empty", Vec::new(), Code::InvalidArgument, "missing attestation payload"),
        (
            "not a JWT",
            b"abc".to_vec(),
            Code::InvalidArgument,
            "unable to parse the identity token: go-jose/go-jose: compact JWS format must have three parts",
        ),
        (
            "another key",
            token(&stranger, "spire-gcp-node-attestor", "proj", now),
            Code::InvalidArgument,
            "failed to validate the identity token signature: go-jose/go-jose: error in cryptographic primitive",
        ),
        (
            "unknown kid",
            token(&unknown_kid, "spire-gcp-node-attestor", "proj", now),
            Code::InvalidArgument,
            "failed to validate the identity token signature: go-jose/go-jose: JWK with matching kid not found in JWK Set",
        ),
        (
            "wrong audience",
            token(&s.signer, "someone-else", "proj", now),
            Code::PermissionDenied,
            "failed to validate the identity token claims: go-jose/go-jose/jwt: validation failed, invalid audience claim (aud)",
        ),
        (
            "expired",
            token(&s.signer, "spire-gcp-node-attestor", "proj", now - 7200),
            Code::PermissionDenied,
            "failed to validate the identity token claims: go-jose/go-jose/jwt: validation failed, token is expired (exp)",
        ),
        (
            "other project",
            token(&s.signer, "spire-gcp-node-attestor", "other", now),
            Code::PermissionDenied,
            "identity token project ID \"other\" is not in the allow list",
        ),
    ] {
        let (got_code, got) = refusal(a.attest_payload(&payload).await);
        assert_eq!((got_code, got.as_str()), (code, format!("nodeattestor(gcp_iit): {message}").as_str()), "{case}");
    }
}

#[tokio::test]
async fn an_attested_instance_cannot_attest_again() {
    let s = setup().await;
    let (a, agents) = attestor(&s, "");
    let payload = token(&s.signer, "spire-gcp-node-attestor", "proj", cloud::now());
    let first = a.attest_payload(&payload).await.unwrap();
    agents.0.lock().unwrap().insert(first.agent_id.to_string());
    let (code, message) = refusal(a.attest_payload(&payload).await);
    assert_eq!(code, Code::PermissionDenied);
    assert_eq!(message, "nodeattestor(gcp_iit): attestation data has already been used to attest an agent");
}

#[tokio::test]
async fn keys_are_cached_until_they_expire() {
    let s = setup().await;
    let (a, _) = attestor(&s, "");
    let payload = token(&s.signer, "spire-gcp-node-attestor", "proj", cloud::now());
    a.attest_payload(&payload).await.unwrap();
    // Without an Expires header SPIRE keeps no expiry and fetches at every attestation.
    a.attest_payload(&payload).await.unwrap();
    let fetches = s.google.received().iter().filter(|r| r.path() == "/oauth2/v1/certs").count();
    assert_eq!(fetches, 2);
}
