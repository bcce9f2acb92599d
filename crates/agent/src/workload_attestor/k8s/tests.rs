//! The plugin as a whole: configuration, the cgroup files under a proc root, and the kubelet client
//! against a small kubelet stand-in that speaks real HTTP (hyper) over real TLS (rustls).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use spire_config::PluginConfig;
use tokio::net::TcpListener;

use super::*;

const BLOG_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const BLOG_CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/workload_attestor/k8s/testdata").join(name)
}

fn blog() -> Location {
    Location { pod_uid: BLOG_UID.into(), container_id: BLOG_CID.into() }
}

// --- configuration ------------------------------------------------------------------------------

fn plugin(data: &str) -> PluginConfig {
    PluginConfig::built_in("WorkloadAttestor", "k8s", data).unwrap()
}

#[test]
fn config_defaults_are_spire_s() {
    let config = K8sConfig::from_plugin(&plugin("")).unwrap();
    assert_eq!(config, K8sConfig::default());
    assert_eq!(config.kubelet_secure_port, 10250);
    assert_eq!(config.kubelet_read_only_port, None);
    assert_eq!(config.max_poll_attempts, 60);
    assert_eq!(config.poll_retry_interval, Duration::from_millis(500));
    assert_eq!(config.reload_interval, Duration::from_secs(60));
    assert_eq!(config.token_path, Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token"));
    assert_eq!(config.kubelet_ca_path, Path::new("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"));
    assert_eq!(config.node_name_env, "MY_NODE_NAME");
    assert!(config.use_new_container_locator);
}

#[test]
fn config_keys() {
    let config = K8sConfig::from_plugin(&plugin(
        r#"
        kubelet_secure_port = 12345
        kubelet_ca_path = "some-other-ca"
        token_path = "token"
        max_poll_attempts = 1
        poll_retry_interval = "2s"
        reload_interval = "3s"
        skip_kubelet_verification = true
        certificate_path = "cert.pem"
        private_key_path = "key.pem"
        use_anonymous_authentication = true
        node_name_env = "OVERRIDDEN_NODE_NAME"
        node_name = "boo"
        disable_container_selectors = true
        use_new_container_locator = false
        verbose_container_locator_logs = true
        experimental {}
        "#,
    ))
    .unwrap();
    assert_eq!(
        config,
        K8sConfig {
            kubelet_read_only_port: None,
            kubelet_secure_port: 12345,
            max_poll_attempts: 1,
            poll_retry_interval: Duration::from_secs(2),
            kubelet_ca_path: "some-other-ca".into(),
            skip_kubelet_verification: true,
            token_path: "token".into(),
            certificate_path: Some("cert.pem".into()),
            private_key_path: Some("key.pem".into()),
            use_anonymous_authentication: true,
            node_name_env: "OVERRIDDEN_NODE_NAME".into(),
            node_name: Some("boo".into()),
            reload_interval: Duration::from_secs(3),
            disable_container_selectors: true,
            use_new_container_locator: false,
            verbose_container_locator_logs: true,
        }
    );
    let config = K8sConfig::from_plugin(&plugin("kubelet_read_only_port = 10255\nmax_poll_attempts = -1")).unwrap();
    assert_eq!(config.kubelet_read_only_port, Some(10255));
    assert_eq!(config.max_poll_attempts, 60);
    let config = K8sConfig::from_plugin(&plugin("kubelet_secure_port = 0\npoll_retry_interval = \"0s\"")).unwrap();
    assert_eq!((config.kubelet_secure_port, config.poll_retry_interval), (10250, Duration::from_millis(500)));
}

#[test]
fn config_errors() {
    let error = |data: &str| K8sConfig::from_plugin(&plugin(data)).unwrap_err().to_string();
    assert!(
        error("kubelet_read_only_port = 10255\nkubelet_secure_port = 10250")
            .contains("cannot use both the read-only and secure port")
    );
    assert!(error("no_such_key = 1").contains("no_such_key"));
    assert!(error("poll_retry_interval = \"blah\"").contains("poll_retry_interval"));
    assert!(error("reload_interval = \"blah\"").contains("reload_interval"));
    assert!(error("kubelet_secure_port = 70000").contains("not a port"));
    assert!(error("experimental { sigstore { rekor_url = \"https://x\" } }").contains("Sigstore"));
    assert!(error("experimental { other = 1 }").contains("other"));
}

#[test]
fn node_name_precedence() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |key: &str| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
    };
    let config = K8sConfig::default();
    assert_eq!(config.resolve_node_name(env(&[])), None);
    assert_eq!(config.resolve_node_name(env(&[("MY_NODE_NAME", "")])), None);
    assert_eq!(config.resolve_node_name(env(&[("MY_NODE_NAME", "node-1")])).as_deref(), Some("node-1"));
    let config = K8sConfig { node_name: Some("explicit".into()), ..K8sConfig::default() };
    assert_eq!(config.resolve_node_name(env(&[("MY_NODE_NAME", "node-1")])).as_deref(), Some("explicit"));
    let config = K8sConfig { node_name_env: "OTHER".into(), ..K8sConfig::default() };
    assert_eq!(config.resolve_node_name(env(&[("MY_NODE_NAME", "a"), ("OTHER", "b")])).as_deref(), Some("b"));
}

// --- a kubelet stand-in -------------------------------------------------------------------------

/// A CA and the PEM files made from it.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), params.self_signed(&key).unwrap().pem()).unwrap();
        std::fs::write(dir.path().join("token"), "default-token\n").unwrap();
        Self { dir, issuer: Issuer::new(params, key) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `names` (DNS names; `127.0.0.1` as an IP address), and its key.
    fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String, String) {
        let dns: Vec<String> = names.iter().filter(|n| **n != "127.0.0.1").map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(dns).unwrap();
        if names.contains(&"127.0.0.1") {
            params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
        (chain, PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(), cert_pem, key_pem)
    }
}

/// What the stand-in answers: queued answers first, then the default one.
#[derive(Default)]
struct Answers {
    queue: VecDeque<(u16, Vec<u8>)>,
    default: Option<(u16, Vec<u8>)>,
    required_auth: Option<String>,
}

struct StandIn {
    addr: SocketAddr,
    answers: Arc<Mutex<Answers>>,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Serves over TLS with `tls`, or plain HTTP without.
    async fn start(tls: Option<rustls::ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = Arc::new(Mutex::new(Answers::default()));
        let (requests, connections) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
        let (a, r, c) = (answers.clone(), requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (acceptor, answers, requests) = (acceptor.clone(), a.clone(), r.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let answer = answer(&answers, &requests, &req);
                        async move { Ok::<_, std::convert::Infallible>(answer) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                            let _ = http.serve_connection(TokioIo::new(tls), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self { addr, answers, requests, connections, task }
    }

    async fn https(pki: &Pki, names: &[&str], client_auth: bool) -> Self {
        let (chain, key, ..) = pki.leaf(names);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Self::start(Some(builder.with_single_cert(chain, key).unwrap())).await
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn require_auth(&self, value: &str) {
        self.answers.lock().unwrap().required_auth = Some(value.to_owned());
    }

    fn serve(&self, fixture: &str) {
        self.answers.lock().unwrap().default = Some((200, std::fs::read(testdata(fixture)).unwrap()));
    }

    fn queue(&self, fixture: &str) {
        self.answers.lock().unwrap().queue.push_back((200, std::fs::read(testdata(fixture)).unwrap()));
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(answers: &Mutex<Answers>, requests: &AtomicUsize, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: u16, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        response
    };
    if req.uri().path() != "/pods" || req.method() != hyper::Method::GET {
        return reply(404, b"404 page not found\n".to_vec());
    }
    let mut answers = answers.lock().unwrap();
    if let Some(expected) = &answers.required_auth {
        let got = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        if got != expected {
            return reply(403, format!("expected {expected:?}, got {got:?}\n").into_bytes());
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let (status, body) =
        answers.queue.pop_front().or_else(|| answers.default.clone()).unwrap_or((500, b"nothing".to_vec()));
    reply(status, body)
}

/// A configuration for the stand-in on 127.0.0.1, with the CA and token files of `pki`.
fn secure_config(pki: &Pki, stand_in: &StandIn) -> K8sConfig {
    K8sConfig {
        kubelet_secure_port: stand_in.port(),
        kubelet_ca_path: pki.path("ca.pem"),
        token_path: pki.path("token"),
        node_name_env: "SPIRE_RS_K8S_TEST_UNSET_NODE_NAME".into(),
        poll_retry_interval: Duration::from_millis(20),
        ..K8sConfig::default()
    }
}

// --- the kubelet client -------------------------------------------------------------------------

#[tokio::test]
async fn token_auth_over_the_secure_port_checks_only_the_chain_towards_127_0_0_1() {
    let pki = Pki::new();
    // The certificate names the node, not 127.0.0.1, as kubelet certificates do.
    let kubelet = StandIn::https(&pki, &["some-node"], false).await;
    kubelet.require_auth("Bearer default-token");
    kubelet.serve("pod_list.json");
    let attestor = K8sAttestor::new(secure_config(&pki, &kubelet)).unwrap();
    assert_eq!(attestor.kubelet_url(), format!("https://127.0.0.1:{}/pods", kubelet.port()));
    let values = attestor.attest_location(&blog()).await.unwrap();
    assert!(values.contains(&"pod-name:blog-24ck7".to_owned()), "{values:?}");
    assert!(values.contains(&"container-name:blog".to_owned()), "{values:?}");
}

#[tokio::test]
async fn the_node_name_is_checked_when_known() {
    let pki = Pki::new();
    let kubelet = StandIn::https(&pki, &["localhost"], false).await;
    kubelet.serve("pod_list.json");
    let config = K8sConfig { node_name: Some("localhost".into()), ..secure_config(&pki, &kubelet) };
    let attestor = K8sAttestor::new(config.clone()).unwrap();
    assert_eq!(attestor.kubelet_url(), format!("https://localhost:{}/pods", kubelet.port()));
    assert!(attestor.attest_location(&blog()).await.is_ok());

    let other = StandIn::https(&pki, &["some-node"], false).await;
    other.serve("pod_list.json");
    let config = K8sConfig { kubelet_secure_port: other.port(), ..config };
    let error = K8sAttestor::new(config).unwrap().attest_location(&blog()).await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("unable to perform request: Get \"https://localhost:{}/pods\": tls:", other.port())),
        "{error}"
    );
    assert!(error.contains("not valid for name \"localhost\""), "{error}");
}

#[tokio::test]
async fn another_ca_is_refused_unless_verification_is_skipped() {
    let (pki, stranger) = (Pki::new(), Pki::new());
    let kubelet = StandIn::https(&stranger, &["127.0.0.1"], false).await;
    kubelet.serve("pod_list.json");
    let config = secure_config(&pki, &kubelet);
    let error = K8sAttestor::new(config.clone()).unwrap().attest_location(&blog()).await.unwrap_err().to_string();
    // (Both test CAs have the same empty subject, so the chain is built and its signature fails.)
    assert!(error.contains("tls: invalid peer certificate: BadSignature"), "{error}");
    // Skipping verification does not even read the CA.
    let config = K8sConfig { skip_kubelet_verification: true, kubelet_ca_path: "/no/such/ca".into(), ..config };
    assert!(K8sAttestor::new(config).unwrap().attest_location(&blog()).await.is_ok());
}

#[tokio::test]
async fn client_certificate_and_anonymous_auth() {
    let pki = Pki::new();
    let kubelet = StandIn::https(&pki, &["127.0.0.1"], true).await;
    kubelet.serve("pod_list.json");
    let (_, _, cert_pem, key_pem) = pki.leaf(&["spire-agent"]);
    std::fs::write(pki.path("cert.pem"), cert_pem).unwrap();
    std::fs::write(pki.path("key.pem"), key_pem).unwrap();
    let config = K8sConfig {
        certificate_path: Some(pki.path("cert.pem")),
        private_key_path: Some(pki.path("key.pem")),
        token_path: "/no/such/token".into(),
        ..secure_config(&pki, &kubelet)
    };
    assert!(K8sAttestor::new(config.clone()).unwrap().attest_location(&blog()).await.is_ok());
    // Without a client certificate the handshake fails.
    let anonymous = K8sConfig { use_anonymous_authentication: true, ..config };
    let error = K8sAttestor::new(anonymous).unwrap().attest_location(&blog()).await.unwrap_err().to_string();
    assert!(error.starts_with("unable to perform request:"), "{error}");

    // Anonymous access to a kubelet that allows it: no Authorization header.
    let open = StandIn::https(&pki, &["127.0.0.1"], false).await;
    open.serve("pod_list.json");
    open.require_auth("");
    let config = K8sConfig { use_anonymous_authentication: true, ..secure_config(&pki, &open) };
    assert!(K8sAttestor::new(config).unwrap().attest_location(&blog()).await.is_ok());
}

#[tokio::test]
async fn credential_errors_are_configuration_errors() {
    let pki = Pki::new();
    let kubelet = StandIn::https(&pki, &["127.0.0.1"], false).await;
    std::fs::write(pki.path("bad.pem"), "BAD PEM").unwrap();
    let base = secure_config(&pki, &kubelet);
    let error = |config: K8sConfig| K8sAttestor::new(config).unwrap_err().to_string();
    assert_eq!(
        error(K8sConfig { kubelet_ca_path: "/no/such-ca".into(), ..base.clone() }),
        "unable to load kubelet CA: open /no/such-ca: no such file or directory"
    );
    assert_eq!(
        error(K8sConfig { kubelet_ca_path: pki.path("bad.pem"), ..base.clone() }),
        "unable to parse kubelet CA: no PEM blocks"
    );
    assert_eq!(
        error(K8sConfig { token_path: "/no/such-token".into(), ..base.clone() }),
        "unable to load token: open /no/such-token: no such file or directory"
    );
    assert_eq!(
        error(K8sConfig { certificate_path: Some("c".into()), ..base.clone() }),
        "the private key path is required with the certificate path"
    );
    assert_eq!(
        error(K8sConfig { private_key_path: Some("k".into()), ..base.clone() }),
        "the certificate path is required with the private key path"
    );
    let pair = |cert: PathBuf, key: PathBuf| K8sConfig {
        certificate_path: Some(cert),
        private_key_path: Some(key),
        ..base.clone()
    };
    assert!(error(pair("/no/c".into(), pki.path("ca.pem"))).starts_with("unable to load certificate: open /no/c"));
    assert!(error(pair(pki.path("ca.pem"), "/no/k".into())).starts_with("unable to load private key: open /no/k"));
    assert!(error(pair(pki.path("bad.pem"), pki.path("ca.pem"))).starts_with("unable to load keypair:"));
    assert!(error(pair(pki.path("ca.pem"), pki.path("bad.pem"))).starts_with("unable to load keypair:"));
    // The read-only port needs none of them.
    let read_only =
        K8sConfig { kubelet_read_only_port: Some(1), kubelet_ca_path: "/no".into(), token_path: "/no".into(), ..base };
    assert!(K8sAttestor::new(read_only).is_ok());
}

#[tokio::test]
async fn kubelet_errors_carry_status_and_body() {
    let pki = Pki::new();
    let kubelet = StandIn::https(&pki, &["127.0.0.1"], false).await;
    kubelet.require_auth("Bearer other-token");
    let attestor = K8sAttestor::new(secure_config(&pki, &kubelet)).unwrap();
    let error = attestor.attest_location(&blog()).await.unwrap_err().to_string();
    assert_eq!(
        error,
        "unexpected status code on pods response: 403 expected \"Bearer other-token\", got \"Bearer default-token\"\n"
    );
    // Not a pod list.
    let kubelet = StandIn::start(None).await;
    kubelet.answers.lock().unwrap().default = Some((200, b"<html>".to_vec()));
    let config = K8sConfig { kubelet_read_only_port: Some(kubelet.port()), ..K8sConfig::default() };
    let error = K8sAttestor::new(config).unwrap().attest_location(&blog()).await.unwrap_err().to_string();
    assert!(error.starts_with("unable to parse kubelet response: "), "{error}");
    // Nothing listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = K8sConfig { kubelet_read_only_port: Some(port), ..K8sConfig::default() };
    let error = K8sAttestor::new(config).unwrap().attest_location(&blog()).await.unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "unable to perform request: Get \"http://127.0.0.1:{port}/pods\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
}

#[tokio::test]
async fn the_token_is_read_again_after_the_reload_interval() {
    let pki = Pki::new();
    let kubelet = StandIn::https(&pki, &["127.0.0.1"], false).await;
    kubelet.require_auth("Bearer default-token");
    kubelet.serve("pod_list.json");
    let config = K8sConfig {
        reload_interval: Duration::from_millis(50),
        poll_retry_interval: Duration::from_millis(2),
        ..secure_config(&pki, &kubelet)
    };
    let attestor = K8sAttestor::new(config).unwrap();
    assert!(attestor.attest_location(&blog()).await.is_ok());
    std::fs::write(pki.path("token"), "rotated-token").unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let error = attestor.attest_location(&blog()).await.unwrap_err().to_string();
    assert!(error.contains("got \"Bearer rotated-token\""), "{error}");
    // A reload that fails keeps the last client.
    std::fs::remove_file(pki.path("token")).unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    kubelet.require_auth("Bearer rotated-token");
    assert!(attestor.attest_location(&blog()).await.is_ok());
}

// --- polling and caching ------------------------------------------------------------------------

#[tokio::test]
async fn read_only_port_and_polling_until_the_container_shows_up() {
    let kubelet = StandIn::start(None).await;
    kubelet.queue("pod_list_not_running.json");
    kubelet.queue("pod_list_not_running.json");
    kubelet.serve("pod_list.json");
    let config = K8sConfig {
        kubelet_read_only_port: Some(kubelet.port()),
        poll_retry_interval: Duration::from_millis(10),
        ..K8sConfig::default()
    };
    let attestor = K8sAttestor::new(config).unwrap();
    assert_eq!(attestor.kubelet_url(), format!("http://127.0.0.1:{}/pods", kubelet.port()));
    let values = attestor.attest_location(&blog()).await.unwrap();
    assert!(values.contains(&"container-name:blog".to_owned()));
    assert_eq!(kubelet.requests(), 3);
    // One kept-alive connection for all of them.
    assert_eq!(kubelet.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn giving_up_after_max_poll_attempts() {
    let kubelet = StandIn::start(None).await;
    kubelet.serve("pod_list_not_running.json");
    let config = K8sConfig {
        kubelet_read_only_port: Some(kubelet.port()),
        poll_retry_interval: Duration::from_millis(10),
        max_poll_attempts: 3,
        ..K8sConfig::default()
    };
    let attestor = K8sAttestor::new(config.clone()).unwrap();
    let error = attestor.attest_location(&blog()).await.unwrap_err();
    assert_eq!(error.to_string(), "no selectors found after max poll attempts");
    assert_eq!(kubelet.requests(), 3);
    // Pod selectors alone need only the pod.
    let attestor = K8sAttestor::new(K8sConfig { disable_container_selectors: true, ..config }).unwrap();
    let values = attestor.attest_location(&blog()).await.unwrap();
    assert!(values.contains(&"pod-uid:2c48913c-b29f-11e7-9350-020968147796".to_owned()));
    assert!(!values.iter().any(|v| v.starts_with("container-")));
}

#[tokio::test]
async fn pod_lists_are_shared_for_half_the_retry_interval() {
    let kubelet = StandIn::start(None).await;
    kubelet.serve("pod_list.json");
    let config = K8sConfig {
        kubelet_read_only_port: Some(kubelet.port()),
        poll_retry_interval: Duration::from_secs(2),
        ..K8sConfig::default()
    };
    let attestor = Arc::new(K8sAttestor::new(config).unwrap());
    // Concurrent callers share one fetch; later ones within a second reuse its list.
    let calls = (0..8).map(|_| {
        let attestor = attestor.clone();
        tokio::spawn(async move { attestor.attest_location(&blog()).await.unwrap() })
    });
    for call in calls {
        call.await.unwrap();
    }
    attestor.attest_location(&blog()).await.unwrap();
    assert_eq!(kubelet.requests(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    attestor.attest_location(&blog()).await.unwrap();
    assert_eq!(kubelet.requests(), 2);
}

// --- the whole plugin, with cgroup files under a proc root --------------------------------------

#[tokio::test]
async fn attesting_pids_through_their_cgroups() {
    let kubelet = StandIn::start(None).await;
    kubelet.serve("pod_list.json");
    let proc = tempfile::tempdir().unwrap();
    let pid_dir = |pid: i32, cgroups: &str| {
        std::fs::create_dir_all(proc.path().join(pid.to_string())).unwrap();
        std::fs::copy(testdata(cgroups), proc.path().join(pid.to_string()).join("cgroup")).unwrap();
    };
    pid_dir(123, "cgroups_pid_in_pod.txt");
    pid_dir(124, "cgroups_pid_not_in_pod.txt");
    pid_dir(125, "systemd_cgroups_pid_in_pod.txt");
    pid_dir(126, "cgroups_init_pid_in_pod.txt");
    let config = K8sConfig { kubelet_read_only_port: Some(kubelet.port()), ..K8sConfig::default() };
    for locator in [true, false] {
        let config = K8sConfig { use_new_container_locator: locator, ..config.clone() };
        let attestor = K8sAttestor::with_proc_root(config, ProcRoot::new(proc.path())).unwrap();
        assert_eq!(attestor.name(), "k8s");
        let values = attestor.attest(Process::from_pid(123)).await.unwrap();
        assert!(values.contains(&"container-name:blog".to_owned()), "{values:?}");
        assert_eq!(attestor.attest(Process::from_pid(125)).await.unwrap(), values);
        let values = attestor.attest(Process::from_pid(126)).await.unwrap();
        assert!(values.contains(&"container-name:install-cni".to_owned()), "{values:?}");
        // Not in a pod, or no such process: no selectors and no error, as in SPIRE.
        assert!(attestor.attest(Process::from_pid(124)).await.unwrap().is_empty());
        assert!(attestor.attest(Process::from_pid(999)).await.unwrap().is_empty());
    }
    // A mountinfo file, when there is one, is read first.
    let mountinfo = std::fs::read_to_string(testdata("containerinfo/k8s-v2/mountinfo")).unwrap();
    let mountinfo = mountinfo
        .replace("00000000_1111_2222_3333_444444444444", &BLOG_UID.replace('-', "_"))
        .replace("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", BLOG_CID);
    std::fs::write(proc.path().join("124/mountinfo"), mountinfo).unwrap();
    let attestor = K8sAttestor::with_proc_root(config.clone(), ProcRoot::new(proc.path())).unwrap();
    assert_eq!(attestor.locate(Process::from_pid(124)).unwrap(), blog());
    std::fs::write(proc.path().join("124/mountinfo"), "garbage\n").unwrap();
    let error = attestor.attest(Process::from_pid(124)).await.unwrap_err().to_string();
    let path = proc.path().join("124/mountinfo");
    assert!(
        error.starts_with(&format!(
            "failed to parse mount info at {:?}: wrong number of fields",
            path.display().to_string()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_workload_nesting_another_pod_s_cgroups_is_refused() {
    let kubelet = StandIn::start(None).await;
    kubelet.serve("pod_list.json");
    let proc = tempfile::tempdir().unwrap();
    let write = |pid: i32, cgroups: &[u8]| {
        std::fs::create_dir_all(proc.path().join(pid.to_string())).unwrap();
        std::fs::write(proc.path().join(pid.to_string()).join("cgroup"), cgroups).unwrap();
    };
    // A process of another pod (in the list) that made `pod<blog>/<blog container>` cgroups under
    // its own and moved into them: SPIRE's walk would attest it as the blog container.
    let own = "/kubepods/burstable/podd488cae9-b2a0-11e7-9350-020968147796/\
               34a2062fd26c805aa8cf814cdfe479322b791f80afb9ea4db02d50375df14b41";
    let nested = format!("{own}/kubepods/burstable/pod{BLOG_UID}/{BLOG_CID}");
    write(127, format!("12:pids:{nested}\n11:memory:{nested}\n").as_bytes());
    // Bytes that are not UTF-8 in another cgroup's name do not keep a real one from being read.
    write(
        128,
        &[b"2:name=x:/user.slice/\xff\xfe\n1:pids:/kubepods/pod", BLOG_UID.as_bytes(), b"/", BLOG_CID.as_bytes()]
            .concat(),
    );
    let config = K8sConfig { kubelet_read_only_port: Some(kubelet.port()), ..K8sConfig::default() };
    let attestor = K8sAttestor::with_proc_root(config, ProcRoot::new(proc.path())).unwrap();
    let error = attestor.attest(Process::from_pid(127)).await.unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "multiple pod UIDs found in cgroup path {nested:?} (\"d488cae9-b2a0-11e7-9350-020968147796\", \"{BLOG_UID}\")"
        )
    );
    assert_eq!(attestor.locate(Process::from_pid(128)).unwrap(), blog());
    let values = attestor.attest(Process::from_pid(128)).await.unwrap();
    assert!(values.contains(&"container-name:blog".to_owned()), "{values:?}");
}

#[tokio::test]
async fn the_agent_s_own_process() {
    // The test process is in no pod, or in a container the pod list lacks: either no selectors or
    // the attestor gives up; the real /proc files parse either way.
    let kubelet = StandIn::start(None).await;
    kubelet.serve("pod_list.json");
    let config =
        K8sConfig { kubelet_read_only_port: Some(kubelet.port()), max_poll_attempts: 1, ..K8sConfig::default() };
    let attestor = K8sAttestor::with_proc_root(config, ProcRoot::new("/proc")).unwrap();
    let pid = i32::try_from(std::process::id()).unwrap();
    let location = attestor.locate(Process::from_pid(pid)).unwrap();
    match attestor.attest_location(&location).await {
        Ok(values) => assert!(values.is_empty() && !location.in_container()),
        Err(error) => assert_eq!(error.to_string(), "no selectors found after max poll attempts"),
    }
}
