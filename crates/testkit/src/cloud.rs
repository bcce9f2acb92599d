//! Stand-ins for cloud providers' services, for the `gcp_iit` and `azure_msi` attestors: no cloud
//! can be reached here, so tests run a small HTTP server speaking the providers' wire formats
//! (GCE's metadata server and Google's certificate endpoint, Azure's IMDS, OpenID discovery and
//! Resource Manager), with tokens signed by a [`TokenSigner`] whose key is published the way the
//! provider publishes its own (Google: `{kid: PEM certificate}`; Azure: a JWKS).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// An RSA key that signs RS256 tokens as a provider does.
pub struct TokenSigner {
    /// The key ID published with the key and put in each token's header.
    pub kid: String,
    pair: RsaKeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A fresh 2048-bit key named `kid`.
    pub fn generate(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("PKCS#8").as_ref().to_vec();
        Self { kid: kid.to_owned(), pair, pkcs8 }
    }

    /// A compact RS256 JWS of `claims` with this key's `kid`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut signature).expect("sign");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn rcgen_pair(&self) -> rcgen::KeyPair {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.clone());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).expect("rcgen key")
    }

    /// The private key, PKCS#8 PEM (as in a Google service account key file).
    pub fn private_key_pem(&self) -> String {
        self.rcgen_pair().serialize_pem()
    }

    /// A self-signed certificate of the key, PEM, as Google publishes its signing keys.
    pub fn certificate_pem(&self) -> String {
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.self_signed(&self.rcgen_pair()).expect("self-signed").pem()
    }

    /// The public key as a JWK with `kid` (and `use: sig`), as a JWKS publishes it.
    pub fn jwk(&self) -> serde_json::Value {
        let spki = rcgen::PublicKeyData::subject_public_key_info(&self.rcgen_pair());
        let mut jwk = serde_json::to_value(spire_identity::jwk::Jwk::from_spki(&spki).expect("JWK")).expect("JSON");
        jwk["kid"] = self.kid.clone().into();
        jwk["use"] = "sig".into();
        jwk
    }
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query, as sent.
    pub path_and_query: String,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, body, extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            status: 200,
            body: value.to_string().into_bytes(),
            headers: vec![("content-type".into(), "application/json".into())],
        }
    }

    /// 200 with a text body.
    pub fn text(text: &str) -> Self {
        Self {
            status: 200,
            body: text.as_bytes().to_vec(),
            headers: vec![("content-type".into(), "text/plain".into())],
        }
    }

    /// A status with a short text body.
    pub fn status(status: u16, text: &str) -> Self {
        Self { status, ..Self::text(text) }
    }
}

/// What a stand-in answers.
pub type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A running stand-in: plain HTTP/1.1 on one address; dropped, it stops.
pub struct StandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Serves `handler` on `bind` (`127.0.0.1:0` for a free port).
    pub async fn start(bind: &str, handler: Handler) -> StandIn {
        let listener = TcpListener::bind(bind).await.expect("bind the stand-in");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move {
                            let method = req.method().to_string();
                            let path_and_query = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                                .collect();
                            let body =
                                req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let received = Received { method, path_and_query, headers, body };
                            let reply = handler(&received);
                            log.lock().expect("log").push(received);
                            let mut response = hyper::Response::builder().status(reply.status);
                            for (n, v) in &reply.headers {
                                response = response.header(n.as_str(), v.as_str());
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.body(Full::new(Bytes::from(reply.body))).expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn { addr, received, task }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// Google's `{kid: certificate PEM}` document for `signers`.
pub fn google_certs(signers: &[&TokenSigner]) -> serde_json::Value {
    serde_json::Value::Object(signers.iter().map(|s| (s.kid.clone(), s.certificate_pem().into())).collect())
}

/// A JWKS of `signers`.
pub fn jwks(signers: &[&TokenSigner]) -> serde_json::Value {
    serde_json::json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()})
}

/// The claims of a GCE `format=full` identity token for `audience`, valid for an hour from
/// `iat`.
pub fn gce_identity_claims(
    audience: &str,
    project: &str,
    zone: &str,
    instance_id: &str,
    name: &str,
    iat: i64,
) -> serde_json::Value {
    serde_json::json!({
        "aud": audience,
        "azp": "112233445566778899",
        "email": "1234-compute@developer.gserviceaccount.com",
        "email_verified": true,
        "exp": iat + 3600,
        "google": {"compute_engine": {
            "instance_creation_timestamp": 1_700_000_000,
            "instance_id": instance_id,
            "instance_name": name,
            "project_id": project,
            "project_number": 123_456_789_012_i64,
            "zone": zone,
        }},
        "iat": iat,
        "iss": "https://accounts.google.com",
        "sub": "112233445566778899",
    })
}

/// The claims of an Azure managed-identity access token for `resource` in `tenant` for
/// `principal`, valid for an hour from `iat`.
pub fn azure_msi_claims(resource: &str, tenant: &str, principal: &str, iat: i64) -> serde_json::Value {
    serde_json::json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + 3600,
        "oid": principal,
        "sub": principal,
        "tid": tenant,
        "ver": "1.0",
    })
}
