//! go-spiffe v2.9.0 (grpc-go underneath) as a workload of our real agent: an `X509Source` gets and
//! verifies the SVID, a JWT-SVID fetched from the agent validates against the JWT bundles with
//! go-spiffe's own JOSE code, and two SVIDs of the same workload authenticate each other in a real
//! mTLS exchange through `tlsconfig.MTLSServerConfig`/`MTLSClientConfig`. The client is ours
//! (crates/interop/peers/go-spiffe), built by scripts/install-peers.sh.

mod peer_clients;

use peer_clients::{Deployment, Workload, str_at};
use spire_testkit::peers;

const FRONT: &str = "spiffe://example.org/go/front";
const BACK: &str = "spiffe://example.org/go/back";

#[tokio::test]
async fn go_spiffe_fetches_validates_and_does_mtls_with_our_agent() {
    let Some(client) = peers::require("go-spiffe-workload") else { return };
    let deployment =
        Deployment::start(&[Workload { spiffe_id: FRONT, hint: "front" }, Workload { spiffe_id: BACK, hint: "back" }])
            .await;
    let socket = format!("unix://{}", deployment.agent.socket.display());

    let x509 = deployment.run_json(&client, &["x509", "-socket", &socket]);
    let default_id = str_at(&x509, "spiffe_id");
    assert!([FRONT, BACK].contains(&default_id), "{x509}");
    assert_eq!(str_at(&x509, "verified_id"), default_id, "{x509}");
    let mut all: Vec<&str> = x509["all_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, [BACK, FRONT], "{x509}");

    let jwt = deployment.run_json(&client, &["jwt", "-socket", &socket, "-audience", "go-audience"]);
    assert!([FRONT, BACK].contains(&str_at(&jwt, "spiffe_id")), "{jwt}");
    assert_eq!(str_at(&jwt, "validated_id"), str_at(&jwt, "spiffe_id"), "{jwt}");
    assert_eq!(jwt["audience"], serde_json::json!(["go-audience"]), "{jwt}");

    // SPIFFE_ENDPOINT_SOCKET is how most workloads find the agent: the mTLS run uses it alone.
    let mtls = deployment.run_json_with_env(
        &client,
        &["mtls", "-server-id", FRONT, "-client-id", BACK],
        &[("SPIFFE_ENDPOINT_SOCKET", &socket)],
    );
    assert_eq!(str_at(&mtls, "server_saw"), BACK, "{mtls}");
    assert_eq!(str_at(&mtls, "client_saw"), FRONT, "{mtls}");
    assert_eq!(str_at(&mtls, "reply"), "echo:ping", "{mtls}");
}
