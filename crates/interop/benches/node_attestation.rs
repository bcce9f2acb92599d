//! Node attestation time per attestor: our agent's AttestAgent call, from a fresh TLS connection to
//! the agent SVID in hand, against our release `spire-server` and, in the same run, SPIRE v1.13.3's
//! server started from the same config text. `join_token` (one round trip, a token lookup) is the
//! baseline each other attestor is set against, per server. Cases: join_token, x509pop (P-256 and
//! RSA 2048 leaves), sshpop (an Ed25519 host certificate made by `ssh-keygen`) and tpm_devid (an
//! ECC DevID in a software TPM, `swtpm`, provisioned with `tpm2-tools`; skipped without them).
//!
//! Each attempt is what an agent does at its first start: a new connection (TLS without a client
//! certificate), the payload, the challenge rounds, a CSR for a new P-256 key signed into the agent
//! SVID. Cases are measured in turns (one attestation of each case, then again) so that the
//! machine's noise hits them all. x509pop re-attests the same node after its first attestation
//! (its agent ID is the certificate's fingerprint), as a restarting agent does; join tokens are
//! fresh each time (a token is single-use), made outside the timed part.
//!
//! Needs our release server (`cargo build --release -p spire-server`), `openssl` and `ssh-keygen`; SPIRE's server if installed (`scripts/install-peers.sh spire`).
//! Run: `cargo bench -p spire-interop --bench node_attestation`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use spire_agent::node::attest;
use spire_agent::node_attestor::tpm_devid::session::Passwords;
use spire_agent::node_attestor::{
    JoinTokenAttestor, NodeAttestor, SshPopAttestor, SshPopConfig, TpmDevIdAttestor, TpmDevIdConfig, X509PopAttestor,
    X509PopConfig,
};
use spire_agent::server_client::ServerClient;
use spire_identity::{BundleSet, KeyType, PrivateKey, TrustDomain};
use spire_testkit::agent::generate_token;
use spire_testkit::openssl;
use spire_testkit::peers;
use spire_testkit::process::TestServer;
use spire_testkit::swtpm::{DevIdKind, Swtpm};

/// Attestations per case and server.
const ROUNDS: usize = 60;
/// Attestations per case before measuring (connections, caches, the node's first record).
const WARMUP: usize = 3;

/// A server to attest to.
struct Implementation {
    name: &'static str,
    server: PathBuf,
}

/// Builds an attestor for one attempt against a server.
type MakeAttestor = Box<dyn Fn(&Implementation, &TestServer) -> Box<dyn NodeAttestor>>;

/// An attestor to measure: its agent half, built afresh for each attempt.
struct Case {
    name: &'static str,
    make: MakeAttestor,
}

/// A CA (`ca.pem`) and two leaves under it, `ec.pem` and `rsa.pem` (RSA 2048), with their keys; an
/// SSH host CA (`ssh-ca.pub`) and a host certificate (`host-cert.pub`) for `host`.
fn pki(dir: &Path) {
    openssl::ssh_keygen(dir, &["-q", "-t", "ed25519", "-N", "", "-f", "ssh-ca"]);
    openssl::ssh_keygen(dir, &["-q", "-t", "ed25519", "-N", "", "-f", "host"]);
    openssl::ssh_keygen(
        dir,
        &["-q", "-s", "ssh-ca", "-h", "-I", "bench-host", "-n", "bench-host", "-V", "-1h:+1d", "host.pub"],
    );
    openssl::ca(dir, "ca");
    openssl::leaf(dir, "ca", "ec", "ec", "1");
    openssl::leaf(dir, "ca", "rsa", "rsa", "1");
}

/// A software TPM with an EK certificate from a manufacturer CA and an ECC DevID certified by a
/// DevID CA, all in `dir`; `None` without swtpm.
fn tpm(dir: &Path) -> Option<(Swtpm, TpmDevIdConfig)> {
    let tpm = Swtpm::start()?;
    openssl::ca(dir, "manufacturer");
    openssl::ca(dir, "devid-ca");
    tpm.provision_ek(dir, "manufacturer");
    let devid = tpm.create_devid(dir, "devid", DevIdKind::Ecc, "");
    openssl::issue_for_key(dir, "devid-ca", &devid.public_pem, "bench-node", "1", &dir.join("devid.pem"));
    let config = TpmDevIdConfig {
        devid_cert_path: dir.join("devid.pem"),
        devid_priv_path: devid.private_blob,
        devid_pub_path: devid.public_blob,
        passwords: Passwords {
            endorsement_hierarchy: String::new(),
            owner_hierarchy: String::new(),
            devid_key: String::new(),
        },
        tpm_device_path: Some(tpm.socket.clone()),
    };
    Some((tpm, config))
}

/// The server config both servers run: SQLite, memory keys, the four attestors (tpm_devid with
/// `tpm`), rate limits off (the attestation limit is one per second per address).
fn server_config(pki: &Path, tpm: bool) -> impl Fn(&Path, u16) -> String {
    let ca = pki.join("ca.pem");
    let ssh_ca = std::fs::read_to_string(pki.join("ssh-ca.pub")).expect("ssh CA");
    let tpm_devid = if tpm {
        format!(
            "    NodeAttestor \"tpm_devid\" {{\n        plugin_data {{\n            devid_ca_path = \"{}\"\n            endorsement_ca_path = \"{}\"\n        }}\n    }}\n",
            pki.join("devid-ca.pem").display(),
            pki.join("manufacturer.pem").display()
        )
    } else {
        String::new()
    };
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
    NodeAttestor "sshpop" {{
        plugin_data {{
            cert_authorities = ["{ssh_ca}"]
        }}
    }}
{tpm_devid}}}
"#,
            dir = dir.display(),
            ca = ca.display(),
            ssh_ca = ssh_ca.trim(),
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

fn cases(pki: &Path, tpm: Option<TpmDevIdConfig>) -> Vec<Case> {
    let (ec, rsa, ssh) = (pki.to_owned(), pki.to_owned(), pki.to_owned());
    let mut cases = vec![
        Case {
            name: "join_token",
            make: Box::new(|imp, server| Box::new(JoinTokenAttestor::new(Some(generate_token(&imp.server, server))))),
        },
        Case { name: "x509pop (P-256 leaf)", make: Box::new(move |_, _| x509pop(&ec, "ec")) },
        Case { name: "x509pop (RSA 2048 leaf)", make: Box::new(move |_, _| x509pop(&rsa, "rsa")) },
        Case {
            name: "sshpop (Ed25519 host certificate)",
            make: Box::new(move |_, _| {
                Box::new(SshPopAttestor::new(SshPopConfig {
                    host_key_path: ssh.join("host"),
                    host_cert_path: ssh.join("host-cert.pub"),
                }))
            }),
        },
    ];
    if let Some(config) = tpm {
        cases.push(Case {
            name: "tpm_devid (ECC DevID, swtpm)",
            make: Box::new(move |_, _| Box::new(TpmDevIdAttestor::from_config(config.clone()).expect("tpm_devid"))),
        });
    }
    cases
}

/// One attestation from a new connection; its wall time.
async fn attest_once(server: &TestServer, attestor: &dyn NodeAttestor) -> Duration {
    let td = TrustDomain::parse("example.org").unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let started = Instant::now();
    let client =
        ServerClient::new(format!("127.0.0.1:{}", server.port), &td, Arc::new(RwLock::new(BundleSet::new())), true);
    attest(&client, attestor, &key.into()).await.unwrap_or_else(|e| panic!("{}: {e}", attestor.name()));
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
    let tpm = tpm(tmp.path());
    if tpm.is_none() {
        println!("swtpm is not installed: no tpm_devid case");
    }
    let cases = cases(tmp.path(), tpm.as_ref().map(|(_, config)| config.clone()));
    println!("load average at start: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("\n| server | attestor | p50 | p99 | p50 ÷ join_token |\n|---|---|---|---|---|");
    for imp in &servers {
        let server = TestServer::start_with_config(&imp.server, server_config(tmp.path(), tpm.is_some())).await;
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
