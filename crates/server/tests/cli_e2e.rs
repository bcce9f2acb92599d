//! The real `spire-server` binary driven only through its CLI: every admin command run as a subprocess
//! against a running server (`spire-server run` on SQLite and disk keys), its stdout, stderr and exit
//! code checked against SPIRE's formats byte for byte where they are fixed. Only agent attestation,
//! which has no CLI, is done over gRPC (join token, as an agent would).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use spire_identity::jwt::validate_jwt_svid;
use spire_identity::x509::{self, CaParams, Subject, certs_from_pem, certs_to_pem, verify_svid};
use spire_identity::{Bundle, BundleSet, KeyType, PrivateKey, TrustDomain};
use spire_proto::spire::api::server::agent::v1 as agent_api;
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;
use spire_proto::spire::api::types as pb;
use spire_testkit::process::{TestServer, server_conf};

const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

/// Server config for tests that attest several agents in a row from 127.0.0.1 (SPIRE allows one
/// attestation per second per IP by default).
const NO_ATTESTATION_RATE_LIMIT: &str = "ratelimit { attestation = false }";

// ---------------------------------------------------------------------------------------------
// Running the CLI

/// What one `spire-server` invocation printed and returned.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    /// Asserts exit code 0 and an empty stderr; the stdout.
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!((self.code, self.stderr.as_str()), (0, ""), "expected success, stdout:\n{}", self.stdout);
        self.stdout
    }

    /// Asserts exit code 0 and, on stderr, only SPIRE's warning that the `what` SVID (`X509-SVID` or
    /// `JWT-SVID`) lives less than `-ttl` asked (SPIRE prints it whenever its expiry, whole seconds
    /// from the server's clock, is short of now + ttl: in practice on every mint with `-ttl`); the
    /// stdout.
    #[track_caller]
    fn ok_with_capped_warning(self, what: &str) -> String {
        assert_eq!(self.code, 0, "expected success, stderr:\n{}", self.stderr);
        let prefix = format!("{what} lifetime was capped shorter than specified ttl; expires \"");
        assert!(
            self.stderr.starts_with(&prefix) && self.stderr.ends_with("Z\"\n") && self.stderr.lines().count() == 1,
            "{:?}",
            self.stderr
        );
        self.stdout
    }

    /// Asserts exit code 1; the stderr.
    #[track_caller]
    fn failed(self) -> String {
        assert_eq!(self.code, 1, "expected exit code 1, stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.stderr
    }

    /// Asserts exit code 1, nothing on stdout and exactly `stderr`.
    #[track_caller]
    fn fails_with(self, stderr: &str) {
        assert_eq!((self.code, self.stdout.as_str(), self.stderr.as_str()), (1, "", stderr));
    }
}

/// Runs `spire-server <args>` with `stdin`, times printed in UTC and no socket environment.
fn spire_server(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("SPIRE_SERVER_PRIVATE_SOCKET")
        .env_remove("SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start spire-server");
    if let Some(data) = stdin {
        child.stdin.take().expect("stdin").write_all(data).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for spire-server");
    Output {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// Runs admin commands against one server's private socket.
#[derive(Debug, Clone, Copy)]
struct Cli<'a>(&'a TestServer);

impl Cli<'_> {
    /// `spire-server <command words> <flags> -socketPath <socket>`.
    fn run_with_stdin(&self, command: &str, flags: &[&str], stdin: Option<&[u8]>) -> Output {
        let socket = self.0.socket.to_str().expect("UTF-8 socket path");
        let mut args: Vec<&str> = command.split(' ').collect();
        args.extend_from_slice(flags);
        args.extend_from_slice(&["-socketPath", socket]);
        spire_server(&args, stdin)
    }

    fn run(&self, command: &str, flags: &[&str]) -> Output {
        self.run_with_stdin(command, flags, None)
    }

    /// Runs a command that must succeed quietly; its stdout.
    #[track_caller]
    fn ok(&self, command: &str, flags: &[&str]) -> String {
        self.run(command, flags).ok()
    }

    /// Runs a command with `-output json`; its stdout parsed.
    #[track_caller]
    fn json(&self, command: &str, flags: &[&str]) -> Value {
        let mut flags = flags.to_vec();
        flags.extend_from_slice(&["-output", "json"]);
        let out = self.ok(command, &flags);
        assert!(out.ends_with('\n'), "JSON output ends with a newline: {out:?}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{command} printed invalid JSON ({e}): {out}"))
    }
}

/// The value of every `label : value` line of entry blocks (labels padded to 23 characters).
fn values<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let prefix = format!("{label:<23} : ");
    text.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
}

/// The entry IDs an entry listing or `entry create` printed.
fn entry_ids(text: &str) -> Vec<&str> {
    values(text, "Entry ID")
}

/// The SPIFFE IDs an entry listing printed, in order.
fn spiffe_ids(text: &str) -> Vec<&str> {
    values(text, "SPIFFE ID")
}

/// The single entry ID in `text`.
#[track_caller]
fn only_entry_id(text: &str) -> String {
    match entry_ids(text).as_slice() {
        [id] => (*id).to_owned(),
        other => panic!("expected one entry, got {other:?} in:\n{text}"),
    }
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// How Go prints `time.Unix(secs, 0)` in UTC.
fn go_time_utc(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).expect("timestamp").strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// A self-signed CA for `td`, as PEM, to use as a federated bundle.
fn foreign_ca_pem(td: &str) -> String {
    let key = PrivateKey::generate(KeyType::EcP256).expect("key");
    let td = TrustDomain::parse(td).expect("trust domain");
    let der = x509::self_signed_ca(
        &CaParams {
            trust_domain: &td,
            public_key_der: &key.public_key_der(),
            subject: Subject::default_ca(),
            now: SystemTime::now(),
            ttl: Duration::from_secs(24 * 3600),
        },
        &key,
    )
    .expect("CA");
    certs_to_pem(&[der])
}

// ---------------------------------------------------------------------------------------------
// Agent attestation (no CLI for it: done as an agent does it, over TCP TLS)

/// An agent attested with a join token: its SPIFFE ID, SVID expiry and serial number (decimal).
#[derive(Debug, Clone)]
struct AttestedAgent {
    id: String,
    expires_at: i64,
    serial: String,
}

/// A CSR with an empty subject for `key` (the server names the agent itself).
fn csr(key: &PrivateKey) -> Vec<u8> {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der());
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256).expect("key pair");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&pair).expect("CSR").der().to_vec()
}

/// Runs `Agent/AttestAgent` with `join_token` data over the server's TCP endpoint.
async fn attest(server: &TestServer, token: &str) -> AttestedAgent {
    let channel = spire_testkit::tls::tcp_channel_recording_server_chain(server.port, Arc::default()).await;
    let key = PrivateKey::generate(KeyType::EcP256).expect("key");
    let params = agent_api::attest_agent_request::Params {
        data: Some(pb::AttestationData { r#type: "join_token".into(), payload: token.as_bytes().to_vec() }),
        params: Some(agent_api::AgentX509svidParams { csr: csr(&key) }),
    };
    let request = agent_api::AttestAgentRequest { step: Some(agent_api::attest_agent_request::Step::Params(params)) };
    let mut responses = AgentClient::new(channel)
        .attest_agent(tokio_stream::iter(vec![request]))
        .await
        .expect("AttestAgent")
        .into_inner();
    let response = responses.message().await.expect("AttestAgent response").expect("a response");
    let Some(agent_api::attest_agent_response::Step::Result(result)) = response.step else {
        panic!("unexpected attestation step {:?}", response.step);
    };
    let svid = result.svid.expect("SVID");
    let leaf = x509_parser::parse_x509_certificate(&svid.cert_chain[0]).expect("agent SVID").1;
    let id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    assert_eq!(svid.id.map(|i| format!("spiffe://{}{}", i.trust_domain, i.path)), Some(id.clone()));
    AttestedAgent {
        id,
        expires_at: leaf.validity().not_after.timestamp(),
        serial: leaf.tbs_certificate.serial.to_string(),
    }
}

/// `token generate` without `-spiffeID`: the token, after checking SPIRE's output.
#[track_caller]
fn generate_token(cli: Cli<'_>) -> String {
    let out = cli.ok("token generate", &[]);
    let token = out
        .strip_prefix("Token: ")
        .and_then(|rest| rest.strip_suffix("\nWarning: Missing SPIFFE ID.\n"))
        .unwrap_or_else(|| panic!("unexpected token output {out:?}"));
    uuid::Uuid::parse_str(token).expect("the token is a UUID");
    token.to_owned()
}

/// One agent as `agent list` and `agent show` print it.
fn agent_block(agent: &AttestedAgent, banned: bool) -> String {
    let serial_or_banned =
        if banned { "Banned            : true".to_owned() } else { format!("Serial number     : {}", agent.serial) };
    format!(
        "SPIFFE ID         : {}
Attestation type  : join_token
Expiration time   : {}
{serial_or_banned}
Can re-attest     : false

",
        agent.id,
        go_time_utc(agent.expires_at)
    )
}

// ---------------------------------------------------------------------------------------------
// Entries

#[tokio::test]
async fn entry_create_with_every_flag_duplicates_and_bad_input() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);

    let flags = [
        "-parentID",
        "spiffe://example.org/agent",
        "-spiffeID",
        "spiffe://example.org/web",
        "-selector",
        "unix:gid:1000",
        "-selector",
        "unix:uid:1000",
        "-x509SVIDTTL",
        "200",
        "-jwtSVIDTTL",
        "30",
        "-dns",
        "web.example.org",
        "-dns",
        "www.example.org",
        "-admin",
        "-downstream",
        "-storeSVID",
        "-entryExpiry",
        "1900000000",
        "-hint",
        "internal",
    ];
    let out = cli.ok("entry create", &flags);
    let id = only_entry_id(&out);
    uuid::Uuid::parse_str(&id).expect("generated entry IDs are UUIDs");
    let block = |id: &str| {
        format!(
            "Entry ID                : {id}
SPIFFE ID               : spiffe://example.org/web
Parent ID               : spiffe://example.org/agent
Revision                : 0
Downstream              : true
X509-SVID TTL           : 200
JWT-SVID TTL            : 30
Expiration time         : 2030-03-17 17:46:40 +0000 UTC
Selector                : unix:gid:1000
Selector                : unix:uid:1000
DNS name                : web.example.org
DNS name                : www.example.org
Admin                   : true
StoreSvid               : true
Hint                    : internal

"
        )
    };
    assert_eq!(out, block(&id));
    assert_eq!(cli.ok("entry show", &["-entryID", &id]), format!("Found 1 entry\n{}", block(&id)));

    // The same entry again: refused with the requested entry on stderr, nothing on stdout.
    let err = cli.run("entry create", &flags);
    assert_eq!(err.stdout, "");
    assert_eq!(
        err.failed(),
        format!(
            "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry already exists\"):\n{}\
             Error: failed to create one or more entries\n",
            block("(none)")
        )
    );

    // A node entry (parent is the server) with a custom ID, with and without optional lines.
    let out = cli.ok(
        "entry create",
        &["-node", "-spiffeID", "spiffe://example.org/nodes/a", "-selector", "join_token:abc", "-entryID", "node-a"],
    );
    assert_eq!(
        out,
        "Entry ID                : node-a
SPIFFE ID               : spiffe://example.org/nodes/a
Parent ID               : spiffe://example.org/spire/server
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : join_token:abc

"
    );

    // Bad input: SPIRE's message, exit 1, and nothing created.
    let base = ["-parentID", "spiffe://example.org/agent"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    cli.run("entry create", &with(&["-spiffeID", "spiffe://example.org/x", "-selector", "bad"]))
        .fails_with("Error: selector \"bad\" must be formatted as type:value\n");
    cli.run("entry create", &with(&["-selector", "unix:uid:1"])).fails_with("Error: a SPIFFE ID is required\n");
    cli.run("entry create", &with(&["-spiffeID", "spiffe://example.org/x"]))
        .fails_with("Error: at least one selector is required\n");
    cli.run("entry create", &["-spiffeID", "spiffe://example.org/x", "-selector", "unix:uid:1"])
        .fails_with("Error: a parent ID is required if the node flag is not set\n");
    let bad_id = cli.run("entry create", &with(&["-spiffeID", "example.org/x", "-selector", "unix:uid:1"])).failed();
    assert!(bad_id.starts_with("Error: scheme is missing or invalid"), "{bad_id}");
    cli.run("entry create", &with(&["-spiffeID", "spiffe://example.org/x", "-selector", "a:b", "-x509SVIDTTL", "-1"]))
        .fails_with("Error: a positive x509-SVID TTL is required\n");
    assert_eq!(cli.ok("entry count", &[]), "2 registration entries\n");

    // A federated trust domain the server has no bundle for is refused by the server.
    let err = cli
        .run(
            "entry create",
            &with(&[
                "-spiffeID",
                "spiffe://example.org/f",
                "-selector",
                "a:b",
                "-federatesWith",
                "spiffe://nowhere.org",
            ]),
        )
        .failed();
    assert!(err.starts_with("Failed to create the following entry (code: "), "{err}");
    assert!(
        err.ends_with(
            "FederatesWith           : spiffe://nowhere.org\n\nError: failed to create one or more entries\n"
        ),
        "{err}"
    );
    assert_eq!(cli.ok("entry count", &[]), "2 registration entries\n");
}

#[tokio::test]
async fn entry_create_from_data_file_and_stdin() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    // SPIRE's fixture shape, with the odd `entryExpiry` key.
    let data = r#"{"entries":[
        {"selectors":[{"type":"unix","value":"uid:1111"}],"spiffe_id":"spiffe://example.org/Blog",
         "parent_id":"spiffe://example.org/spire/agent/join_token/TokenBlog","x509_svid_ttl":200,"jwt_svid_ttl":30,
         "admin":true,"hint":"internal","federates_with":[],"entry_id":"","downstream":false,
         "entryExpiry":1900000000,"dns_names":["blog.example.org"],"store_svid":false},
        {"selectors":[{"type":"type","value":"key1:value"},{"type":"type","value":"key2:value"}],
         "spiffe_id":"spiffe://example.org/storesvid",
         "parent_id":"spiffe://example.org/spire/agent/join_token/TokenDatabase",
         "store_svid":true,"entry_id":"fixed-id"}
    ]}"#;
    let path = write_file(&server.dir, "entries.json", data);
    let out = cli.ok("entry create", &["-data", &path]);
    let blog_id = entry_ids(&out)[0].to_owned();
    assert_eq!(
        out,
        format!(
            "Entry ID                : {blog_id}
SPIFFE ID               : spiffe://example.org/Blog
Parent ID               : spiffe://example.org/spire/agent/join_token/TokenBlog
Revision                : 0
X509-SVID TTL           : 200
JWT-SVID TTL            : 30
Expiration time         : 2030-03-17 17:46:40 +0000 UTC
Selector                : unix:uid:1111
DNS name                : blog.example.org
Admin                   : true
Hint                    : internal

Entry ID                : fixed-id
SPIFFE ID               : spiffe://example.org/storesvid
Parent ID               : spiffe://example.org/spire/agent/join_token/TokenDatabase
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : type:key1:value
Selector                : type:key2:value
StoreSvid               : true

"
        )
    );

    // `-data -` reads stdin; the same entries again are duplicates, reported one by one (the second
    // one's message is checked by `recreating_an_entry_with_a_fixed_id_is_a_similar_entry`).
    let dup = cli.run_with_stdin("entry create", &["-data", "-"], Some(data.as_bytes()));
    assert_eq!(dup.stdout, "");
    let stderr = dup.failed();
    assert_eq!(
        stderr.matches("Failed to create the following entry (code: AlreadyExists, msg: ").count(),
        2,
        "{stderr}"
    );
    // Failed entries are printed as requested: no ID.
    let blog_failure =
        "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry already exists\"):
Entry ID                : (none)
SPIFFE ID               : spiffe://example.org/Blog
";
    assert!(stderr.starts_with(blog_failure), "{stderr}");
    assert!(
        stderr.ends_with("StoreSvid               : true\n\nError: failed to create one or more entries\n"),
        "{stderr}"
    );

    let fresh = r#"{"entries":[{"selectors":[{"type":"unix","value":"uid:2"}],"spiffe_id":"spiffe://example.org/stdin",
        "parent_id":"spiffe://example.org/spire/server","entryExpiry":2000000000}]}"#;
    let out = cli.run_with_stdin("entry create", &["-data", "-"], Some(fresh.as_bytes())).ok();
    assert_eq!(spiffe_ids(&out), ["spiffe://example.org/stdin"]);
    assert_eq!(values(&out, "Expiration time"), ["2033-05-18 03:33:20 +0000 UTC"]);

    // Malformed documents are refused before anything is sent.
    let bad = write_file(
        &server.dir,
        "bad.json",
        r#"{"entries":[{"spiffe_id":"spiffe://example.org/a","parent_id":"spiffe://example.org/p",
            "x509_svid_ttl":"200"}]}"#,
    );
    cli.run("entry create", &["-data", &bad]).fails_with(
        "Error: json: cannot unmarshal string into Go struct field \
         RegistrationEntry.entries.x509_svid_ttl of type int32\n",
    );
    let missing = server.dir.join("missing.json");
    cli.run("entry create", &["-data", missing.to_str().unwrap()])
        .fails_with(&format!("Error: open {}: no such file or directory\n", missing.display()));
    assert_eq!(cli.ok("entry count", &[]), "3 registration entries\n");
}

#[tokio::test]
async fn entry_show_and_count_filters_and_json() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let create = |path: &str, parent: &str, selectors: &[&str], extra: &[&str]| {
        let spiffe_id = format!("spiffe://example.org/{path}");
        let mut flags = vec!["-parentID", parent, "-spiffeID", &spiffe_id];
        for s in selectors {
            flags.extend_from_slice(&["-selector", s]);
        }
        flags.extend_from_slice(extra);
        only_entry_id(&cli.ok("entry create", &flags))
    };
    let p1 = "spiffe://example.org/node1";
    let p2 = "spiffe://example.org/node2";
    let both = create("both", p1, &["unix:uid:1000", "unix:gid:1000"], &["-hint", "blue"]);
    create("uid", p1, &["unix:uid:1000"], &[]);
    create("other", p2, &["unix:uid:2000"], &["-downstream"]);

    let shown = |flags: &[&str]| {
        let out = cli.ok("entry show", flags);
        let ids: Vec<String> =
            spiffe_ids(&out).iter().map(|id| id.trim_start_matches("spiffe://example.org/").to_owned()).collect();
        let n = ids.len();
        let header = if n == 1 { "Found 1 entry\n".to_owned() } else { format!("Found {n} entries\n") };
        assert!(out.starts_with(&header), "{out}");
        let count = cli.ok("entry count", flags);
        let count_line =
            if n == 1 { "1 registration entry\n".to_owned() } else { format!("{n} registration entries\n") };
        assert_eq!(count, count_line, "entry count agrees with entry show for {flags:?}");
        ids
    };
    // Sorted by SPIFFE ID.
    assert_eq!(shown(&[]), ["both", "other", "uid"]);
    assert_eq!(shown(&["-spiffeID", "spiffe://example.org/uid"]), ["uid"]);
    assert_eq!(shown(&["-parentID", p1]), ["both", "uid"]);
    assert_eq!(shown(&["-parentID", "spiffe://example.org/none"]), Vec::<String>::new());
    assert_eq!(shown(&["-hint", "blue"]), ["both"]);
    assert_eq!(shown(&["-downstream"]), ["other"]);

    let by = |mode: &str, selectors: &[&str]| {
        let mut flags = vec!["-matchSelectorsOn", mode];
        for s in selectors {
            flags.extend_from_slice(&["-selector", s]);
        }
        shown(&flags)
    };
    assert_eq!(by("exact", &["unix:uid:1000"]), ["uid"]);
    assert_eq!(by("superset", &["unix:uid:1000"]), ["both", "uid"]);
    assert_eq!(by("subset", &["unix:uid:1000"]), ["uid"]);
    assert_eq!(by("any", &["unix:uid:1000"]), ["both", "uid"]);
    assert_eq!(by("exact", &["unix:uid:1000", "unix:gid:1000"]), ["both"]);
    assert_eq!(by("subset", &["unix:uid:1000", "unix:gid:1000"]), ["both", "uid"]);
    assert_eq!(by("superset", &["unix:gid:1000", "unix:uid:1000"]), ["both"]);
    assert_eq!(by("any", &["unix:uid:2000", "unix:gid:1000"]), ["both", "other"]);
    // The default is superset.
    assert_eq!(shown(&["-selector", "unix:uid:1000"]), ["both", "uid"]);

    cli.run("entry show", &["-selector", "unix:uid:1", "-matchSelectorsOn", "most"])
        .fails_with("Error: match behavior \"most\" unknown\n");
    cli.run("entry show", &["-entryID", &both, "-spiffeID", "spiffe://example.org/both"])
        .fails_with("Error: the -entryID flag can't be combined with others\n");
    cli.run("entry show", &["-entryID", "nope"])
        .fails_with("Error: error fetching entry ID nope: rpc error: code = NotFound desc = entry not found\n");

    // JSON: protojson with proto field names and unpopulated fields.
    let json = cli.json("entry show", &["-entryID", &both]);
    let e = &json["entries"][0];
    assert_eq!(e["id"], both.as_str());
    assert_eq!(e["spiffe_id"]["path"], "/both");
    assert_eq!(e["spiffe_id"]["trust_domain"], "example.org");
    assert_eq!(e["parent_id"]["path"], "/node1");
    assert_eq!(
        e["selectors"],
        serde_json::json!([{"type":"unix","value":"gid:1000"},{"type":"unix","value":"uid:1000"}])
    );
    assert_eq!(e["hint"], "blue");
    assert_eq!(
        (&e["x509_svid_ttl"], &e["expires_at"], &e["revision_number"]),
        (&Value::from(0), &Value::from("0"), &Value::from("0"))
    );
    assert_eq!(
        (&e["dns_names"], &e["federates_with"], &e["admin"]),
        (&serde_json::json!([]), &serde_json::json!([]), &Value::Bool(false))
    );
    assert_eq!(json["next_page_token"], "");
    let all = cli.json("entry show", &[]);
    assert_eq!(all["entries"].as_array().unwrap().len(), 3);
    assert_eq!(cli.json("entry count", &[]), serde_json::json!({"count": 3}));
    assert_eq!(cli.json("entry count", &["-parentID", p2]), serde_json::json!({"count": 1}));
}

#[tokio::test]
async fn entry_update_and_delete() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let id = only_entry_id(&cli.ok(
        "entry create",
        &[
            "-parentID",
            "spiffe://example.org/agent",
            "-spiffeID",
            "spiffe://example.org/app",
            "-selector",
            "unix:uid:1",
        ],
    ));

    let out = cli.ok(
        "entry update",
        &[
            "-entryID",
            &id,
            "-parentID",
            "spiffe://example.org/agent2",
            "-spiffeID",
            "spiffe://example.org/app",
            "-selector",
            "unix:uid:1",
            "-selector",
            "unix:uid:2",
            "-x509SVIDTTL",
            "99",
            "-dns",
            "app.example.org",
        ],
    );
    assert_eq!(
        out,
        format!(
            "Entry ID                : {id}
SPIFFE ID               : spiffe://example.org/app
Parent ID               : spiffe://example.org/agent2
Revision                : 1
X509-SVID TTL           : 99
JWT-SVID TTL            : default
Selector                : unix:uid:1
Selector                : unix:uid:2
DNS name                : app.example.org

"
        )
    );
    let again = cli.ok(
        "entry update",
        &[
            "-entryID",
            &id,
            "-parentID",
            "spiffe://example.org/agent2",
            "-spiffeID",
            "spiffe://example.org/app",
            "-selector",
            "unix:uid:3",
        ],
    );
    assert_eq!(values(&again, "Revision"), ["2"]);
    assert_eq!(cli.json("entry show", &["-entryID", &id])["entries"][0]["revision_number"], "2");
    cli.run(
        "entry update",
        &["-parentID", "spiffe://example.org/a", "-spiffeID", "spiffe://example.org/b", "-selector", "a:b"],
    )
    .fails_with("Error: entry ID is required\n");
    let missing = cli.run(
        "entry update",
        &[
            "-entryID",
            "nope",
            "-parentID",
            "spiffe://example.org/a",
            "-spiffeID",
            "spiffe://example.org/b",
            "-selector",
            "a:b",
        ],
    );
    let stderr = missing.failed();
    assert!(stderr.starts_with("Failed to update the following entry (code: NotFound, msg: "), "{stderr}");
    assert!(stderr.ends_with("Error: failed to update one or more entries\n"), "{stderr}");

    // delete -entryID
    let out = cli.ok("entry delete", &["-entryID", &id]);
    assert!(out.starts_with(&format!("Deleted entry with ID: {id}\n")), "{out}");
    assert_eq!(cli.ok("entry show", &[]), "Found 0 entries\n");
    assert_eq!(cli.ok("entry count", &[]), "0 registration entries\n");
    cli.run("entry delete", &[]).fails_with("Error: an entry ID is required\n");

    // delete -file (and from stdin), with one unknown ID reported on stderr.
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let spiffe_id = format!("spiffe://example.org/batch/{i}");
            only_entry_id(&cli.ok(
                "entry create",
                &["-parentID", "spiffe://example.org/agent", "-spiffeID", &spiffe_id, "-selector", "unix:uid:7"],
            ))
        })
        .collect();
    let file = write_file(&server.dir, "ids.json", &format!(r#"{{"ids":["{}","{}"]}}"#, ids[0], ids[1]));
    let out = cli.ok("entry delete", &["-file", &file]);
    assert!(
        out.starts_with(&format!("Deleted entry with ID: {}\nDeleted entry with ID: {}\n", ids[0], ids[1])),
        "{out}"
    );
    let stdin = format!(r#"{{"ids":["{}","nope"]}}"#, ids[2]);
    let mixed = cli.run_with_stdin("entry delete", &["-file", "-"], Some(stdin.as_bytes()));
    assert!(mixed.stdout.starts_with(&format!("Deleted entry with ID: {}\n", ids[2])), "{}", mixed.stdout);
    assert_eq!(
        mixed.failed(),
        "Failed to delete entry with ID nope (code: NotFound, msg: \"entry not found\")\n\
         Error: failed to delete one or more entries\n"
    );
    assert_eq!(cli.ok("entry count", &[]), "0 registration entries\n");
    assert_eq!(
        cli.json("entry delete", &["-entryID", "nope"]),
        serde_json::json!({"results":[{"status":{"code":5,"message":"entry not found"},"id":"nope"}]})
    );
}

/// SPIRE's `entry delete` ends with a summary line (`cmd/spire-server/cli/entry/delete.go`): after the
/// `Deleted entry with ID:` lines, `\n\n` then `Deleted N entries successfully` (no newline).
#[tokio::test]
async fn entry_delete_prints_spire_summary() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let id = only_entry_id(&cli.ok(
        "entry create",
        &[
            "-parentID",
            "spiffe://example.org/agent",
            "-spiffeID",
            "spiffe://example.org/app",
            "-selector",
            "unix:uid:1",
        ],
    ));
    assert_eq!(
        cli.ok("entry delete", &["-entryID", &id]),
        format!("Deleted entry with ID: {id}\n\n\nDeleted 1 entries successfully")
    );
}

/// go-spiffe's parse error is `scheme is missing or invalid`, and SPIRE's CLI prints just that (as
/// ours does: `crates/interop/tests/our_cli_upstream.rs` compares the two).
#[tokio::test]
async fn malformed_spiffe_id_error_starts_with_go_spiffe_text() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let runs = [
        cli.run("token generate", &["-spiffeID", "invalid id"]),
        cli.run("x509 mint", &["-spiffeID", "malformed id"]),
        cli.run("jwt mint", &["-spiffeID", "domain.test/workload", "-audience", "a"]),
        cli.run("entry create", &["-parentID", "spiffe://example.org/a", "-spiffeID", "bad id", "-selector", "a:b"]),
    ];
    for run in runs {
        assert_eq!(run.code, 1);
        assert_eq!(run.stderr, "Error: scheme is missing or invalid\n");
    }
}

/// SPIRE's datastore looks for a similar entry before inserting (`createOrReturnRegistrationEntry`), so
/// creating an entry again from the same `-data` file, with its `entry_id`, is `similar entry already
/// exists` like any other duplicate.
#[tokio::test]
async fn recreating_an_entry_with_a_fixed_id_is_a_similar_entry() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let flags = [
        "-entryID",
        "fixed-id",
        "-parentID",
        "spiffe://example.org/agent",
        "-spiffeID",
        "spiffe://example.org/app",
        "-selector",
        "unix:uid:1",
    ];
    cli.ok("entry create", &flags);
    cli.run("entry create", &flags).fails_with(
        "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry already exists\"):
Entry ID                : fixed-id
SPIFFE ID               : spiffe://example.org/app
Parent ID               : spiffe://example.org/agent
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : unix:uid:1

Error: failed to create one or more entries
",
    );
}

// ---------------------------------------------------------------------------------------------
// Join tokens and agents

#[tokio::test]
async fn tokens_and_agent_commands() {
    let server = TestServer::start(BIN, NO_ATTESTATION_RATE_LIMIT).await;
    let cli = Cli(&server);

    // token generate: default TTL 600 s, -ttl, -spiffeID (which registers the alias entry, as SPIRE does).
    let json = cli.json("token generate", &[]);
    let expires: i64 = json["expires_at"].as_str().expect("int64 as string").parse().unwrap();
    assert!((expires - now_unix() - 600).abs() <= 5, "default TTL is 600 s: {json}");
    let out = cli.ok("token generate", &["-ttl", "60", "-spiffeID", "spiffe://example.org/host"]);
    let aliased = out.strip_prefix("Token: ").and_then(|t| t.strip_suffix('\n')).expect("Token line");
    uuid::Uuid::parse_str(aliased).expect("UUID");
    let alias = cli.ok("entry show", &["-spiffeID", "spiffe://example.org/host"]);
    let parent = format!("spiffe://example.org/spire/agent/join_token/{aliased}");
    assert_eq!(values(&alias, "Parent ID"), [parent.as_str()]);
    assert_eq!(values(&alias, "Selector"), [format!("spiffe_id:{parent}").as_str()]);
    let json = cli.json("token generate", &["-ttl", "60"]);
    let expires: i64 = json["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((expires - now_unix() - 60).abs() <= 5, "{json}");

    assert_eq!(cli.ok("agent list", &[]), "No attested agents found\n");
    assert_eq!(cli.ok("agent count", &[]), "0 attested agents\n");

    let token = generate_token(cli);
    let agent = attest(&server, &token).await;
    assert_eq!(cli.ok("agent list", &[]), format!("Found 1 attested agent:\n\n{}", agent_block(&agent, false)));
    assert_eq!(cli.ok("agent count", &[]), "1 attested agent\n");
    assert_eq!(cli.ok("agent count", &["-attestationType", "join_token"]), "1 attested agent\n");
    assert_eq!(cli.ok("agent count", &["-attestationType", "x509pop"]), "0 attested agents\n");
    assert_eq!(cli.ok("agent count", &["-banned", "true"]), "0 attested agents\n");
    assert_eq!(cli.ok("agent count", &["-canReattest", "false"]), "1 attested agent\n");

    let show = cli.ok("agent show", &["-spiffeID", &agent.id]);
    let json = cli.json("agent show", &["-spiffeID", &agent.id]);
    let selectors: String = json["selectors"]
        .as_array()
        .expect("selectors")
        .iter()
        .map(|s| format!("Selectors         : {}:{}\n", s["type"].as_str().unwrap(), s["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        show,
        format!("Found an attested agent given its SPIFFE ID\n\n{}{selectors}", agent_block(&agent, false))
    );
    assert_eq!(json["id"]["path"], format!("/spire/agent/join_token/{token}"));
    assert_eq!(json["attestation_type"], "join_token");
    assert_eq!(json["x509svid_serial_number"], agent.serial.as_str());
    assert_eq!(json["x509svid_expires_at"], agent.expires_at.to_string());
    assert_eq!(json["banned"], false);
    let list = cli.json("agent list", &[]);
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    assert_eq!(list["agents"][0]["id"], json["id"]);

    cli.run("agent show", &["-spiffeID", "spiffe://example.org/spire/agent/join_token/nope"])
        .fails_with("Error: rpc error: code = NotFound desc = agent not found\n");
    cli.run("agent show", &[]).fails_with("Error: a SPIFFE ID is required\n");

    // Purge only considers re-attestable agents; a join-token agent never is.
    assert_eq!(cli.ok("agent purge", &["-dryRun"]), "No agents to purge.\n");
    assert_eq!(cli.ok("agent purge", &["-dryRun", "-expiredFor", "1s"]), "No agents to purge.\n");
    assert_eq!(cli.json("agent purge", &["-dryRun"]), serde_json::json!([{"expired_agents": []}]));

    // A second agent, banned: listed with `Banned : true` instead of its serial number.
    let banned = attest(&server, &generate_token(cli)).await;
    assert_eq!(cli.ok("agent ban", &["-spiffeID", &banned.id]), "Agent banned successfully\n");
    let list = cli.ok("agent list", &["-banned", "true"]);
    assert_eq!(list, format!("Found 1 attested agent:\n\n{}", agent_block(&banned, true)));
    assert_eq!(cli.ok("agent count", &[]), "2 attested agents\n");
    assert_eq!(cli.ok("agent count", &["-banned", "false"]), "1 attested agent\n");
    let all = cli.ok("agent list", &[]);
    assert!(all.starts_with("Found 2 attested agents:\n\n"), "{all}");
    assert!(all.contains(&agent_block(&banned, true)) && all.contains(&agent_block(&agent, false)), "{all}");
    assert_eq!(cli.json("agent ban", &["-spiffeID", &banned.id]), serde_json::json!({}));

    // Evict both.
    assert_eq!(cli.ok("agent evict", &["-spiffeID", &banned.id]), "Agent evicted successfully\n");
    assert_eq!(cli.ok("agent evict", &["-spiffeID", &agent.id]), "Agent evicted successfully\n");
    cli.run("agent evict", &["-spiffeID", &agent.id])
        .fails_with("Error: rpc error: code = NotFound desc = agent not found\n");
    assert_eq!(cli.ok("agent list", &[]), "No attested agents found\n");
    assert_eq!(cli.ok("agent count", &[]), "0 attested agents\n");
}

// ---------------------------------------------------------------------------------------------
// Bundles and federation

#[tokio::test]
async fn bundle_show_formats() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let pem = cli.ok("bundle show", &[]);
    let certs = certs_from_pem(&pem).expect("PEM certificates");
    assert!(!certs.is_empty());
    assert_eq!(certs_to_pem(&certs), pem, "nothing but CERTIFICATE blocks");
    for der in &certs {
        let cert = x509_parser::parse_x509_certificate(der).expect("certificate").1;
        assert!(cert.is_ca(), "the bundle holds CA certificates");
    }

    let spiffe = cli.ok("bundle show", &["-format", "spiffe"]);
    assert!(spiffe.starts_with("{\n    \"keys\": [\n        {\n"), "indented by four spaces:\n{spiffe}");
    let doc: Value = serde_json::from_str(&spiffe).expect("JSON");
    let keys = doc["keys"].as_array().expect("keys");
    let x509_keys: Vec<&Value> = keys.iter().filter(|k| k["use"] == "x509-svid").collect();
    let jwt_keys: Vec<&Value> = keys.iter().filter(|k| k["use"] == "jwt-svid").collect();
    assert_eq!(x509_keys.len(), certs.len());
    assert!(!jwt_keys.is_empty(), "{spiffe}");
    assert!(jwt_keys.iter().all(|k| k["kid"].as_str().is_some_and(|kid| !kid.is_empty())));
    assert!(doc["spiffe_sequence"].as_u64().is_some(), "{spiffe}");
    let bundle =
        Bundle::from_spiffe_json(TrustDomain::parse("example.org").unwrap(), spiffe.as_bytes()).expect("SPIFFE bundle");
    assert_eq!(bundle.x509_authorities(), certs.as_slice(), "both formats show the same authorities");
    assert_eq!(bundle.jwt_authorities().len(), jwt_keys.len());

    let json = cli.json("bundle show", &[]);
    assert_eq!(json["trust_domain"], "example.org");
    assert_eq!(json["x509_authorities"].as_array().unwrap().len(), certs.len());

    cli.run("bundle show", &["-format", "der"]).fails_with("Error: invalid format: \"der\"\n");
    assert_eq!(cli.ok("bundle count", &[]), "1 bundle\n");
    assert_eq!(cli.ok("bundle list", &[]), "");
}

#[tokio::test]
async fn federated_bundles_and_entries() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let other_pem = foreign_ca_pem("other.org");
    let third_pem = foreign_ca_pem("third.org");
    let other_path = write_file(&server.dir, "other.pem", &other_pem);

    assert_eq!(cli.ok("bundle set", &["-id", "spiffe://other.org", "-path", &other_path]), "bundle set.\n");
    let out = cli.run_with_stdin("bundle set", &["-id", "spiffe://third.org"], Some(third_pem.as_bytes())).ok();
    assert_eq!(out, "bundle set.\n");
    assert_eq!(cli.ok("bundle count", &[]), "3 bundles\n");
    let stars = "*".repeat(40);
    assert_eq!(
        cli.ok("bundle list", &[]),
        format!("{stars}\n* other.org\n{stars}\n{other_pem}\n{stars}\n* third.org\n{stars}\n{third_pem}")
    );
    assert_eq!(cli.ok("bundle list", &["-id", "spiffe://other.org"]), other_pem);
    let spiffe = cli.ok("bundle list", &["-id", "spiffe://other.org", "-format", "spiffe"]);
    let parsed = Bundle::from_spiffe_json(TrustDomain::parse("other.org").unwrap(), spiffe.as_bytes()).expect("bundle");
    assert_eq!(parsed.x509_authorities(), certs_from_pem(&other_pem).unwrap().as_slice());
    let listed = cli.json("bundle list", &[]);
    let tds: Vec<&str> =
        listed["bundles"].as_array().unwrap().iter().map(|b| b["trust_domain"].as_str().unwrap()).collect();
    assert_eq!(tds, ["other.org", "third.org"]);
    cli.run("bundle list", &["-id", "spiffe://nowhere.org"])
        .fails_with("Error: rpc error: code = NotFound desc = bundle not found\n");
    cli.run("bundle set", &["-path", &other_path]).fails_with("Error: id flag is required\n");

    // Entries federating with those trust domains.
    let out = cli.ok(
        "entry create",
        &[
            "-parentID",
            "spiffe://example.org/agent",
            "-spiffeID",
            "spiffe://example.org/fed",
            "-selector",
            "unix:uid:1",
            "-federatesWith",
            "spiffe://other.org",
        ],
    );
    assert_eq!(values(&out, "FederatesWith"), ["other.org"]);
    only_entry_id(&cli.ok(
        "entry create",
        &[
            "-parentID",
            "spiffe://example.org/agent",
            "-spiffeID",
            "spiffe://example.org/fed3",
            "-selector",
            "unix:uid:3",
            "-federatesWith",
            "spiffe://third.org",
        ],
    ));
    let by_fed = cli.ok("entry show", &["-federatesWith", "spiffe://other.org"]);
    assert_eq!(spiffe_ids(&by_fed), ["spiffe://example.org/fed"]);
    assert_eq!(
        cli.ok("entry count", &["-federatesWith", "spiffe://third.org", "-matchFederatesWithOn", "exact"]),
        "1 registration entry\n"
    );

    // restrict (the default) refuses while an entry federates with the bundle.
    let err = cli.run("bundle delete", &["-id", "spiffe://other.org"]).failed();
    assert!(
        err.starts_with(
            "Error: failed to delete federated bundle \"spiffe://other.org\": failed to delete federated bundle: "
        ),
        "{err}"
    );
    assert_eq!(cli.ok("bundle count", &[]), "3 bundles\n");
    // dissociate keeps the entry and drops the link.
    assert_eq!(cli.ok("bundle delete", &["-id", "spiffe://other.org", "-mode", "dissociate"]), "bundle deleted.\n");
    let fed = cli.ok("entry show", &["-spiffeID", "spiffe://example.org/fed"]);
    assert!(spiffe_ids(&fed) == ["spiffe://example.org/fed"] && values(&fed, "FederatesWith").is_empty(), "{fed}");
    // delete removes the entries with it.
    assert_eq!(cli.ok("bundle delete", &["-id", "spiffe://third.org", "-mode", "delete"]), "bundle deleted.\n");
    assert_eq!(cli.ok("entry show", &["-spiffeID", "spiffe://example.org/fed3"]), "Found 0 entries\n");
    assert_eq!(cli.ok("bundle count", &[]), "1 bundle\n");
    assert_eq!(cli.ok("bundle list", &[]), "");

    cli.run("bundle delete", &["-id", "spiffe://third.org", "-mode", "delete"])
        .fails_with("Error: failed to delete federated bundle \"spiffe://third.org\": bundle not found\n");
    cli.run("bundle delete", &["-id", "spiffe://third.org", "-mode", "bogus"])
        .fails_with("Error: unsupported mode \"bogus\"\n");
    cli.run("bundle delete", &[]).fails_with("Error: id is required\n");
}

/// SPIRE's datastore refuses with `datastore-sql: cannot delete bundle; federated with N registration
/// entries`; ours keeps SPIRE's API prefix and says how many entries federate with it and what to do.
#[tokio::test]
async fn bundle_delete_restrict_message_keeps_spire_prefix() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let path = write_file(&server.dir, "other.pem", &foreign_ca_pem("other.org"));
    cli.ok("bundle set", &["-id", "spiffe://other.org", "-path", &path]);
    cli.ok(
        "entry create",
        &[
            "-parentID",
            "spiffe://example.org/agent",
            "-spiffeID",
            "spiffe://example.org/fed",
            "-selector",
            "unix:uid:1",
            "-federatesWith",
            "spiffe://other.org",
        ],
    );
    let run = cli.run("bundle delete", &["-id", "spiffe://other.org"]);
    assert_eq!(run.code, 1);
    let prefix = "Error: failed to delete federated bundle \"spiffe://other.org\": failed to delete federated bundle: ";
    assert!(run.stderr.starts_with(prefix) && run.stderr.contains("1 registration entries"), "{}", run.stderr);
}

#[tokio::test]
async fn federation_relationships() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    assert_eq!(cli.ok("federation list", &[]), "Found 0 federation relationships\n");

    let web_block = "Trust domain              : other.org
Bundle endpoint URL       : https://other.org/bundle
Bundle endpoint profile   : https_web
";
    let out = cli.ok(
        "federation create",
        &[
            "-trustDomain",
            "other.org",
            "-bundleEndpointURL",
            "https://other.org/bundle",
            "-bundleEndpointProfile",
            "https_web",
        ],
    );
    assert_eq!(out, format!("\n{web_block}"));
    assert_eq!(cli.ok("federation list", &[]), format!("Found 1 federation relationship\n\n{web_block}"));
    assert_eq!(
        cli.ok("federation show", &["-trustDomain", "other.org"]),
        format!("Found a federation relationship with trust domain other.org:\n\n{web_block}")
    );
    let json = cli.json("federation show", &["-trustDomain", "other.org"]);
    assert_eq!(
        (&json["trust_domain"], &json["bundle_endpoint_url"]),
        (&Value::from("other.org"), &Value::from("https://other.org/bundle"))
    );
    assert_eq!(json["https_web"], serde_json::json!({}));

    // Creating it again is refused per relationship.
    let dup = cli.run(
        "federation create",
        &[
            "-trustDomain",
            "other.org",
            "-bundleEndpointURL",
            "https://other.org/bundle",
            "-bundleEndpointProfile",
            "https_web",
        ],
    );
    assert_eq!(dup.stdout, "\n");
    let stderr = dup.failed();
    assert!(
        stderr.starts_with("Failed to create the following federation relationship (code: AlreadyExists, msg: "),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!("{web_block}Error: failed to create one or more federation relationships\n")),
        "{stderr}"
    );

    // Update to the https_spiffe profile, with the trust domain's bundle given inline.
    let bundle = write_file(&server.dir, "other.pem", &foreign_ca_pem("other.org"));
    let spiffe_block = "Trust domain              : other.org
Bundle endpoint URL       : https://other.org:8443/bundle
Bundle endpoint profile   : https_spiffe
Endpoint SPIFFE ID        : spiffe://other.org/bundle-server
";
    let out = cli.ok(
        "federation update",
        &[
            "-trustDomain",
            "other.org",
            "-bundleEndpointURL",
            "https://other.org:8443/bundle",
            "-bundleEndpointProfile",
            "https_spiffe",
            "-endpointSpiffeID",
            "spiffe://other.org/bundle-server",
            "-trustDomainBundlePath",
            &bundle,
        ],
    );
    assert_eq!(out, format!("\n{spiffe_block}"));
    assert_eq!(
        cli.ok("federation show", &["-trustDomain", "other.org"]),
        format!("Found a federation relationship with trust domain other.org:\n\n{spiffe_block}")
    );
    let list = cli.json("federation list", &[]);
    assert_eq!(
        list["federation_relationships"][0]["https_spiffe"]["endpoint_spiffe_id"],
        "spiffe://other.org/bundle-server"
    );
    assert_eq!(
        cli.ok("bundle list", &["-id", "spiffe://other.org"]),
        std::fs::read_to_string(&bundle).unwrap(),
        "the bundle was stored"
    );

    // Bundle endpoints must be HTTPS: refused by the server, nothing created.
    let bad = cli.run(
        "federation create",
        &[
            "-trustDomain",
            "bad.org",
            "-bundleEndpointURL",
            "http://bad.org/bundle",
            "-bundleEndpointProfile",
            "https_web",
        ],
    );
    assert_eq!(bad.stdout, "\n");
    let stderr = bad.failed();
    let (first, rest) = stderr.split_once('\n').unwrap();
    assert!(
        first.starts_with("Failed to create the following federation relationship (code: InvalidArgument, msg: "),
        "{first}"
    );
    assert!(first.contains("https"), "{first}");
    assert_eq!(
        rest,
        "Trust domain              : bad.org
Bundle endpoint URL       : http://bad.org/bundle
Bundle endpoint profile   : https_web
Error: failed to create one or more federation relationships
"
    );
    cli.run(
        "federation create",
        &["-trustDomain", "bad.org", "-bundleEndpointURL", "https://bad.org/b", "-bundleEndpointProfile", "mtls"],
    )
    .fails_with("Error: unknown bundle endpoint profile type: \"mtls\"\n");
    cli.run("federation show", &["-trustDomain", "bad.org"]).fails_with(
        "Error: error showing federation relationship: \
         rpc error: code = NotFound desc = federation relationship does not exist\n",
    );

    assert_eq!(cli.ok("federation delete", &["-id", "other.org"]), "federation relationship deleted.\n");
    assert_eq!(cli.ok("federation list", &[]), "Found 0 federation relationships\n");
    let err = cli.run("federation delete", &["-id", "other.org"]).failed();
    assert!(err.starts_with("Error: failed to delete federation relationship \"other.org\": "), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Minting

#[tokio::test]
async fn x509_and_jwt_mint() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    let bundle_pem = cli.ok("bundle show", &[]);
    let bundles: BundleSet = Bundle::from_pem(TrustDomain::parse("example.org").unwrap(), &bundle_pem).unwrap().into();

    // Printed: the SVID chain, its key and the root CAs.
    let out = cli
        .run("x509 mint", &["-spiffeID", "spiffe://example.org/minted", "-dns", "a.example.org", "-ttl", "1h"])
        .ok_with_capped_warning("X509-SVID");
    let rest = out.strip_prefix("X509-SVID:\n").expect("X509-SVID section");
    let (svid_pem, rest) = rest.split_once("\nPrivate key:\n").expect("Private key section");
    let (key_pem, rest) = rest.split_once("\nRoot CAs:\n").expect("Root CAs section");
    let roots_pem = rest.strip_suffix('\n').expect("trailing blank line");
    assert_eq!(roots_pem, bundle_pem);
    let key = PrivateKey::from_pem(key_pem).expect("PKCS#8 key");
    check_minted_svid(svid_pem, &key, &bundles, 3600);

    // Written: svid.pem, key.pem, bundle.pem.
    let dir = server.dir.join("minted");
    std::fs::create_dir(&dir).unwrap();
    let out = cli
        .run(
            "x509 mint",
            &[
                "-spiffeID",
                "spiffe://example.org/minted",
                "-dns",
                "a.example.org",
                "-ttl",
                "1h",
                "-write",
                dir.to_str().unwrap(),
            ],
        )
        .ok_with_capped_warning("X509-SVID");
    assert_eq!(
        out,
        format!(
            "X509-SVID written to {0}/svid.pem\n\
             Private key written to {0}/key.pem\n\
             Root CAs written to {0}/bundle.pem\n",
            dir.display()
        )
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let written_roots = Bundle::from_pem(TrustDomain::parse("example.org").unwrap(), &read("bundle.pem")).unwrap();
    assert_eq!(read("bundle.pem"), bundle_pem);
    check_minted_svid(&read("svid.pem"), &PrivateKey::from_pem(&read("key.pem")).unwrap(), &written_roots.into(), 3600);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("key.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is private");
    }

    let json = cli.json("x509 mint", &["-spiffeID", "spiffe://example.org/minted"]);
    assert!(
        json[0]["x509_svid"].as_array().is_some_and(|a| !a.is_empty()) && json[0]["private_key"].is_string(),
        "{json}"
    );
    cli.run("x509 mint", &[]).fails_with("Error: spiffeID must be specified\n");

    // JWT: validates against the JWT authorities of `bundle show -format spiffe`.
    let spiffe = cli.ok("bundle show", &["-format", "spiffe"]);
    let jwt_bundles: BundleSet =
        Bundle::from_spiffe_json(TrustDomain::parse("example.org").unwrap(), spiffe.as_bytes()).unwrap().into();
    let out = cli.ok("jwt mint", &["-spiffeID", "spiffe://example.org/jwt", "-audience", "a", "-audience", "b"]);
    let token = out.strip_suffix('\n').expect("one line");
    assert!(!token.contains('\n'));
    let svid = validate_jwt_svid(token, &jwt_bundles, &["a", "b"], SystemTime::now()).expect("valid JWT-SVID");
    assert_eq!(svid.spiffe_id.to_string(), "spiffe://example.org/jwt");
    assert_eq!(svid.audience, ["a", "b"]);
    let out = cli
        .run("jwt mint", &["-spiffeID", "spiffe://example.org/jwt", "-audience", "a", "-ttl", "2m"])
        .ok_with_capped_warning("JWT-SVID");
    let svid = validate_jwt_svid(out.trim_end(), &jwt_bundles, &["a"], SystemTime::now()).expect("valid JWT-SVID");
    assert!((svid.expiry - now_unix() - 120).abs() <= 5, "-ttl 2m: {}", svid.expiry);
    let file = server.dir.join("token.jwt");
    assert_eq!(
        cli.ok(
            "jwt mint",
            &["-spiffeID", "spiffe://example.org/jwt", "-audience", "a", "-write", file.to_str().unwrap()]
        ),
        ""
    );
    validate_jwt_svid(&std::fs::read_to_string(&file).unwrap(), &jwt_bundles, &["a"], SystemTime::now())
        .expect("written token");
    cli.run("jwt mint", &["-spiffeID", "spiffe://example.org/jwt"])
        .fails_with("Error: at least one audience must be specified\n");
}

/// `pem` holds an X509-SVID for `spiffe://example.org/minted` (DNS `a.example.org`) that chains to
/// `bundles`, matches `key` and lives about `ttl` seconds.
#[track_caller]
fn check_minted_svid(pem: &str, key: &PrivateKey, bundles: &BundleSet, ttl: i64) {
    let chain = certs_from_pem(pem).expect("SVID PEM");
    let verified = verify_svid(&chain, bundles, SystemTime::now()).expect("the SVID chains to the bundle");
    assert_eq!(verified.spiffe_id.to_string(), "spiffe://example.org/minted");
    let leaf = x509_parser::parse_x509_certificate(&chain[0]).unwrap().1;
    assert_eq!(leaf.public_key().raw, key.public_key_der().as_slice(), "the key is the SVID's");
    let san = leaf.subject_alternative_name().unwrap().expect("SAN").value;
    assert!(
        san.general_names.iter().any(|n| matches!(n, x509_parser::extensions::GeneralName::DNSName("a.example.org")))
    );
    let lifetime = leaf.validity().not_after.timestamp() - now_unix();
    assert!((lifetime - ttl).abs() <= 15, "lifetime {lifetime} s, asked {ttl} s");
}

// ---------------------------------------------------------------------------------------------
// Health, logger, debug, validate

#[tokio::test]
async fn healthcheck_logger_and_debug() {
    let server = TestServer::start(BIN, "").await;
    let cli = Cli(&server);
    assert_eq!(cli.ok("healthcheck", &[]), "Server is healthy.\n");
    assert_eq!(cli.ok("healthcheck", &["-verbose"]), "Checking server health...\nServer is healthy.\n");
    let missing = server.dir.join("missing.sock");
    spire_server(&["healthcheck", "-socketPath", missing.to_str().unwrap()], None)
        .fails_with("Error: server is unhealthy: unable to determine health\n");
    let verbose = spire_server(&["healthcheck", "-verbose", "-socketPath", missing.to_str().unwrap()], None);
    assert_eq!(verbose.stdout, "Checking server health...\n");
    let stderr = verbose.failed();
    assert!(stderr.starts_with("Failed to check health: "), "{stderr}");
    assert!(stderr.ends_with("\nError: server is unhealthy: unable to determine health\n"), "{stderr}");
    // Any command against a missing socket fails the same way: `Error: ...`, exit 1.
    let err = spire_server(&["entry", "count", "-socketPath", missing.to_str().unwrap()], None).failed();
    assert!(err.starts_with("Error: ") && err.ends_with('\n') && err.lines().count() == 1, "{err}");

    // The server runs with log_level = "DEBUG".
    assert_eq!(cli.ok("logger get", &[]), "Logger Level : debug\nLaunch Level : debug\n\n");
    assert_eq!(cli.ok("logger set", &["-level", "info"]), "Logger Level : info\nLaunch Level : debug\n\n");
    assert_eq!(cli.ok("logger get", &[]), "Logger Level : info\nLaunch Level : debug\n\n");
    assert_eq!(cli.ok("logger set", &["-level", "warn"]), "Logger Level : warning\nLaunch Level : debug\n\n");
    assert_eq!(cli.ok("logger reset", &[]), "Logger Level : debug\nLaunch Level : debug\n\n");
    assert_eq!(cli.ok("logger set", &["-level", "debug"]), "Logger Level : debug\nLaunch Level : debug\n\n");
    assert_eq!(cli.json("logger get", &[]), serde_json::json!({"current_level": "DEBUG", "launch_level": "DEBUG"}));
    cli.run("logger set", &[]).fails_with("Error: a value (-level) must be set\n");
    cli.run("logger set", &["-level", "loud"]).fails_with("Error: the value loud is not a valid setting\n");

    // debug getinfo counts what the CLI created.
    cli.ok(
        "entry create",
        &["-parentID", "spiffe://example.org/a", "-spiffeID", "spiffe://example.org/b", "-selector", "a:b"],
    );
    let path = write_file(&server.dir, "other.pem", &foreign_ca_pem("other.org"));
    cli.ok("bundle set", &["-id", "spiffe://other.org", "-path", &path]);
    let info = cli.ok("debug getinfo", &[]);
    let lines: Vec<&str> = info.lines().collect();
    assert_eq!(lines[0], "Server Debug Info:");
    assert!(lines[1].starts_with("  Uptime:                  ") && lines[1].ends_with('s'), "{info}");
    assert_eq!(
        lines[2..5],
        ["  Registered Agents:       0", "  Registration Entries:    1", "  Federated Bundles:       1"],
        "{info}"
    );
    assert_eq!(lines[5..7], ["  SVID Chain:", "    [0] SPIFFE ID:  spiffe://example.org/spire/server"], "{info}");
    assert!(lines[7].starts_with("        Subject:    ") && lines[8].starts_with("        Expires At: 20"), "{info}");
    let json = cli.json("debug getinfo", &[]);
    assert_eq!(
        (&json["entries_count"], &json["agents_count"], &json["federated_bundles_count"]),
        (&Value::from(1), &Value::from(0), &Value::from(1))
    );
    assert_eq!(json["svid_chain"][0]["id"]["path"], "/spire/server");
}

#[test]
fn validate_config() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write_file(tmp.path(), "server.conf", &server_conf(tmp.path(), 8081, ""));
    let out = spire_server(&["validate", "-config", &good], None);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "SPIRE server configuration file is valid.\n", "")
    );

    // `extra` lands on line 8, inside the server block.
    let conf = server_conf(tmp.path(), 8081, "bogus_key = 1");
    assert_eq!(conf.lines().nth(7).map(str::trim), Some("bogus_key = 1"));
    let bad = write_file(tmp.path(), "bad.conf", &conf);
    let out = spire_server(&["validate", "-config", &bad], None);
    assert_eq!(out.stdout, "");
    let stderr = out.failed();
    assert!(stderr.starts_with("SPIRE server configuration file is invalid: "), "{stderr}");
    assert!(stderr.contains("bogus_key") && stderr.contains("line 8"), "names the key and its line: {stderr}");

    // Plugins are decoded as `run` decodes them: k8s_psat's keys are checked, its kubeconfig is not
    // read, and a plugin this build lacks is refused with `run`'s message.
    let validate = |name: &str, plugin: &str| {
        // Closes the server block, adds to `plugins`, and opens `server` again (blocks merge).
        let conf = server_conf(tmp.path(), 8081, &format!("}}\nplugins {{\n{plugin}\n}}\nserver {{"));
        spire_server(&["validate", "-config", &write_file(tmp.path(), name, &conf)], None)
    };
    let psat = |cluster: &str| {
        format!(r#"NodeAttestor "k8s_psat" {{ plugin_data {{ clusters = {{ "c" = {{ {cluster} }} }} }} }}"#)
    };
    let out = validate(
        "psat.conf",
        &psat(r#"service_account_allow_list = ["spire:spire-agent"] kube_config_file = "/no/such/kubeconfig""#),
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "SPIRE server configuration file is valid.\n"), "{}", out.stderr);
    for (name, plugin, message) in [
        (
            "unknown_key.conf",
            psat(r#"service_account_allow_list = ["a:b"] audiences = ["x"]"#),
            r#"unknown configuration key "audiences" at line 10 (in plugins.NodeAttestor.k8s_psat.plugin_data.clusters["c"])"#,
        ),
        (
            "missing_key.conf",
            psat(r#"audience = ["x"]"#),
            r#"plugins.NodeAttestor.k8s_psat.plugin_data.clusters["c"].service_account_allow_list: "#,
        ),
        (
            "unknown_plugin.conf",
            r#"NodeAttestor "no_such_attestor" {}"#.to_owned(),
            r#"unknown NodeAttestor plugin "no_such_attestor": this build supports "join_token", "aws_iid", "azure_msi", "gcp_iit", "http_challenge", "k8s_psat", "sshpop", "tpm_devid" and "x509pop""#,
        ),
    ] {
        let out = validate(name, &plugin);
        assert_eq!(out.stdout, "");
        let stderr = out.failed();
        assert!(stderr.starts_with("SPIRE server configuration file is invalid: "), "{stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Persistence

#[tokio::test]
async fn restart_keeps_what_the_cli_created() {
    let mut server = TestServer::start(BIN, NO_ATTESTATION_RATE_LIMIT).await;
    let data = r#"{"entries":[
        {"selectors":[{"type":"unix","value":"uid:1"}],"spiffe_id":"spiffe://example.org/one",
         "parent_id":"spiffe://example.org/spire/server"},
        {"selectors":[{"type":"unix","value":"uid:2"}],"spiffe_id":"spiffe://example.org/two",
         "parent_id":"spiffe://example.org/spire/server","dns_names":["two.example.org"],"entryExpiry":1900000000}]}"#;
    let path = write_file(&server.dir, "entries.json", data);
    let (entries, agents, bundles, token) = {
        let cli = Cli(&server);
        cli.ok("entry create", &["-data", &path]);
        let bundle = write_file(&server.dir, "other.pem", &foreign_ca_pem("other.org"));
        cli.ok("bundle set", &["-id", "spiffe://other.org", "-path", &bundle]);
        let agent = attest(&server, &generate_token(cli)).await;
        let banned = attest(&server, &generate_token(cli)).await;
        cli.ok("agent ban", &["-spiffeID", &banned.id]);
        let agents = cli.ok("agent list", &[]);
        assert!(
            agents.contains(&agent_block(&agent, false)) && agents.contains(&agent_block(&banned, true)),
            "{agents}"
        );
        (cli.ok("entry show", &[]), agents, cli.ok("bundle list", &[]), generate_token(cli))
    };
    assert_eq!(spiffe_ids(&entries), ["spiffe://example.org/one", "spiffe://example.org/two"]);

    server.restart().await;
    let cli = Cli(&server);
    assert_eq!(cli.ok("healthcheck", &[]), "Server is healthy.\n");
    assert_eq!(cli.ok("entry show", &[]), entries);
    assert_eq!(cli.ok("agent list", &[]), agents);
    assert_eq!(cli.ok("bundle list", &[]), bundles);
    assert_eq!(cli.ok("agent count", &["-banned", "true"]), "1 attested agent\n");
    // A token generated before the restart still attests.
    let late = attest(&server, &token).await;
    assert_eq!(cli.ok("agent count", &[]), "3 attested agents\n");
    assert!(cli.ok("agent list", &[]).contains(&agent_block(&late, false)));
}
