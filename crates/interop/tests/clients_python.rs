//! Python's grpcio (grpc-core underneath) against our real agent's Workload API socket and our real
//! server's admin socket, with default channel options: grpc-core then sends the percent-encoded
//! socket path as `:authority`, as every Python workload does. The client is ours
//! (crates/interop/peers/python-grpcio/client.py), on stubs grpcio-tools generated from our .proto
//! files; scripts/install-peers.sh installs it.

mod peer_clients;

use peer_clients::{Deployment, Workload, run_peer, str_at, uid};
use spire_testkit::peers;

const FIRST: &str = "spiffe://example.org/python/first";
const SECOND: &str = "spiffe://example.org/python/second";

#[tokio::test]
async fn grpcio_uses_the_workload_api_and_the_entry_api() {
    let Some(client) = peers::require("python-grpc-client") else { return };
    let deployment = Deployment::start(&[Workload { spiffe_id: FIRST, hint: "first" }]).await;
    let agent_socket = deployment.agent.socket.to_str().expect("UTF-8 path");
    let server_socket = deployment.server.socket.to_str().expect("UTF-8 path");

    let x509 = deployment.run_json(&client, &["x509", "--socket", agent_socket]);
    assert_eq!(x509["spiffe_ids"], serde_json::json!([FIRST]), "{x509}");
    assert_eq!(x509["hints"], serde_json::json!(["first"]), "{x509}");
    assert!(x509["cert_counts"][0].as_u64().unwrap() >= 1, "{x509}");
    assert!(x509["bundle_cert_counts"][0].as_u64().unwrap() >= 1, "{x509}");
    assert!(x509["key_lengths"][0].as_u64().unwrap() > 0, "{x509}");

    // Without the security header the agent must refuse with InvalidArgument (Workload Endpoint §4).
    let refused = run_peer(&client, &["x509", "--socket", agent_socket, "--no-header"], &[]);
    assert_eq!(refused.status.code(), Some(3), "{}", String::from_utf8_lossy(&refused.stderr));
    let refused: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("JSON error");
    assert_eq!(str_at(&refused, "error_code"), "INVALID_ARGUMENT", "{refused}");

    let jwt = deployment.run_json(&client, &["jwt", "--socket", agent_socket, "--audience", "python-aud"]);
    assert_eq!(jwt["spiffe_ids"], serde_json::json!([FIRST]), "{jwt}");
    assert_eq!(jwt["token_parts"], 3, "{jwt}");
    assert_eq!(str_at(&jwt, "validated_spiffe_id"), FIRST, "{jwt}");
    assert_eq!(str_at(&jwt["claims"], "sub"), FIRST, "{jwt}");
    assert_eq!(jwt["claims"]["aud"], serde_json::json!(["python-aud"]), "{jwt}");

    // The admin socket: create an entry for this uid, see it refused the second time, listed and
    // counted, then served by the agent.
    let selector = format!("unix:uid:{}", uid());
    let entries = deployment.run_json(
        &client,
        &[
            "entries",
            "--socket",
            server_socket,
            "--parent-id",
            &deployment.agent_id,
            "--spiffe-id",
            SECOND,
            "--selector",
            &selector,
            "--hint",
            "second",
        ],
    );
    assert_eq!(entries["created"][0]["code"], 0, "{entries}");
    let id = str_at(&entries["created"][0], "id");
    assert!(!id.is_empty(), "{entries}");
    assert_eq!(entries["again"][0]["code"], 6, "ALREADY_EXISTS: {entries}");
    assert_eq!(str_at(&entries["again"][0], "id"), id, "{entries}");
    assert_eq!(entries["count"], 2, "{entries}");
    let listed = entries["listed"].as_array().expect("listed");
    let second = listed.iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{id} not listed: {entries}"));
    assert_eq!(str_at(second, "spiffe_id"), SECOND, "{entries}");
    assert_eq!(str_at(second, "parent_id"), deployment.agent_id, "{entries}");
    assert_eq!(second["selectors"], serde_json::json!([selector]), "{entries}");
    assert_eq!(str_at(second, "hint"), "second", "{entries}");
    assert!(listed.iter().any(|e| e["spiffe_id"] == FIRST), "{entries}");
    // Our CLI reads the same entry back.
    assert!(deployment.server_cli(&["entry", "show", "-entryID", id]).contains(SECOND));

    deployment
        .wait_for_svids(&[Workload { spiffe_id: FIRST, hint: "first" }, Workload { spiffe_id: SECOND, hint: "second" }])
        .await;
    let x509 = deployment.run_json(&client, &["x509", "--socket", agent_socket]);
    let mut ids: Vec<&str> = x509["spiffe_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [FIRST, SECOND], "{x509}");
    let jwt = deployment
        .run_json(&client, &["jwt", "--socket", agent_socket, "--audience", "python-aud", "--spiffe-id", SECOND]);
    assert_eq!(jwt["spiffe_ids"], serde_json::json!([SECOND]), "{jwt}");
    assert_eq!(str_at(&jwt, "validated_spiffe_id"), SECOND, "{jwt}");
}
