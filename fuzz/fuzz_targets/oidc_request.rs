//! Requests to the OIDC Discovery Provider's handler with arbitrary path, `Host`,
//! `X-Forwarded-*`/`Forwarded`, conditional and `Range` headers (lines of the input, in that
//! order): never panics; the discovery document is served only for an allowed host, and then
//! parses as JSON naming that host.
#![no_main]

use std::sync::Arc;

use std::future::Future;

use libfuzzer_sys::fuzz_target;
use spire_oidc_discovery::domain::DomainPolicy;
use spire_oidc_discovery::handler::{Conn, Handler};
use spire_oidc_discovery::keyset::KeySet;

const HEADERS: [&str; 7] =
    ["host", "x-forwarded-host", "x-forwarded-proto", "forwarded", "if-modified-since", "if-none-match", "range"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("/");
    let mut builder = hyper::Request::get(path);
    for (name, value) in HEADERS.iter().zip(lines) {
        if hyper::header::HeaderValue::from_str(value).is_ok() {
            builder = builder.header(*name, value);
        }
    }
    let Ok(req) = builder.body(()) else { return };
    let keys = Arc::new(KeySet::new());
    keys.update(Vec::new());
    let domains = DomainPolicy::new(&["oidc.example.org".into()]).expect("valid domain");
    for insecure in [false, true] {
        let h = Handler::new(keys.clone(), domains.clone(), insecure, true, None, None, "/");
        let response = h.handle(&req, Conn { tls: insecure });
        if response.status() == 200 && req.uri().path() == "/.well-known/openid-configuration" {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
            let authority = req.uri().authority().map(|a| a.to_string());
            let host =
                header("x-forwarded-host").map(str::to_owned).or(authority).or(header("host").map(str::to_owned));
            let host = host.unwrap_or_default();
            let body = futures_body(response.into_body());
            let doc: serde_json::Value = serde_json::from_slice(&body).expect("the document is JSON");
            assert!(doc["issuer"].as_str().is_some_and(|i| i.contains(&host)), "{doc} for {host:?}");
            assert!(host == "oidc.example.org" || host.starts_with("oidc.example.org:"), "served for {host:?}");
        }
    }
});

/// The handler's bodies are complete buffers: take the bytes without a runtime.
fn futures_body(body: http_body_util::Full<hyper::body::Bytes>) -> Vec<u8> {
    use http_body_util::BodyExt;
    let mut fut = std::pin::pin!(body.collect());
    let waker = std::task::Waker::noop();
    match fut.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes().to_vec(),
        _ => unreachable!("a Full body is ready at once"),
    }
}
