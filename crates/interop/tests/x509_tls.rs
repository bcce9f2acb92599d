//! X509-SVIDs in a real TLS handshake judged by spiffe-rustls, whose trust material comes from
//! rust-spiffe's `X509Source` fetching it over the Workload API. The good chain the identity core
//! issues is accepted; every chain-level rule of the conformance table (authority, signature,
//! validity, trust domain, path length, EKU...) is rejected.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use spire_identity::{KeyType, PrivateKey};
use spire_testkit::pki::Pki;
use spire_testkit::workload_api::{StaticIdentity, serve_static_workload_api};
use spire_testkit::x509_cases::broken_x509_svids;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Presents `chain` from a TLS server on loopback and returns whether the spiffe-rustls client
/// completed the handshake (`Err` with its reason otherwise).
async fn handshake(client: Arc<rustls::ClientConfig>, chain: &[Vec<u8>], key: &PrivateKey) -> Result<(), String> {
    let certs: Vec<CertificateDer<'static>> = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server refused the chain: {e}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let accept = tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("example.org").expect("valid name");
    let result = TlsConnector::from(client).connect(name, tcp).await.map(|_| ()).map_err(|e| e.to_string());
    accept.abort();
    result
}

#[tokio::test]
async fn spiffe_rustls_accepts_issued_chains_and_rejects_chain_level_breaks() {
    let pki = Pki::new(KeyType::EcP256);
    let (client_chain, client_key) = pki.leaf("spiffe://example.org/client", &[]);
    let dir = tempfile::tempdir().unwrap();
    let socket = serve_static_workload_api(
        StaticIdentity {
            spiffe_id: "spiffe://example.org/client".into(),
            chain: client_chain,
            key: client_key,
            trust_domain_id: "spiffe://example.org".into(),
            authorities: vec![pki.root.cert_der().to_vec()],
        },
        dir.path(),
    )
    .unwrap();
    let source = spiffe::X509Source::builder().endpoint(format!("unix:{}", socket.display())).build().await.unwrap();
    let client = Arc::new(spiffe_rustls::mtls_client(source).build().unwrap());

    let (good, good_key) = pki.leaf("spiffe://example.org/server", &["server.example.org".into()]);
    handshake(client.clone(), &good, &good_key).await.expect("the chain the identity core issues is accepted");

    let mut failures = Vec::new();
    let mut checked = 0;
    for case in broken_x509_svids(&pki) {
        let Some(expect_reject) = case.tls_rejects else { continue };
        checked += 1;
        match (expect_reject, handshake(client.clone(), &case.chain, &case.key).await) {
            (true, Ok(())) => failures.push(format!("{}: spiffe-rustls accepted it", case.rule)),
            (false, Err(e)) => failures.push(format!("{}: spiffe-rustls rejects ({e}); mark it so", case.rule)),
            _ => {}
        }
    }
    assert!(checked >= 20, "only {checked} cases ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
