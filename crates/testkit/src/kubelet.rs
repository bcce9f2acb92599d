//! A stand-in kubelet: no kubelet can run here (it needs a container runtime it manages and root
//! over the host's cgroups), so the k8s workload attestor's tests talk to this instead. It speaks
//! the kubelet's wire format for what the attestor uses: `GET /pods` on the secure port, over HTTPS
//! with a certificate from the test cluster's CA, answering a v1 `PodList` of the pods the real API
//! server holds for its node, exactly as the API server serializes them.
//!
//! Authentication is the kubelet's webhook mode (`--authentication-token-webhook`): a bearer token
//! is checked with a TokenReview against the API server and the verdict cached for two minutes (the
//! kubelet's default `--authentication-token-webhook-cache-ttl`). Anonymous requests get 401.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authentication::v1::TokenReview;
use kube::api::{Api, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::kube::Cluster;

/// How long a TokenReview verdict is reused (the kubelet's default).
const AUTHN_CACHE_TTL: Duration = Duration::from_secs(120);

/// A running stand-in kubelet.
#[derive(Debug)]
pub struct Kubelet {
    /// Its port on 127.0.0.1.
    pub port: u16,
    served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    node: String,
    client: kube::Client,
    verdicts: Mutex<HashMap<String, (bool, Instant)>>,
    served: Arc<AtomicUsize>,
}

impl Kubelet {
    /// Serves `node`'s pods from `cluster` on a free port of 127.0.0.1. Its certificate is signed
    /// by the cluster's CA (`cluster.ca_path()`) for `127.0.0.1`, `localhost` and `node`.
    pub async fn start(cluster: &Cluster, node: &str) -> Kubelet {
        let (cert_pem, key_pem) = cluster.ca().server_cert(&[node]);
        let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("serving certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the kubelet");
        let port = listener.local_addr().expect("addr").port();
        let served = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(State {
            node: node.to_owned(),
            client: cluster.client().await,
            verdicts: Mutex::new(HashMap::new()),
            served: served.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(state.handle(req).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Kubelet { port, served, task }
    }

    /// How many `/pods` requests it answered with a pod list.
    pub fn pod_lists_served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let Some(token) = token else { return reply(StatusCode::UNAUTHORIZED, "Unauthorized") };
        if !self.authenticated(&token).await {
            return reply(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        if req.method() != http::Method::GET || req.uri().path() != "/pods" {
            return reply(StatusCode::NOT_FOUND, "404 page not found");
        }
        let path = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{}", self.node);
        let request = http::Request::get(path).body(Vec::new()).expect("request");
        match self.client.request_text(request).await {
            Ok(body) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                resp.headers_mut().insert(http::header::CONTENT_TYPE, "application/json".parse().expect("header"));
                resp
            }
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    async fn authenticated(&self, token: &str) -> bool {
        if let Some((ok, at)) = self.verdicts.lock().expect("verdicts").get(token).copied()
            && at.elapsed() < AUTHN_CACHE_TTL
        {
            return ok;
        }
        let review: TokenReview = serde_json::from_value(json!({"spec": {"token": token}})).expect("review");
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let ok = match api.create(&PostParams::default(), &review).await {
            Ok(r) => r.status.and_then(|s| s.authenticated).unwrap_or(false),
            Err(_) => false,
        };
        self.verdicts.lock().expect("verdicts").insert(token.to_owned(), (ok, Instant::now()));
        ok
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_owned())));
    *resp.status_mut() = status;
    resp
}
