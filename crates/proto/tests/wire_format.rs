//! Pins field numbers and gRPC service names against hand-built encodings,
//! so an accidental renumbering in a `.proto` file fails loudly.
//!
//! A protobuf key byte is `(field_number << 3) | wire_type`, with wire type 0
//! for varints and 2 for length-delimited values.

use prost::Message;
use spire_proto::envoy::config::core::v3::{DataSource, data_source};
use spire_proto::envoy::extensions::transport_sockets::tls::v3::{CertificateValidationContext, Secret, secret};
use spire_proto::spire::api::server::agent::v1::{AttestAgentRequest, attest_agent_request};
use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;
use spire_proto::spire::api::types::{Entry, EntryMask, Spiffeid};
use tonic::server::NamedService;

const fn key(field: u8, wire_type: u8) -> u8 {
    (field << 3) | wire_type
}

#[test]
fn entry_field_numbers() {
    let entry = Entry {
        id: "e".into(),
        spiffe_id: Some(Spiffeid { trust_domain: "td".into(), path: "/w".into() }),
        admin: true,
        hint: "h".into(),
        created_at: 7,
        ..Default::default()
    };
    let expected = [
        &[key(1, 2), 1, b'e'][..],   // id = 1
        &[key(2, 2), 8],             // spiffe_id = 2, 8 bytes:
        &[key(1, 2), 2, b't', b'd'], //   SPIFFEID.trust_domain = 1
        &[key(2, 2), 2, b'/', b'w'], //   SPIFFEID.path = 2
        &[key(7, 0), 1],             // admin = 7
        &[key(14, 2), 1, b'h'],      // hint = 14
        &[key(15, 0), 7],            // created_at = 15
    ]
    .concat();
    assert_eq!(entry.encode_to_vec(), expected);
    assert_eq!(Entry::decode(expected.as_slice()).unwrap(), entry);
}

#[test]
fn batch_create_entry_request_field_numbers() {
    let request = BatchCreateEntryRequest {
        entries: vec![Entry { id: "a".into(), ..Default::default() }],
        output_mask: Some(EntryMask { hint: true, ..Default::default() }),
    };
    let expected = [
        &[key(1, 2), 3][..],   // entries = 1, 3 bytes:
        &[key(1, 2), 1, b'a'], //   Entry.id = 1
        &[key(2, 2), 2],       // output_mask = 2, 2 bytes:
        &[key(14, 0), 1],      //   EntryMask.hint = 14 (a bool)
    ]
    .concat();
    assert_eq!(request.encode_to_vec(), expected);
}

#[test]
fn attest_agent_oneof_field_numbers() {
    let request = AttestAgentRequest { step: Some(attest_agent_request::Step::ChallengeResponse(vec![0xAB])) };
    // challenge_response = 2 (oneof step)
    assert_eq!(request.encode_to_vec(), vec![key(2, 2), 1, 0xAB]);
}

#[test]
fn sds_secret_field_numbers() {
    let trusted_ca = DataSource { specifier: Some(data_source::Specifier::InlineBytes(vec![1])) };
    let secret = Secret {
        name: "n".into(),
        r#type: Some(secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(trusted_ca),
            ..Default::default()
        })),
    };
    let expected = [
        &[key(1, 2), 1, b'n'][..], // name = 1
        &[key(4, 2), 5],           // validation_context = 4, 5 bytes:
        &[key(1, 2), 3],           //   trusted_ca = 1, 3 bytes:
        &[key(2, 2), 1, 1],        //     DataSource.inline_bytes = 2
    ]
    .concat();
    assert_eq!(secret.encode_to_vec(), expected);
}

#[test]
fn workload_x509_svid_field_numbers() {
    let svid = spire_proto::workload::X509svid {
        spiffe_id: "s".into(),
        x509_svid: vec![1],
        x509_svid_key: vec![2],
        bundle: vec![3],
        hint: "h".into(),
    };
    let expected = [
        &[key(1, 2), 1, b's'][..], // spiffe_id = 1
        &[key(2, 2), 1, 1],        // x509_svid = 2
        &[key(3, 2), 1, 2],        // x509_svid_key = 3
        &[key(4, 2), 1, 3],        // bundle = 4
        &[key(5, 2), 1, b'h'],     // hint = 5
    ]
    .concat();
    assert_eq!(svid.encode_to_vec(), expected);
}

#[test]
fn grpc_service_names() {
    use spire_proto::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
    use spire_proto::grpc::health::v1::health_server::HealthServer;
    use spire_proto::spire::agent::debug::v1::debug_server::DebugServer as AgentDebugServer;
    use spire_proto::spire::api::server::entry::v1::entry_server::EntryServer;
    use spire_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;

    fn name<S: NamedService>() -> &'static str {
        S::NAME
    }

    struct Never;
    assert_eq!(name::<SpiffeWorkloadApiServer<Never>>(), "SpiffeWorkloadAPI");
    assert_eq!(name::<EntryServer<Never>>(), "spire.api.server.entry.v1.Entry");
    assert_eq!(name::<AgentDebugServer<Never>>(), "spire.agent.debug.v1.Debug");
    assert_eq!(name::<HealthServer<Never>>(), "grpc.health.v1.Health");
    assert_eq!(name::<SecretDiscoveryServiceServer<Never>>(), "envoy.service.secret.v3.SecretDiscoveryService");
}
