//! The real `spire-server` serving its bundle on `server.federation.bundle_endpoint`, fetched by
//! clients we did not write the TLS or HTTP of: `curl` for `https_web` (with certificates made by
//! `openssl`, replaced while the server runs), and a rustls client that authenticates the
//! `https_spiffe` endpoint as a federated SPIRE server does, by the chain to the bundle from
//! `spire-server bundle show` and the SPIFFE ID `spiffe://example.org/spire/server`. SPIRE v1.13.3's
//! server, when installed, serves the same document shape.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use spire_testkit::agent::server_cli;
use spire_testkit::openssl;
use spire_testkit::peers;
use spire_testkit::process::{TestServer, free_port};
use spire_testkit::upstream::{ServerOptions, UpstreamServer};
use spire_tls::ServerCertCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

/// A `server` block fragment enabling the endpoint on `port` with `profile`.
fn endpoint(port: u16, profile: &str) -> String {
    format!(
        "federation {{\n bundle_endpoint {{\n address = \"127.0.0.1\"\n port = {port}\n refresh_hint = \"2m\"\n \
         {profile}\n }}\n }}"
    )
}

/// A leaf for `localhost`/127.0.0.1 (serverAuth) signed by `ca`, as `<name>.pem`/`<name>.key`.
fn web_leaf(dir: &Path, ca: &str, name: &str) {
    openssl::leaf_with(
        dir,
        ca,
        name,
        "ec",
        "1",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
}

/// `curl` of `url` trusting `ca_file`: the status code and body, or curl's error.
fn curl(url: &str, ca_file: &Path, method: &str) -> Result<(u16, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-X", method, "--cacert"])
        .arg(ca_file)
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    Ok((code.parse().unwrap(), body.to_owned()))
}

/// The members of a SPIFFE bundle document and of each of its keys, by `use`.
fn shape(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
    for key in doc["keys"].as_array().unwrap() {
        let mut members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        members.sort();
        out.push(format!("{}: {}", key["use"].as_str().unwrap(), members.join(",")));
    }
    out.sort();
    out.dedup();
    out
}

/// Checks the served document against the CLI's `bundle show -format spiffe`: the same keys, the
/// configured refresh hint and the stored sequence number.
fn check_document(served: &str, shown: &str) {
    let served: Value = serde_json::from_str(served).unwrap_or_else(|e| panic!("{e}: {served}"));
    let shown: Value = serde_json::from_str(shown).unwrap();
    assert_eq!(served["spiffe_refresh_hint"], 120, "{served}");
    assert!(served["spiffe_sequence"].as_u64().unwrap() >= 1, "{served}");
    assert_eq!(served["spiffe_sequence"], shown["spiffe_sequence"]);
    assert_eq!(served["keys"], shown["keys"]);
    let uses: Vec<&str> = served["keys"].as_array().unwrap().iter().map(|k| k["use"].as_str().unwrap()).collect();
    assert!(uses.contains(&"x509-svid") && uses.contains(&"jwt-svid"), "{served}");
    for key in served["keys"].as_array().unwrap() {
        match key["use"].as_str().unwrap() {
            "x509-svid" => assert_eq!(key["x5c"].as_array().unwrap().len(), 1, "{key}"),
            "jwt-svid" => assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()), "{key}"),
            other => panic!("unexpected use {other}"),
        }
    }
}

#[tokio::test]
async fn https_web_serves_the_bundle_and_follows_replaced_certificates() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    openssl::ca(dir, "web-ca");
    openssl::ca(dir, "other-ca");
    web_leaf(dir, "web-ca", "serving");
    let port = free_port();
    let profile = format!(
        "profile \"https_web\" {{\n serving_cert_file {{\n cert_file_path = \"{}\"\n key_file_path = \"{}\"\n \
         file_sync_interval = \"1s\"\n }}\n }}",
        dir.join("serving.pem").display(),
        dir.join("serving.key").display()
    );
    let mut server = TestServer::start(BIN, &endpoint(port, &profile)).await;
    assert!(!server.log().contains("server.federation.bundle_endpoint"), "no inert warning: {}", server.log());
    let url = format!("https://localhost:{port}/");
    let (web_ca, other_ca) = (dir.join("web-ca.pem"), dir.join("other-ca.pem"));

    let (status, body) = curl(&url, &web_ca, "GET").unwrap();
    assert_eq!(status, 200, "{body}");
    check_document(&body, &server_cli(Path::new(BIN), &server, &["bundle", "show", "-format", "spiffe"]));
    assert_eq!(curl(&format!("https://localhost:{port}/other"), &web_ca, "GET").unwrap().0, 404);
    assert_eq!(curl(&url, &web_ca, "POST").unwrap().0, 405);
    assert!(curl(&url, &other_ca, "GET").is_err(), "a client trusting another CA must refuse the endpoint");

    // A certificate from another CA replaces the files: served after the next sync.
    web_leaf(dir, "other-ca", "replacement");
    std::fs::copy(dir.join("replacement.key"), dir.join("serving.key")).unwrap();
    std::fs::copy(dir.join("replacement.pem"), dir.join("serving.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match curl(&url, &other_ca, "GET") {
            Ok((200, _)) => break,
            result if Instant::now() > deadline => panic!("replacement not served: {result:?}\n{}", server.log()),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    assert!(curl(&url, &web_ca, "GET").is_err(), "the old CA no longer applies");
    server.stop();
}

/// ACME is served (tests/acme_bundle_endpoint.rs in spire-interop runs it against pebble); `run` and
/// `validate` accept it.
#[tokio::test]
async fn acme_is_accepted_by_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = "profile \"https_web\" {\n acme {\n domain_name = \"example.org\"\n email = \"a@example.org\"\n \
                   tos_accepted = true\n }\n }";
    std::fs::write(
        dir.join("server.conf"),
        spire_testkit::process::server_conf(dir, free_port(), &endpoint(free_port(), profile)),
    )
    .unwrap();
    let out = Command::new(BIN).args(["validate", "-config"]).arg(dir.join("server.conf")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Authenticates a bundle endpoint as SPIRE's `https_spiffe` client profile does: the chain must
/// lead to one of `roots` (checked with webpki, not our identity core) and the leaf's URI SAN must
/// be `expected`; the host name is not checked.
#[derive(Debug)]
struct SpiffeIdVerifier {
    roots: Vec<CertificateDer<'static>>,
    expected: String,
}

impl ServerCertCheck for SpiffeIdVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let anchors: Vec<_> = self.roots.iter().map(|r| webpki::anchor_from_trusted_cert(r).unwrap()).collect();
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        cert.verify_for_usage(
            spire_tls::algorithms().all,
            &anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| rustls::Error::General(format!("chain: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref()).unwrap();
        let uris: Vec<String> = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if uris != [self.expected.clone()] {
            return Err(rustls::Error::General(format!("unexpected SPIFFE ID {uris:?}")));
        }
        Ok(())
    }
}

/// `GET /` from `127.0.0.1:port` over TLS checked by [`SpiffeIdVerifier`]: the response body.
async fn fetch_spiffe(port: u16, roots_pem: &str, expected: &str) -> Result<String, String> {
    let roots: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(roots_pem.as_bytes()).map(Result::unwrap).collect();
    assert!(!roots.is_empty());
    let verifier = SpiffeIdVerifier { roots, expected: expected.to_owned() };
    let config = rustls::ClientConfig::builder_with_provider(spire_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(spire_tls::server_verifier(verifier))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls =
        connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    Ok(body.to_owned())
}

#[tokio::test]
async fn https_spiffe_serves_the_bundle_with_the_server_svid() {
    let port = free_port();
    let mut server = TestServer::start(BIN, &endpoint(port, "profile \"https_spiffe\" {}")).await;
    let roots = server_cli(Path::new(BIN), &server, &["bundle", "show"]);
    let body = fetch_spiffe(port, &roots, "spiffe://example.org/spire/server").await.unwrap();
    check_document(&body, &server_cli(Path::new(BIN), &server, &["bundle", "show", "-format", "spiffe"]));
    let wrong = fetch_spiffe(port, &roots, "spiffe://example.org/not-the-server").await.unwrap_err();
    assert!(wrong.contains("unexpected SPIFFE ID"), "{wrong}");
    server.stop();
}

/// SPIRE v1.13.3 serves the same document shape (members of the document and of each key, by
/// `use`) over the same `https_spiffe` profile, checked by the same client.
#[tokio::test]
async fn spire_serves_the_same_shape() {
    let Some(spire) = peers::require("upstream-spire-server") else { return };
    let (ours_port, spire_port) = (free_port(), free_port());
    let mut ours = TestServer::start(BIN, &endpoint(ours_port, "profile \"https_spiffe\" {}")).await;
    let options =
        ServerOptions { extra_config: endpoint(spire_port, "profile \"https_spiffe\" {}"), ..ServerOptions::default() };
    let mut upstream = UpstreamServer::start(spire, &options).await;
    let expected = "spiffe://example.org/spire/server";
    let ours_doc =
        fetch_spiffe(ours_port, &server_cli(Path::new(BIN), &ours, &["bundle", "show"]), expected).await.unwrap();
    let spire_roots = upstream.cli(&["bundle", "show"]);
    let mut spire_doc = Err(String::new());
    // SPIRE starts its bundle endpoint shortly after its API socket.
    for _ in 0..40 {
        spire_doc = fetch_spiffe(spire_port, &spire_roots, expected).await;
        if spire_doc.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let spire_doc = spire_doc.unwrap_or_else(|e| panic!("SPIRE's endpoint: {e}\n{}", upstream.log()));
    let (ours_doc, spire_doc): (Value, Value) =
        (serde_json::from_str(&ours_doc).unwrap(), serde_json::from_str(&spire_doc).unwrap());
    let spire_shape = shape(&spire_doc);
    for member in ["keys", "spiffe_refresh_hint", "spiffe_sequence", "x509-svid: ", "jwt-svid: "] {
        assert!(spire_shape.iter().any(|m| m.starts_with(member)), "{member} in {spire_shape:?}");
    }
    assert_eq!(shape(&ours_doc), spire_shape, "ours: {ours_doc}\nSPIRE: {spire_doc}");
    assert_eq!(ours_doc["spiffe_refresh_hint"], spire_doc["spiffe_refresh_hint"]);
    ours.stop();
    upstream.stop();
}

/// SPIRE v1.13.3 federating with our trust domain over `https_spiffe`: bootstrapped with our X.509
/// authorities only (`bundle set`), it authenticates our endpoint by our server's SPIFFE ID and
/// stores what we serve, JWT authorities and refresh hint included.
#[tokio::test]
async fn spire_federates_with_our_endpoint() {
    let Some(spire) = peers::require("upstream-spire-server") else { return };
    let port = free_port();
    let conf = endpoint(port, "profile \"https_spiffe\" {}");
    let mut ours = TestServer::start_with_config(BIN, |dir, server_port| {
        spire_testkit::process::server_conf(dir, server_port, &conf).replace("\"example.org\"", "\"ours.test\"")
    })
    .await;
    let pem = server_cli(Path::new(BIN), &ours, &["bundle", "show"]);
    let ours_doc: Value =
        serde_json::from_str(&server_cli(Path::new(BIN), &ours, &["bundle", "show", "-format", "spiffe"])).unwrap();

    let federation = format!(
        "federation {{\n federates_with \"ours.test\" {{\n bundle_endpoint_url = \"https://127.0.0.1:{port}\"\n \
         bundle_endpoint_profile \"https_spiffe\" {{\n endpoint_spiffe_id = \"spiffe://ours.test/spire/server\"\n }}\n \
         }}\n }}"
    );
    let options = ServerOptions { extra_config: federation, ..ServerOptions::default() };
    let mut upstream = UpstreamServer::start(spire, &options).await;
    let pem_file = upstream.dir.join("ours.pem");
    std::fs::write(&pem_file, pem).unwrap();
    upstream.cli(&["bundle", "set", "-id", "spiffe://ours.test", "-path", &pem_file.display().to_string()]);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = upstream.try_cli(&["federation", "refresh", "-id", "spiffe://ours.test"]);
        let stored: Value =
            serde_json::from_str(&upstream.cli(&["bundle", "list", "-id", "spiffe://ours.test", "-format", "spiffe"]))
                .unwrap();
        if stored["spiffe_refresh_hint"] == 120 {
            assert_eq!(stored["keys"], ours_doc["keys"], "SPIRE stored: {stored}");
            break;
        }
        assert!(Instant::now() < deadline, "SPIRE did not fetch our bundle: {stored}\n{}", upstream.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    upstream.stop();
    ours.stop();
}
