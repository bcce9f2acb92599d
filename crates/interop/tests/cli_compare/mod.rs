//! What the CLI comparisons across implementations share: running a CLI against a socket, the
//! normalisation that makes two runs comparable (IDs, times, serial numbers, keys, certificates and
//! tokens replaced by placeholders; their structure kept), a report that collects every difference
//! before failing, and the two scenarios: the `spire-server` admin commands against a server (with an
//! agent attested to it), and the `spire-agent api` commands against an agent serving this process.
//!
//! Each scenario runs the same steps on two sides and compares them step by step. A side is a CLI
//! binary and the daemon it talks to; what differs between the tests is which pair is which
//! (`upstream_cli_our_server.rs`, `our_cli_upstream.rs`, `upstream_agent_cli_our_agent.rs`).
//! Differences that must stay are named by the tests through [`Expected`]: each one is checked to
//! be there, then undone, so the rest of the output is still compared exactly.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Running a CLI

/// What one CLI invocation printed and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn of(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The stdout, after checking the command succeeded.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {}{}", self.stdout, self.stderr);
        &self.stdout
    }
}

/// A CLI binary (SPIRE's or ours, `spire-server` or `spire-agent`) and the socket it talks to.
#[derive(Debug, Clone)]
pub(crate) struct Cli {
    /// Names the side in reports, e.g. `SPIRE CLI → our server`.
    pub(crate) name: String,
    pub(crate) bin: PathBuf,
    pub(crate) socket: PathBuf,
}

impl Cli {
    pub(crate) fn new(name: impl Into<String>, bin: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        Self { name: name.into(), bin: bin.into(), socket: socket.into() }
    }

    /// Runs `<bin> <args> -socketPath <socket>`.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("-socketPath")
            .arg(&self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        Run::of(out)
    }

    /// `spire-agent api watch`: what it printed up to the end of its first block (the blank line
    /// after the first `Received ...` report), after which it is killed.
    pub(crate) fn watch_first_block(&self, timeout: Duration) -> String {
        let mut child = Command::new(&self.bin)
            .args(["api", "watch", "-socketPath"])
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start api watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut block = String::new();
            let mut started = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                started |= line.starts_with("Received ");
                if started {
                    block.push_str(&line);
                    block.push('\n');
                    if line.is_empty() {
                        break;
                    }
                }
            }
            let _ = tx.send(block);
        });
        let block = rx.recv_timeout(timeout).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        block
    }
}

/// This process's uid, which agents see for the CLIs it starts.
pub(crate) fn uid() -> u32 {
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// Polls `cli` (a `spire-agent`) until `api fetch x509` serves `spiffe_id`.
pub(crate) async fn wait_for_svid(cli: &Cli, spiffe_id: &str, timeout: Duration, logs: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    loop {
        let run = cli.run(&["api", "fetch", "x509"]);
        if run.code == 0 && run.stdout.contains(&format!("SPIFFE ID:\t\t{spiffe_id}\n")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {spiffe_id} not served within {timeout:?}: {}{}\n{}",
            cli.name,
            run.stdout,
            run.stderr,
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/// Placeholders for what legitimately differs between two runs: `dirs` (temp directories) become
/// `<DIR>`, PEM bodies `<PEM>`, UUIDs (entry IDs, join tokens, hence agent IDs) `<UUID>`, Go and
/// RFC 3339 times `<TIME>`, the duration of `Received N svid after ...` `<DURATION>`, JWTs `<JWT>`,
/// runs of 30 or more base64/base64url/decimal characters (keys, key IDs, DER, serial numbers)
/// `<B64>`, and ten-digit Unix times `<EPOCH>`. The structure (PEM block count and type, JSON
/// members, line layout) stays.
pub(crate) fn normalize(text: &str, dirs: &[PathBuf]) -> String {
    let mut s = text.to_owned();
    for dir in dirs {
        if let Some(d) = dir.to_str().filter(|d| !d.is_empty()) {
            s = s.replace(d, "<DIR>");
        }
    }
    let s = pem_bodies(&s);
    let s = uuids(&s);
    let s = times(&s);
    let s = durations(&s);
    let s = jwts(&s);
    let s = long_runs(&s);
    epochs(&s)
}

fn pem_bodies(s: &str) -> String {
    let mut out = Vec::new();
    let mut in_body = false;
    for line in s.split('\n') {
        if line.starts_with("-----BEGIN ") {
            out.push(line.to_owned());
            out.push("<PEM>".to_owned());
            in_body = true;
        } else if line.starts_with("-----END ") {
            out.push(line.to_owned());
            in_body = false;
        } else if !in_body {
            out.push(line.to_owned());
        }
    }
    out.join("\n")
}

/// Replaces every match of `matcher` (which returns the length of a match starting at a byte
/// offset, or `None`) by `placeholder`.
fn replace_matches(s: &str, placeholder: &str, matcher: impl Fn(&[u8], usize) -> Option<usize>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if s.is_char_boundary(i)
            && let Some(len) = matcher(b, i)
        {
            out.push_str(&s[copied..i]);
            out.push_str(placeholder);
            i += len;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Whether `b[i..]` follows `pattern`, where `9` stands for a digit, `x` for a hex digit and any
/// other byte for itself.
fn shaped(b: &[u8], i: usize, pattern: &str) -> bool {
    let p = pattern.as_bytes();
    b.len() >= i + p.len()
        && p.iter().zip(&b[i..]).all(|(p, c)| match p {
            b'9' => c.is_ascii_digit(),
            b'x' => c.is_ascii_hexdigit(),
            other => other == c,
        })
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-')
}

fn uuids(s: &str) -> String {
    replace_matches(s, "<UUID>", |b, i| {
        let boundary = i == 0 || !b[i - 1].is_ascii_hexdigit();
        (boundary && shaped(b, i, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")).then_some(36)
    })
}

fn times(s: &str) -> String {
    replace_matches(s, "<TIME>", |b, i| {
        if shaped(b, i, "9999-99-99 99:99:99 +0000 UTC") {
            Some(29)
        } else if shaped(b, i, "9999-99-99T99:99:99Z") {
            Some(20)
        } else {
            None
        }
    })
}

fn durations(s: &str) -> String {
    s.split('\n')
        .map(|line| match line.find(" after ") {
            Some(at) if line.starts_with("Received ") => format!("{} after <DURATION>", &line[..at]),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn jwts(s: &str) -> String {
    replace_matches(s, "<JWT>", |b, i| {
        if !shaped(b, i, "eyJ") || (i > 0 && is_word(b[i - 1])) {
            return None;
        }
        let len = b[i..].iter().take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')).count();
        (b[i..i + len].iter().filter(|&&c| c == b'.').count() == 2).then_some(len)
    })
}

fn long_runs(s: &str) -> String {
    replace_matches(s, "<B64>", |b, i| {
        if i > 0 && is_word(b[i - 1]) {
            return None;
        }
        let len = b[i..].iter().take_while(|&&c| is_word(c)).count();
        // Paths are runs of this alphabet too, with a '/' every few characters; base64 has one in
        // 64 on average, and a random key can have several times that (7 in 124 was seen), so
        // allow up to one '/' per 10 characters.
        let slashes = b[i..i + len].iter().filter(|&&c| c == b'/').count();
        (len >= 30 && slashes * 10 <= len).then_some(len)
    })
}

fn epochs(s: &str) -> String {
    replace_matches(s, "<EPOCH>", |b, i| {
        let boundary = i == 0 || !b[i - 1].is_ascii_digit();
        let len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        (boundary && len == 10 && matches!(b[i], b'1' | b'2')).then_some(10)
    })
}

/// The JWTs in `text`, in order.
pub(crate) fn find_jwts(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .filter(|w| w.starts_with("eyJ") && w.matches('.').count() == 2)
        .map(str::to_owned)
        .collect()
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// A JWT's structure: its header with the values of `alg` and `typ` (the key ID replaced), and the
/// sorted names of its claims.
pub(crate) fn jwt_shape(token: &str) -> String {
    let mut parts = token.split('.');
    let json = |part: Option<&str>| -> BTreeMap<String, Value> {
        part.and_then(base64url_decode).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    };
    let header = json(parts.next());
    let claims = json(parts.next());
    let header: Vec<String> =
        header.iter().map(|(k, v)| if k == "kid" { "kid=<KID>".to_owned() } else { format!("{k}={v}") }).collect();
    format!("header {header:?}, claims {:?}", claims.keys().collect::<Vec<_>>())
}

/// The JWT-SVID bundle blocks of `spire-agent api fetch jwt` sorted by trust domain: SPIRE's CLI walks
/// a Go map, so their order varies from run to run.
pub(crate) fn sort_jwt_bundles(text: &str) -> String {
    let Some(start) = text.find("bundle(") else { return text.to_owned() };
    let (head, bundles) = text.split_at(start);
    let mut blocks: Vec<String> = Vec::new();
    for line in bundles.split_inclusive('\n') {
        if line.starts_with("bundle(") || blocks.is_empty() {
            blocks.push(String::new());
        }
        if let Some(last) = blocks.last_mut() {
            last.push_str(line);
        }
    }
    blocks.sort();
    format!("{head}{}", blocks.concat())
}

/// The `Claims    : {...}` line of `api validate jwt` with its JSON compacted. SPIRE's CLI prints it
/// with protojson, which adds spaces after some separators depending on a hash of the binary (Go's
/// `detrand`), so the spacing differs between builds of SPIRE itself.
pub(crate) fn compact_claims(text: &str) -> String {
    text.split('\n')
        .map(|line| match line.strip_prefix("Claims    : ") {
            Some(json) => format!("Claims    : {}", strip_json_spaces(json)),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// JSON text without the spaces outside its strings (it may hold placeholders, so it is not parsed).
fn strip_json_spaces(json: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(json.len()), false, false);
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ' ' {
            continue;
        }
        out.push(c);
    }
    out
}

/// JSON as SPIRE's CLI prints it: compact, keys sorted (what its printer's Go map does).
pub(crate) fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::to_string(k).expect("string"), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => serde_json::to_string(other).expect("scalar"),
    }
}

// ---------------------------------------------------------------------------------------------
// Expected differences

/// Rewrites one output into the other side's form, or `None` if the difference is not in it.
pub(crate) type Undo = Box<dyn Fn(&str) -> Option<String>>;

/// A difference one side is known to have, with why: [`Expected::undo`] checks it is there and turns
/// that side's output into what the other side prints.
pub(crate) struct Expected {
    /// Why the difference stays (printed if it is not found any more).
    pub(crate) why: &'static str,
    /// Rewrites the side's normalised stdout or stderr into the other side's form; `None` when the
    /// difference is not in this output (the step does not have it).
    pub(crate) undo: Undo,
}

/// Labels of `entry show`/`create`/`update`'s pretty blocks.
const ENTRY_LABELS: [&str; 17] = [
    "Entry ID",
    "SPIFFE ID",
    "Parent ID",
    "Revision",
    "Downstream",
    "X509-SVID TTL",
    "JWT-SVID TTL",
    "Expiration time",
    "Selector",
    "FederatesWith",
    "DNS name",
    "Admin",
    "StoreSvid",
    "Hint",
    "DisableX509SvidPrefetch",
    "JwtSvidIncludeJti",
    "Created at",
];

/// Our CLI pads the entry labels to 23 columns, as SPIRE does since v1.15 (which added the 23-letter
/// `DisableX509SvidPrefetch`); SPIRE v1.13.3 pads them to 16.
pub(crate) fn entry_label_width() -> Expected {
    Expected {
        why: "our CLI lays entries out as SPIRE v1.15+ (labels padded to 23 columns); v1.13.3 pads to 16",
        undo: Box::new(|text| {
            let mut changed = false;
            let lines: Vec<String> = text
                .split('\n')
                .map(|line| {
                    for label in ENTRY_LABELS {
                        let wide = format!("{label:<23} : ");
                        if let Some(rest) = line.strip_prefix(&wide) {
                            changed = true;
                            return format!("{label:<16} : {rest}");
                        }
                    }
                    line.to_owned()
                })
                .collect();
            changed.then(|| lines.join("\n"))
        }),
    }
}

/// Our CLI knows fields newer than SPIRE v1.13.3's API (`agent_version` of agents, `hint` of bundle
/// authorities, `wit_authorities` of bundles), so its `-output json` prints them where SPIRE's omits
/// them: this removes exactly those members, wherever they are.
pub(crate) fn newer_api_fields() -> Expected {
    Expected {
        why: "our CLI's API definitions are SPIRE v1.14+'s: -output json includes agent_version, the \
              authorities' hint and wit_authorities, which SPIRE v1.13.3's do not have",
        undo: Box::new(|text| {
            let mut removed = false;
            let mut lines = Vec::new();
            for line in text.split('\n') {
                match serde_json::from_str::<Value>(line) {
                    Ok(mut v @ (Value::Object(_) | Value::Array(_))) => {
                        removed |= strip_newer(&mut v, false);
                        lines.push(canonical_json(&v));
                    }
                    _ => lines.push(line.to_owned()),
                }
            }
            removed.then(|| lines.join("\n"))
        }),
    }
}

fn strip_newer(v: &mut Value, in_authority: bool) -> bool {
    let mut removed = false;
    match v {
        Value::Object(m) => {
            if m.contains_key("attestation_type") {
                removed |= m.remove("agent_version").is_some();
            }
            if m.contains_key("x509_authorities") {
                removed |= m.remove("wit_authorities").is_some();
            }
            if in_authority {
                removed |= m.remove("hint").is_some();
            }
            for (k, child) in m.iter_mut() {
                let authority = matches!(k.as_str(), "x509_authorities" | "jwt_authorities");
                removed |= strip_newer(child, authority);
            }
        }
        Value::Array(items) => {
            for item in items {
                removed |= strip_newer(item, in_authority);
            }
        }
        _ => {}
    }
    removed
}

// ---------------------------------------------------------------------------------------------
// The report

/// Every step's comparison; [`Report::finish`] fails with all the differences at once. With
/// `CLI_COMPARE_DUMP` set in the environment, each step's normalised outputs are printed.
pub(crate) struct Report {
    a: String,
    b: String,
    dirs: Vec<PathBuf>,
    differences: Vec<String>,
    /// How many steps matched, and how many only after undoing an expected difference.
    pub(crate) same: usize,
    pub(crate) same_after_expected: BTreeMap<&'static str, usize>,
    expected: Vec<Expected>,
}

impl Report {
    /// A report comparing side `a` (the reference) with side `b`; `dirs` are normalised away.
    pub(crate) fn new(a: &str, b: &str, dirs: Vec<PathBuf>) -> Self {
        Self {
            a: a.into(),
            b: b.into(),
            dirs,
            differences: Vec::new(),
            same: 0,
            same_after_expected: BTreeMap::new(),
            expected: Vec::new(),
        }
    }

    /// Differences of side `b` to undo before comparing.
    pub(crate) fn expect(&mut self, expected: Expected) {
        self.expected.push(expected);
    }

    /// Normalises with this report's directories.
    pub(crate) fn normalize(&self, text: &str) -> String {
        normalize(text, &self.dirs)
    }

    /// Compares one step: exit codes, stdout and stderr after normalisation (and `fix`, applied to
    /// both normalised outputs, for what varies from run to run within one implementation); then,
    /// if they differ, after undoing each expected difference of `b`. JWTs are compared by shape.
    pub(crate) fn compare(&mut self, step: &str, a: &Run, b: &Run, fix: impl Fn(&str) -> String) {
        let (a_out, a_err) = (fix(&self.normalize(&a.stdout)), fix(&self.normalize(&a.stderr)));
        let (mut b_out, mut b_err) = (fix(&self.normalize(&b.stdout)), fix(&self.normalize(&b.stderr)));
        let shapes = |r: &Run| find_jwts(&r.stdout).iter().map(|t| jwt_shape(t)).collect::<Vec<_>>();
        if shapes(a) != shapes(b) {
            self.differences.push(format!(
                "{step}: JWT shapes differ\n  {}: {:?}\n  {}: {:?}",
                self.a,
                shapes(a),
                self.b,
                shapes(b)
            ));
        }
        if std::env::var_os("CLI_COMPARE_DUMP").is_some() {
            eprintln!("=== {step} (exit {} / {})\n{a_out}{a_err}--- {} ---\n{b_out}{b_err}", a.code, b.code, self.b);
        }
        let same = |b_out: &str, b_err: &str| a.code == b.code && a_out == b_out && a_err == b_err;
        if same(&b_out, &b_err) {
            self.same += 1;
            return;
        }
        let mut undone = Vec::new();
        for e in &self.expected {
            let (out, err) = ((e.undo)(&b_out), (e.undo)(&b_err));
            if out.is_some() || err.is_some() {
                undone.push(e.why);
            }
            b_out = out.unwrap_or(b_out);
            b_err = err.unwrap_or(b_err);
        }
        if !undone.is_empty() && same(&b_out, &b_err) {
            for why in undone {
                *self.same_after_expected.entry(why).or_default() += 1;
            }
            return;
        }
        self.differences.push(format!(
            "{step}: exit {} vs {}\n--- {} stdout ---\n{a_out}\n--- {} stdout ---\n{b_out}\n--- {} stderr ---\n{a_err}\n--- {} stderr ---\n{b_err}",
            a.code, b.code, self.a, self.b, self.a, self.b
        ));
    }

    /// Records a difference found outside [`Report::compare`].
    pub(crate) fn differ(&mut self, what: String) {
        self.differences.push(what);
    }

    /// Panics with every difference, if any; prints the tally otherwise.
    #[track_caller]
    pub(crate) fn finish(self, logs: impl Fn() -> String) {
        let expected: usize = self.same_after_expected.values().sum();
        eprintln!(
            "{} vs {}: {} steps identical, {expected} identical but for expected differences {:?}",
            self.a, self.b, self.same, self.same_after_expected
        );
        assert!(
            self.differences.is_empty(),
            "{} differences between {} and {}:\n\n{}\n\n{}",
            self.differences.len(),
            self.a,
            self.b,
            self.differences.join("\n\n"),
            logs()
        );
    }
}

fn no_fix(s: &str) -> String {
    s.to_owned()
}

// ---------------------------------------------------------------------------------------------
// The spire-server scenario

/// One side of the server scenario: a `spire-server` CLI against a server, an agent attested to that
/// server with a join token, and a directory for files.
pub(crate) struct ServerSide {
    pub(crate) cli: Cli,
    pub(crate) agent_id: String,
    pub(crate) dir: PathBuf,
}

impl ServerSide {
    fn run(&self, args: &[&str]) -> Run {
        self.cli.run(args)
    }

    /// The ID of the entry for `spiffe_id`, from `entry show -spiffeID ... -output json`.
    fn entry_id(&self, spiffe_id: &str) -> String {
        let out = self.run(&["entry", "show", "-spiffeID", spiffe_id, "-output", "json"]);
        let v: Value = serde_json::from_str(out.ok()).expect("entry show JSON");
        v["entries"][0]["id"].as_str().unwrap_or_else(|| panic!("no entry for {spiffe_id}: {v}")).to_owned()
    }
}

/// Runs the `spire-server` admin commands on both sides (same arguments, with each side's own agent
/// ID, entry IDs and directory) and compares each step. `federated_pem` is a CA certificate used as
/// the bundle of `spiffe://other.org` on both sides.
pub(crate) fn server_scenario(r: &mut Report, a: &ServerSide, b: &ServerSide, federated_pem: &Path) {
    let pem = federated_pem.to_str().expect("UTF-8 path").to_owned();
    let mut step = |name: &str, args: &dyn Fn(&ServerSide) -> Vec<String>| {
        let run = |side: &ServerSide| {
            let args = args(side);
            side.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let (ra, rb) = (run(a), run(b));
        r.compare(name, &ra, &rb, no_fix);
    };
    let fixed = |args: &[&str]| {
        let args = owned(args);
        move |_: &ServerSide| args.clone()
    };

    // Join tokens.
    step("token generate", &fixed(&["token", "generate"]));
    step(
        "token generate -spiffeID -ttl -output json",
        &fixed(&["token", "generate", "-spiffeID", "spiffe://example.org/host", "-ttl", "60", "-output", "json"]),
    );
    step("token generate -spiffeID bad", &fixed(&["token", "generate", "-spiffeID", "bad"]));

    // Entries: nothing yet, then creation, its refusals and AlreadyExists.
    step("entry show (the token's entry only)", &fixed(&["entry", "show"]));
    step("entry count (the token's entry only)", &fixed(&["entry", "count"]));
    let w1 = |extra: &[&str]| {
        let extra = owned(extra);
        move |s: &ServerSide| {
            let mut args = owned(&[
                "entry",
                "create",
                "-parentID",
                &s.agent_id,
                "-spiffeID",
                "spiffe://example.org/w1",
                "-selector",
                "unix:uid:61000",
                "-dns",
                "w1.example.org",
                "-x509SVIDTTL",
                "300",
            ]);
            args.extend(extra.iter().cloned());
            args
        }
    };
    step("entry create", &w1(&[]));
    step("entry create (AlreadyExists)", &w1(&[]));
    step("entry create -output json (AlreadyExists)", &w1(&["-output", "json"]));
    let with_parent = |rest: &[&str]| {
        let rest = owned(rest);
        move |s: &ServerSide| {
            let mut args: Vec<String> = vec!["entry".into(), "create".into(), "-parentID".into(), s.agent_id.clone()];
            args.extend(rest.iter().cloned());
            args
        }
    };
    step(
        "entry create (other trust domain: InvalidArgument)",
        &with_parent(&["-spiffeID", "spiffe://other.org/w", "-selector", "unix:uid:61009"]),
    );
    step(
        "entry create -output json (other trust domain)",
        &with_parent(&["-spiffeID", "spiffe://other.org/w", "-selector", "unix:uid:61009", "-output", "json"]),
    );
    step(
        "entry create (reserved path: InvalidArgument)",
        &with_parent(&["-spiffeID", "spiffe://example.org/spire/x", "-selector", "unix:uid:61009"]),
    );
    step(
        "entry create (bad DNS name: InvalidArgument)",
        &with_parent(&["-spiffeID", "spiffe://example.org/d", "-selector", "unix:uid:61009", "-dns", "a..b"]),
    );
    step(
        "entry create (store SVID, mixed selector types: InvalidArgument)",
        &with_parent(&[
            "-spiffeID",
            "spiffe://example.org/st",
            "-selector",
            "unix:uid:61009",
            "-selector",
            "k8s:ns:x",
            "-storeSVID",
        ]),
    );
    step(
        "entry create -entryID 'a b' (datastore validation)",
        &with_parent(&["-entryID", "a b", "-spiffeID", "spiffe://example.org/e", "-selector", "unix:uid:61009"]),
    );
    step(
        "entry create -spiffeID bad (CLI refuses)",
        &with_parent(&["-spiffeID", "bad", "-selector", "unix:uid:61009"]),
    );
    step("entry create (no selector)", &with_parent(&["-spiffeID", "spiffe://example.org/x"]));
    step(
        "entry create -federatesWith (no bundle yet: Internal)",
        &with_parent(&[
            "-spiffeID",
            "spiffe://example.org/f",
            "-selector",
            "unix:uid:61009",
            "-federatesWith",
            "spiffe://other.org",
        ]),
    );

    // A federated bundle, then bundles.
    step("bundle set", &fixed(&["bundle", "set", "-id", "spiffe://other.org", "-path", &pem]));
    step("bundle count", &fixed(&["bundle", "count"]));
    step("bundle show", &fixed(&["bundle", "show"]));
    step("bundle show -format spiffe", &fixed(&["bundle", "show", "-format", "spiffe"]));
    step("bundle show -output json", &fixed(&["bundle", "show", "-output", "json"]));
    step("bundle list", &fixed(&["bundle", "list"]));
    step("bundle list -format spiffe", &fixed(&["bundle", "list", "-format", "spiffe"]));
    step("bundle list -output json", &fixed(&["bundle", "list", "-output", "json"]));
    step("bundle list -id", &fixed(&["bundle", "list", "-id", "spiffe://other.org"]));
    step(
        "bundle list -id -format spiffe",
        &fixed(&["bundle", "list", "-id", "spiffe://other.org", "-format", "spiffe"]),
    );
    step("bundle list -id -output json", &fixed(&["bundle", "list", "-id", "spiffe://other.org", "-output", "json"]));
    step("bundle list -id (NotFound)", &fixed(&["bundle", "list", "-id", "spiffe://nope.org"]));

    // More entries, then every filter.
    step(
        "entry create (every flag) -output json",
        &with_parent(&[
            "-spiffeID",
            "spiffe://example.org/w2",
            "-selector",
            "unix:uid:61001",
            "-selector",
            "unix:gid:5",
            "-federatesWith",
            "spiffe://other.org",
            "-admin",
            "-downstream",
            "-storeSVID",
            "-hint",
            "h1",
            "-entryExpiry",
            "1999999999",
            "-jwtSVIDTTL",
            "77",
            "-dns",
            "*.w2.example.org",
            "-output",
            "json",
        ]),
    );
    step(
        "entry create -entryID (custom ID)",
        &with_parent(&[
            "-entryID",
            "custom-entry-1",
            "-spiffeID",
            "spiffe://example.org/w3",
            "-selector",
            "unix:uid:61002",
        ]),
    );
    step("entry show", &fixed(&["entry", "show"]));
    step("entry show -output json", &fixed(&["entry", "show", "-output", "json"]));
    step("entry show -selector", &fixed(&["entry", "show", "-selector", "unix:uid:61001"]));
    step(
        "entry show -selector -matchSelectorsOn exact",
        &fixed(&["entry", "show", "-selector", "unix:uid:61001", "-matchSelectorsOn", "exact"]),
    );
    step(
        "entry show -selector -matchSelectorsOn any",
        &fixed(&[
            "entry",
            "show",
            "-selector",
            "unix:uid:61001",
            "-selector",
            "unix:uid:61000",
            "-matchSelectorsOn",
            "any",
        ]),
    );
    step("entry show -spiffeID", &fixed(&["entry", "show", "-spiffeID", "spiffe://example.org/w1"]));
    step("entry show -parentID", &|s: &ServerSide| {
        vec!["entry".into(), "show".into(), "-parentID".into(), s.agent_id.clone()]
    });
    step("entry show -downstream", &fixed(&["entry", "show", "-downstream"]));
    step("entry show -federatesWith", &fixed(&["entry", "show", "-federatesWith", "spiffe://other.org"]));
    step("entry show -hint", &fixed(&["entry", "show", "-hint", "h1"]));
    step("entry show -entryID", &fixed(&["entry", "show", "-entryID", "custom-entry-1"]));
    step(
        "entry show -entryID -output json",
        &fixed(&["entry", "show", "-entryID", "custom-entry-1", "-output", "json"]),
    );
    step("entry show -entryID (NotFound)", &fixed(&["entry", "show", "-entryID", "nonexistent"]));
    step("entry show -selector (malformed)", &fixed(&["entry", "show", "-selector", "unix"]));
    step("entry count", &fixed(&["entry", "count"]));
    step("entry count -output json", &fixed(&["entry", "count", "-output", "json"]));
    step(
        "entry count -selector -matchSelectorsOn exact",
        &fixed(&["entry", "count", "-selector", "unix:uid:61001", "-matchSelectorsOn", "exact"]),
    );
    step("entry count -downstream", &fixed(&["entry", "count", "-downstream"]));

    // Updates.
    let update = |extra: &[&str]| {
        let extra = owned(extra);
        move |s: &ServerSide| {
            let id = s.entry_id("spiffe://example.org/w1");
            let mut args = owned(&[
                "entry",
                "update",
                "-entryID",
                &id,
                "-parentID",
                &s.agent_id,
                "-spiffeID",
                "spiffe://example.org/w1",
                "-selector",
                "unix:uid:61000",
                "-x509SVIDTTL",
                "600",
                "-dns",
                "b.example.org",
            ]);
            args.extend(extra.iter().cloned());
            args
        }
    };
    step("entry update", &update(&[]));
    step("entry update -output json", &update(&["-output", "json"]));
    step("entry update -federatesWith (no bundle: Internal)", &update(&["-federatesWith", "spiffe://nope.org"]));
    step("entry update (bad DNS name)", &update(&["-dns", "x*"]));
    step("entry update -entryID (NotFound)", &|s: &ServerSide| {
        owned(&[
            "entry",
            "update",
            "-entryID",
            "nonexistent",
            "-parentID",
            &s.agent_id,
            "-spiffeID",
            "spiffe://example.org/w1",
            "-selector",
            "unix:uid:61000",
        ])
    });
    step("entry update (no entry ID)", &fixed(&["entry", "update", "-spiffeID", "spiffe://example.org/w1"]));

    // Deletes.
    step("entry delete", &fixed(&["entry", "delete", "-entryID", "custom-entry-1"]));
    step("entry delete (NotFound)", &fixed(&["entry", "delete", "-entryID", "nonexistent"]));
    step(
        "entry delete -output json (NotFound)",
        &fixed(&["entry", "delete", "-entryID", "nonexistent", "-output", "json"]),
    );
    step("entry count (after delete)", &fixed(&["entry", "count"]));

    // Agents.
    step("agent list", &fixed(&["agent", "list"]));
    step("agent list -output json", &fixed(&["agent", "list", "-output", "json"]));
    step("agent list -attestationType", &fixed(&["agent", "list", "-attestationType", "join_token"]));
    step("agent list -selector (none)", &fixed(&["agent", "list", "-selector", "foo:bar"]));
    step("agent count", &fixed(&["agent", "count"]));
    step("agent show", &|s: &ServerSide| vec!["agent".into(), "show".into(), "-spiffeID".into(), s.agent_id.clone()]);
    step("agent show -output json", &|s: &ServerSide| {
        vec!["agent".into(), "show".into(), "-spiffeID".into(), s.agent_id.clone(), "-output".into(), "json".into()]
    });
    step(
        "agent show (NotFound)",
        &fixed(&["agent", "show", "-spiffeID", "spiffe://example.org/spire/agent/join_token/nope"]),
    );
    step(
        "agent show (not an agent ID: InvalidArgument)",
        &fixed(&["agent", "show", "-spiffeID", "spiffe://example.org/host"]),
    );

    // Minting.
    step(
        "x509 mint -ttl",
        &fixed(&["x509", "mint", "-spiffeID", "spiffe://example.org/m", "-dns", "m.example.org", "-ttl", "1h"]),
    );
    step("x509 mint -output json", &fixed(&["x509", "mint", "-spiffeID", "spiffe://example.org/m", "-output", "json"]));
    step("x509 mint -write", &|s: &ServerSide| {
        let dir = s.dir.join("minted");
        std::fs::create_dir_all(&dir).expect("mkdir");
        owned(&["x509", "mint", "-spiffeID", "spiffe://example.org/m", "-write", dir.to_str().expect("UTF-8")])
    });
    step("x509 mint (other trust domain)", &fixed(&["x509", "mint", "-spiffeID", "spiffe://other.org/m"]));
    step("x509 mint (bad DNS name)", &fixed(&["x509", "mint", "-spiffeID", "spiffe://example.org/m", "-dns", "a..b"]));
    step("x509 mint (no SPIFFE ID)", &fixed(&["x509", "mint"]));
    step(
        "jwt mint",
        &fixed(&["jwt", "mint", "-spiffeID", "spiffe://example.org/m", "-audience", "a", "-audience", "b"]),
    );
    step(
        "jwt mint -ttl -output json",
        &fixed(&[
            "jwt",
            "mint",
            "-spiffeID",
            "spiffe://example.org/m",
            "-audience",
            "a",
            "-ttl",
            "5m",
            "-output",
            "json",
        ]),
    );
    step("jwt mint (no audience)", &fixed(&["jwt", "mint", "-spiffeID", "spiffe://example.org/m"]));
    step(
        "jwt mint (reserved path)",
        &fixed(&["jwt", "mint", "-spiffeID", "spiffe://example.org/spire/x", "-audience", "a"]),
    );
}

// ---------------------------------------------------------------------------------------------
// The spire-agent scenario

/// The SPIFFE ID the agent scenario registers for this process.
pub(crate) const WORKLOAD: &str = "spiffe://example.org/cli/workload";

/// The `spire-server` arguments that register [`WORKLOAD`] under `agent_id`: this process's uid,
/// a hint, a DNS name and a federated trust domain (whose bundle must be set first).
pub(crate) fn workload_entry_args(agent_id: &str) -> Vec<String> {
    owned(&[
        "entry",
        "create",
        "-parentID",
        agent_id,
        "-spiffeID",
        WORKLOAD,
        "-selector",
        &format!("unix:uid:{}", uid()),
        "-hint",
        "front",
        "-dns",
        "workload.example.org",
        "-federatesWith",
        "spiffe://other.org",
    ])
}

/// Before [`WORKLOAD`] is registered: what the agent answers a caller it has no identity for.
pub(crate) fn agent_scenario_unregistered(r: &mut Report, a: &Cli, b: &Cli) {
    for (name, args) in [
        ("api fetch x509 (no identity)", &["api", "fetch", "x509"][..]),
        ("api fetch jwt (no identity)", &["api", "fetch", "jwt", "-audience", "a"][..]),
    ] {
        r.compare(name, &a.run(args), &b.run(args), no_fix);
    }
}

/// The `spire-agent api` commands against agents serving [`WORKLOAD`] to this process, compared
/// (the JWT bundles of `fetch jwt` sorted and the claims of `validate jwt` compacted on both sides,
/// as they vary within SPIRE itself); `dirs` are each side's directory for written files.
pub(crate) fn agent_scenario(r: &mut Report, a: &Cli, b: &Cli, dirs: [&Path; 2]) {
    let same = |r: &mut Report, name: &str, args: &[&str]| {
        let (ra, rb) = (a.run(args), b.run(args));
        r.compare(name, &ra, &rb, sort_jwt_bundles);
    };
    same(r, "api fetch x509", &["api", "fetch", "x509"]);
    same(r, "api fetch", &["api", "fetch"]);
    same(r, "api fetch x509 -output json", &["api", "fetch", "x509", "-output", "json"]);
    same(r, "api fetch x509 -silent", &["api", "fetch", "x509", "-silent"]);
    let write = |cli: &Cli, dir: &Path| {
        std::fs::create_dir_all(dir).expect("mkdir");
        cli.run(&["api", "fetch", "x509", "-write", dir.to_str().expect("UTF-8")])
    };
    let (wa, wb) = (write(a, &dirs[0].join("svids")), write(b, &dirs[1].join("svids")));
    r.compare("api fetch x509 -write", &wa, &wb, no_fix);
    let files = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("svids"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    if files(dirs[0]) != files(dirs[1]) {
        r.differ(format!("api fetch x509 -write: files {:?} vs {:?}", files(dirs[0]), files(dirs[1])));
    }

    same(r, "api fetch jwt", &["api", "fetch", "jwt", "-audience", "a1,a2"]);
    same(r, "api fetch jwt -output json", &["api", "fetch", "jwt", "-audience", "a1", "-output", "json"]);
    same(r, "api fetch jwt -spiffeID", &["api", "fetch", "jwt", "-audience", "a1", "-spiffeID", WORKLOAD]);
    same(
        r,
        "api fetch jwt -spiffeID (not ours)",
        &["api", "fetch", "jwt", "-audience", "a1", "-spiffeID", "spiffe://example.org/other"],
    );
    same(r, "api fetch jwt (no audience)", &["api", "fetch", "jwt"]);

    // Validation, each side with a token its own agent issued, then with the other side's token
    // (signed by a key its agent does not know).
    let token = |cli: &Cli| {
        let out = cli.run(&["api", "fetch", "jwt", "-audience", "aud1", "-output", "json"]);
        let v: Value = serde_json::from_str(out.ok()).expect("fetch jwt JSON");
        v[0]["svids"][0]["svid"].as_str().expect("a token").to_owned()
    };
    let (ta, tb) = (token(a), token(b));
    let validate = |r: &mut Report, name: &str, args: &dyn Fn(&str) -> Vec<String>, ta: &str, tb: &str| {
        let run = |cli: &Cli, t: &str| cli.run(&args(t).iter().map(String::as_str).collect::<Vec<_>>());
        let (ra, rb) = (run(a, ta), run(b, tb));
        r.compare(name, &ra, &rb, compact_claims);
    };
    let args = |extra: &'static [&'static str]| {
        move |t: &str| {
            let mut v: Vec<String> = vec!["api".into(), "validate".into(), "jwt".into(), "-svid".into(), t.into()];
            v.extend(extra.iter().map(|s| (*s).to_owned()));
            v
        }
    };
    validate(r, "api validate jwt", &args(&["-audience", "aud1"]), &ta, &tb);
    validate(r, "api validate jwt -output json", &args(&["-audience", "aud1", "-output", "json"]), &ta, &tb);
    validate(r, "api validate jwt (wrong audience)", &args(&["-audience", "other"]), &ta, &tb);
    validate(r, "api validate jwt (malformed)", &args(&["-audience", "aud1"]), "garbage", "garbage");
    validate(r, "api validate jwt (unknown key)", &args(&["-audience", "aud1"]), &tb, &ta);
    validate(r, "api validate jwt (no audience)", &args(&[]), &ta, &tb);

    let (wa, wb) = (a.watch_first_block(Duration::from_secs(20)), b.watch_first_block(Duration::from_secs(20)));
    let as_run = |stdout: String| Run { code: 0, stdout, stderr: String::new() };
    if wa.is_empty() || wb.is_empty() {
        r.differ(format!("api watch printed no block: {wa:?} vs {wb:?}"));
    }
    r.compare("api watch (first block)", &as_run(wa), &as_run(wb), no_fix);
}

/// Command-line arguments as owned strings.
fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        let text = "Entry ID         : c32b23a1-090a-49e1-a105-9086da37c1a5\n\
                    Expiration time   : 2026-12-03 10:42:35 +0000 UTC\n\
                    Serial number     : 245311627499147475893053203053593836543\n\
                    {\"expires_at\":\"1796291029\",\"x\":\"9gWmAfpbB4cJjuZAlEYXdj-Ab7o0Ad3fdZBWutnCXYU\"}\n\
                    Received 1 svid after 2.40591ms\n\
                    -----BEGIN CERTIFICATE-----\nMIIC\nAAA=\n-----END CERTIFICATE-----\n\
                    spiffe://example.org/spire/agent/join_token/efb2293d-5c4a-44f8-834a-0968e9a27188\n";
        assert_eq!(
            normalize(text, &[]),
            "Entry ID         : <UUID>\nExpiration time   : <TIME>\nSerial number     : <B64>\n\
             {\"expires_at\":\"<EPOCH>\",\"x\":\"<B64>\"}\nReceived 1 svid after <DURATION>\n\
             -----BEGIN CERTIFICATE-----\n<PEM>\n-----END CERTIFICATE-----\n\
             spiffe://example.org/spire/agent/join_token/<UUID>\n"
        );
        assert_eq!(
            compact_claims("Claims    : {\"a\":\"x, \\\"y\", \"exp\":<EPOCH>}"),
            "Claims    : {\"a\":\"x, \\\"y\",\"exp\":<EPOCH>}"
        );
    }
}
