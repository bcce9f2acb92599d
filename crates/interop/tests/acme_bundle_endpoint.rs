//! The real `spire-server` serving its bundle endpoint with `profile "https_web" { acme {...} }`,
//! its certificate obtained from pebble (Let's Encrypt's ACME test CA, a real ACME server built from
//! the Go module proxy by `scripts/install-peers.sh pebble`). Pebble validates the tls-alpn-01
//! challenge by connecting to the bundle endpoint's own port (its `tlsPort`) for `localhost`, which
//! the system resolver maps to 127.0.0.1: no DNS server and no always-valid shortcut. The server
//! trusts pebble's directory through `SSL_CERT_FILE` (pebble's test root); the clients trust only the
//! root pebble issues from (its management `/roots/0`), so a served certificate that verifies for
//! `localhost` was issued by pebble for the domain.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use spire_testkit::peers;
use spire_testkit::process::{free_port, server_conf};
use tokio::net::{TcpStream, UnixStream};

/// A running pebble whose tls-alpn-01 validations connect to `tls_port`.
struct Pebble {
    child: Child,
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
    /// pebble's own test root, which its HTTPS certificate chains to.
    minica: PathBuf,
}

impl Pebble {
    /// Starts pebble issuing certificates valid `validity` seconds (pebble's default: 90 days).
    async fn start(binary: &Path, tls_port: u16, validity: Option<u64>) -> Self {
        let certs = std::fs::canonicalize(binary).unwrap().parent().unwrap().join("certs");
        let dir = tempfile::tempdir().unwrap();
        let (acme_port, management_port) = (free_port(), free_port());
        let mut config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": certs.join("localhost/cert.pem"),
            "privateKey": certs.join("localhost/key.pem"),
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "keyAlgorithm": "ecdsa",
        }});
        if let Some(seconds) = validity {
            config["pebble"]["profiles"] = serde_json::json!({ "default": { "validityPeriod": seconds } });
        }
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let child = Command::new(binary)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            // No random validation delays, no deliberately rejected nonces: the test is about the
            // protocol, not about retries.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pebble");
        let pebble = Self { child, dir, acme_port, management_port, minica: certs.join("pebble.minica.pem") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while pebble.get(&pebble.directory_url()).is_err() || pebble.get(&pebble.root_url()).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start: {}", pebble.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pebble
    }

    fn directory_url(&self) -> String {
        format!("https://localhost:{}/dir", self.acme_port)
    }

    fn root_url(&self) -> String {
        format!("https://localhost:{}/roots/0", self.management_port)
    }

    /// `curl` of one of pebble's URLs (its HTTPS certificate chains to `minica`).
    fn get(&self, url: &str) -> Result<String, String> {
        let out =
            Command::new("curl").args(["-sSf", "--max-time", "10", "--cacert"]).arg(&self.minica).arg(url).output();
        let out = out.expect("run curl");
        match out.status.success() {
            true => Ok(String::from_utf8(out.stdout).unwrap()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// The root pebble issues from, written to a file.
    fn issuing_root(&self) -> PathBuf {
        let path = self.dir.path().join("issuing-root.pem");
        std::fs::write(&path, self.get(&self.root_url()).unwrap()).unwrap();
        path
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// How many orders pebble was asked for.
    fn orders(&self) -> usize {
        self.log().matches("POST /order-plz").count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our `spire-server run` with `SSL_CERT_FILE` pointing at pebble's test root (the testkit's
/// `TestServer` passes no environment of its own).
struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(bundle_port: u16, acme: &str, ssl_cert_file: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(
            "federation {{\n bundle_endpoint {{\n address = \"127.0.0.1\"\n port = {bundle_port}\n \
             profile \"https_web\" {{\n acme {{\n {acme}\n }}\n }}\n }}\n }}"
        );
        std::fs::write(dir.path().join("server.conf"), server_conf(dir.path(), free_port(), &extra)).unwrap();
        let mut server = Self { child: None, dir };
        server.spawn(ssl_cert_file).await;
        server
    }

    async fn spawn(&mut self, ssl_cert_file: &Path) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(peers::workspace_binary("spire-server"))
            .args(["run", "-config"])
            .arg(self.dir.path().join("server.conf"))
            .env("SSL_CERT_FILE", ssl_cert_file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start spire-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(self.dir.path().join("api.sock")).await.is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
            assert!(exited.is_none(), "spire-server exited with {exited:?}: {}", self.log());
            assert!(Instant::now() < deadline, "spire-server did not start: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TLS handshake with `localhost:port` trusting only `root`: the served chain, or the failure.
async fn handshake(port: u16, root: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(root).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.peer_certificates().unwrap_or_default().to_vec())
}

/// Polls [`handshake`] until it succeeds.
async fn served_chain(port: u16, root: &Path, server: &Server, pebble: &Pebble) -> Vec<CertificateDer<'static>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match handshake(port, root).await {
            Ok(chain) => return chain,
            Err(e) if Instant::now() > deadline => {
                panic!("no certificate from pebble served: {e}\nserver:\n{}\npebble:\n{}", server.log(), pebble.log())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// `curl` of the bundle endpoint trusting only `root`.
fn curl_bundle(port: u16, root: &Path) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sSf", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg(format!("https://localhost:{port}/"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn acme_block(pebble: &Pebble, tos_accepted: bool) -> String {
    format!(
        "directory_url = \"{}\"\n domain_name = \"localhost\"\n email = \"admin@example.org\"\n \
         tos_accepted = {tos_accepted}",
        pebble.directory_url()
    )
}

#[tokio::test]
async fn serves_a_pebble_certificate_and_reuses_it_after_a_restart() {
    let Some(pebble_bin) = peers::require("pebble") else { return };
    let port = free_port();
    let pebble = Pebble::start(&pebble_bin, port, None).await;
    let mut server = Server::start(port, &acme_block(&pebble, true), &pebble.minica).await;
    let root = pebble.issuing_root();

    // Verified against pebble's issuing root for the name `localhost`: issued by pebble for the domain.
    let chain = served_chain(port, &root, &server, &pebble).await;
    assert!(chain.len() >= 2, "leaf and pebble's intermediate: {}", chain.len());
    assert_eq!(pebble.orders(), 1, "{}", pebble.log());
    let log = server.log();
    assert!(log.contains("ACME Terms of Service accepted") && log.contains("obtained an ACME certificate"), "{log}");
    let bundle = curl_bundle(port, &root);
    assert!(bundle["keys"].as_array().is_some_and(|k| !k.is_empty()), "{bundle}");
    assert!(bundle["spiffe_sequence"].as_u64().is_some(), "{bundle}");
    // The account and certificate are cached privately under <data_dir>/bundle-acme.
    let cache = server.dir.path().join("data/bundle-acme");
    for file in ["acme_account.json", "localhost"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }

    // A restart serves the cached certificate at once: no new order.
    server.stop();
    server.spawn(&pebble.minica).await;
    let again = served_chain(port, &root, &server, &pebble).await;
    assert_eq!(again[0], chain[0], "the cached certificate is served");
    assert_eq!(pebble.orders(), 1, "no new order: {}", pebble.log());
    assert!(server.log().contains("using the cached ACME certificate"), "{}", server.log());
    curl_bundle(port, &root);
}

/// As SPIRE's: a warning naming `tos_accepted` at start, then the CA refuses the account, so no
/// certificate is served (the server itself keeps running).
#[tokio::test]
async fn terms_of_service_not_accepted_gets_no_certificate() {
    let Some(pebble_bin) = peers::require("pebble") else { return };
    let port = free_port();
    let pebble = Pebble::start(&pebble_bin, port, None).await;
    let mut server = Server::start(port, &acme_block(&pebble, false), &pebble.minica).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log().contains("failed to obtain an ACME certificate") {
        assert!(Instant::now() < deadline, "no failure logged: {}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.log();
    assert!(log.contains("ACME Terms of Service have not been accepted. See the `tos_accepted` configurable"), "{log}");
    assert!(log.contains("did not agree to the terms of service"), "pebble's refusal is logged: {log}");
    assert!(handshake(port, &pebble.issuing_root()).await.is_err(), "no certificate is served");
    assert_eq!(pebble.orders(), 0);
    assert!(server.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the server keeps running");
    server.stop();
}

/// A certificate is renewed before it expires (pebble issues for 6 s here, so renewal is due a
/// third of the lifetime before its end) and the renewed one is served.
#[tokio::test]
async fn renews_before_expiry() {
    let Some(pebble_bin) = peers::require("pebble") else { return };
    let port = free_port();
    let pebble = Pebble::start(&pebble_bin, port, Some(6)).await;
    let server = Server::start(port, &acme_block(&pebble, true), &pebble.minica).await;
    let root = pebble.issuing_root();
    let first = served_chain(port, &root, &server, &pebble).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(chain) = handshake(port, &root).await
            && chain[0] != first[0]
        {
            break;
        }
        assert!(Instant::now() < deadline, "not renewed: {}\n{}", server.log(), pebble.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pebble.orders() >= 2, "{}", pebble.log());
    assert!(!server.log().contains("failed to obtain"), "{}", server.log());
}
