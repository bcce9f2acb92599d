use http_body_util::BodyExt;
use spire_identity::jwk::Jwk;

use super::*;

struct Setup {
    insecure: bool,
    key_use: bool,
    issuer: Option<&'static str>,
    jwks_uri: Option<&'static str>,
    prefix: &'static str,
}

const PLAIN: Setup = Setup { insecure: false, key_use: false, issuer: None, jwks_uri: None, prefix: "/" };

fn handler(s: Setup) -> (Handler, Arc<KeySet>) {
    let keys = Arc::new(KeySet::new());
    let domains = DomainPolicy::new(&["oidc.example.org".into(), "localhost".into()]).unwrap();
    let h = Handler::new(
        Arc::clone(&keys),
        domains,
        s.insecure,
        s.key_use,
        s.issuer.map(str::to_owned),
        s.jwks_uri.map(str::to_owned),
        s.prefix,
    );
    (h, keys)
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get(path).header("host", "oidc.example.org");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn body(r: Response<Body>) -> String {
    let bytes = futures_executor(r.into_body().collect()).unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The bodies are `Full`, ready at once: a runtime-free poll is enough.
fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

fn issuer_and_jwks(r: Response<Body>) -> (String, String) {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: serde_json::Value = serde_json::from_str(&body(r)).unwrap();
    (doc["issuer"].as_str().unwrap().to_owned(), doc["jwks_uri"].as_str().unwrap().to_owned())
}

const TLS: Conn = Conn { tls: true };
const PLAIN_CONN: Conn = Conn { tls: false };

#[test]
fn discovery_document_from_the_host() {
    let (h, _) = handler(PLAIN);
    let r = h.handle(&get("/.well-known/openid-configuration", &[]), TLS);
    assert_eq!(issuer_and_jwks(r), ("https://oidc.example.org".to_owned(), "https://oidc.example.org/keys".to_owned()));
    // Without allow_insecure_scheme the document says https even over plain HTTP.
    let r = h.handle(&get("/.well-known/openid-configuration", &[]), PLAIN_CONN);
    assert_eq!(issuer_and_jwks(r).0, "https://oidc.example.org");
}

#[test]
fn insecure_scheme_and_forwarded_headers() {
    let (h, _) = handler(Setup { insecure: true, ..PLAIN });
    let wk = "/.well-known/openid-configuration";
    assert_eq!(issuer_and_jwks(h.handle(&get(wk, &[]), PLAIN_CONN)).0, "http://oidc.example.org");
    assert_eq!(issuer_and_jwks(h.handle(&get(wk, &[]), TLS)).0, "https://oidc.example.org");
    for header in
        [("x-forwarded-proto", "HTTPS"), ("x-forwarded-scheme", "https"), ("forwarded", "for=1.2.3.4;proto=https")]
    {
        assert_eq!(
            issuer_and_jwks(h.handle(&get(wk, &[header]), PLAIN_CONN)).0,
            "https://oidc.example.org",
            "{header:?}"
        );
    }
    let r = h.handle(&get(wk, &[("x-forwarded-host", "localhost:8443")]), PLAIN_CONN);
    assert_eq!(issuer_and_jwks(r), ("http://localhost:8443".to_owned(), "http://localhost:8443/keys".to_owned()));
}

#[test]
fn hosts_outside_domains_are_refused() {
    let (h, _) = handler(PLAIN);
    let r = h.handle(&get("/.well-known/openid-configuration", &[("x-forwarded-host", "evil.example")]), TLS);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body(r), "domain \"evil.example\" is not allowed\n");
    let r = h.handle(
        &Request::get("/.well-known/openid-configuration").header("host", "nope.example:443").body(()).unwrap(),
        TLS,
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn issuer_jwks_uri_and_prefix() {
    let (h, _) = handler(Setup { issuer: Some("https://issuer.example/a/"), ..PLAIN });
    let r = h.handle(&get("/.well-known/openid-configuration", &[]), TLS);
    assert_eq!(
        issuer_and_jwks(r),
        ("https://issuer.example/a/".to_owned(), "https://issuer.example/a/keys".to_owned())
    );

    let (h, _) = handler(Setup { issuer: Some("https://issuer.example"), ..PLAIN });
    let r = h.handle(&get("/.well-known/openid-configuration", &[]), TLS);
    assert_eq!(issuer_and_jwks(r).1, "https://issuer.example/keys");

    let (h, _) =
        handler(Setup { issuer: Some("https://i.example"), jwks_uri: Some("https://cdn.example/jwks"), ..PLAIN });
    let r = h.handle(&get("/.well-known/openid-configuration", &[]), TLS);
    assert_eq!(issuer_and_jwks(r), ("https://i.example".to_owned(), "https://cdn.example/jwks".to_owned()));

    let (h, keys) = handler(Setup { prefix: "/instance/1", ..PLAIN });
    let r = h.handle(&get("/instance/1/.well-known/openid-configuration", &[]), TLS);
    assert_eq!(
        issuer_and_jwks(r),
        ("https://oidc.example.org/instance/1".to_owned(), "https://oidc.example.org/instance/1/keys".to_owned())
    );
    keys.update(vec![]);
    assert_eq!(h.handle(&get("/instance/1/keys", &[]), TLS).status(), StatusCode::OK);
    assert_eq!(h.handle(&get("/keys", &[]), TLS).status(), StatusCode::NOT_FOUND);
}

fn ec_key(kid: &str) -> Jwk {
    let spki = spire_identity::PrivateKey::generate(spire_identity::KeyType::EcP256).unwrap().public_key_der();
    let mut jwk = Jwk::from_spki(&spki).unwrap();
    jwk.kid = Some(kid.into());
    jwk
}

#[test]
fn keys_before_and_after_the_first_poll() {
    let (h, keys) = handler(Setup { key_use: true, ..PLAIN });
    let r = h.handle(&get("/keys", &[]), TLS);
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body(r), "document not available\n");

    keys.update(vec![ec_key("k1")]);
    let r = h.handle(&get("/keys", &[]), TLS);
    assert_eq!(r.status(), StatusCode::OK);
    for (name, value) in [
        ("cache-control", "no-cache, no-store, must-revalidate"),
        ("pragma", "no-cache"),
        ("expires", "0"),
        ("content-type", "application/json"),
        ("accept-ranges", "bytes"),
    ] {
        assert_eq!(r.headers()[name], value, "{name}");
    }
    let last_modified = r.headers()["last-modified"].to_str().unwrap().to_owned();
    let text = body(r);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["keys"][0]["kid"], "k1");
    assert_eq!(doc["keys"][0]["use"], "sig");
    assert_eq!(doc["keys"][0]["alg"], "ES256");
    assert!(text.starts_with("{\n  \"keys\": [\n    {\n      \"use\": \"sig\",\n      \"kty\": \"EC\","), "{text}");

    let r = h.handle(&get("/keys", &[("if-modified-since", &last_modified)]), TLS);
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = h.handle(&get("/keys", &[("range", "bytes=0-1")]), TLS);
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body(r), "{\n");
}

#[test]
fn methods_paths_and_redirects_as_go_mux() {
    let (h, _) = handler(PLAIN);
    let post = Request::post("/keys").header("host", "oidc.example.org").body(()).unwrap();
    let r = h.handle(&post, TLS);
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body(r), "method not allowed\n");
    let head = Request::head("/.well-known/openid-configuration").body(()).unwrap();
    assert_eq!(h.handle(&head, TLS).status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = h.handle(&get("/nothing", &[]), TLS);
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r), "404 page not found\n");
    let r = h.handle(&get("//keys?x=1", &[]), TLS);
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers()["location"], "/keys?x=1");
}
