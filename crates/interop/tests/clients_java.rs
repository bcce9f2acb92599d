//! grpc-java 1.85 over a Unix socket with Netty's epoll transport against our real agent's Workload
//! API, with the channel's defaults: grpc-java then sends the raw socket path as `:authority`, as
//! every Java workload does. The client is ours (crates/interop/peers/grpc-java), on message classes
//! protoc generated from our workload.proto; scripts/install-peers.sh builds it.

mod peer_clients;

use peer_clients::{Deployment, Workload, str_at};
use spire_testkit::peers;

const ID: &str = "spiffe://example.org/java/app";

#[tokio::test]
async fn grpc_java_over_epoll_fetches_x509_and_jwt_svids() {
    let Some(client) = peers::require("grpc-java-client") else { return };
    let deployment = Deployment::start(&[Workload { spiffe_id: ID, hint: "java" }]).await;
    let socket = deployment.agent.socket.to_str().expect("UTF-8 path");

    let x509 = deployment.run_json(&client, &["x509", "--socket", socket]);
    assert_eq!(str_at(&x509, "transport"), "epoll", "{x509}");
    assert_eq!(x509["spiffe_ids"], serde_json::json!([ID]), "{x509}");
    assert_eq!(x509["hints"], serde_json::json!(["java"]), "{x509}");
    // The JDK's own X.509 parser reads the chain and finds the SPIFFE ID as the leaf's URI SAN.
    assert_eq!(x509["uri_sans"], serde_json::json!([ID]), "{x509}");
    assert!(x509["cert_counts"][0].as_u64().unwrap() >= 1, "{x509}");
    assert!(x509["bundle_cert_counts"][0].as_u64().unwrap() >= 1, "{x509}");

    let jwt = deployment.run_json(&client, &["jwt", "--socket", socket, "--audience", "java-aud"]);
    assert_eq!(jwt["spiffe_ids"], serde_json::json!([ID]), "{jwt}");
    assert_eq!(jwt["token_parts"], 3, "{jwt}");
    assert_eq!(str_at(&jwt, "validated_spiffe_id"), ID, "{jwt}");
    assert_eq!(str_at(&jwt["claims"], "sub"), ID, "{jwt}");
    assert_eq!(jwt["claims"]["aud"], serde_json::json!(["java-aud"]), "{jwt}");
    assert!(jwt["claims"]["exp"].as_i64().is_some(), "{jwt}");
}
