//! The CA lifecycle against a real SQLite datastore and disk key manager: first authorities, SPIRE's
//! prepare/activate schedule, bundle publication, restart without re-keying, and an upstream CA.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_datastore::DataStore;
use spire_datastore::{SqlStore, SqliteOptions};
use spire_identity::jwt::validate_jwt_svid;
use spire_identity::x509::{Subject, certs_to_pem, verify_svid};
use spire_identity::{Bundle, BundleSet, JwtAuthority, KeyType, PrivateKey, SpiffeId, TrustDomain};
use spire_server::ca::{Ca, CaManager, CaManagerConfig};
use spire_server::catalog::keymanager::{DiskKeyManager, KeyManager};
use spire_server::catalog::upstreamauthority::{DiskUpstreamAuthority, UpstreamAuthority};

const HOUR: Duration = Duration::from_secs(3600);

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn config() -> CaManagerConfig {
    CaManagerConfig {
        trust_domain: td(),
        ca_key_type: KeyType::EcP256,
        jwt_key_type: KeyType::EcP256,
        ca_ttl: 24 * HOUR,
        ca_subject: Subject::default_ca(),
        disable_jwt_svids: false,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    ds: Arc<dyn DataStore>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ds = SqlStore::open(dir.path().join("datastore.sqlite3").to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap();
        Self { dir, ds: Arc::new(ds) }
    }

    async fn manager(&self, upstream: Option<Arc<dyn UpstreamAuthority>>) -> CaManager {
        let keys: Arc<dyn KeyManager> = Arc::new(DiskKeyManager::open(self.dir.path().join("keys.json")).unwrap());
        let ca = Arc::new(Ca::new(td(), None));
        CaManager::load(config(), keys, upstream, self.ds.clone(), ca).await.unwrap()
    }

    async fn bundle(&self) -> Bundle {
        let stored = self.ds.fetch_bundle(&td()).await.unwrap().expect("own bundle");
        let mut b = Bundle::new(td());
        for a in stored.x509_authorities {
            b.add_x509_authority(a.der).unwrap();
        }
        for k in stored.jwt_authorities {
            b.add_jwt_authority(JwtAuthority {
                key_id: k.key_id,
                public_key_der: k.public_key_der,
                expires_at: k.expires_at,
            })
            .unwrap();
        }
        b.sequence_number = stored.sequence_number;
        b
    }
}

fn workload() -> SpiffeId {
    SpiffeId::parse("spiffe://example.org/workload").unwrap()
}

fn sign(ca: &Ca, now: SystemTime) -> Vec<Vec<u8>> {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    ca.sign_x509_svid(&workload(), &key.public_key_der(), &[], None, HOUR, now).unwrap().chain
}

fn active_id(m: &CaManager) -> String {
    m.ca().active().unwrap().x509.authority_id.clone()
}

#[tokio::test]
async fn first_rotation_creates_signing_authorities_in_the_bundle() {
    let f = Fixture::new().await;
    let m = f.manager(None).await;
    assert!(m.ca().active().is_err(), "nothing signs before the first rotation");
    let now = SystemTime::now();
    m.rotate(now).await.unwrap();

    let bundles: BundleSet = f.bundle().await.into();
    let chain = sign(m.ca(), now);
    assert_eq!(chain.len(), 1, "a self-signed CA is in the bundle, not in the chain");
    verify_svid(&chain, &bundles, now).unwrap();

    let audience = vec!["svc".to_string()];
    let jwt = m.ca().sign_jwt_svid(&workload(), &audience, 300 * Duration::from_secs(1), None, now).unwrap();
    let v = validate_jwt_svid(&jwt.token, &bundles, &["svc"], now).unwrap();
    assert_eq!(v.spiffe_id, workload());
    assert_eq!(jwt.expires_at - jwt.issued_at, 300);
}

#[tokio::test]
async fn prepares_at_half_life_and_activates_at_five_sixths() {
    let f = Fixture::new().await;
    let m = f.manager(None).await;
    let t0 = SystemTime::now();
    m.rotate(t0).await.unwrap();
    let first = active_id(&m);
    let old_svid = sign(m.ca(), t0);
    let seq0 = f.bundle().await.sequence_number;

    m.rotate(t0 + 11 * HOUR).await.unwrap();
    assert_eq!(f.bundle().await.x509_authorities().len(), 1, "nothing prepared before half-life");

    m.rotate(t0 + 12 * HOUR + Duration::from_secs(20)).await.unwrap();
    let bundle = f.bundle().await;
    assert_eq!(bundle.x509_authorities().len(), 2, "the next CA is published when prepared");
    assert_eq!(bundle.jwt_authorities().len(), 2);
    assert!(bundle.sequence_number > seq0, "bundle sequence bumped");
    assert_eq!(active_id(&m), first, "the prepared CA does not sign yet");

    m.rotate(t0 + 20 * HOUR + Duration::from_secs(20)).await.unwrap();
    assert_ne!(active_id(&m), first, "activated at lifetime/6 before expiry");
    let later = t0 + 20 * HOUR + Duration::from_secs(30);
    let bundles: BundleSet = f.bundle().await.into();
    verify_svid(&sign(m.ca(), later), &bundles, later).unwrap();
    // What the old CA signed still verifies: both authorities are in the bundle.
    verify_svid(&old_svid, &bundles, t0 + Duration::from_secs(60)).unwrap();
}

#[tokio::test]
async fn restart_resumes_the_same_authorities() {
    let f = Fixture::new().await;
    let now = SystemTime::now();
    let first = {
        let m = f.manager(None).await;
        m.rotate(now).await.unwrap();
        active_id(&m)
    };
    let m = f.manager(None).await;
    m.rotate(now + Duration::from_secs(10)).await.unwrap();
    assert_eq!(active_id(&m), first);
    assert_eq!(f.bundle().await.x509_authorities().len(), 1, "no new CA minted on restart");
}

#[tokio::test]
async fn upstream_authority_signs_the_ca() {
    let f = Fixture::new().await;
    let root_key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let root = spire_identity::x509::self_signed_ca(
        &spire_identity::x509::CaParams {
            trust_domain: &td(),
            public_key_der: &root_key.public_key_der(),
            subject: Subject::default_ca(),
            now: SystemTime::now(),
            ttl: 48 * HOUR,
        },
        &root_key,
    )
    .unwrap();
    let cert = f.dir.path().join("upstream.crt");
    let key = f.dir.path().join("upstream.key");
    std::fs::write(&cert, certs_to_pem(&[&root])).unwrap();
    std::fs::write(&key, root_key.to_pem()).unwrap();
    let upstream: Arc<dyn UpstreamAuthority> = Arc::new(DiskUpstreamAuthority::new(cert, key, None).unwrap());

    let m = f.manager(Some(upstream)).await;
    let now = SystemTime::now();
    m.rotate(now).await.unwrap();
    let bundle = f.bundle().await;
    assert_eq!(bundle.x509_authorities(), std::slice::from_ref(&root), "the upstream root is the bundle's authority");
    let chain = sign(m.ca(), now);
    assert_eq!(chain.len(), 2, "leaf and our intermediate CA");
    verify_svid(&chain, &bundle.into(), now).unwrap();
}

/// Several servers on one datastore (HA): each mints its own CA with its own keys, both appear in the
/// shared bundle, one rotating does not change what the other signs with, and a restarted server
/// resumes its own authorities, not another's.
#[tokio::test]
async fn servers_sharing_a_datastore_keep_their_own_cas() {
    let f = Fixture::new().await;
    let manager = |name: &'static str| {
        let keys: Arc<dyn KeyManager> =
            Arc::new(DiskKeyManager::open(f.dir.path().join(format!("keys-{name}.json"))).unwrap());
        let (ds, ca) = (f.ds.clone(), Arc::new(Ca::new(td(), None)));
        async move { CaManager::load(config(), keys, None, ds, ca).await.unwrap() }
    };
    let (a, b) = (manager("a").await, manager("b").await);
    let t0 = SystemTime::now();
    a.rotate(t0).await.unwrap();
    b.rotate(t0).await.unwrap();
    let (first_a, first_b) = (active_id(&a), active_id(&b));
    assert_ne!(first_a, first_b, "each server has its own CA");
    let bundle = f.bundle().await;
    assert_eq!(bundle.x509_authorities().len(), 2, "the shared bundle holds both CAs");
    assert_eq!(bundle.jwt_authorities().len(), 2);
    let from_b = sign(b.ca(), t0);
    verify_svid(&sign(a.ca(), t0), &BundleSet::from(bundle.clone()), t0).unwrap();
    verify_svid(&from_b, &BundleSet::from(bundle), t0).unwrap();

    // A prepares and activates its next CA; B, checking at the same moments, keeps its own.
    for t in [t0 + 12 * HOUR + Duration::from_secs(20), t0 + 20 * HOUR + Duration::from_secs(20)] {
        a.rotate(t).await.unwrap();
    }
    b.rotate(t0 + HOUR).await.unwrap();
    assert_ne!(active_id(&a), first_a, "A rotated");
    assert_eq!(active_id(&b), first_b, "B was not disturbed");
    let later = t0 + 20 * HOUR + Duration::from_secs(30);
    let bundles: BundleSet = f.bundle().await.into();
    assert_eq!(f.bundle().await.x509_authorities().len(), 3, "A's old and new CAs and B's");
    verify_svid(&sign(b.ca(), later), &bundles, later).unwrap();
    verify_svid(&sign(a.ca(), later), &bundles, later).unwrap();
    verify_svid(&from_b, &bundles, t0 + Duration::from_secs(60)).unwrap();

    // B restarts: it finds its own journal through its own keys.
    drop(b);
    let b = manager("b").await;
    b.rotate(t0 + HOUR + Duration::from_secs(10)).await.unwrap();
    assert_eq!(active_id(&b), first_b);
    assert_eq!(f.bundle().await.x509_authorities().len(), 3, "no CA minted on B's restart");
}

/// A key manager that never hands its keys out, as an external KeyManager plugin: it answers public
/// keys and signs digests (with real keys, counting the signatures it makes).
#[derive(Debug, Default)]
struct KeepingKeyManager {
    keys: std::sync::Mutex<std::collections::HashMap<String, PrivateKey>>,
    signatures: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug)]
struct CountingSigner {
    key: PrivateKey,
    signatures: Arc<std::sync::atomic::AtomicUsize>,
}

impl spire_identity::RemoteSigner for CountingSigner {
    fn sign_digest(
        &self,
        opts: spire_identity::SignerOpts,
        digest: &[u8],
    ) -> Result<Vec<u8>, spire_identity::RemoteSignError> {
        self.signatures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.key.sign_digest(opts, digest).map_err(spire_identity::RemoteSignError::new)
    }
}

impl KeepingKeyManager {
    fn remote(&self, key: PrivateKey) -> spire_identity::SigningKey {
        let (key_type, public) = (key.key_type(), key.public_key_der());
        let signer = CountingSigner { key, signatures: self.signatures.clone() };
        spire_identity::SigningKey::remote(key_type, public, Arc::new(signer)).unwrap()
    }
}

#[async_trait::async_trait]
impl KeyManager for KeepingKeyManager {
    async fn generate_key(
        &self,
        id: &str,
        key_type: KeyType,
    ) -> Result<spire_identity::SigningKey, spire_server::catalog::keymanager::KeyManagerError> {
        let key = PrivateKey::generate(key_type).unwrap();
        self.keys.lock().unwrap().insert(id.to_owned(), key.clone());
        Ok(self.remote(key))
    }

    async fn get_key(
        &self,
        id: &str,
    ) -> Result<Option<spire_identity::SigningKey>, spire_server::catalog::keymanager::KeyManagerError> {
        let key = self.keys.lock().unwrap().get(id).cloned();
        Ok(key.map(|k| self.remote(k)))
    }
}

/// The CA and JWT keys held by a key manager that only signs (RSA-2048 CA, P-384 JWT key, as the
/// interop test's plugin holds them): self-signed and upstream-signed CAs, X509-SVIDs, downstream CAs
/// and JWT-SVIDs all verify, and every signature came from the key manager.
#[tokio::test]
async fn keys_that_never_leave_the_key_manager_sign_everything() {
    for with_upstream in [false, true] {
        let f = Fixture::new().await;
        let keys = Arc::new(KeepingKeyManager::default());
        let upstream: Option<Arc<dyn UpstreamAuthority>> = with_upstream.then(|| {
            let root_key = PrivateKey::generate(KeyType::EcP256).unwrap();
            let root = spire_identity::x509::self_signed_ca(
                &spire_identity::x509::CaParams {
                    trust_domain: &td(),
                    public_key_der: &root_key.public_key_der(),
                    subject: Subject::default_ca(),
                    now: SystemTime::now(),
                    ttl: 48 * HOUR,
                },
                &root_key,
            )
            .unwrap();
            let (cert, key) = (f.dir.path().join("upstream.crt"), f.dir.path().join("upstream.key"));
            std::fs::write(&cert, certs_to_pem(&[&root])).unwrap();
            std::fs::write(&key, root_key.to_pem()).unwrap();
            Arc::new(DiskUpstreamAuthority::new(cert, key, None).unwrap()) as Arc<dyn UpstreamAuthority>
        });
        let cfg = CaManagerConfig { ca_key_type: KeyType::Rsa2048, jwt_key_type: KeyType::EcP384, ..config() };
        let ca = Arc::new(Ca::new(td(), None));
        let m = CaManager::load(cfg, keys.clone(), upstream, f.ds.clone(), ca).await.unwrap();
        let now = SystemTime::now();
        m.rotate(now).await.unwrap();
        let before = keys.signatures.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(before, 1, "the key manager signed the self-signed CA or the upstream CSR");

        let bundles: BundleSet = f.bundle().await.into();
        verify_svid(&sign(m.ca(), now), &bundles, now).unwrap();
        let downstream_key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let downstream = m.ca().sign_downstream_ca(&downstream_key.public_key_der(), HOUR, now).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&downstream[0]).unwrap();
        assert!(cert.is_ca());
        let audience = vec!["svc".to_string()];
        let jwt = m.ca().sign_jwt_svid(&workload(), &audience, Duration::from_secs(300), None, now).unwrap();
        assert!(jwt.token.starts_with("eyJ"), "a JWS");
        let v = validate_jwt_svid(&jwt.token, &bundles, &["svc"], now).unwrap();
        assert_eq!(v.spiffe_id, workload());
        assert_eq!(keys.signatures.load(std::sync::atomic::Ordering::SeqCst), before + 3);

        // A restart finds the same authorities through the key manager's public keys.
        let first = active_id(&m);
        let m =
            CaManager::load(config(), keys.clone(), None, f.ds.clone(), Arc::new(Ca::new(td(), None))).await.unwrap();
        m.rotate(now + Duration::from_secs(10)).await.unwrap();
        assert_eq!(active_id(&m), first);
    }
}
