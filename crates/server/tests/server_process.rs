//! The real `spire-server` binary, driven only through gRPC: entry CRUD on the private socket with
//! SPIRE's statuses, persistence across a restart, eight concurrent writers, and the TCP endpoint's
//! TLS identity and authorization.

use std::collections::BTreeMap;
use std::sync::Arc;

use spire_identity::x509::{certs_from_pem, verify_svid};
use spire_identity::{Bundle, TrustDomain};
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::entry::v1 as entry;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::types as pb;
use spire_testkit::process::TestServer;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

fn id(path: &str) -> Option<pb::Spiffeid> {
    Some(pb::Spiffeid { trust_domain: "example.org".into(), path: path.into() })
}

fn new_entry(path: &str, uid: u32) -> pb::Entry {
    pb::Entry {
        spiffe_id: id(path),
        parent_id: id("/spire/agent/join_token/abc"),
        selectors: vec![pb::Selector { r#type: "unix".into(), value: format!("uid:{uid}") }],
        ..Default::default()
    }
}

async fn create(
    client: &mut EntryClient<tonic::transport::Channel>,
    entries: Vec<pb::Entry>,
) -> Vec<entry::batch_create_entry_response::Result> {
    client
        .batch_create_entry(entry::BatchCreateEntryRequest { entries, output_mask: None })
        .await
        .unwrap()
        .into_inner()
        .results
}

#[tokio::test]
async fn entry_crud_statuses_and_restart() {
    let mut server = TestServer::start(BIN, "").await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.socket).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o770, "the private socket has SPIRE's mode");
    let mut client = EntryClient::new(server.channel().await);

    let mut bad = new_entry("/bad", 1);
    bad.selectors.clear();
    let mut bad_id = new_entry("/x", 1);
    bad_id.spiffe_id = id("no-slash");
    let results = create(&mut client, vec![new_entry("/web", 1000), new_entry("/web", 1000), bad, bad_id]).await;
    let codes: Vec<i32> = results.iter().map(|r| r.status.as_ref().unwrap().code).collect();
    assert_eq!(codes, [0, Code::AlreadyExists as i32, Code::InvalidArgument as i32, Code::InvalidArgument as i32]);
    assert_eq!(results[1].status.as_ref().unwrap().message, "similar entry already exists");
    assert_eq!(results[2].status.as_ref().unwrap().message, "failed to convert entry: selector list is empty");
    assert!(results[3].status.as_ref().unwrap().message.starts_with("failed to convert entry: invalid spiffe ID:"));
    let created = results[0].entry.clone().unwrap();
    assert_eq!(results[1].entry.as_ref().unwrap().id, created.id, "the existing entry comes back with AlreadyExists");

    // Update bumps the revision; a masked update leaves other fields alone.
    let mut change =
        pb::Entry { id: created.id.clone(), dns_names: vec!["web.example.org".into()], ..Default::default() };
    change.hint = "ignored because not in the mask".into();
    let mask = pb::EntryMask { dns_names: true, ..Default::default() };
    let updated = client
        .batch_update_entry(entry::BatchUpdateEntryRequest {
            entries: vec![change],
            input_mask: Some(mask),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let updated = updated[0].entry.clone().expect("updated");
    assert_eq!(updated.revision_number, created.revision_number + 1);
    assert_eq!(updated.dns_names, ["web.example.org"]);
    assert_eq!(updated.hint, "");
    assert_eq!(updated.selectors, created.selectors);

    // Unknown IDs are reported per item, not as a failed call.
    let deleted = client
        .batch_delete_entry(entry::BatchDeleteEntryRequest { ids: vec!["nope".into()] })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(deleted[0].status.as_ref().unwrap().code, Code::NotFound as i32);
    let err = client.get_entry(entry::GetEntryRequest { id: "nope".into(), output_mask: None }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::NotFound, "entry not found"));

    // Everything survives a restart, and the CA is the same: an SVID minted before it still verifies.
    let bundle_before = bundle(&server).await;
    let minted = mint_x509(&server, "/minted").await;
    server.restart().await;
    let mut own = Bundle::new(TrustDomain::parse("example.org").unwrap());
    for a in bundle(&server).await.x509_authorities {
        own.add_x509_authority(a.asn1).unwrap();
    }
    let verified = verify_svid(&minted, &own.into(), std::time::SystemTime::now()).unwrap();
    assert_eq!(verified.spiffe_id.to_string(), "spiffe://example.org/minted");
    let mut client = EntryClient::new(server.channel().await);
    let got = client
        .get_entry(entry::GetEntryRequest { id: created.id.clone(), output_mask: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.dns_names, ["web.example.org"]);
    assert_eq!(bundle(&server).await, bundle_before, "the CA and bundle are kept across a restart");
}

/// MintX509SVID (admin, over the private socket) for a fresh key; returns the chain.
async fn mint_x509(server: &TestServer, path: &str) -> Vec<Vec<u8>> {
    use spire_proto::spire::api::server::svid::v1::MintX509svidRequest;
    use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
    let key = spire_identity::PrivateKey::generate(spire_identity::KeyType::EcP256).unwrap();
    let rk = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der()),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )
    .unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(format!("spiffe://example.org{path}").try_into().unwrap())];
    let csr = params.serialize_request(&rk).unwrap().der().to_vec();
    let mut client = SvidClient::new(server.channel().await);
    let resp = client.mint_x509svid(MintX509svidRequest { csr, ttl: 3600 }).await.unwrap().into_inner();
    resp.svid.unwrap().cert_chain
}

async fn bundle(server: &TestServer) -> pb::Bundle {
    use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
    let mut client = BundleClient::new(server.channel().await);
    client.get_bundle(GetBundleRequest { output_mask: None }).await.unwrap().into_inner()
}

#[tokio::test]
async fn list_filters_pagination_and_count() {
    let server = TestServer::start(BIN, "").await;
    let mut client = EntryClient::new(server.channel().await);
    let entries: Vec<pb::Entry> = (0..25).map(|i| new_entry(&format!("/svc/{i}"), 1000 + (i % 3))).collect();
    assert!(create(&mut client, entries).await.iter().all(|r| r.status.as_ref().unwrap().code == 0));

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_entries(entry::ListEntriesRequest {
                filter: None,
                output_mask: None,
                page_size: 10,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 10);
        seen.extend(page.entries.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25, "pages cover every entry exactly once");

    let by_uid = |uid: u32, m: pb::selector_match::MatchBehavior| entry::CountEntriesRequest {
        filter: Some(entry::count_entries_request::Filter {
            by_selectors: Some(pb::SelectorMatch {
                selectors: vec![pb::Selector { r#type: "unix".into(), value: format!("uid:{uid}") }],
                r#match: m as i32,
            }),
            ..Default::default()
        }),
    };
    let count = client
        .count_entries(by_uid(1000, pb::selector_match::MatchBehavior::MatchExact))
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 9);
    let none =
        client.count_entries(by_uid(7, pb::selector_match::MatchBehavior::MatchAny)).await.unwrap().into_inner().count;
    assert_eq!(none, 0);
    let err = client.list_entries(entry::ListEntriesRequest { page_size: -1, ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// Eight clients create, update and delete at once; the final state is exactly what was acknowledged.
#[tokio::test]
async fn eight_concurrent_writers_end_in_the_acknowledged_state() {
    let server = TestServer::start(BIN, "").await;
    let channel = server.channel().await;
    let mut tasks = Vec::new();
    for w in 0..8u32 {
        let mut client = EntryClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for i in 0..12u32 {
                let e = new_entry(&format!("/w{w}/e{i}"), w * 100 + i);
                let r = create(&mut client, vec![e]).await.remove(0);
                assert_eq!(r.status.as_ref().unwrap().code, 0, "{:?}", r.status);
                let created = r.entry.unwrap();
                match i % 3 {
                    0 => {
                        let res = client
                            .batch_delete_entry(entry::BatchDeleteEntryRequest { ids: vec![created.id.clone()] })
                            .await
                            .unwrap()
                            .into_inner()
                            .results;
                        assert_eq!(res[0].status.as_ref().unwrap().code, 0);
                    }
                    1 => {
                        let change = pb::Entry {
                            id: created.id.clone(),
                            dns_names: vec![format!("w{w}-{i}.test")],
                            ..Default::default()
                        };
                        let mask = pb::EntryMask { dns_names: true, ..Default::default() };
                        let res = client
                            .batch_update_entry(entry::BatchUpdateEntryRequest {
                                entries: vec![change],
                                input_mask: Some(mask),
                                output_mask: None,
                            })
                            .await
                            .unwrap()
                            .into_inner()
                            .results;
                        assert_eq!(res[0].status.as_ref().unwrap().code, 0);
                        expected.insert(created.id, vec![format!("w{w}-{i}.test")]);
                    }
                    _ => {
                        expected.insert(created.id, vec![]);
                    }
                }
            }
            expected
        }));
    }
    let mut expected = BTreeMap::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    let mut client = EntryClient::new(channel);
    let all = client.list_entries(entry::ListEntriesRequest::default()).await.unwrap().into_inner().entries;
    let actual: BTreeMap<String, Vec<String>> = all.into_iter().map(|e| (e.id, e.dns_names)).collect();
    assert_eq!(actual, expected);
}

/// The TCP endpoint presents `spiffe://example.org/spire/server`, answers GetBundle without a client
/// certificate, and refuses admin RPCs to callers without an admin identity.
#[tokio::test]
async fn tcp_endpoint_identity_and_authorization() {
    let server = TestServer::start(BIN, "").await;
    let bundle_pb = bundle(&server).await;
    let td = TrustDomain::parse("example.org").unwrap();
    let mut own = Bundle::new(td);
    for a in &bundle_pb.x509_authorities {
        own.add_x509_authority(a.asn1.clone()).unwrap();
    }
    let presented: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Arc::default();
    let channel = spire_testkit::tls::tcp_channel_recording_server_chain(server.port, presented.clone()).await;

    use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
    let got = BundleClient::new(channel.clone())
        .get_bundle(GetBundleRequest { output_mask: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.x509_authorities, bundle_pb.x509_authorities);

    let chain = presented.lock().unwrap().clone();
    let verified = verify_svid(&chain, &own.into(), std::time::SystemTime::now()).unwrap();
    assert_eq!(verified.spiffe_id.to_string(), "spiffe://example.org/spire/server");

    let err = EntryClient::new(channel).list_entries(entry::ListEntriesRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let _ = certs_from_pem; // PEM helpers are exercised by the CLI tests.
}
