//! Kubernetes end to end against a real API server (etcd 3.6, kube-apiserver 1.36.3), workloads in
//! real Docker containers and a stand-in kubelet (see `k8s/mod.rs`): our agent and our server, then
//! each of them beside the real SPIRE v1.13.3.

mod agent_server;
mod k8s;

use agent_server::{OurAgent, OurServer};
use spire_testkit::upstream::{UpstreamAgent, UpstreamServer};

/// Our agent attests to our server with a projected service-account token (k8s_psat) and serves
/// pods their SVIDs through the k8s workload attestor.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_and_server_attest_a_node_and_serve_pods() {
    k8s::attests_and_serves_pods::<OurServer, OurAgent>("ours").await;
}

/// SPIRE's agent (its k8s_psat and k8s plugins) against our server.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_attests_to_our_server_with_k8s_psat() {
    k8s::attests_and_serves_pods::<OurServer, UpstreamAgent>("spire-agent").await;
}

/// Our agent against SPIRE's server (its k8s_psat plugin reviewing our agent's token).
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_attests_to_spire_server_with_k8s_psat() {
    k8s::attests_and_serves_pods::<UpstreamServer, OurAgent>("spire-server").await;
}

/// A token for another audience, an expired token, a service account not on the allow list, a
/// deleted pod and an unknown cluster: our server refuses each and our agent says why.
#[tokio::test(flavor = "multi_thread")]
async fn our_server_refuses_bad_k8s_psat_evidence() {
    k8s::refuses_bad_evidence::<OurServer, OurAgent>("bad").await;
}

/// Our k8s_psat agent renews its SVID by re-attesting to our server, with a rotated token.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_our_server() {
    k8s::reattests_instead_of_renewing::<OurServer, OurAgent>("reattest").await;
}

/// SPIRE's k8s_psat agent re-attests to our server.
#[tokio::test(flavor = "multi_thread")]
async fn spire_agent_reattests_to_our_server() {
    k8s::reattests_instead_of_renewing::<OurServer, UpstreamAgent>("reattest-spire-agent").await;
}

/// Our k8s_psat agent re-attests to SPIRE's server.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_reattests_to_spire_server() {
    k8s::reattests_instead_of_renewing::<UpstreamServer, OurAgent>("reattest-spire-server").await;
}

/// A container under a pod's cgroup that is not one of the pod's containers, and a pod of another
/// node, get nothing from our agent.
#[tokio::test(flavor = "multi_thread")]
async fn our_agent_gives_borrowed_cgroups_nothing() {
    k8s::pods_cannot_borrow_identities::<OurServer, OurAgent>("borrow").await;
}
