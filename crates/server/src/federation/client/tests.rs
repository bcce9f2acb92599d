//! The bundle client against real HTTPS endpoints started in-process: our own bundle endpoint (a
//! whole foreign server from `run::start`, `https_spiffe` and `https_web`) and, for answers our
//! endpoint never gives (malformed documents, errors), a bare TLS listener.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spire_config::ServerConfig;
use spire_datastore::{BundleEndpointProfile, DataStore, JwtKey, SqlStore, SqliteOptions, StoredBundle};
use spire_identity::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::trustdomain::v1 as api;
use spire_proto::spire::api::server::trustdomain::v1::trust_domain_server::TrustDomain as _;
use spire_proto::spire::api::types as pb;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fetch::decode;
use super::updater::stored_form;
use super::{Endpoint, Manager, Timing};
use crate::api::trustdomain::TrustDomainService;
use crate::api::{ServerContext, Settings};
use crate::ca::Ca;

const FOREIGN: &str = "foreign.test";
const LOCAL: &str = "local.test";

fn td(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test CA and a `localhost`/127.0.0.1 server certificate it signed, as files and DER.
struct WebPki {
    ca_der: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
    chain_pem: String,
    key_pem: String,
}

impl WebPki {
    fn new() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("test web CA {}", uuid::Uuid::new_v4()));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        Self {
            ca_der: ca.der().clone(),
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key_der: leaf_key.serialize_der(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        Arc::new(roots)
    }

    /// Writes the serving pair for a `serving_cert_file` profile.
    fn write(&self, dir: &std::path::Path) -> (String, String) {
        let (cert, key) = (dir.join("web.pem"), dir.join("web.key"));
        std::fs::write(&cert, &self.chain_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert.display().to_string(), key.display().to_string())
    }
}

/// A whole foreign server (our own) serving its bundle with a 1 s refresh hint.
struct Foreign {
    server: Option<crate::run::Server>,
    url: String,
    _dir: TempDir,
}

impl Foreign {
    /// `profile` is the bundle endpoint's profile block; `web` gives `https_web` its certificate.
    async fn start(trust_domain: &str, web: Option<&WebPki>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let profile = match web {
            None => "profile \"https_spiffe\" {}".to_owned(),
            Some(pki) => {
                let (cert, key) = pki.write(dir.path());
                format!(
                    "profile \"https_web\" {{ serving_cert_file {{ cert_file_path = \"{cert}\" key_file_path = \"{key}\" }} }}"
                )
            }
        };
        let port = free_port();
        let text = format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{api}"
    socket_path = "{d}/api.sock"
    trust_domain = "{trust_domain}"
    data_dir = "{d}"
    federation {{
        bundle_endpoint {{
            address = "127.0.0.1"
            port = {port}
            refresh_hint = "1s"
            {profile}
        }}
    }}
}}
plugins {{
    DataStore "sql" {{ plugin_data {{ database_type = "sqlite3" connection_string = "{d}/ds.sqlite3" }} }}
    KeyManager "memory" {{}}
}}
"#,
            api = free_port(),
        );
        let config = ServerConfig::from_str(&text, false).unwrap();
        let server = crate::run::start(&config, Arc::new(|_| Ok(()))).await.unwrap();
        let host = if web.is_some() { "localhost" } else { "127.0.0.1" };
        Self { server: Some(server), url: format!("https://{host}:{port}"), _dir: dir }
    }

    fn ds(&self) -> Arc<dyn DataStore> {
        self.server.as_ref().unwrap().ctx.ds.clone()
    }

    async fn bundle(&self) -> StoredBundle {
        self.ds().fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap()
    }

    /// What a federated server stores of this bundle: the authorities, the 1 s hint, sequence 0.
    async fn expected(&self) -> StoredBundle {
        let served = crate::server_svid::identity_bundle(&self.bundle().await);
        let mut expected = stored_form(&served);
        expected.refresh_hint = 1;
        expected
    }

    /// Adds a JWT authority, as a CA rotation would.
    async fn add_jwt_key(&self, kid: &str) {
        let mut bundle = self.bundle().await;
        let key = rcgen::KeyPair::generate().unwrap();
        bundle.jwt_authorities.push(JwtKey {
            key_id: kid.into(),
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&key),
            expires_at: 0,
            tainted: false,
        });
        self.ds().set_bundle(bundle).await.unwrap();
    }

    fn spiffe_endpoint(&self, id: &str) -> Endpoint {
        let endpoint_spiffe_id = SpiffeId::parse(id).unwrap();
        Endpoint { url: self.url.clone(), profile: BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            tokio::spawn(server.shutdown());
        }
    }
}

async fn local_ds(dir: &TempDir) -> Arc<dyn DataStore> {
    let path = dir.path().join("local.sqlite3");
    Arc::new(SqlStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap())
}

fn fast() -> Timing {
    Timing { minimum_refresh_hint: Duration::from_millis(100), config_refresh_interval: Duration::from_millis(200) }
}

/// Polls `ds` until `trust_domain`'s bundle satisfies `done` (10 s at most).
async fn wait_for(ds: &Arc<dyn DataStore>, trust_domain: &str, what: &str, done: impl Fn(&StoredBundle) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bundle = ds.fetch_bundle(&td(trust_domain)).await.unwrap();
        if bundle.as_ref().is_some_and(&done) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {bundle:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The foreign bundle as an operator bootstraps it with `bundle set` (no hint, so it differs).
async fn bootstrap(local: &Arc<dyn DataStore>, foreign: &Foreign) -> StoredBundle {
    let mut bundle = foreign.bundle().await;
    bundle.refresh_hint = 0;
    bundle.sequence_number = 0;
    local.set_bundle(bundle.clone()).await.unwrap();
    bundle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_spiffe_first_fetch_then_changes_after_the_refresh_hint() {
    let foreign = Foreign::start(FOREIGN, None).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    bootstrap(&local, &foreign).await;
    let configured = HashMap::from([(td(FOREIGN), foreign.spiffe_endpoint("spiffe://foreign.test/spire/server"))]);
    let manager = Arc::new(Manager::new(td(LOCAL), local.clone()).with_configured(configured).with_timing(fast()));
    let task = manager.spawn();

    let expected = foreign.expected().await;
    wait_for(&local, FOREIGN, "first fetch", |b| *b == expected).await;
    assert_eq!(manager.managed(), [td(FOREIGN)]);

    // The foreign CA adds a key; the next poll (1 s hint / 4) stores it.
    foreign.add_jwt_key("rotated").await;
    wait_for(&local, FOREIGN, "change after the hint", |b| b.jwt_authorities.iter().any(|k| k.key_id == "rotated"))
        .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rpc_fetches_now_and_says_not_found_without_a_relationship() {
    let foreign = Foreign::start(FOREIGN, None).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    let bootstrapped = bootstrap(&local, &foreign).await;
    // Slow timings: only the RPC can make the changes below appear.
    let slow =
        Timing { minimum_refresh_hint: Duration::from_secs(3600), config_refresh_interval: Duration::from_secs(3600) };
    let manager = Arc::new(Manager::new(td(LOCAL), local.clone()).with_timing(slow));
    let ctx = ServerContext::new(td(LOCAL), local.clone(), Arc::new(Ca::new(td(LOCAL), None)), Settings::default())
        .with_bundle_client(manager.clone());
    let service = TrustDomainService::new(Arc::new(ctx));
    let refresh = |name: &str| {
        let service = service.clone();
        let request = tonic::Request::new(api::RefreshBundleRequest { trust_domain: name.into() });
        async move { service.refresh_bundle(request).await }
    };

    let status = refresh(FOREIGN).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no relationship with trust domain \"foreign.test\"");

    // `federation create`, as the CLI sends it.
    let relationship = pb::FederationRelationship {
        trust_domain: FOREIGN.into(),
        bundle_endpoint_url: foreign.url.clone(),
        bundle_endpoint_profile: Some(pb::federation_relationship::BundleEndpointProfile::HttpsSpiffe(
            pb::HttpsspiffeProfile { endpoint_spiffe_id: "spiffe://foreign.test/spire/server".into() },
        )),
        trust_domain_bundle: None,
    };
    let created = service
        .batch_create_federation_relationship(tonic::Request::new(api::BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![relationship],
            output_mask: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.results[0].status.as_ref().unwrap().code, 0);

    refresh(FOREIGN).await.unwrap();
    assert_eq!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap(), foreign.expected().await);
    assert_ne!(foreign.expected().await, bootstrapped);

    foreign.add_jwt_key("now").await;
    refresh(FOREIGN).await.unwrap();
    assert_eq!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap(), foreign.expected().await);

    // Deleted: no longer managed.
    let deleted = service
        .batch_delete_federation_relationship(tonic::Request::new(api::BatchDeleteFederationRelationshipRequest {
            trust_domains: vec![FOREIGN.into()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.results[0].status.as_ref().unwrap().code, 0);
    assert_eq!(refresh(FOREIGN).await.unwrap_err().code(), tonic::Code::NotFound);
    assert!(manager.managed().is_empty());
}

/// One refresh of `endpoint` for `trust_domain` through a fresh manager: its error text.
async fn refresh_error(
    local: &Arc<dyn DataStore>,
    trust_domain: &str,
    endpoint: Endpoint,
    roots: Option<Arc<RootCertStore>>,
) -> String {
    let slow =
        Timing { minimum_refresh_hint: Duration::from_secs(3600), config_refresh_interval: Duration::from_secs(3600) };
    let mut manager = Manager::new(td(LOCAL), local.clone())
        .with_timing(slow)
        .with_configured(HashMap::from([(td(trust_domain), endpoint)]));
    if let Some(roots) = roots {
        manager = manager.with_web_roots(roots);
    }
    let err = manager.refresh_bundle_for(&td(trust_domain)).await.expect_err("the refresh fails");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_endpoint_id_and_untrusted_chain_are_refused_and_the_old_bundle_kept() {
    let foreign = Foreign::start(FOREIGN, None).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    let bootstrapped = bootstrap(&local, &foreign).await;

    let wrong_id = foreign.spiffe_endpoint("spiffe://foreign.test/not-the-server");
    let message = refresh_error(&local, FOREIGN, wrong_id, None).await;
    assert!(
        message.starts_with("failed to fetch federated bundle from endpoint: failed to fetch bundle: Get "),
        "{message}"
    );
    assert!(message.contains("unexpected ID \"spiffe://foreign.test/spire/server\""), "{message}");
    assert_eq!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap(), bootstrapped);

    // Bootstrapped with another CA's bundle: the endpoint's chain leads nowhere we trust.
    let mut other = bootstrapped.clone();
    other.x509_authorities =
        vec![spire_datastore::X509Authority { der: WebPki::new().ca_der.to_vec(), tainted: false }];
    local.set_bundle(other.clone()).await.unwrap();
    let message =
        refresh_error(&local, FOREIGN, foreign.spiffe_endpoint("spiffe://foreign.test/spire/server"), None).await;
    assert!(message.contains("x509svid: could not verify leaf certificate"), "{message}");
    assert_eq!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap(), other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_spiffe_without_a_bootstrap_bundle_says_so() {
    let foreign = Foreign::start(FOREIGN, None).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    let endpoint = foreign.spiffe_endpoint("spiffe://foreign.test/spire/server");
    let message = refresh_error(&local, FOREIGN, endpoint, None).await;
    assert_eq!(message, "can't perform SPIFFE Authentication: local copy of bundle not found");
    assert!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_web_trusted_roots_fetch_and_untrusted_ones_are_refused() {
    let pki = WebPki::new();
    let foreign = Foreign::start(FOREIGN, Some(&pki)).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    let web = Endpoint { url: foreign.url.clone(), profile: BundleEndpointProfile::HttpsWeb };

    // Roots of another CA: refused, nothing stored.
    let message = refresh_error(&local, FOREIGN, web.clone(), Some(WebPki::new().roots())).await;
    assert!(message.contains("failed to fetch bundle: Get \"https://localhost:"), "{message}");
    assert!(message.contains("invalid peer certificate: UnknownIssuer"), "{message}");
    assert!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().is_none());

    // The right roots: stored, and no bootstrap was needed.
    let manager = Manager::new(td(LOCAL), local.clone())
        .with_web_roots(pki.roots())
        .with_configured(HashMap::from([(td(FOREIGN), web.clone())]));
    assert!(manager.refresh_bundle_for(&td(FOREIGN)).await.unwrap());
    let stored = local.fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap();
    assert_eq!(stored, foreign.expected().await);

    // Untrusted again: refused, the stored bundle kept.
    let message = refresh_error(&local, FOREIGN, web, Some(WebPki::new().roots())).await;
    assert!(message.starts_with("failed to fetch federated bundle from endpoint:"), "{message}");
    assert_eq!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().unwrap(), stored);
}

/// A bare HTTPS listener answering every request with the current `(status, body)`.
struct Canned {
    answer: Arc<Mutex<(u16, String)>>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Canned {
    async fn start(pki: &WebPki) -> Self {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone()));
        let tls = rustls::ServerConfig::builder_with_provider(spire_tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}/bundle", listener.local_addr().unwrap().port());
        let answer = Arc::new(Mutex::new((200, String::new())));
        let shared = answer.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, body) = shared.lock().unwrap().clone();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nLocation: \
                         /bundle\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(body.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { answer, url, task }
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bundles_errors_and_other_trust_domains_are_refused() {
    let pki = WebPki::new();
    let canned = Canned::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    let web = Endpoint { url: canned.url.clone(), profile: BundleEndpointProfile::HttpsWeb };
    let attempt = |status: u16, body: &str| {
        canned.answer(status, body);
        refresh_error(&local, FOREIGN, web.clone(), Some(pki.roots()))
    };

    let message = attempt(200, "{\"keys\": [").await;
    assert!(
        message.starts_with("failed to fetch federated bundle from endpoint: failed to decode bundle: "),
        "{message}"
    );
    let message = attempt(200, r#"{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AAAA"]}]}"#).await;
    assert!(message.contains("x509-svid key 0"), "{message}");
    let message = attempt(500, "boom").await;
    assert_eq!(message, "failed to fetch federated bundle from endpoint: unexpected status 500 fetching bundle: boom");
    // A redirect to itself: followed ten times, as Go's client, then given up.
    let message = attempt(302, "").await;
    assert!(message.ends_with("stopped after 10 redirects"), "{message}");

    // A real bundle, but of another trust domain (its CA names spiffe://other.test).
    let other = Foreign::start("other.test", None).await;
    let document =
        crate::server_svid::identity_bundle(&other.ds().fetch_bundle(&td("other.test")).await.unwrap().unwrap())
            .to_spiffe_json();
    let message = attempt(200, &document).await;
    assert!(message.contains("is a CA of trust domain \"other.test\", not of \"foreign.test\""), "{message}");
    assert!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().is_none(), "nothing stored");

    // The same document fetched for its own trust domain is fine.
    assert_eq!(decode(&td("other.test"), document.as_bytes()).unwrap().trust_domain(), &td("other.test"));
}

#[tokio::test]
async fn configuration_overrides_the_datastore_and_our_own_trust_domain_is_never_managed() {
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    // LOCAL's row is one other software wrote into a shared datastore (our API refuses it).
    for name in ["both.test", "stored.test", LOCAL] {
        local
            .create_federation_relationship(spire_datastore::FederationRelationship {
                trust_domain: td(name),
                bundle_endpoint_url: format!("https://{name}/stored"),
                profile: BundleEndpointProfile::HttpsWeb,
            })
            .await
            .unwrap();
    }
    let configured = HashMap::from([
        (
            td("both.test"),
            Endpoint { url: "https://both.test/configured".into(), profile: BundleEndpointProfile::HttpsWeb },
        ),
        (td("config.test"), Endpoint { url: "https://config.test/".into(), profile: BundleEndpointProfile::HttpsWeb }),
    ]);
    let manager = Manager::new(td(LOCAL), local).with_configured(configured);
    let merged = manager.sources().await.unwrap();
    assert_eq!(merged.len(), 3);
    assert!(!merged.contains_key(&td(LOCAL)));
    assert_eq!(merged[&td("both.test")].url, "https://both.test/configured");
    assert_eq!(merged[&td("stored.test")].url, "https://stored.test/stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_web_on_an_spiffe_endpoint_suggests_https_spiffe() {
    let foreign = Foreign::start(FOREIGN, None).await;
    let dir = tempfile::tempdir().unwrap();
    let local = local_ds(&dir).await;
    // Even trusting the foreign CA, the SVID names no host: SPIRE's hint names its SPIFFE ID.
    let mut roots = RootCertStore::empty();
    for authority in foreign.bundle().await.x509_authorities {
        roots.add(CertificateDer::from(authority.der)).unwrap();
    }
    let web = Endpoint { url: foreign.url.clone(), profile: BundleEndpointProfile::HttpsWeb };
    let message = refresh_error(&local, FOREIGN, web, Some(Arc::new(roots))).await;
    assert!(
        message.contains(
            "failed to authenticate bundle endpoint using web authentication but the server certificate contains \
             SPIFFE ID \"spiffe://foreign.test/spire/server\": maybe use https_spiffe instead of https_web"
        ),
        "{message}"
    );
    assert!(local.fetch_bundle(&td(FOREIGN)).await.unwrap().is_none());
}
