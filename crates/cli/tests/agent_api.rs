//! `spire-agent api ...` and `healthcheck` end to end against a Workload API served on a real Unix
//! socket (the testkit's scriptable server), with certificates and JWT-SVIDs made by the identity core:
//! what SPIRE prints on both streams, the files `-write` leaves, and the requests the server saw, every
//! one of which must carry the `workload.spiffe.io: true` header.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use prost_types::value::Kind;
use spire_cli::agent::{Settings, run_with};
use spire_identity::jwt::{JwtSigner, JwtSvidParams, sign_jwt_svid, validate_jwt_svid};
use spire_identity::{Bundle, BundleSet, JwtAuthority, KeyType, PrivateKey, SpiffeId, TrustDomain};
use spire_proto::grpc::health::v1::health_check_response::ServingStatus;
use spire_proto::workload::{
    JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidResponse, X509svidResponse,
};
use spire_testkit::pki::Pki;
use spire_testkit::workload_api_full::{Reply, WorkloadApiFixture, x509_svid};
use tokio::sync::Notify;
use tonic::Status;
use x509_parser::prelude::{FromDer, X509Certificate};

const ID: &str = "spiffe://example.org/workload";

/// Go's `time.Time` `%v` of a certificate time, computed independently of the code under test.
fn go_time(secs: i64) -> String {
    Timestamp::from_second(secs).unwrap().to_zoned(TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S %z %Z").to_string()
}

fn validity(der: &[u8]) -> (String, String) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    (go_time(cert.validity().not_before.timestamp()), go_time(cert.validity().not_after.timestamp()))
}

/// A writer the test can read while the command is still running.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Env {
    _dir: tempfile::TempDir,
    api: WorkloadApiFixture,
    socket: String,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let api = WorkloadApiFixture::serve(dir.path()).unwrap();
    let socket = api.socket_path().to_str().unwrap().to_owned();
    Env { _dir: dir, api, socket }
}

impl Env {
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut full: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        full.extend(["-socketPath".to_owned(), self.socket.clone()]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(full, &mut out, &mut err, &Settings::isolated()).await;
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    /// Every Workload API call carried the security header; returns the methods called.
    fn assert_headers(&self) -> Vec<&'static str> {
        let calls = self.api.calls();
        assert!(!calls.is_empty());
        for call in &calls {
            if call.method != "Health/Check" {
                assert_eq!(call.header.as_deref(), Some("true"), "{call:?}");
            }
        }
        calls.iter().map(|c| c.method).collect()
    }
}

/// An SVID of `example.org` (leaf and intermediate) with its key and the root as bundle.
struct Identity {
    chain: Vec<Vec<u8>>,
    key: PrivateKey,
    root: Vec<u8>,
}

fn identity(pki: &Pki, id: &str) -> Identity {
    let (chain, key) = pki.leaf(id, &[]);
    Identity { chain, key, root: pki.root.cert_der().to_vec() }
}

fn response(ids: &[(&Identity, &str, &str)], federated: &[(&str, Vec<u8>)]) -> X509svidResponse {
    X509svidResponse {
        svids: ids
            .iter()
            .map(|(i, id, hint)| x509_svid(id, &i.chain, i.key.pkcs8_der(), std::slice::from_ref(&i.root), hint))
            .collect(),
        crl: vec![],
        federated_bundles: federated.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
    }
}

/// The stdout of `fetch x509` minus its first line, which holds a measured duration.
fn split_count_line(out: &str) -> (&str, &str) {
    let (first, rest) = out.split_once('\n').unwrap();
    (first, rest)
}

fn assert_count_line(line: &str, n: &str) {
    let dur = line.strip_prefix(&format!("Received {n} after ")).unwrap_or_else(|| panic!("{line}"));
    assert!(dur.ends_with("ms") || dur.ends_with("µs") || dur.ends_with('s'), "{line}");
}

#[tokio::test]
async fn fetch_x509_pretty() {
    let env = env();
    let pki = Pki::new(KeyType::EcP256);
    let a = identity(&pki, ID);
    let b = identity(&pki, "spiffe://example.org/other");
    let fed_root = Pki::new(KeyType::EcP256).root.cert_der().to_vec();
    env.api.set_x509(Reply::Message(response(
        &[(&a, ID, ""), (&b, "spiffe://example.org/other", "internal")],
        &[("spiffe://federated.test", fed_root.clone())],
    )));

    let (code, out, err) = env.run(&["api", "fetch"]).await;
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let (first, rest) = split_count_line(&out);
    assert_count_line(first, "2 svids");
    let block = |i: &Identity, id: &str, hint: &str| {
        let (leaf_nb, leaf_na) = validity(&i.chain[0]);
        let (int_nb, int_na) = validity(&i.chain[1]);
        let (ca_nb, ca_na) = validity(&i.root);
        let (fed_nb, fed_na) = validity(&fed_root);
        let hint = if hint.is_empty() { String::new() } else { format!("Hint:\t\t\t{hint}\n") };
        format!(
            "\nSPIFFE ID:\t\t{id}\n{hint}SVID Valid After:\t{leaf_nb}\nSVID Valid Until:\t{leaf_na}\n\
             Intermediate #1 Valid After:\t{int_nb}\nIntermediate #1 Valid Until:\t{int_na}\n\
             CA #1 Valid After:\t{ca_nb}\nCA #1 Valid Until:\t{ca_na}\n\
             [spiffe://federated.test] CA #1 Valid After:\t{fed_nb}\n[spiffe://federated.test] CA #1 Valid Until:\t{fed_na}\n"
        )
    };
    assert_eq!(rest, format!("{}{}\n", block(&a, ID, ""), block(&b, "spiffe://example.org/other", "internal")));
    assert!(rest.contains("SVID Valid After:\t20"), "Go's time format: {rest}");
    assert!(rest.contains(" +0000 UTC\n"), "{rest}");
    assert_eq!(env.assert_headers(), ["FetchX509SVID"]);
}

#[tokio::test]
async fn fetch_x509_json() {
    let env = env();
    let pki = Pki::new(KeyType::EcP256);
    let a = identity(&pki, ID);
    env.api.set_x509(Reply::Message(response(&[(&a, ID, "")], &[])));
    let (code, out, err) = env.run(&["api", "fetch", "x509", "-output", "json"]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    let b64 = |d: &[u8]| STANDARD.encode(d);
    let chain: Vec<u8> = a.chain.concat();
    assert_eq!(
        out,
        format!(
            "{{\"crl\":[],\"federated_bundles\":{{}},\"svids\":[{{\"bundle\":\"{}\",\"hint\":\"\",\"spiffe_id\":\"{ID}\",\"x509_svid\":\"{}\",\"x509_svid_key\":\"{}\"}}]}}\n",
            b64(&a.root),
            b64(&chain),
            b64(a.key.pkcs8_der()),
        )
    );
    // JSON output neither verifies nor writes (SPIRE only does that in its pretty printer).
    let dir = tempfile::tempdir().unwrap();
    let (code, _, _) = env.run(&["api", "fetch", "-output", "json", "-write", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The bits the process umask removes, probed with a scratch file.
fn umask(dir: &std::path::Path) -> u32 {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join("probe");
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o777).open(&probe).unwrap();
    let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(probe).unwrap();
    !mode & 0o777
}

#[tokio::test]
async fn fetch_x509_write_files_and_modes() {
    let env = env();
    let pki = Pki::new(KeyType::EcP256);
    let a = identity(&pki, ID);
    let fed_root = Pki::new(KeyType::EcP256).root.cert_der().to_vec();
    env.api.set_x509(Reply::Message(response(&[(&a, ID, "")], &[("spiffe://federated.test", fed_root.clone())])));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    let (code, out, err) = env.run(&["api", "fetch", "-silent", "-write", &format!("{d}/")]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    // -silent hides the SVID listing, not the file messages.
    assert_eq!(
        out,
        format!(
            "Writing SVID #0 to file {d}/svid.0.pem.\nWriting key #0 to file {d}/svid.0.key.\nWriting bundle #0 to file {d}/bundle.0.pem.\n\
             Writing federated bundle #0 for trust domain spiffe://federated.test to file {d}/federated_bundle.0.0.pem.\n"
        )
    );
    let pem = |ders: &[&[u8]]| spire_identity::x509::certs_to_pem(ders);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("svid.0.pem"), pem(&[&a.chain[0], &a.chain[1]]));
    assert!(read("svid.0.pem").starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(read("svid.0.key"), a.key.to_pem());
    assert!(read("svid.0.key").starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(read("bundle.0.pem"), pem(&[&a.root]));
    assert_eq!(read("federated_bundle.0.0.pem"), pem(&[&fed_root]));

    let mask = umask(dir.path());
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("svid.0.key"), 0o600 & !mask);
    for name in ["svid.0.pem", "bundle.0.pem", "federated_bundle.0.0.pem"] {
        assert_eq!(mode(name), 0o644 & !mask, "{name}");
    }

    // Pretty output without -silent: the listing, then the messages.
    let (code, out, _) = env.run(&["api", "fetch", "-write", d]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("Received 1 svid after "), "{out}");
    assert!(out.contains("\n\nWriting SVID #0 to file "), "{out}");

    // A directory that does not exist.
    let (code, _, err) = env.run(&["api", "fetch", "-silent", "-write", "/does/not/exist"]).await;
    assert_eq!((code, err.as_str()), (1, "open /does/not/exist/svid.0.pem: no such file or directory\n"));
}

#[tokio::test]
async fn fetch_x509_errors() {
    let env = env();
    // Nothing registered for the caller: SPIRE's agent says so with PermissionDenied.
    let (code, out, err) = env.run(&["api", "fetch"]).await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "rpc error: code = PermissionDenied desc = no identity issued\n")
    );

    env.api.set_x509(Reply::Error(Status::unknown("error fetching svid")));
    assert_eq!(
        env.run(&["api", "fetch", "-output", "json"]).await.2,
        "rpc error: code = Unknown desc = error fetching svid\n"
    );

    env.api.set_x509(Reply::Hang);
    let (code, _, err) = env.run(&["api", "fetch", "-timeout", "200ms"]).await;
    assert_eq!((code, err.as_str()), (1, "rpc error: code = DeadlineExceeded desc = context deadline exceeded\n"));

    // An SVID that does not chain to its bundle.
    let pki = Pki::new(KeyType::EcP256);
    let mut a = identity(&pki, ID);
    a.root = Pki::new(KeyType::EcP256).root.cert_der().to_vec();
    env.api.set_x509(Reply::Message(response(&[(&a, ID, "")], &[])));
    let (code, _, err) = env.run(&["api", "fetch"]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with(&format!("\"{ID}\" SVID failed verification against bundle: ")), "{err}");

    env.api.set_x509(Reply::Message(X509svidResponse::default()));
    assert_eq!(env.run(&["api", "fetch"]).await.2, "workload response contains no svids\n");
    assert_eq!(env.assert_headers().len(), 5);
}

fn jwt_setup() -> (JwtSigner, Bundle) {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let td = TrustDomain::parse("example.org").unwrap();
    let mut bundle = Bundle::new(td);
    bundle
        .add_jwt_authority(JwtAuthority { key_id: "kid-1".into(), public_key_der: key.public_key_der(), expires_at: 0 })
        .unwrap();
    (JwtSigner::new("kid-1", key), bundle)
}

fn token(signer: &JwtSigner, id: &str, audience: &[&str], now: SystemTime) -> String {
    let audience: Vec<String> = audience.iter().map(|s| (*s).to_owned()).collect();
    let params = JwtSvidParams {
        spiffe_id: &SpiffeId::parse(id).unwrap(),
        audience: &audience,
        now,
        ttl: Duration::from_secs(300),
        issuer: None,
        jti: None,
    };
    sign_jwt_svid(&params, signer).unwrap()
}

#[tokio::test]
async fn fetch_jwt() {
    let env = env();
    let (signer, bundle) = jwt_setup();
    let now = SystemTime::now();
    let t1 = token(&signer, ID, &["a", "b"], now);
    let t2 = token(&signer, "spiffe://example.org/other", &["a", "b"], now);
    let jwks = bundle.to_jwt_jwks();
    env.api.set_jwt_bundles(Reply::Message(JwtBundlesResponse {
        bundles: [("spiffe://example.org".to_owned(), jwks.clone())].into(),
    }));
    env.api.set_jwt_svid(Reply::Message(JwtsvidResponse {
        svids: vec![
            Jwtsvid { spiffe_id: ID.into(), svid: t1.clone(), hint: String::new() },
            Jwtsvid { spiffe_id: "spiffe://example.org/other".into(), svid: t2.clone(), hint: "internal".into() },
        ],
    }));
    let jwks_text = String::from_utf8(jwks.clone()).unwrap();

    let (code, out, err) = env.run(&["api", "fetch", "jwt", "-audience", "a,b", "-spiffeID", ID]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "token({ID}):\n\t{t1}\ntoken(spiffe://example.org/other):\n\t{t2}\nhint(spiffe://example.org/other):\n\tinternal\nbundle(spiffe://example.org):\n\t{jwks_text}\n"
        )
    );
    assert_eq!(
        env.api.jwt_requests(),
        [JwtsvidRequest { audience: vec!["a".into(), "b".into()], spiffe_id: ID.into() }]
    );
    assert_eq!(env.assert_headers(), ["FetchJWTBundles", "FetchJWTSVID"]);

    // -format is the deprecated spelling of -output.
    let (code, out, _) = env.run(&["api", "fetch", "jwt", "-audience", "a", "-format", "json"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "[{{\"svids\":[{{\"hint\":\"\",\"spiffe_id\":\"{ID}\",\"svid\":\"{t1}\"}},{{\"hint\":\"internal\",\"spiffe_id\":\"spiffe://example.org/other\",\"svid\":\"{t2}\"}}]}},{{\"bundles\":{{\"spiffe://example.org\":\"{}\"}}}}]\n",
            STANDARD.encode(&jwks)
        )
    );
}

#[tokio::test]
async fn fetch_jwt_errors() {
    let env = env();
    env.api.set_jwt_bundles(Reply::Error(Status::unknown("error fetching bundles")));
    let (code, _, err) = env.run(&["api", "fetch", "jwt", "-audience", "foo"]).await;
    assert_eq!((code, err.as_str()), (1, "rpc error: code = Unknown desc = error fetching bundles\n"));

    env.api.set_jwt_bundles(Reply::Message(JwtBundlesResponse::default()));
    env.api.set_jwt_svid(Reply::Error(Status::unknown("error fetching svid")));
    let (_, _, err) = env.run(&["api", "fetch", "jwt", "-audience", "foo"]).await;
    assert_eq!(err, "rpc error: code = Unknown desc = error fetching svid\n");

    env.api.set_jwt_svid(Reply::Hang);
    let (_, _, err) = env.run(&["api", "fetch", "jwt", "-audience", "foo", "-timeout", "100ms"]).await;
    assert_eq!(err, "rpc error: code = DeadlineExceeded desc = context deadline exceeded\n");
}

fn to_value(v: &serde_json::Value) -> prost_types::Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => {
            Kind::ListValue(prost_types::ListValue { values: a.iter().map(to_value).collect() })
        }
        serde_json::Value::Object(o) => {
            Kind::StructValue(prost_types::Struct { fields: o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() })
        }
    };
    prost_types::Value { kind: Some(kind) }
}

#[tokio::test]
async fn validate_jwt() {
    let env = env();
    let (signer, bundle) = jwt_setup();
    let bundles = BundleSet::from(bundle);
    // Validates as SPIRE's agent does, answering InvalidArgument for a token that does not validate.
    env.api.set_validator(Arc::new(move |req| {
        let svid = validate_jwt_svid(&req.svid, &bundles, &[req.audience.as_str()], SystemTime::now())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let claims =
            prost_types::Struct { fields: svid.claims.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() };
        Ok(ValidateJwtsvidResponse { spiffe_id: svid.spiffe_id.to_string(), claims: Some(claims) })
    }));
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs());
    let iat = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let t = token(&signer, ID, &["a", "b"], now);

    let (code, out, err) = env.run(&["api", "validate", "jwt", "-audience", "a", "-svid", &t]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "SVID is valid.\nSPIFFE ID : {ID}\nClaims    : {{\"aud\":[\"a\",\"b\"],\"exp\":{},\"iat\":{iat},\"sub\":\"{ID}\"}}\n",
            iat + 300
        )
    );
    let (_, out, _) = env.run(&["api", "validate", "jwt", "-audience", "a", "-svid", &t, "-output", "json"]).await;
    assert_eq!(
        out,
        format!(
            "{{\"claims\":{{\"aud\":[\"a\",\"b\"],\"exp\":{},\"iat\":{iat},\"sub\":\"{ID}\"}},\"spiffe_id\":\"{ID}\"}}\n",
            iat + 300
        )
    );

    let (code, out, err) = env.run(&["api", "validate", "jwt", "-audience", "c", "-svid", &t]).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "SVID is not valid: expected audience in [\"c\"] (audience=[\"a\", \"b\"])\n");
    let (_, _, err) = env.run(&["api", "validate", "jwt", "-audience", "a", "-svid", "invalid"]).await;
    assert!(err.starts_with("SVID is not valid: token is malformed"), "{err}");
    assert_eq!(
        env.api.validate_requests().iter().map(|r| r.audience.as_str()).collect::<Vec<_>>(),
        ["a", "a", "c", "a"]
    );
    assert_eq!(env.assert_headers(), ["ValidateJWTSVID"; 4]);

    // Other failures are wrapped.
    env.api.set_validator(Arc::new(|_| Err(Status::internal("boom"))));
    let (_, _, err) = env.run(&["api", "validate", "jwt", "-audience", "a", "-svid", &t]).await;
    assert_eq!(err, "unable to validate JWT SVID: rpc error: code = Internal desc = boom\n");
}

#[tokio::test]
async fn healthcheck() {
    let env = env();
    assert_eq!(env.run(&["healthcheck"]).await, (0, "Agent is healthy.\n".to_owned(), String::new()));
    assert_eq!(
        env.run(&["healthcheck", "-verbose", "-shallow"]).await,
        (0, "Checking agent health...\nAgent is healthy.\n".to_owned(), String::new())
    );
    env.api.set_health(Reply::Message(ServingStatus::NotServing));
    assert_eq!(
        env.run(&["healthcheck"]).await,
        (1, String::new(), "Agent is unhealthy: agent returned status \"NOT_SERVING\"\n".to_owned())
    );
    env.api.set_health(Reply::Error(Status::unavailable("starting")));
    assert_eq!(
        env.run(&["healthcheck", "-verbose"]).await,
        (
            1,
            "Checking agent health...\n".to_owned(),
            "Failed to check health: rpc error: code = Unavailable desc = starting\nAgent is unhealthy: unable to determine health\n"
                .to_owned()
        )
    );
}

/// Runs `api watch` until `until` says enough, then interrupts it; returns (code, stdout, stderr).
async fn watch(env: &Env, until: impl AsyncFnOnce(&SharedBuf, &SharedBuf)) -> (i32, String, String) {
    let (out, err) = (SharedBuf::default(), SharedBuf::default());
    let interrupt = Arc::new(Notify::new());
    let settings = Settings::isolated().with_interrupt(Arc::clone(&interrupt));
    let args = vec!["api".to_owned(), "watch".to_owned(), "-socketPath".to_owned(), env.socket.clone()];
    let (mut o, mut e) = (out.clone(), err.clone());
    let driver = async {
        until(&out, &err).await;
        interrupt.notify_one();
    };
    let (code, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(run_with(args, &mut o, &mut e, &settings), driver)
    })
    .await
    .expect("watch did not stop");
    (code, out.text(), err.text())
}

async fn wait_for(buf: &SharedBuf, what: &str, count: usize) {
    while buf.text().matches(what).count() < count {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn watch_prints_updates_and_reconnects() {
    let env = env();
    let pki = Pki::new(KeyType::EcP256);
    let a = identity(&pki, ID);
    let b = identity(&pki, "spiffe://example.org/other");
    let fed_root = Pki::new(KeyType::EcP256).root.cert_der().to_vec();
    let first = response(&[(&a, ID, "hint-not-shown")], &[("spiffe://federated.test", fed_root.clone())]);
    env.api.set_x509(Reply::Message(first));
    let second = response(&[(&a, ID, ""), (&b, "spiffe://example.org/other", "")], &[]);
    let api = env.api.clone();

    let (code, out, err) = watch(&env, async |out, _| {
        wait_for(out, "Received 1 svid after", 1).await;
        api.push_x509(second);
        wait_for(out, "Received 2 svids after", 1).await;
        // The agent goes away: the watcher reports EOF and reconnects after a second.
        api.end_x509_streams();
        wait_for(out, "Received 1 svid after", 2).await;
    })
    .await;

    assert_eq!(code, 1);
    assert_eq!(
        err,
        "EOF\nrpc error: code = Canceled desc = context canceled\nrpc error: code = Canceled desc = context canceled\n"
    );
    assert_eq!(env.api.x509_streams_opened(), 2);
    let blocks: Vec<&str> = out.split("Received ").filter(|b| !b.is_empty()).collect();
    assert_eq!(blocks.len(), 3, "{out}");
    // go-spiffe's context: the ID comes from the certificate, the hint is dropped, and federated
    // bundles are keyed by bare trust domain name.
    let (leaf_nb, leaf_na) = validity(&a.chain[0]);
    let (int_nb, int_na) = validity(&a.chain[1]);
    let (ca_nb, ca_na) = validity(&a.root);
    let (fed_nb, fed_na) = validity(&fed_root);
    let (count, body) = blocks[0].split_once('\n').unwrap();
    assert!(count.starts_with("1 svid after "), "{count}");
    assert_eq!(
        body,
        format!(
            "\nSPIFFE ID:\t\t{ID}\nSVID Valid After:\t{leaf_nb}\nSVID Valid Until:\t{leaf_na}\n\
             Intermediate #1 Valid After:\t{int_nb}\nIntermediate #1 Valid Until:\t{int_na}\n\
             CA #1 Valid After:\t{ca_nb}\nCA #1 Valid Until:\t{ca_na}\n\
             [federated.test] CA #1 Valid After:\t{fed_nb}\n[federated.test] CA #1 Valid Until:\t{fed_na}\n\n"
        )
    );
    assert!(blocks[1].starts_with("2 svids after "), "{}", blocks[1]);
    assert!(blocks[1].contains("SPIFFE ID:\t\tspiffe://example.org/other\n"));
    assert_eq!(env.assert_headers(), ["FetchX509SVID", "FetchX509SVID"]);
}

#[tokio::test]
async fn watch_retries_errors_until_interrupted() {
    let env = env();
    // PermissionDenied is retried (after a second); the interrupt lands during the backoff.
    let (code, out, err) = watch(&env, async |_, err| {
        wait_for(err, "no identity issued", 1).await;
    })
    .await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "rpc error: code = PermissionDenied desc = no identity issued\ncontext canceled\n");

    // InvalidArgument ends the watch by itself, printed by the watcher and again by the command.
    env.api.set_x509(Reply::Error(Status::invalid_argument("security header missing from request")));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = vec!["api".to_owned(), "watch".to_owned(), "-socketPath".to_owned(), env.socket.clone()];
    let code = run_with(args, &mut out, &mut err, &Settings::isolated()).await;
    let line = "rpc error: code = InvalidArgument desc = security header missing from request\n";
    assert_eq!((code, String::from_utf8(err).unwrap()), (1, format!("{line}{line}")));
}
