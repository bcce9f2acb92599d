//! BatchNewX509SVID throughput on one core, beside the raw aws-lc rate of what it must do at minimum
//! for each SVID (verify the CSR's signature, sign a certificate), measured in the same run.
//!
//! The handler runs in-process on a current-thread runtime with a real SQLite datastore, the real CA
//! and the authorized-entry index; the request is decoded from and the response encoded to protobuf
//! bytes, so only the HTTP/2 framing of a real call is left out.
//! Run: `cargo bench -p spire-server --bench batch_new_x509_svid`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey};
use prost::Message;
use spire_datastore::{DataStore, RegistrationEntry, SqlStore, SqliteOptions};
use spire_identity::x509::Subject;
use spire_identity::{KeyType, PrivateKey, Selector, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::svid::v1::svid_server::Svid;
use spire_proto::spire::api::server::svid::v1::{BatchNewX509svidRequest, NewX509svidParams};
use spire_server::api::caller::{Caller, PeerInfo};
use spire_server::api::svid::SvidService;
use spire_server::api::{ServerContext, Settings};
use spire_server::ca::{Ca, CaManager, CaManagerConfig};
use spire_server::catalog::keymanager::{KeyManager, MemoryKeyManager};
use x509_parser::prelude::FromDer;

const BATCH: usize = 50;
const ROUNDS: usize = 40;

fn csr(key: &PrivateKey) -> Vec<u8> {
    let rk = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der()),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )
    .unwrap();
    rcgen::CertificateParams::default().serialize_request(&rk).unwrap().der().to_vec()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.sqlite3");
        let ds: Arc<dyn DataStore> =
            Arc::new(SqlStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
        let td = TrustDomain::parse("example.org").unwrap();
        let ca = Arc::new(Ca::new(td.clone(), None));
        let keys: Arc<dyn KeyManager> = Arc::new(MemoryKeyManager::new());
        let cfg = CaManagerConfig {
            trust_domain: td.clone(),
            ca_key_type: KeyType::EcP256,
            jwt_key_type: KeyType::EcP256,
            ca_ttl: Duration::from_secs(24 * 3600),
            ca_subject: Subject::default_ca(),
            disable_jwt_svids: false,
        };
        CaManager::load(cfg, keys, None, ds.clone(), ca.clone())
            .await
            .unwrap()
            .rotate(SystemTime::now())
            .await
            .unwrap();
        let ctx = Arc::new(ServerContext::new(td, ds.clone(), ca, Settings::default()));
        let agent = SpiffeId::parse("spiffe://example.org/spire/agent/join_token/bench").unwrap();
        let mut entry = RegistrationEntry::new(
            SpiffeId::parse("spiffe://example.org/workload").unwrap(),
            agent.clone(),
            [Selector::parse("unix:uid:1000").unwrap()],
        );
        entry.dns_names = vec!["workload.example.org".into()];
        let entry = ds.create_entry(entry).await.unwrap();
        ctx.load_index().await.unwrap();
        let service = SvidService::new(ctx);
        let caller =
            Caller { agent: true, peer: PeerInfo { id: Some(agent), ..PeerInfo::default() }, ..Caller::default() };

        let keys: Vec<PrivateKey> = (0..BATCH).map(|_| PrivateKey::generate(KeyType::EcP256).unwrap()).collect();
        let csrs: Vec<Vec<u8>> = keys.iter().map(csr).collect();
        let request = BatchNewX509svidRequest {
            params: csrs.iter().map(|c| NewX509svidParams { entry_id: entry.id.clone(), csr: c.clone() }).collect(),
        }
        .encode_to_vec();

        // Raw floor: for each CSR, verify its signature and make one ECDSA P-256 signature over a
        // certificate-sized message with the CA key.
        let ca_key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let parsed: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = csrs
            .iter()
            .map(|der| {
                let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(der).unwrap();
                let tbs = req.certification_request_info.raw.to_vec();
                let spki = req.certification_request_info.subject_pki.subject_public_key.data.to_vec();
                (tbs, spki, req.signature_value.data.to_vec())
            })
            .collect();
        let tbs_cert = vec![0x5au8; 480];

        let mut raw_rates = Vec::new();
        let mut api_rates = Vec::new();
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for (tbs, spki, sig) in &parsed {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki).verify(tbs, sig).unwrap();
                black_box(ca_key.sign(&rng, &tbs_cert).unwrap());
            }
            raw_rates.push(BATCH as f64 / t.elapsed().as_secs_f64());

            let t = Instant::now();
            let decoded = BatchNewX509svidRequest::decode(request.as_slice()).unwrap();
            let mut req = tonic::Request::new(decoded);
            req.extensions_mut().insert(caller.clone());
            let resp = service.batch_new_x509svid(req).await.unwrap().into_inner();
            black_box(resp.encode_to_vec());
            api_rates.push(BATCH as f64 / t.elapsed().as_secs_f64());
            assert!(resp.results.iter().all(|r| r.status.as_ref().is_some_and(|s| s.code == 0)));
        }
        let (raw, api) = (median(raw_rates), median(api_rates));
        println!("BatchNewX509SVID, batches of {BATCH}, {ROUNDS} rounds, one core (EC P-256 CA and workload keys)");
        println!("  raw aws-lc CSR verify + sign: median {raw:.0} per second");
        println!("  BatchNewX509SVID handler:     median {api:.0} SVIDs per second");
        println!("  ratio: {:.0}% of the raw rate", 100.0 * api / raw);
    });
}
