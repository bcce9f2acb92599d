//! The Bundle and TrustDomain APIs end to end: a real SQLite datastore, a CA made active by the CA
//! manager, the services behind the authorization layer on the private Unix socket, and the generated
//! tonic clients.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::rt::TokioIo;
use spire_datastore::{DataStore, RegistrationEntry};
use spire_datastore::{SqlStore, SqliteOptions};
use spire_identity::jwt::validate_jwt_svid;
use spire_identity::x509::{Subject, verify_svid};
use spire_identity::{BundleSet, JwtAuthority, KeyType, PrivateKey, Selector, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::bundle::v1 as bundle_api;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::bundle::v1::bundle_server::Bundle as _;
use spire_proto::spire::api::server::trustdomain::v1 as td_api;
use spire_proto::spire::api::server::trustdomain::v1::trust_domain_client::TrustDomainClient;
use spire_proto::spire::api::types as pb;
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile as Profile;
use spire_server::api::bundle::BundleService;
use spire_server::api::{ServerContext, Settings};
use spire_server::ca::{Ca, CaManager, CaManagerConfig};
use spire_server::catalog::keymanager::{KeyManager, MemoryKeyManager};
use spire_server::endpoints;
use spire_testkit::pki::Pki;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const HOUR: Duration = Duration::from_secs(3600);
const RESTRICT: i32 = bundle_api::batch_delete_federated_bundle_request::Mode::Restrict as i32;
const DELETE: i32 = bundle_api::batch_delete_federated_bundle_request::Mode::Delete as i32;
const DISSOCIATE: i32 = bundle_api::batch_delete_federated_bundle_request::Mode::Dissociate as i32;

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

/// A running server: its datastore and context for setup and inspection, and a channel to its socket.
struct Server {
    _dir: tempfile::TempDir,
    ds: Arc<dyn DataStore>,
    ctx: Arc<ServerContext>,
    channel: Channel,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Starts a server; with `activate_ca`, the CA manager runs its first rotation, which creates the
    /// signing authorities and publishes them in the server's bundle.
    async fn start(activate_ca: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datastore.sqlite3");
        let ds: Arc<dyn DataStore> =
            Arc::new(SqlStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
        let ca = Arc::new(Ca::new(td(), None));
        let keys: Arc<dyn KeyManager> = Arc::new(MemoryKeyManager::new());
        let config = CaManagerConfig {
            trust_domain: td(),
            ca_key_type: KeyType::EcP256,
            jwt_key_type: KeyType::EcP256,
            ca_ttl: 24 * HOUR,
            ca_subject: Subject::default_ca(),
            disable_jwt_svids: false,
        };
        let manager = CaManager::load(config, keys, None, ds.clone(), ca.clone()).await.unwrap();
        if activate_ca {
            manager.rotate(SystemTime::now()).await.unwrap();
        }
        let ctx = Arc::new(ServerContext::new(td(), ds.clone(), ca, Settings::default()));

        let socket = dir.path().join("private").join("api.sock");
        let listener = endpoints::bind_uds(&socket).unwrap();
        // Bundle and TrustDomain are among the services every listener serves.
        let routes = tonic::service::Routes::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(endpoints::serve_uds(ctx.clone(), listener, routes, async {
            let _ = rx.await;
        }));
        let channel = connect(socket).await;
        Self { _dir: dir, ds, ctx, channel, _shutdown: tx }
    }

    fn bundles(&self) -> BundleClient<Channel> {
        BundleClient::new(self.channel.clone())
    }

    fn trust_domains(&self) -> TrustDomainClient<Channel> {
        TrustDomainClient::new(self.channel.clone())
    }

    /// An entry of our trust domain that federates with `with`, created through the datastore and
    /// indexed as the Entry API would.
    async fn federated_entry(&self, name: &str, with: &str) -> String {
        let mut e = RegistrationEntry::new(
            SpiffeId::parse(&format!("spiffe://example.org/{name}")).unwrap(),
            SpiffeId::parse("spiffe://example.org/spire/agent/a").unwrap(),
            [Selector::new("unix", "uid:1000").unwrap()],
        );
        e.federates_with = vec![TrustDomain::parse(with).unwrap()];
        let e = self.ds.create_entry(e).await.unwrap();
        self.ctx.index.write().unwrap().upsert(e.clone());
        e.id
    }

    fn indexed(&self, id: &str) -> Option<Arc<RegistrationEntry>> {
        self.ctx.index.read().unwrap().get(id).cloned()
    }
}

async fn connect(path: PathBuf) -> Channel {
    // The URI is required by the API but unused: every connection goes to the socket.
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

fn ca_cert() -> Vec<u8> {
    Pki::new(KeyType::EcP256).root.cert_der().to_vec()
}

fn leaf_cert() -> Vec<u8> {
    Pki::new(KeyType::EcP256).leaf("spiffe://example.org/workload", &[]).0.remove(0)
}

fn x509(der: Vec<u8>) -> pb::X509Certificate {
    pb::X509Certificate { asn1: der, ..Default::default() }
}

fn jwt_key(kid: &str) -> pb::JwtKey {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    pb::JwtKey { public_key: key.public_key_der(), key_id: kid.into(), expires_at: 2_000_000_000, ..Default::default() }
}

fn federated(name: &str) -> pb::Bundle {
    pb::Bundle {
        trust_domain: name.into(),
        x509_authorities: vec![x509(ca_cert())],
        jwt_authorities: vec![jwt_key("k1")],
        refresh_hint: 300,
        sequence_number: 1,
        ..Default::default()
    }
}

/// The (code, message) of every per-item status.
fn statuses<'a>(items: impl IntoIterator<Item = &'a Option<pb::Status>>) -> Vec<(i32, String)> {
    items.into_iter().map(|s| s.as_ref().map(|s| (s.code, s.message.clone())).expect("status")).collect()
}

fn assert_status(got: &(i32, String), code: Code, prefix: &str) {
    assert_eq!(got.0, code as i32, "{got:?}");
    assert!(got.1.starts_with(prefix), "{:?} does not start with {prefix:?}", got.1);
}

fn assert_err(err: tonic::Status, code: Code, prefix: &str) {
    assert_eq!(err.code(), code, "{err:?}");
    assert!(err.message().starts_with(prefix), "{:?} does not start with {prefix:?}", err.message());
}

// ---- Own bundle ----

#[tokio::test]
async fn get_bundle_returns_what_the_ca_published() {
    let s = Server::start(true).await;
    let got = s.bundles().get_bundle(bundle_api::GetBundleRequest::default()).await.unwrap().into_inner();
    assert_eq!(got.trust_domain, "example.org");
    assert_eq!((got.x509_authorities.len(), got.jwt_authorities.len()), (1, 1));
    assert!(got.sequence_number > 0);

    // What the CA signs verifies against what GetBundle returned.
    let mut bundle = spire_identity::Bundle::new(td());
    bundle.add_x509_authority(got.x509_authorities[0].asn1.clone()).unwrap();
    let k = &got.jwt_authorities[0];
    assert!(!k.key_id.is_empty());
    bundle
        .add_jwt_authority(JwtAuthority {
            key_id: k.key_id.clone(),
            public_key_der: k.public_key.clone(),
            expires_at: k.expires_at,
        })
        .unwrap();
    let bundles: BundleSet = bundle.into();
    let now = SystemTime::now();
    let workload = SpiffeId::parse("spiffe://example.org/workload").unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let svid = s.ctx.ca.sign_x509_svid(&workload, &key.public_key_der(), &[], None, HOUR, now).unwrap();
    verify_svid(&svid.chain, &bundles, now).unwrap();
    let jwt = s.ctx.ca.sign_jwt_svid(&workload, &["svc".to_string()], Duration::from_secs(300), None, now).unwrap();
    assert_eq!(validate_jwt_svid(&jwt.token, &bundles, &["svc"], now).unwrap().spiffe_id, workload);

    // The output mask keeps the trust domain and the fields asked for.
    let mask = pb::BundleMask { jwt_authorities: true, ..Default::default() };
    let masked =
        s.bundles().get_bundle(bundle_api::GetBundleRequest { output_mask: Some(mask) }).await.unwrap().into_inner();
    assert_eq!(masked.trust_domain, "example.org");
    assert!(masked.x509_authorities.is_empty());
    assert_eq!(masked.jwt_authorities, got.jwt_authorities);
    assert_eq!(masked.sequence_number, 0);
}

#[tokio::test]
async fn get_bundle_before_the_ca_publishes_is_not_found() {
    let s = Server::start(false).await;
    let err = s.bundles().get_bundle(bundle_api::GetBundleRequest::default()).await.unwrap_err();
    assert_err(err, Code::NotFound, "bundle not found");
}

#[tokio::test]
async fn append_bundle_adds_authorities_once() {
    let s = Server::start(true).await;
    let before = s.bundles().get_bundle(bundle_api::GetBundleRequest::default()).await.unwrap().into_inner();
    let root = ca_cert();
    let req = bundle_api::AppendBundleRequest {
        x509_authorities: vec![x509(root.clone())],
        jwt_authorities: vec![jwt_key("appended")],
        ..Default::default()
    };
    let after = s.bundles().append_bundle(req.clone()).await.unwrap().into_inner();
    assert_eq!((after.x509_authorities.len(), after.jwt_authorities.len()), (2, 2));
    assert!(after.x509_authorities.iter().any(|a| a.asn1 == root));
    assert!(after.sequence_number > before.sequence_number);

    // Appending the same authorities again changes nothing.
    let again = s.bundles().append_bundle(req).await.unwrap().into_inner();
    assert_eq!(again.sequence_number, after.sequence_number);
    assert_eq!(again.x509_authorities.len(), 2);

    let masked = s
        .bundles()
        .append_bundle(bundle_api::AppendBundleRequest {
            jwt_authorities: vec![jwt_key("third")],
            output_mask: Some(pb::BundleMask { sequence_number: true, ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(masked.jwt_authorities.is_empty() && masked.x509_authorities.is_empty());
    assert_eq!(masked.sequence_number, after.sequence_number + 1);
}

#[tokio::test]
async fn append_bundle_refuses_bad_authorities() {
    let s = Server::start(true).await;
    let bad = |x509s: Vec<Vec<u8>>, jwts: Vec<pb::JwtKey>| bundle_api::AppendBundleRequest {
        x509_authorities: x509s.into_iter().map(x509).collect(),
        jwt_authorities: jwts,
        ..Default::default()
    };
    let mut no_kid = jwt_key("");
    no_kid.key_id.clear();
    let garbage_key = pb::JwtKey { public_key: b"not a key".to_vec(), ..jwt_key("k") };
    let cases = [
        (bad(vec![], vec![]), "no authorities to append"),
        (bad(vec![leaf_cert()], vec![]), "failed to convert X.509 authority: authority 0 is not a CA certificate"),
        (
            bad(vec![ca_cert(), b"garbage".to_vec()], vec![]),
            "failed to convert X.509 authority: authority 1 is not a valid DER",
        ),
        (bad(vec![], vec![no_kid]), "failed to convert JWT authority: missing key ID"),
        (bad(vec![], vec![garbage_key]), "failed to convert JWT authority: public key is not valid"),
    ];
    let before = s.ds.fetch_bundle(&td()).await.unwrap().unwrap();
    for (req, want) in cases {
        let err = s.bundles().append_bundle(req).await.unwrap_err();
        assert_err(err, Code::InvalidArgument, want);
    }
    assert_eq!(s.ds.fetch_bundle(&td()).await.unwrap().unwrap(), before, "nothing was stored");
}

#[tokio::test]
async fn publish_jwt_authority_is_for_downstream_servers() {
    let s = Server::start(true).await;
    // A local caller is an admin, not a downstream server.
    let req = bundle_api::PublishJwtAuthorityRequest { jwt_authority: Some(jwt_key("downstream")) };
    let err = s.bundles().publish_jwt_authority(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = s.bundles().publish_wit_authority(bundle_api::PublishWitAuthorityRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Past authorization (which the layer did), the handler appends the key to our bundle.
    let svc = BundleService::new(s.ctx.clone());
    let resp = svc.publish_jwt_authority(tonic::Request::new(req)).await.unwrap().into_inner();
    assert_eq!(resp.jwt_authorities.len(), 2);
    assert!(resp.jwt_authorities.iter().any(|k| k.key_id == "downstream"));
    let stored = s.ds.fetch_bundle(&td()).await.unwrap().unwrap();
    assert!(stored.jwt_authorities.iter().any(|k| k.key_id == "downstream"));

    let missing = bundle_api::PublishJwtAuthorityRequest { jwt_authority: None };
    assert_err(
        svc.publish_jwt_authority(tonic::Request::new(missing)).await.unwrap_err(),
        Code::InvalidArgument,
        "missing JWT authority",
    );
    let mut no_kid = jwt_key("x");
    no_kid.key_id.clear();
    let req = bundle_api::PublishJwtAuthorityRequest { jwt_authority: Some(no_kid) };
    assert_err(
        svc.publish_jwt_authority(tonic::Request::new(req)).await.unwrap_err(),
        Code::InvalidArgument,
        "invalid JWT authority: missing key ID",
    );
    let wit = svc.publish_wit_authority(tonic::Request::new(Default::default())).await.unwrap_err();
    assert_eq!(wit.code(), Code::Unimplemented);
}

// ---- Federated bundles ----

async fn create(s: &Server, bundles: Vec<pb::Bundle>) -> bundle_api::BatchCreateFederatedBundleResponse {
    let req = bundle_api::BatchCreateFederatedBundleRequest { bundle: bundles, output_mask: None };
    s.bundles().batch_create_federated_bundle(req).await.unwrap().into_inner()
}

#[tokio::test]
async fn batch_create_reports_each_bundle() {
    let s = Server::start(true).await;
    let mut bad_cert = federated("bad-cert.org");
    bad_cert.x509_authorities = vec![x509(leaf_cert())];
    let mut garbage = federated("garbage.org");
    garbage.x509_authorities = vec![x509(vec![0x30, 0x82, 0x01])];
    let mut no_kid = federated("no-kid.org");
    no_kid.jwt_authorities[0].key_id.clear();
    let resp = create(
        &s,
        vec![
            federated("spiffe://other.org"),
            federated("other.org"),
            federated("example.org"),
            federated("Bad_TD"),
            bad_cert,
            garbage,
            no_kid,
        ],
    )
    .await;
    let got = statuses(resp.results.iter().map(|r| &r.status));
    assert_eq!(got[0], (0, "OK".to_string()));
    assert_status(&got[1], Code::AlreadyExists, "bundle already exists");
    assert_status(
        &got[2],
        Code::InvalidArgument,
        "creating a federated bundle for the server's own trust domain is not allowed",
    );
    assert_status(&got[3], Code::InvalidArgument, "trust domain argument is not valid: trust domain characters");
    assert_status(
        &got[4],
        Code::InvalidArgument,
        "failed to convert bundle: unable to parse X.509 authority: authority 0 is not a CA",
    );
    assert_status(&got[5], Code::InvalidArgument, "failed to convert bundle: unable to parse X.509 authority");
    assert_status(
        &got[6],
        Code::InvalidArgument,
        "failed to convert bundle: unable to parse JWT authority: missing key ID",
    );

    let created = resp.results[0].bundle.as_ref().unwrap();
    assert_eq!(created.trust_domain, "other.org");
    assert_eq!((created.refresh_hint, created.sequence_number), (300, 1));
    assert!(resp.results[1..].iter().all(|r| r.bundle.is_none()));
    assert_eq!(s.ds.count_bundles().await.unwrap(), 2, "own + other.org");
}

#[tokio::test]
async fn count_list_and_get_federated_bundles() {
    let s = Server::start(true).await;
    let names = ["a.org", "b.org", "c.org", "z.org"];
    create(&s, names.iter().map(|n| federated(n)).collect()).await;

    let count = s.bundles().count_bundles(bundle_api::CountBundlesRequest {}).await.unwrap().into_inner();
    assert_eq!(count.count, 5, "the own bundle counts too");

    let all = s.bundles().list_federated_bundles(bundle_api::ListFederatedBundlesRequest::default()).await.unwrap();
    let tds: Vec<_> = all.get_ref().bundles.iter().map(|b| b.trust_domain.clone()).collect();
    assert_eq!(tds, names, "every bundle but our own, by trust domain");
    assert!(all.get_ref().next_page_token.is_empty());

    // Pages of 2 over the 5 stored bundles; the own bundle is filtered from its page.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let req = bundle_api::ListFederatedBundlesRequest {
            page_size: 2,
            page_token: token.clone(),
            output_mask: Some(pb::BundleMask { refresh_hint: true, ..Default::default() }),
        };
        let page = s.bundles().list_federated_bundles(req).await.unwrap().into_inner();
        assert!(page.bundles.len() <= 2);
        for b in &page.bundles {
            assert!(b.x509_authorities.is_empty() && b.jwt_authorities.is_empty(), "masked out");
            assert_eq!(b.refresh_hint, 300);
        }
        seen.extend(page.bundles.into_iter().map(|b| b.trust_domain));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, names);
    assert!(pages >= 3);

    let get = |td: &str, mask: Option<pb::BundleMask>| bundle_api::GetFederatedBundleRequest {
        trust_domain: td.into(),
        output_mask: mask,
    };
    let b = s.bundles().get_federated_bundle(get("b.org", None)).await.unwrap().into_inner();
    assert_eq!((b.trust_domain.as_str(), b.x509_authorities.len(), b.jwt_authorities.len()), ("b.org", 1, 1));
    let masked = s
        .bundles()
        .get_federated_bundle(get(
            "spiffe://b.org",
            Some(pb::BundleMask { x509_authorities: true, ..Default::default() }),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((masked.x509_authorities.len(), masked.jwt_authorities.len(), masked.refresh_hint), (1, 0, 0));

    let err = s.bundles().get_federated_bundle(get("missing.org", None)).await.unwrap_err();
    assert_err(err, Code::NotFound, "bundle not found");
    let err = s.bundles().get_federated_bundle(get("example.org", None)).await.unwrap_err();
    assert_err(
        err,
        Code::InvalidArgument,
        "getting a federated bundle for the server's own trust domain is not allowed",
    );
    let err = s.bundles().get_federated_bundle(get("", None)).await.unwrap_err();
    assert_err(err, Code::InvalidArgument, "trust domain argument is not valid: trust domain is missing");
    let err = s.bundles().get_federated_bundle(get("UPPER.org", None)).await.unwrap_err();
    assert_err(err, Code::InvalidArgument, "trust domain argument is not valid");
}

#[tokio::test]
async fn batch_update_applies_the_input_mask() {
    let s = Server::start(true).await;
    create(&s, vec![federated("other.org")]).await;
    let original = s.ds.fetch_bundle(&TrustDomain::parse("other.org").unwrap()).await.unwrap().unwrap();

    // Only the refresh hint changes, although the request carries other authorities.
    let mut changed = federated("other.org");
    changed.refresh_hint = 60;
    let req = bundle_api::BatchUpdateFederatedBundleRequest {
        bundle: vec![changed.clone(), federated("missing.org"), federated("example.org"), federated("not valid")],
        input_mask: Some(pb::BundleMask { refresh_hint: true, ..Default::default() }),
        output_mask: Some(pb::BundleMask { refresh_hint: true, x509_authorities: true, ..Default::default() }),
    };
    let resp = s.bundles().batch_update_federated_bundle(req).await.unwrap().into_inner();
    let got = statuses(resp.results.iter().map(|r| &r.status));
    assert_eq!(got[0].0, 0);
    assert_status(&got[1], Code::NotFound, "bundle not found");
    assert_status(
        &got[2],
        Code::InvalidArgument,
        "updating a federated bundle for the server's own trust domain is not allowed",
    );
    assert_status(&got[3], Code::InvalidArgument, "trust domain argument is not valid");
    let updated = resp.results[0].bundle.as_ref().unwrap();
    assert_eq!(updated.refresh_hint, 60);
    assert_eq!(updated.x509_authorities[0].asn1, original.x509_authorities[0].der, "authorities untouched");
    assert!(updated.jwt_authorities.is_empty(), "output mask");

    // Without an input mask every field is replaced.
    let req = bundle_api::BatchUpdateFederatedBundleRequest { bundle: vec![changed.clone()], ..Default::default() };
    let resp = s.bundles().batch_update_federated_bundle(req).await.unwrap().into_inner();
    let updated = resp.results[0].bundle.as_ref().unwrap();
    assert_eq!(updated.x509_authorities, changed.x509_authorities);
    assert_eq!(updated.jwt_authorities[0].public_key, changed.jwt_authorities[0].public_key);

    // Invalid authorities are refused even outside the mask.
    let mut bad = federated("other.org");
    bad.x509_authorities = vec![x509(leaf_cert())];
    let req = bundle_api::BatchUpdateFederatedBundleRequest {
        bundle: vec![bad],
        input_mask: Some(pb::BundleMask { refresh_hint: true, ..Default::default() }),
        ..Default::default()
    };
    let resp = s.bundles().batch_update_federated_bundle(req).await.unwrap().into_inner();
    assert_status(
        &statuses(resp.results.iter().map(|r| &r.status))[0],
        Code::InvalidArgument,
        "failed to convert bundle",
    );
}

#[tokio::test]
async fn batch_set_creates_or_replaces() {
    let s = Server::start(true).await;
    create(&s, vec![federated("existing.org")]).await;
    let mut replacement = federated("existing.org");
    replacement.jwt_authorities = vec![];
    replacement.sequence_number = 9;
    let req = bundle_api::BatchSetFederatedBundleRequest {
        bundle: vec![replacement, federated("new.org"), federated("example.org"), federated("")],
        output_mask: None,
    };
    let resp = s.bundles().batch_set_federated_bundle(req).await.unwrap().into_inner();
    let got = statuses(resp.results.iter().map(|r| &r.status));
    assert_eq!((got[0].0, got[1].0), (0, 0));
    assert_status(
        &got[2],
        Code::InvalidArgument,
        "setting a federated bundle for the server's own trust domain is not allowed",
    );
    assert_status(&got[3], Code::InvalidArgument, "trust domain argument is not valid");
    let existing = resp.results[0].bundle.as_ref().unwrap();
    assert!(existing.jwt_authorities.is_empty());
    assert_eq!(existing.sequence_number, 9);
    let stored = s.ds.fetch_bundle(&TrustDomain::parse("new.org").unwrap()).await.unwrap();
    assert!(stored.is_some());
}

async fn delete(s: &Server, tds: &[&str], mode: i32) -> Vec<(i32, String)> {
    let req = bundle_api::BatchDeleteFederatedBundleRequest {
        trust_domains: tds.iter().map(|t| t.to_string()).collect(),
        mode,
    };
    let resp = s.bundles().batch_delete_federated_bundle(req).await.unwrap().into_inner();
    for (r, td) in resp.results.iter().zip(tds) {
        assert_eq!(r.trust_domain, *td, "results echo the trust domain asked for");
    }
    statuses(resp.results.iter().map(|r| &r.status))
}

#[tokio::test]
async fn batch_delete_modes() {
    let s = Server::start(true).await;
    let other = TrustDomain::parse("other.org").unwrap();
    create(&s, vec![federated("other.org"), federated("plain.org")]).await;
    let entry = s.federated_entry("w1", "other.org").await;

    // RESTRICT: refused while an entry federates with the bundle; other items go through.
    let got = delete(&s, &["other.org", "plain.org", "missing.org", "example.org", "bad td"], RESTRICT).await;
    assert_status(&got[0], Code::FailedPrecondition, "failed to delete federated bundle: ");
    assert_eq!(got[1], (0, "OK".to_string()));
    assert_status(&got[2], Code::NotFound, "bundle not found");
    assert_status(&got[3], Code::InvalidArgument, "removing the bundle for the server trust domain is not allowed");
    assert_status(&got[4], Code::InvalidArgument, "trust domain argument is not valid");
    assert!(s.ds.fetch_bundle(&other).await.unwrap().is_some());
    assert!(s.ds.fetch_bundle(&td()).await.unwrap().is_some(), "the own bundle stays");

    // DISSOCIATE: the entry stays, without the association.
    assert_eq!(delete(&s, &["other.org"], DISSOCIATE).await[0].0, 0);
    assert!(s.ds.fetch_bundle(&other).await.unwrap().is_none());
    let kept = s.ds.fetch_entry(&entry).await.unwrap().expect("entry kept");
    assert!(kept.federates_with.is_empty());
    assert!(s.indexed(&entry).expect("still indexed").federates_with.is_empty(), "index follows");

    // DELETE: the entry goes with the bundle.
    create(&s, vec![federated("other.org")]).await;
    let doomed = s.federated_entry("w2", "other.org").await;
    assert!(s.indexed(&doomed).is_some());
    assert_eq!(delete(&s, &["other.org"], DELETE).await[0].0, 0);
    assert!(s.ds.fetch_bundle(&other).await.unwrap().is_none());
    assert!(s.ds.fetch_entry(&doomed).await.unwrap().is_none(), "entry deleted");
    assert!(s.indexed(&doomed).is_none(), "index follows");
    assert!(s.ds.fetch_entry(&entry).await.unwrap().is_some(), "the dissociated entry is untouched");

    // An unknown mode fails the whole call.
    let req = bundle_api::BatchDeleteFederatedBundleRequest { trust_domains: vec!["plain.org".into()], mode: 7 };
    let err = s.bundles().batch_delete_federated_bundle(req).await.unwrap_err();
    assert_err(err, Code::InvalidArgument, "failed to parse deletion mode");
}

// ---- Federation relationships ----

fn web(td: &str, url: &str) -> pb::FederationRelationship {
    pb::FederationRelationship {
        trust_domain: td.into(),
        bundle_endpoint_url: url.into(),
        bundle_endpoint_profile: Some(Profile::HttpsWeb(pb::HttpsWebProfile {})),
        trust_domain_bundle: None,
    }
}

fn spiffe(td: &str, endpoint_id: &str, bundle: Option<pb::Bundle>) -> pb::FederationRelationship {
    pb::FederationRelationship {
        trust_domain: td.into(),
        bundle_endpoint_url: format!("https://{td}:8443/bundle"),
        bundle_endpoint_profile: Some(Profile::HttpsSpiffe(pb::HttpsspiffeProfile {
            endpoint_spiffe_id: endpoint_id.into(),
        })),
        trust_domain_bundle: bundle,
    }
}

async fn create_relationships(
    s: &Server,
    rels: Vec<pb::FederationRelationship>,
) -> td_api::BatchCreateFederationRelationshipResponse {
    let req = td_api::BatchCreateFederationRelationshipRequest { federation_relationships: rels, output_mask: None };
    s.trust_domains().batch_create_federation_relationship(req).await.unwrap().into_inner()
}

#[tokio::test]
async fn create_relationships_validates_and_stores_bundles() {
    let s = Server::start(true).await;
    let mut no_profile = web("noprofile.org", "https://noprofile.org");
    no_profile.bundle_endpoint_profile = None;
    let resp = create_relationships(
        &s,
        vec![
            web("web.org", "https://web.org/bundle"),
            spiffe("spiffe.org", "spiffe://spiffe.org/spire/server", Some(federated("spiffe.org"))),
            web("web.org", "https://web.org/other"),
            web("example.org", "https://example.org"),
            web("http.org", "http://http.org/bundle"),
            web("user.org", "https://me:secret@user.org/bundle"),
            web("nohost.org", "https://"),
            web("Bad TD", "https://bad.org"),
            no_profile,
            spiffe("badid.org", "https://badid.org/server", None),
            spiffe("mismatch.org", "spiffe://mismatch.org/server", Some(federated("someone-else.org"))),
        ],
    )
    .await;
    let got = statuses(resp.results.iter().map(|r| &r.status));
    assert_eq!((got[0].0, got[1].0), (0, 0), "{got:?}");
    assert_status(&got[2], Code::AlreadyExists, "failed to create federation relationship: ");
    assert_status(&got[3], Code::InvalidArgument, "unable to create federation relationship for server trust domain");
    let convert = "failed to convert federation relationship: ";
    assert_status(&got[4], Code::InvalidArgument, &format!("{convert}bundle endpoint URL must use the https scheme"));
    assert_status(&got[5], Code::InvalidArgument, &format!("{convert}bundle endpoint URL must not contain user info"));
    assert_status(&got[6], Code::InvalidArgument, &format!("{convert}bundle endpoint URL must specify the host"));
    assert_status(&got[7], Code::InvalidArgument, &format!("{convert}failed to parse trust domain: "));
    assert_status(&got[8], Code::InvalidArgument, &format!("{convert}unsupported bundle endpoint profile type"));
    assert_status(&got[9], Code::InvalidArgument, &format!("{convert}failed to parse endpoint SPIFFE ID: "));
    assert_status(
        &got[10],
        Code::InvalidArgument,
        &format!("{convert}trust domain bundle (\"someone-else.org\") must match the trust domain"),
    );
    assert!(resp.results[2..].iter().all(|r| r.federation_relationship.is_none()));

    let web_rel = resp.results[0].federation_relationship.as_ref().unwrap();
    assert_eq!(web_rel.bundle_endpoint_url, "https://web.org/bundle");
    assert_eq!(web_rel.bundle_endpoint_profile, Some(Profile::HttpsWeb(pb::HttpsWebProfile {})));
    assert!(web_rel.trust_domain_bundle.is_none());
    let spiffe_rel = resp.results[1].federation_relationship.as_ref().unwrap();
    assert_eq!(spiffe_rel.trust_domain_bundle.as_ref().unwrap().trust_domain, "spiffe.org");

    // The relationship's bundle became the federated bundle of its trust domain.
    let req = bundle_api::GetFederatedBundleRequest { trust_domain: "spiffe.org".into(), output_mask: None };
    let stored = s.bundles().get_federated_bundle(req).await.unwrap().into_inner();
    assert_eq!(stored.x509_authorities.len(), 1);
    assert!(s.ds.fetch_federation_relationship(&TrustDomain::parse("http.org").unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn list_and_get_relationships() {
    let s = Server::start(true).await;
    let names = ["a.org", "b.org", "c.org"];
    let mut rels: Vec<_> = names.iter().map(|n| web(n, &format!("https://{n}/bundle"))).collect();
    rels[1] = spiffe("b.org", "spiffe://b.org/spire/server", Some(federated("b.org")));
    create_relationships(&s, rels).await;

    let all = s
        .trust_domains()
        .list_federation_relationships(td_api::ListFederationRelationshipsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let tds: Vec<_> = all.federation_relationships.iter().map(|r| r.trust_domain.as_str()).collect();
    assert_eq!(tds, names);
    assert!(all.federation_relationships[1].trust_domain_bundle.is_some(), "the stored bundle comes along");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let req = td_api::ListFederationRelationshipsRequest {
            page_size: 2,
            page_token: token.clone(),
            output_mask: Some(pb::FederationRelationshipMask { bundle_endpoint_url: true, ..Default::default() }),
        };
        let page = s.trust_domains().list_federation_relationships(req).await.unwrap().into_inner();
        assert!(page.federation_relationships.len() <= 2);
        for r in &page.federation_relationships {
            assert!(!r.bundle_endpoint_url.is_empty());
            assert!(r.bundle_endpoint_profile.is_none() && r.trust_domain_bundle.is_none(), "masked out");
        }
        seen.extend(page.federation_relationships.into_iter().map(|r| r.trust_domain));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, names);

    let get = |td: &str, mask| td_api::GetFederationRelationshipRequest { trust_domain: td.into(), output_mask: mask };
    let b = s.trust_domains().get_federation_relationship(get("b.org", None)).await.unwrap().into_inner();
    assert_eq!(
        b.bundle_endpoint_profile,
        Some(Profile::HttpsSpiffe(pb::HttpsspiffeProfile { endpoint_spiffe_id: "spiffe://b.org/spire/server".into() }))
    );
    let mask = pb::FederationRelationshipMask { bundle_endpoint_profile: true, ..Default::default() };
    let b = s.trust_domains().get_federation_relationship(get("b.org", Some(mask))).await.unwrap().into_inner();
    assert!(b.bundle_endpoint_url.is_empty() && b.trust_domain_bundle.is_none());
    assert!(b.bundle_endpoint_profile.is_some());

    let err = s.trust_domains().get_federation_relationship(get("missing.org", None)).await.unwrap_err();
    assert_err(err, Code::NotFound, "federation relationship does not exist");
    let err = s.trust_domains().get_federation_relationship(get("no way", None)).await.unwrap_err();
    assert_err(err, Code::InvalidArgument, "failed to parse trust domain: ");
}

#[tokio::test]
async fn update_relationships_with_masks() {
    let s = Server::start(true).await;
    create_relationships(&s, vec![web("other.org", "https://other.org/bundle")]).await;

    // Only the URL changes; the profile in the request is ignored, and need not be valid.
    let mut only_url = web("other.org", "https://other.org/v2");
    only_url.bundle_endpoint_profile = None;
    let req = td_api::BatchUpdateFederationRelationshipRequest {
        federation_relationships: vec![
            only_url,
            web("missing.org", "https://missing.org"),
            web("other.org", "http://x"),
        ],
        input_mask: Some(pb::FederationRelationshipMask { bundle_endpoint_url: true, ..Default::default() }),
        output_mask: None,
    };
    let resp = s.trust_domains().batch_update_federation_relationship(req).await.unwrap().into_inner();
    let got = statuses(resp.results.iter().map(|r| &r.status));
    assert_eq!(got[0].0, 0, "{got:?}");
    assert_status(&got[1], Code::NotFound, "failed to update federation relationship: ");
    assert_status(
        &got[2],
        Code::InvalidArgument,
        "failed to convert federation relationship: bundle endpoint URL must use the https scheme",
    );
    let updated = resp.results[0].federation_relationship.as_ref().unwrap();
    assert_eq!(updated.bundle_endpoint_url, "https://other.org/v2");
    assert_eq!(updated.bundle_endpoint_profile, Some(Profile::HttpsWeb(pb::HttpsWebProfile {})));

    // Without a mask everything changes, and the bundle is stored.
    let req = td_api::BatchUpdateFederationRelationshipRequest {
        federation_relationships: vec![spiffe(
            "other.org",
            "spiffe://other.org/spire/server",
            Some(federated("other.org")),
        )],
        input_mask: None,
        output_mask: Some(pb::FederationRelationshipMask { bundle_endpoint_profile: true, ..Default::default() }),
    };
    let resp = s.trust_domains().batch_update_federation_relationship(req).await.unwrap().into_inner();
    assert_eq!(resp.results[0].status.as_ref().unwrap().code, 0);
    let updated = resp.results[0].federation_relationship.as_ref().unwrap();
    assert!(matches!(updated.bundle_endpoint_profile, Some(Profile::HttpsSpiffe(_))));
    assert!(updated.bundle_endpoint_url.is_empty(), "output mask");
    let stored = s.ds.fetch_federation_relationship(&TrustDomain::parse("other.org").unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.bundle_endpoint_url, "https://other.org:8443/bundle");
    assert!(s.ds.fetch_bundle(&TrustDomain::parse("other.org").unwrap()).await.unwrap().is_some());
}

#[tokio::test]
async fn delete_relationships() {
    let s = Server::start(true).await;
    create_relationships(&s, vec![spiffe("other.org", "spiffe://other.org/server", Some(federated("other.org")))])
        .await;
    let req = td_api::BatchDeleteFederationRelationshipRequest {
        trust_domains: vec!["spiffe://other.org".into(), "other.org".into(), "".into(), "Bad TD".into()],
    };
    let resp = s.trust_domains().batch_delete_federation_relationship(req).await.unwrap().into_inner();
    let got = statuses(resp.results.iter().map(|r| &r.status));
    assert_eq!(got[0], (0, "OK".to_string()));
    assert_eq!(resp.results[0].trust_domain, "other.org");
    assert_status(&got[1], Code::NotFound, "federation relationship not found");
    assert_status(&got[2], Code::InvalidArgument, "missing trust domain");
    assert_status(&got[3], Code::InvalidArgument, "failed to parse trust domain: ");
    assert_eq!(resp.results[3].trust_domain, "Bad TD");
    // The trust domain's bundle outlives the relationship.
    assert!(s.ds.fetch_bundle(&TrustDomain::parse("other.org").unwrap()).await.unwrap().is_some());
}

#[tokio::test]
async fn refresh_bundle_needs_a_relationship() {
    let s = Server::start(true).await;
    // Nothing listens on port 1: the fetch fails at once, with SPIRE's code and wording.
    create_relationships(&s, vec![web("other.org", "https://127.0.0.1:1/bundle")]).await;
    let refresh = |td: &str| td_api::RefreshBundleRequest { trust_domain: td.into() };
    let err = s.trust_domains().refresh_bundle(refresh("unknown.test")).await.unwrap_err();
    assert_err(err, Code::NotFound, "no relationship with trust domain \"unknown.test\"");
    let err = s.trust_domains().refresh_bundle(refresh("other.org")).await.unwrap_err();
    assert_err(
        err,
        Code::Internal,
        "failed to refresh bundle: failed to fetch federated bundle from endpoint: failed to fetch bundle: Get \"https://127.0.0.1:1/bundle\": ",
    );
    let err = s.trust_domains().refresh_bundle(refresh("")).await.unwrap_err();
    assert_err(err, Code::InvalidArgument, "failed to parse trust domain: ");
}
