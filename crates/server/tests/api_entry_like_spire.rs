//! The Entry API answers as SPIRE v1.13.3's server does where SPIRE's own `spire-server entry` CLI
//! shows the difference (found by `crates/interop/tests/upstream_cli_our_server.rs`, which runs the
//! real SPIRE next to ours): the `by_downstream: false` filter SPIRE's CLI always sends matches every
//! entry, a missing federated bundle is Internal, an unknown entry to update is NotFound "failed to
//! update entry", entries must be of the server's trust domain, and the datastore's checks read
//! `datastore-validation: ...`.

use spire_proto::spire::api::server::entry::v1 as entry;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::types as pb;
use spire_testkit::process::TestServer;
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

fn id(td: &str, path: &str) -> Option<pb::Spiffeid> {
    Some(pb::Spiffeid { trust_domain: td.into(), path: path.into() })
}

fn new_entry(path: &str) -> pb::Entry {
    pb::Entry {
        spiffe_id: id("example.org", path),
        parent_id: id("example.org", "/node"),
        selectors: vec![pb::Selector { r#type: "unix".into(), value: "uid:7".into() }],
        ..Default::default()
    }
}

async fn create(client: &mut EntryClient<Channel>, e: pb::Entry) -> (i32, String, Option<pb::Entry>) {
    let mut results = client
        .batch_create_entry(entry::BatchCreateEntryRequest { entries: vec![e], output_mask: None })
        .await
        .unwrap()
        .into_inner()
        .results;
    let r = results.remove(0);
    let status = r.status.unwrap();
    (status.code, status.message, r.entry)
}

#[tokio::test]
async fn entry_api_answers_like_spire() {
    let server = TestServer::start(BIN, "").await;
    let mut client = EntryClient::new(server.channel().await);

    // `by_downstream: false` is no filter, as in SPIRE's datastore; `true` keeps downstream entries.
    let plain = create(&mut client, new_entry("/plain")).await.2.unwrap();
    let mut down = new_entry("/down");
    down.downstream = true;
    create(&mut client, down).await.2.unwrap();
    let list = |d: Option<bool>| {
        let mut client = client.clone();
        async move {
            let filter = entry::list_entries_request::Filter { by_downstream: d, ..Default::default() };
            let req = entry::ListEntriesRequest { filter: Some(filter), ..Default::default() };
            client.list_entries(req).await.unwrap().into_inner().entries.len()
        }
    };
    assert_eq!(list(Some(false)).await, 2);
    assert_eq!(list(None).await, 2);
    assert_eq!(list(Some(true)).await, 1);
    let count = |d: Option<bool>| {
        let mut client = client.clone();
        async move {
            let filter = entry::count_entries_request::Filter { by_downstream: d, ..Default::default() };
            client.count_entries(entry::CountEntriesRequest { filter: Some(filter) }).await.unwrap().into_inner().count
        }
    };
    assert_eq!(count(Some(false)).await, 2);
    assert_eq!(count(Some(true)).await, 1);

    // A federated trust domain without a bundle: Internal, worded for create or update.
    let mut fed = new_entry("/fed");
    fed.federates_with = vec!["spiffe://nope.org".into()];
    let (code, message, _) = create(&mut client, fed.clone()).await;
    assert_eq!(code, Code::Internal as i32);
    assert_eq!(message, "failed to create entry: unable to find federated bundle \"spiffe://nope.org\"");
    // A similar entry is reported before the missing bundle, as SPIRE looks it up first.
    let mut similar = new_entry("/plain");
    similar.federates_with = vec!["spiffe://nope.org".into()];
    let (code, message, existing) = create(&mut client, similar).await;
    assert_eq!((code, message.as_str()), (Code::AlreadyExists as i32, "similar entry already exists"));
    assert_eq!(existing.unwrap().id, plain.id);

    let update = |e: pb::Entry| {
        let mut client = client.clone();
        async move {
            let req = entry::BatchUpdateEntryRequest { entries: vec![e], input_mask: None, output_mask: None };
            let status = client.batch_update_entry(req).await.unwrap().into_inner().results.remove(0).status.unwrap();
            (status.code, status.message)
        }
    };
    let mut changed = new_entry("/plain");
    changed.id = plain.id.clone();
    changed.federates_with = vec!["spiffe://nope.org".into()];
    assert_eq!(
        update(changed).await,
        (Code::Internal as i32, "failed to update entry: unable to find federated bundle \"spiffe://nope.org\"".into())
    );
    let mut unknown = new_entry("/plain");
    unknown.id = "nonexistent".into();
    assert_eq!(update(unknown).await, (Code::NotFound as i32, "failed to update entry".into()));

    // The IDs must be a workload and a member of our trust domain; the datastore's own checks come
    // after the conversion's, worded as SPIRE's datastore words them.
    let cases: Vec<(pb::Entry, &str)> = vec![
        (
            pb::Entry { spiffe_id: id("other.org", "/w"), ..new_entry("") },
            "failed to convert entry: invalid spiffe ID: \"spiffe://other.org/w\" is not a member of trust domain \"example.org\"",
        ),
        (
            pb::Entry { parent_id: id("other.org", "/node"), ..new_entry("/w") },
            "failed to convert entry: invalid parent ID: \"spiffe://other.org/node\" is not a member of trust domain \"example.org\"",
        ),
        (
            new_entry("/spire/server"),
            "failed to convert entry: invalid spiffe ID: \"spiffe://example.org/spire/server\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace",
        ),
        (
            pb::Entry { id: "a b".into(), ..new_entry("/w") },
            "failed to create entry: datastore-validation: invalid registration entry: entry ID contains invalid characters",
        ),
        (
            pb::Entry { x509_svid_ttl: -1, ..new_entry("/w") },
            "failed to create entry: datastore-validation: invalid registration entry: X509SvidTtl is not set",
        ),
    ];
    for (e, want) in cases {
        let (code, message, _) = create(&mut client, e).await;
        assert_eq!((code, message.as_str()), (Code::InvalidArgument as i32, want));
    }
}
