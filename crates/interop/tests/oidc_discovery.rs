//! Our `oidc-discovery-provider` between our server and agent and relying parties we did not write:
//!
//! - a Go relying party on `github.com/coreos/go-oidc/v3` (`peers/go-oidc`) discovers the provider
//!   over HTTPS (`serving_cert_file`, a test CA given to Go through `SSL_CERT_FILE`) and verifies the
//!   JWT-SVIDs our agent hands this process: with the `server_api` source (our server's Bundle API)
//!   and with the `workload_api` source (our agent's FetchJWTBundles, `jwt_issuer` and `jwks_uri`
//!   set); it refuses a tampered token and one for another audience; after the server rotates its
//!   JWT key, the same long-running relying party verifies tokens signed by the new key (go-oidc
//!   refetches the JWKS, which the provider has picked up by polling);
//! - with `acme`, the provider obtains its certificate from pebble (Let's Encrypt's ACME test CA)
//!   by tls-alpn-01 on port 443, and go-oidc, trusting only pebble's issuing root, discovers it and
//!   verifies a JWT-SVID signed by a key of the `file` source's bundle;
//! - SPIRE v1.13.3's own provider (`peers/spire-oidc`), run on the same sources, answers the same
//!   requests with the same status, headers and bytes.
//!
//! Peers are built by `scripts/install-peers.sh go-oidc spire-oidc pebble`.

mod agent_server;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_server::{tail, uid_selector};
use base64::Engine;
use spiffe::WorkloadApiClient;
use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id, server_cli};
use spire_testkit::peers;
use spire_testkit::process::{TestServer, free_port};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const WORKLOAD: &str = "spiffe://example.org/oidc/workload";

/// One provider process (ours or SPIRE's), killed on drop.
struct Provider {
    child: std::process::Child,
    log: PathBuf,
    port: u16,
    health_port: u16,
    name: String,
}

impl Provider {
    /// Starts `binary` on `conf` (written to `<dir>/<name>.conf`), `{port}` replaced by `port` (a
    /// free one if `None`) and `{health_port}` by a free port.
    fn start(binary: &Path, dir: &Path, name: &str, conf: &str, port: Option<u16>) -> Self {
        Self::start_with_env(binary, dir, name, conf, port, &[])
    }

    /// [`Provider::start`] with extra environment variables.
    fn start_with_env(
        binary: &Path,
        dir: &Path,
        name: &str,
        conf: &str,
        port: Option<u16>,
        env: &[(&str, &Path)],
    ) -> Self {
        let (port, health_port) = (port.unwrap_or_else(free_port), free_port());
        let conf = conf.replace("{port}", &port.to_string()).replace("{health_port}", &health_port.to_string());
        let conf_path = dir.join(format!("{name}.conf"));
        std::fs::write(&conf_path, conf).expect("write provider config");
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("provider log");
        let child = std::process::Command::new(binary)
            .arg("-config")
            .arg(&conf_path)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start the provider");
        Self { child, log, port, health_port, name: name.to_owned() }
    }

    fn log(&self) -> String {
        format!("--- {} ---\n{}", self.name, tail(&std::fs::read_to_string(&self.log).unwrap_or_default()))
    }

    /// Waits until `/keys` serves a key set holding `kid` (the provider has polled its source), or
    /// says what it served instead.
    async fn wait_for_kid(&mut self, tls: Option<&Arc<rustls::ClientConfig>>, kid: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("{} exited with {status}\n{}", self.name, self.log());
            }
            match get(self.port, tls, &Req::new("/keys")).await {
                Ok(r) if r.status == 200 && r.body.contains(kid) => return Ok(()),
                Ok(r) => last = format!("{} {}", r.status, r.body),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{} never served key {kid} (last: {last})\n{}", self.name, self.log()))
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request made by hand, so that `Host` and the forwarding headers are exactly what we say.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    host: String,
    headers: Vec<(&'static str, String)>,
}

impl Req {
    fn new(path: &str) -> Self {
        Self { method: "GET", path: path.into(), host: "localhost".into(), headers: Vec::new() }
    }
    fn host(mut self, host: &str) -> Self {
        self.host = host.into();
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// One HTTP/1.1 request to `127.0.0.1:<port>`, over TLS when `tls` is given (SNI `localhost`).
async fn get(port: u16, tls: Option<&Arc<rustls::ClientConfig>>, req: &Req) -> Result<Resp, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let mut text = format!("{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", req.method, req.path, req.host);
    for (k, v) in &req.headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    let mut raw = Vec::new();
    match tls {
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
            let mut s = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(text.as_bytes()).await.map_err(|e| e.to_string())?;
            // Go closes without close_notify after `Connection: close`: keep what arrived.
            let _ = s.read_to_end(&mut raw).await;
        }
        None => {
            let mut s = tcp;
            s.write_all(text.as_bytes()).await.map_err(|e| e.to_string())?;
            s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        }
    }
    let raw = String::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {raw:?}"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or("status")?;
    let mut headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.sort();
    Ok(Resp { status, headers, body: body.to_owned() })
}

/// A TLS client trusting `ca.pem` only.
fn tls_client(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_pem).expect("CA");
    for cert in spire_identity::x509::certs_from_pem(&String::from_utf8(pem).expect("PEM")).expect("CA PEM") {
        roots.add(rustls::pki_types::CertificateDer::from(cert)).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The go-oidc relying party, alive across the test so that its key cache is exercised.
struct GoVerifier {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl GoVerifier {
    fn start(binary: &Path, ca_pem: &Path, discovery: &str, issuer: &str) -> Self {
        let mut child = tokio::process::Command::new(binary)
            .args(["-discovery", discovery, "-issuer", issuer])
            .env("SSL_CERT_FILE", ca_pem)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start go-oidc-verify");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, stdin, lines }
    }

    /// go-oidc's verdict on `token` for `audience`.
    async fn verify(&mut self, audience: &str, token: &str) -> serde_json::Value {
        self.stdin.write_all(format!("{audience} {token}\n").as_bytes()).await.expect("write to go-oidc-verify");
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("go-oidc-verify answers within 20 s")
            .expect("read go-oidc-verify")
            .unwrap_or_else(|| panic!("go-oidc-verify exited: {:?}", self.child.try_wait()));
        let verdict: serde_json::Value = serde_json::from_str(&line).expect("JSON verdict");
        let error = verdict["error"].as_str().unwrap_or("");
        assert!(!error.starts_with("discovery:"), "go-oidc could not discover the provider: {error}");
        verdict
    }
}

/// A JWT-SVID for `audience` now, or why not.
async fn try_fetch_jwt(endpoint: &str, audience: &str) -> Result<String, String> {
    let client = WorkloadApiClient::connect_to(endpoint).await.map_err(|e| e.to_string())?;
    let svid = client.fetch_jwt_svid(&[audience], None).await.map_err(|e| e.to_string())?;
    Ok(svid.token().to_owned())
}

/// A JWT-SVID for this process's workload and `audience`, once the agent has the entry.
async fn fetch_jwt(endpoint: &str, audience: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = async {
            let client = WorkloadApiClient::connect_to(endpoint).await.map_err(|e| e.to_string())?;
            client.fetch_jwt_svid(&[audience], None).await.map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(svid) => return svid.token().to_owned(),
            Err(e) if Instant::now() > deadline => panic!("no JWT-SVID for {audience}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The `kid` of a JWT's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("JWT header");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url header");
    let header: serde_json::Value = serde_json::from_slice(&json).expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

/// `token` with one signature character changed.
fn tampered(token: &str) -> String {
    let sig_start = token.rfind('.').expect("JWT") + 1;
    let mut bytes = token.as_bytes().to_vec();
    let i = sig_start + (bytes.len() - sig_start) / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

/// Our server (with `server_extra` in its block), our agent, and an entry for this process.
async fn server_and_agent(server_extra: &str, agent_dir: &Path) -> (TestServer, TestAgent, PathBuf) {
    let server_bin = peers::workspace_binary("spire-server");
    let server = TestServer::start(&server_bin, server_extra).await;
    let token = generate_token(&server_bin, &server);
    let parent = join_token_agent_id(&token);
    server_cli(
        &server_bin,
        &server,
        &["entry", "create", "-parentID", &parent, "-spiffeID", WORKLOAD, "-selector", &uid_selector()],
    );
    let options =
        AgentOptions { sync_interval: "1s".into(), discover_workload_path: false, ..AgentOptions::with_token(&token) };
    let agent = TestAgent::start(peers::workspace_binary("spire-agent"), agent_dir, server.port, &options).await;
    (server, agent, server_bin)
}

/// A CA and a `localhost` serving certificate under `dir`: `ca.pem`, `web.pem`, `web.key`.
fn web_pki(dir: &Path) {
    spire_testkit::openssl::ca(dir, "ca");
    spire_testkit::openssl::leaf_with(
        dir,
        "ca",
        "web",
        "ec",
        "2",
        "subjectAltName=DNS:localhost\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn go_oidc_verifies_jwt_svids_through_our_provider_and_follows_rotation() {
    let Some(go_oidc) = peers::require("go-oidc-verify") else { return };
    let provider_bin = peers::workspace_binary("oidc-discovery-provider");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    web_pki(dir);
    let ca = dir.join("ca.pem");
    let tls = tls_client(&ca);

    // The server-API provider's URL is the issuer our server writes in JWT-SVIDs. A 36 s CA TTL makes
    // the server prepare its next keys at 18 s and switch to them at 30 s (its CA manager ticks every
    // 10 s: a shorter TTL would prepare and activate in one tick, before the agent could learn the
    // new CA).
    let port_a = free_port();
    let issuer = format!("https://localhost:{port_a}");
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let (server, agent, _) =
        server_and_agent(&format!("ca_ttl = \"36s\"\n    jwt_issuer = \"{issuer}\""), &agent_dir).await;
    let logs = |providers: &[&Provider]| {
        let p: Vec<String> = providers.iter().map(|p| p.log()).collect();
        format!("{}\n--- server ---\n{}\n--- agent ---\n{}", p.join("\n"), tail(&server.log()), tail(&agent.log()))
    };

    let token = fetch_jwt(&agent.endpoint(), "relying-party").await;
    let other_audience = fetch_jwt(&agent.endpoint(), "someone-else").await;
    let first_kid = kid(&token);

    let serving = format!(
        "serving_cert_file {{\n  cert_file_path = \"{}\"\n  key_file_path = \"{}\"\n  addr = \"127.0.0.1:{{port}}\"\n}}\n",
        dir.join("web.pem").display(),
        dir.join("web.key").display()
    );
    let conf_a = format!(
        "log_level = \"debug\"\ndomains = [\"localhost\"]\n{serving}server_api {{\n  address = \"unix://{}\"\n  poll_interval = \"1s\"\n}}\n",
        server.socket.display()
    );
    let mut a = Provider::start(&provider_bin, dir, "ours-server-api", &conf_a, Some(port_a));

    let conf_b = format!(
        "log_level = \"debug\"\ndomains = [\"localhost\"]\n{serving}set_key_use = true\njwt_issuer = \"{issuer}\"\n\
         jwks_uri = \"https://localhost:{{port}}/keys\"\nworkload_api {{\n  socket_path = \"{}\"\n  trust_domain = \"example.org\"\n  poll_interval = \"1s\"\n}}\n",
        agent.socket.display()
    );
    let mut b = Provider::start(&provider_bin, dir, "ours-workload-api", &conf_b, None);
    for p in [&mut a, &mut b] {
        p.wait_for_kid(Some(&tls), &first_kid).await.unwrap_or_else(|e| panic!("{e}\n{}", logs(&[])));
    }

    // The workload-API provider names the configured issuer and keys.
    let doc = get(b.port, Some(&tls), &Req::new("/.well-known/openid-configuration")).await.expect("discovery");
    let doc: serde_json::Value = serde_json::from_str(&doc.body).expect("JSON document");
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["jwks_uri"], format!("https://localhost:{}/keys", b.port).as_str());
    let keys = get(b.port, Some(&tls), &Req::new("/keys")).await.expect("keys");
    assert!(keys.body.contains("\"use\": \"sig\""), "set_key_use: {}", keys.body);

    let b_url = format!("https://localhost:{}", b.port);
    let mut relying_parties = [
        ("server_api", GoVerifier::start(&go_oidc, &ca, &issuer, &issuer)),
        ("workload_api", GoVerifier::start(&go_oidc, &ca, &b_url, &issuer)),
    ];
    for (source, rp) in &mut relying_parties {
        let ok = rp.verify("relying-party", &token).await;
        assert_eq!(ok["ok"], true, "{source}: {ok}\n{}", logs(&[&a, &b]));
        assert_eq!(ok["subject"], WORKLOAD);
        assert_eq!(ok["issuer"], issuer.as_str());
        let bad = rp.verify("relying-party", &tampered(&token)).await;
        assert_eq!(bad["ok"], false, "{source}: a tampered token verified");
        assert!(bad["error"].as_str().unwrap_or("").contains("signature"), "{source}: {bad}");
        let wrong = rp.verify("relying-party", &other_audience).await;
        assert_eq!(wrong["ok"], false, "{source}: a token for another audience verified");
        assert!(wrong["error"].as_str().unwrap_or("").contains("audience"), "{source}: {wrong}");
    }

    // The server switches to its next JWT key: wait for a token signed by it (a fresh audience each
    // time, so the agent's JWT-SVID cache does not answer).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let (rotated, rotated_audience) = loop {
        n += 1;
        let audience = format!("after-rotation-{n}");
        let t = match try_fetch_jwt(&agent.endpoint(), &audience).await {
            Ok(t) => t,
            Err(e) => panic!("no JWT-SVID for {audience}: {e}\n{}", logs(&[&a, &b])),
        };
        if kid(&t) != first_kid {
            break (t, audience);
        }
        assert!(Instant::now() < deadline, "the server's JWT key did not rotate\n{}", logs(&[&a, &b]));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let new_kid = kid(&rotated);
    for p in [&mut a, &mut b] {
        if let Err(e) = p.wait_for_kid(Some(&tls), &new_kid).await {
            let served =
                WorkloadApiClient::connect_to(&agent.endpoint()).await.expect("connect").fetch_jwt_bundles().await;
            panic!("{e}\nthe agent serves: {served:?}\n{}", logs(&[]));
        }
    }
    for (source, rp) in &mut relying_parties {
        let ok = rp.verify(&rotated_audience, &rotated).await;
        assert_eq!(ok["ok"], true, "{source} after rotation: {ok}\n{}", logs(&[&a, &b]));
        assert_eq!(ok["subject"], WORKLOAD);
    }
}

/// The headers both providers must agree on (`Date`, `Last-Modified` and the like differ by time).
const COMPARED_HEADERS: [&str; 9] = [
    "content-type",
    "content-length",
    "cache-control",
    "pragma",
    "expires",
    "accept-ranges",
    "x-content-type-options",
    "location",
    "content-range",
];

/// `r` with its multipart boundary (random, 60 hex digits) replaced by a fixed word.
fn without_boundary(mut r: Resp) -> Resp {
    let boundary = r
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .and_then(|(_, v)| v.split_once("boundary=").map(|(_, b)| b.to_owned()));
    if let Some(boundary) = boundary {
        assert_eq!(boundary.len(), 60, "Go's boundary is 30 random bytes in hex");
        r.body = r.body.replace(&boundary, "BOUNDARY");
        for (_, v) in &mut r.headers {
            *v = v.replace(&boundary, "BOUNDARY");
        }
    }
    r
}

/// Status, compared headers and body.
fn comparable(r: &Resp) -> (u16, Vec<(String, String)>, String) {
    let headers = r.headers.iter().filter(|(k, _)| COMPARED_HEADERS.contains(&k.as_str())).cloned().collect();
    (r.status, headers, r.body.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn our_provider_answers_as_spires_provider() {
    let Some(spire_provider) = peers::require("upstream-oidc-discovery-provider") else { return };
    let ours = peers::workspace_binary("oidc-discovery-provider");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let (server, agent, _) = server_and_agent("", &agent_dir).await;
    // The entry must have reached the agent before FetchJWTBundles answers this process.
    let kid = kid(&fetch_jwt(&agent.endpoint(), "compare").await);

    let common = "log_level = \"debug\"\ndomains = [\"localhost\", \"oidc.example.org\"]\n\
                  insecure_addr = \"127.0.0.1:{port}\"\nallow_insecure_scheme = true\nset_key_use = true\n\
                  health_checks {\n  bind_port = \"{health_port}\"\n}\n";
    let sources = [
        (
            "server_api",
            format!(
                "server_api {{\n  address = \"unix://{}\"\n  poll_interval = \"1s\"\n}}\n",
                server.socket.display()
            ),
        ),
        (
            "workload_api",
            format!(
                "workload_api {{\n  socket_path = \"{}\"\n  trust_domain = \"example.org\"\n  poll_interval = \"1s\"\n}}\n",
                agent.socket.display()
            ),
        ),
        (
            "server_api with prefix and issuer",
            format!(
                "server_path_prefix = \"/instance/1\"\njwt_issuer = \"https://issuer.example/base/\"\n\
                 server_api {{\n  address = \"unix://{}\"\n}}\n",
                server.socket.display()
            ),
        ),
    ];
    let far_future = "Fri, 01 Jan 2100 00:00:00 GMT";
    for (source, section) in &sources {
        let conf = format!("{common}{section}");
        let slug = source.replace(' ', "-");
        let mut theirs = Provider::start(&spire_provider, dir, &format!("spire-{slug}"), &conf, None);
        let mut mine = Provider::start(&ours, dir, &format!("ours-{slug}"), &conf, None);
        let prefix = if source.contains("prefix") { "/instance/1" } else { "" };
        let (wk, keys) = (format!("{prefix}/.well-known/openid-configuration"), format!("{prefix}/keys"));
        for p in [&mut theirs, &mut mine] {
            // Both poll at start; the prefixed ones serve their keys under the prefix.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match get(p.port, None, &Req::new(&keys)).await {
                    Ok(r) if r.status == 200 && r.body.contains(&kid) => break,
                    other => assert!(Instant::now() < deadline, "{source}: {} keys: {other:?}\n{}", p.name, p.log()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let requests = [
            Req::new(&wk),
            Req::new(&wk).host("localhost:8443"),
            Req::new(&wk).header("X-Forwarded-Proto", "https"),
            Req::new(&wk).header("Forwarded", "for=192.0.2.1;proto=https"),
            Req::new(&wk).header("X-Forwarded-Host", "oidc.example.org"),
            Req::new(&wk).header("X-Forwarded-Host", "evil.example"),
            Req::new(&wk).host("OIDC.example.org"),
            Req::new(&wk).host("a_b.example"),
            Req::new(&wk).method("POST"),
            Req::new(&wk).method("HEAD"),
            Req::new(&keys),
            Req::new(&keys).host("anything.example"),
            Req::new(&keys).header("If-Modified-Since", far_future),
            Req::new(&keys).header("If-None-Match", "*"),
            Req::new(&keys).header("Range", "bytes=0-9"),
            Req::new(&keys).header("Range", "bytes=-7"),
            Req::new(&keys).method("DELETE"),
            Req::new("/nothing"),
            Req::new(&format!("/{keys}?x=1")),
            Req::new(&format!("{prefix}/./keys")),
            Req::new(&format!("{prefix}/%6beys")),
            Req::new(&format!("{keys}/")),
            Req::new(&keys).method("HEAD"),
            Req::new(&wk).host("[::1]:8443"),
            Req::new(&wk).host("xn--bcher-kva.example"),
            Req::new(&wk).host("-bad.example"),
            Req::new(&wk).header("X-Forwarded-Proto", "HTTP"),
            Req::new(&keys).header("If-Match", "\"abc\""),
            Req::new(&keys).header("If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"),
            Req::new(&keys).header("Range", "bytes=5000-"),
            Req::new(&keys).header("Range", "bytes="),
            Req::new(&keys).header("Range", "bytes=0-1,5000-"),
            Req::new(&keys).header("Range", "bytes=0-100000,0-100000"),
            Req::new(&keys).header("Range", "bytes=9-3"),
            Req::new(&keys).header("Range", "bytes=0-3").header("If-Range", "\"etag\""),
            Req::new(&keys).header("Range", "bytes=0-3").header("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ];
        for req in &requests {
            let expected = get(theirs.port, None, req).await.expect("SPIRE's provider answers");
            let got = get(mine.port, None, req).await.expect("our provider answers");
            let what = format!("{source}: {} {} (Host {}, {:?})", req.method, req.path, req.host, req.headers);
            assert_eq!(comparable(&got), comparable(&expected), "{what}");
        }
        // Several ranges: a multipart body whose boundary is random on both sides.
        for multi in
            [Req::new(&keys).header("Range", "bytes=0-1,4-5"), Req::new(&keys).header("Range", "bytes=-3, 10-12,100-")]
        {
            let expected = without_boundary(get(theirs.port, None, &multi).await.expect("SPIRE's provider answers"));
            let got = without_boundary(get(mine.port, None, &multi).await.expect("our provider answers"));
            assert_eq!(expected.status, 206, "{source}: multi-range");
            assert_eq!(comparable(&got), comparable(&expected), "{source}: {:?}", multi.headers);
        }
        for path in ["/ready", "/live", "/other"] {
            let expected = get(theirs.health_port, None, &Req::new(path)).await.expect("SPIRE's health");
            let got = get(mine.health_port, None, &Req::new(path)).await.expect("our health");
            assert_eq!(comparable(&got), comparable(&expected), "{source}: health {path}");
        }
    }

    // A source that never answers: both serve the document, a 500 for the keys, and are alive but
    // not ready.
    let nowhere = format!("{common}server_api {{\n  address = \"unix://{}\"\n}}\n", dir.join("none.sock").display());
    let theirs = Provider::start(&spire_provider, dir, "spire-nowhere", &nowhere, None);
    let mine = Provider::start(&ours, dir, "ours-nowhere", &nowhere, None);
    for (port, health) in [(theirs.port, theirs.health_port), (mine.port, mine.health_port)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(port, None, &Req::new("/keys")).await.is_err() || get(health, None, &Req::new("/live")).await.is_err()
        {
            assert!(
                Instant::now() < deadline,
                "a provider without a source did not start\n{}\n{}",
                theirs.log(),
                mine.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for req in [Req::new("/keys"), Req::new("/.well-known/openid-configuration")] {
        let expected = get(theirs.port, None, &req).await.expect("SPIRE's provider answers");
        let got = get(mine.port, None, &req).await.expect("our provider answers");
        assert_eq!(comparable(&got), comparable(&expected), "no source: {}", req.path);
    }
    assert_eq!(get(mine.port, None, &Req::new("/keys")).await.expect("keys").status, 500);
    for path in ["/ready", "/live"] {
        let expected = get(theirs.health_port, None, &Req::new(path)).await.expect("SPIRE's health");
        let got = get(mine.health_port, None, &Req::new(path)).await.expect("our health");
        assert_eq!(comparable(&got), comparable(&expected), "no source: health {path}");
    }
}

/// `curl` of a URL served by pebble, whose own HTTPS chains to `minica`.
fn curl(minica: &Path, url: &str) -> Result<String, String> {
    let out = std::process::Command::new("curl")
        .args(["-sSf", "--max-time", "10", "--cacert"])
        .arg(minica)
        .arg(url)
        .output()
        .expect("run curl");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// pebble, validating tls-alpn-01 by connecting to `localhost:443`, killed on drop.
struct Pebble {
    child: std::process::Child,
    log: PathBuf,
    directory: String,
    roots: String,
    minica: PathBuf,
}

impl Pebble {
    async fn start(binary: &Path, dir: &Path) -> Self {
        let certs = std::fs::canonicalize(binary).expect("pebble").parent().expect("its directory").join("certs");
        let (acme_port, management_port) = (free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": certs.join("localhost/cert.pem"),
            "privateKey": certs.join("localhost/key.pem"),
            "httpPort": free_port(),
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).expect("pebble config");
        let log = dir.join("pebble.log");
        let out = std::fs::File::create(&log).expect("pebble log");
        let child = std::process::Command::new(binary)
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start pebble");
        let pebble = Self {
            child,
            log,
            directory: format!("https://localhost:{acme_port}/dir"),
            roots: format!("https://localhost:{management_port}/roots/0"),
            minica: certs.join("pebble.minica.pem"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while curl(&pebble.minica, &pebble.directory).is_err() || curl(&pebble.minica, &pebble.roots).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start: {}", pebble.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pebble
    }

    fn log(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acme_certificate_from_pebble_serves_go_oidc() {
    let Some([pebble_bin, go_oidc]) = peers::require_all(["pebble", "go-oidc-verify"]) else { return };
    // SPIRE's provider serves ACME on :443, as ours: the test needs that port.
    if let Err(e) = std::net::TcpListener::bind(("0.0.0.0", 443)) {
        assert!(!peers::required(), "port 443 cannot be bound ({e}): the ACME test needs it");
        eprintln!("skipped: port 443 cannot be bound ({e})");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pebble = Pebble::start(&pebble_bin, dir).await;
    let issuing_root = dir.join("issuing-root.pem");
    std::fs::write(&issuing_root, curl(&pebble.minica, &pebble.roots).expect("pebble's root")).expect("root");

    // The keys: a bundle file with one JWT authority, whose key signs the token.
    let key = spire_identity::PrivateKey::generate(spire_identity::KeyType::EcP256).expect("key");
    let mut bundle = spire_identity::Bundle::new(spire_identity::TrustDomain::parse("example.org").expect("td"));
    let authority = spire_identity::JwtAuthority {
        key_id: "pebble-test".into(),
        public_key_der: key.public_key_der(),
        expires_at: 0,
    };
    bundle.add_jwt_authority(authority).expect("authority");
    std::fs::write(dir.join("bundle.json"), bundle.to_spiffe_json()).expect("bundle");
    let signer = spire_identity::jwt::JwtSigner::new("pebble-test", key);
    let id = spire_identity::SpiffeId::parse(WORKLOAD).expect("SPIFFE ID");
    let audience = vec!["acme-relying-party".to_owned()];
    let params = spire_identity::jwt::JwtSvidParams {
        spiffe_id: &id,
        audience: &audience,
        now: std::time::SystemTime::now(),
        ttl: Duration::from_secs(300),
        issuer: Some("https://localhost"),
        jti: None,
    };
    let token = spire_identity::jwt::sign_jwt_svid(&params, &signer).expect("sign");

    let conf = format!(
        "domains = [\"localhost\"]\nacme {{\n  directory_url = \"{}\"\n  email = \"oidc@example.org\"\n  \
         tos_accepted = true\n  cache_dir = \"{}\"\n}}\nfile {{\n  path = \"{}\"\n}}\n",
        pebble.directory,
        dir.join("acme-cache").display(),
        dir.join("bundle.json").display()
    );
    // The provider trusts pebble's directory through SSL_CERT_FILE, as Go programs do.
    let env = [("SSL_CERT_FILE", pebble.minica.as_path())];
    let mut provider = Provider::start_with_env(
        &peers::workspace_binary("oidc-discovery-provider"),
        dir,
        "ours-acme",
        &conf,
        Some(443),
        &env,
    );
    let tls = tls_client(&issuing_root);
    let waited = tokio::time::timeout(Duration::from_secs(60), provider.wait_for_kid(Some(&tls), "pebble-test")).await;
    match waited {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}\n--- pebble ---\n{}", pebble.log()),
        Err(_) => {
            panic!("no certificate from pebble within 60 s\n{}\n--- pebble ---\n{}", provider.log(), pebble.log())
        }
    }
    let mut rp = GoVerifier::start(&go_oidc, &issuing_root, "https://localhost", "https://localhost");
    let ok = rp.verify("acme-relying-party", &token).await;
    assert_eq!(ok["ok"], true, "{ok}\n{}", provider.log());
    assert_eq!(ok["subject"], WORKLOAD);
    assert!(std::fs::read_dir(dir.join("acme-cache")).expect("the ACME cache").next().is_some());
}
