//! Node attestation time per attestor: our agent's AttestAgent call, from a fresh TLS connection to
//! the agent SVID in hand, against our release `spire-server` and, in the same run, SPIRE v1.13.3's
//! server started from the same config text. `join_token` (one round trip, a token lookup) is the
//! baseline each other attestor is set against, per server.
//!
//! Each attempt is what an agent does at its first start: a new connection (TLS without a client
//! certificate), the payload, the challenge rounds, a CSR for a new P-256 key signed into the agent
//! SVID. Cases are measured in turns (one attestation of each case, then again) so that the
//! machine's noise hits them all. x509pop re-attests the same node after its first attestation
//! (its agent ID is the certificate's fingerprint), as a restarting agent does; join tokens are
//! fresh each time (a token is single-use), made outside the timed part.
//!
//! Needs our release server (`cargo build --release -p spire-server`) and `openssl`; SPIRE's server if installed (`scripts/install-peers.sh spire`).
//! Run: `cargo bench -p spire-interop --bench node_attestation`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use spire_agent::node::attest;
use spire_agent::node_attestor::{JoinTokenAttestor, NodeAttestor, X509PopAttestor, X509PopConfig};
use spire_agent::server_client::ServerClient;
use spire_identity::{BundleSet, KeyType, PrivateKey, TrustDomain};
use spire_testkit::agent::generate_token;
use spire_testkit::peers;
use spire_testkit::process::TestServer;

/// Attestations per case and server.
const ROUNDS: usize = 60;
/// Attestations per case before measuring (connections, caches, the node's first record).
const WARMUP: usize = 3;

/// A server to attest to.
struct Implementation {
    name: &'static str,
    server: PathBuf,
}

/// An attestor to measure: its agent half, built afresh for each attempt.
struct Case {
    name: &'static str,
    make: Box<dyn Fn(&Implementation, &TestServer) -> Box<dyn NodeAttestor>>,
}

/// `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.pem`) and two leaves under it, `ec.pem` and `rsa.pem` (RSA 2048), with their keys.
fn pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=bench-ca",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    std::fs::write(dir.join("leaf.ext"), "keyUsage=critical,digitalSignature\n").unwrap();
    for (name, key) in
        [("ec", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..]), ("rsa", &["-newkey", "rsa:2048"][..])]
    {
        let mut args = vec!["req", "-nodes", "-keyout"];
        let (k, csr, pem, subj) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("/CN={name}"));
        args.extend([k.as_str(), "-out", csr.as_str(), "-subj", subj.as_str()]);
        args.extend(key);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                "leaf.ext",
            ],
        );
    }
}

/// The server config both servers run: SQLite, memory keys, join_token and x509pop, rate limits off
/// (the attestation limit is one per second per address).
fn server_config(pki: &Path) -> impl Fn(&Path, u16) -> String {
    let ca = pki.join("ca.pem");
    move |dir: &Path, port: u16| {
        format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{dir}/api.sock"
    trust_domain = "example.org"
    data_dir = "{dir}/data"
    log_level = "WARN"
    log_file = "{dir}/server.log"
    ca_key_type = "ec-p256"
    agent_ttl = "1h"
    ratelimit {{
        attestation = false
        signing = false
    }}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{dir}/data/datastore.sqlite3"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    NodeAttestor "x509pop" {{
        plugin_data {{
            ca_bundle_path = "{ca}"
        }}
    }}
}}
"#,
            dir = dir.display(),
            ca = ca.display()
        )
    }
}

fn x509pop(pki: &Path, name: &str) -> Box<dyn NodeAttestor> {
    Box::new(X509PopAttestor::new(X509PopConfig {
        private_key_path: pki.join(format!("{name}.key")),
        certificate_path: pki.join(format!("{name}.pem")),
        intermediates_path: None,
    }))
}

fn cases(pki: &Path) -> Vec<Case> {
    let (ec, rsa) = (pki.to_owned(), pki.to_owned());
    vec![
        Case {
            name: "join_token",
            make: Box::new(|imp, server| Box::new(JoinTokenAttestor::new(Some(generate_token(&imp.server, server))))),
        },
        Case { name: "x509pop (P-256 leaf)", make: Box::new(move |_, _| x509pop(&ec, "ec")) },
        Case { name: "x509pop (RSA 2048 leaf)", make: Box::new(move |_, _| x509pop(&rsa, "rsa")) },
    ]
}

/// One attestation from a new connection; its wall time.
async fn attest_once(server: &TestServer, attestor: &dyn NodeAttestor) -> Duration {
    let td = TrustDomain::parse("example.org").unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let started = Instant::now();
    let client =
        ServerClient::new(format!("127.0.0.1:{}", server.port), &td, Arc::new(RwLock::new(BundleSet::new())), true);
    attest(&client, attestor, &key).await.unwrap_or_else(|e| panic!("{}: {e}", attestor.name()));
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let ours = release.join("spire-server");
    assert!(ours.exists(), "{} is missing: run `cargo build --release -p spire-server` first", ours.display());
    let mut servers = vec![Implementation { name: "ours", server: ours }];
    match peers::find("upstream-spire-server") {
        Some(server) => servers.push(Implementation { name: "SPIRE v1.13.3", server }),
        None => println!("SPIRE's server is not installed: measuring ours only"),
    }
    let tmp = tempfile::tempdir().unwrap();
    pki(tmp.path());
    let cases = cases(tmp.path());
    println!("load average at start: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("\n| server | attestor | p50 | p99 | p50 ÷ join_token |\n|---|---|---|---|---|");
    for imp in &servers {
        let server = TestServer::start_with_config(&imp.server, server_config(tmp.path())).await;
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
        for round in 0..WARMUP + ROUNDS {
            for (i, case) in cases.iter().enumerate() {
                let attestor = (case.make)(imp, &server);
                let took = attest_once(&server, attestor.as_ref()).await;
                if round >= WARMUP {
                    times[i].push(took);
                }
            }
        }
        let mut baseline = None;
        for (case, mut t) in cases.iter().zip(times) {
            t.sort();
            let p50 = percentile(&t, 50);
            let base = *baseline.get_or_insert(p50);
            println!(
                "| {} | {} | {} | {} | ×{:.2} |",
                imp.name,
                case.name,
                ms(p50),
                ms(percentile(&t, 99)),
                p50.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
}
