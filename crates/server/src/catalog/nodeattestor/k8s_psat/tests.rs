//! The attestation flow over a fake API server: which calls are made with what, and what the agent
//! hears for each refusal.

use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::TokenReviewStatus;
use k8s_openapi::api::core::v1::{Node, Pod};
use tonic::Code;

use super::client::tests::write_kubeconfig;
use super::config::test_plugin;
use super::review::tests::{NODE_UID, POD_UID, cluster, node, pod, review};
use super::*;

/// Answers with fixed results and records every call.
#[derive(Debug)]
struct FakeApi {
    review: Result<TokenReviewStatus, String>,
    pod: Result<Pod, String>,
    node: Result<Node, String>,
    calls: Mutex<Vec<String>>,
}

impl FakeApi {
    fn valid() -> Self {
        Self { review: Ok(review()), pod: Ok(pod()), node: Ok(node()), calls: Mutex::new(Vec::new()) }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl ClusterApi for FakeApi {
    async fn review_token(&self, token: &str, audiences: &[String]) -> Result<TokenReviewStatus, String> {
        self.record(format!("review {token} {audiences:?}"));
        self.review.clone()
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, String> {
        self.record(format!("pod {namespace}/{name}"));
        self.pod.clone()
    }

    async fn get_node(&self, name: &str) -> Result<Node, String> {
        self.record(format!("node {name}"));
        self.node.clone()
    }
}

struct NoChallenges;

#[async_trait::async_trait]
impl Challenger for NoChallenges {
    async fn challenge(&mut self, _: Vec<u8>) -> Result<Vec<u8>, Status> {
        panic!("k8s_psat never challenges");
    }
}

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn attestor(api: Arc<FakeApi>) -> K8sPsatAttestor {
    K8sPsatAttestor::new(td(), BTreeMap::from([("prod".to_owned(), Cluster { config: cluster(), api })]))
}

fn payload(cluster: &str, token: &str) -> Vec<u8> {
    AttestationData { cluster: cluster.into(), token: token.into() }.to_payload()
}

async fn attest(api: FakeApi, payload: &[u8]) -> (Result<AttestResult, Status>, Vec<String>) {
    let api = Arc::new(api);
    let result = attestor(api.clone()).attest(payload, &mut NoChallenges).await;
    (result, api.calls())
}

async fn refusal(api: FakeApi, payload: &[u8]) -> (Code, String) {
    let status = attest(api, payload).await.0.unwrap_err();
    let message = status.message().strip_prefix("nodeattestor(k8s_psat): ").expect("plugin prefix").to_owned();
    (status.code(), message)
}

#[tokio::test]
async fn a_valid_token_attests_the_node() {
    let (result, calls) = attest(FakeApi::valid(), &payload("prod", "a.b.c")).await;
    let result = result.unwrap();
    assert_eq!(result.agent_id.to_string(), format!("spiffe://example.org/spire/agent/k8s_psat/prod/{NODE_UID}"));
    assert!(result.can_reattest);
    assert_eq!(result.selector_values[0], "cluster:prod");
    assert_eq!(result.selector_values[4], format!("agent_pod_uid:{POD_UID}"));
    assert_eq!(calls, ["review a.b.c [\"spire-server\"]", "pod spire/agent-x", "node node-1"]);
}

#[tokio::test]
async fn the_clusters_audiences_are_requested() {
    let api = Arc::new(FakeApi::valid());
    let mut config = cluster();
    config.audience = vec!["a".into(), "spire-server".into()];
    let attestor =
        K8sPsatAttestor::new(td(), BTreeMap::from([("prod".to_owned(), Cluster { config, api: api.clone() })]));
    attestor.attest_payload(&payload("prod", "t")).await.unwrap();
    assert_eq!(api.calls()[0], "review t [\"a\", \"spire-server\"]");
}

#[tokio::test]
async fn payload_refusals_make_no_api_call() {
    let cases: [(&[u8], &str); 6] = [
        (b"", "missing attestation payload"),
        (b"not json", "failed to unmarshal data payload: expected ident at line 1 column 2"),
        (br#"{"token":"t"}"#, "missing cluster in attestation data"),
        (br#"{"cluster":"prod"}"#, "missing token in attestation data"),
        (br#"{"cluster":"prod","token":""}"#, "missing token in attestation data"),
        (br#"{"cluster":"dev","token":"t"}"#, "not configured for cluster \"dev\""),
    ];
    for (payload, want) in cases {
        let api = Arc::new(FakeApi::valid());
        let status = attestor(api.clone()).attest(payload, &mut NoChallenges).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{want}");
        assert_eq!(status.message(), format!("nodeattestor(k8s_psat): {want}"));
        assert!(api.calls().is_empty(), "{want}");
    }
}

#[tokio::test]
async fn api_server_failures_are_internal_and_say_which_call() {
    let down = "unable to query token review API: client error (Connect): Connection refused";
    let (code, message) =
        refusal(FakeApi { review: Err(down.into()), ..FakeApi::valid() }, &payload("prod", "t")).await;
    assert_eq!(code, Code::Internal);
    assert_eq!(message, format!("unable to validate token with TokenReview API: {down}"));

    let gone = "unable to query nodes API: nodes \"node-1\" not found";
    let (code, message) = refusal(FakeApi { node: Err(gone.into()), ..FakeApi::valid() }, &payload("prod", "t")).await;
    assert_eq!(code, Code::Internal);
    assert_eq!(message, format!("fail to get node from k8s API server: {gone}"));
}

#[tokio::test]
async fn a_deleted_pod_is_refused() {
    let gone = "unable to query pods API: pods \"agent-x\" not found";
    let api = FakeApi { pod: Err(gone.into()), ..FakeApi::valid() };
    let (result, calls) = attest(api, &payload("prod", "t")).await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(
        status.message(),
        "nodeattestor(k8s_psat): fail to get pod from k8s API server: unable to query pods API: pods \"agent-x\" not found"
    );
    assert_eq!(calls.len(), 2, "no node lookup after the pod is gone");
}

#[tokio::test]
async fn a_recreated_pod_is_refused() {
    let mut recreated = pod();
    recreated.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    let (code, message) = refusal(FakeApi { pod: Ok(recreated), ..FakeApi::valid() }, &payload("prod", "t")).await;
    assert_eq!(code, Code::PermissionDenied);
    assert_eq!(
        message,
        format!("pod UID mismatch for pod \"agent-x\" in cluster \"prod\": token bound to pod UID \"{POD_UID}\"")
    );
}

#[tokio::test]
async fn review_refusals_carry_spire_codes() {
    let edit = |f: fn(&mut TokenReviewStatus)| {
        let mut r = review();
        f(&mut r);
        FakeApi { review: Ok(r), ..FakeApi::valid() }
    };
    let cases: [(FakeApi, Code, &str); 4] = [
        (
            edit(|r| r.audiences = Some(vec!["other".into()])),
            Code::Internal,
            "unable to validate token with TokenReview API: token review API did not validate audience: \
             wanted one of [\"spire-server\"] but got [\"other\"]",
        ),
        (
            edit(|r| r.authenticated = Some(false)),
            Code::PermissionDenied,
            "token not authenticated according to TokenReview API",
        ),
        (
            edit(|r| r.user.as_mut().unwrap().username = Some("system:serviceaccount:kube-system:default".into())),
            Code::PermissionDenied,
            "\"kube-system:default\" is not an allowed service account",
        ),
        (
            edit(|r| r.user.as_mut().unwrap().extra = None),
            Code::Internal,
            "fail to get pod name from token review status: missing pod name",
        ),
    ];
    for (api, code, want) in cases {
        let (result, calls) = attest(api, &payload("prod", "t")).await;
        let status = result.unwrap_err();
        assert_eq!((status.code(), status.message()), (code, format!("nodeattestor(k8s_psat): {want}").as_str()));
        assert_eq!(calls.len(), 1, "{want}: no pod lookup after a refused review");
    }
}

#[tokio::test]
async fn an_empty_node_uid_is_refused() {
    let mut n = node();
    n.metadata.uid = None;
    let (code, message) = refusal(FakeApi { node: Ok(n), ..FakeApi::valid() }, &payload("prod", "t")).await;
    assert_eq!((code, message.as_str()), (Code::Internal, "node UID is empty"));
}

#[tokio::test]
async fn from_plugin_builds_one_client_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path());
    let data = format!(
        r#"clusters = {{
  "a" = {{ service_account_allow_list = ["spire:spire-agent"], kube_config_file = "{0}" }}
  "b" = {{ service_account_allow_list = ["spire:spire-agent"], kube_config_file = "{0}" }}
}}"#,
        kubeconfig.display()
    );
    let attestor = K8sPsatAttestor::from_plugin(&test_plugin(&data), td()).await.unwrap();
    assert_eq!(attestor.cluster_names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(attestor.name(), "k8s_psat");
}

#[tokio::test]
async fn from_plugin_names_the_cluster_whose_client_fails() {
    let data = r#"clusters = { "a" = { service_account_allow_list = ["x:y"], kube_config_file = "/nonexistent/kc" } }"#;
    let err = K8sPsatAttestor::from_plugin(&test_plugin(data), td()).await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "plugins.NodeAttestor.k8s_psat.plugin_data.clusters[\"a\"]: cannot use kube_config_file /nonexistent/kc: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn from_plugin_without_kube_config_file_needs_the_in_cluster_configuration() {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return; // Running in a pod: the in-cluster configuration may well load.
    }
    let data = r#"clusters = { "a" = { service_account_allow_list = ["x:y"] } }"#;
    let err = K8sPsatAttestor::from_plugin(&test_plugin(data), td()).await.unwrap_err().to_string();
    assert!(
        err.contains("clusters[\"a\"]: kube_config_file is empty and the in-cluster configuration cannot be loaded"),
        "{err}"
    );
}

#[tokio::test]
async fn from_plugin_reports_config_errors() {
    let err = K8sPsatAttestor::from_plugin(&test_plugin(r#"clusters = { "a" = {} }"#), td()).await.unwrap_err();
    assert!(matches!(err, SetupError::Config(_)), "{err}");
    let attestor = K8sPsatAttestor::from_plugin(&test_plugin(""), td()).await.unwrap();
    assert_eq!(attestor.cluster_names().count(), 0);
}
