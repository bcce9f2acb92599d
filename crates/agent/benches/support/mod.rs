//! What the agent benchmarks share: the real `spire-server` process (through the testkit), the server
//! CLI, `spire-agent run` as a process, Workload API calls, and the statistics.
//!
//! The server binary is not built by `cargo bench -p spire-agent`; build it first, into the same target
//! directory: `cargo build --release -p spire-server --bin spire-server`.

#![allow(dead_code)] // each bench uses a part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::{X509svidRequest, X509svidResponse};
use spire_testkit::process::TestServer;
use tonic::transport::Channel;

/// The release `spire-agent` binary cargo built for this bench.
pub(crate) const AGENT: &str = env!("CARGO_BIN_EXE_spire-agent");

/// `spire-server`, expected next to `spire-agent` in the target directory.
pub(crate) fn server_binary() -> PathBuf {
    let path = Path::new(AGENT).with_file_name("spire-server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p spire-server --bin spire-server` first (same CARGO_TARGET_DIR)",
        path.display()
    );
    path
}

/// A `spire-server` with the testkit's config (SQLite, disk keys, join tokens) in a temp dir.
pub(crate) async fn start_server() -> TestServer {
    TestServer::start(server_binary(), "").await
}

/// Runs a `spire-server` admin command against `server`'s private socket; its stdout.
pub(crate) fn server_cli(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new(server_binary()).args(args).arg("-socketPath").arg(&server.socket).output().unwrap();
    assert!(out.status.success(), "spire-server {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh join token; the agent that uses it gets [`agent_id`]`(token)`.
pub(crate) fn join_token(server: &TestServer) -> String {
    let out = server_cli(server, &["token", "generate"]);
    out.lines().next().unwrap().trim_start_matches("Token: ").trim().to_owned()
}

/// The SPIFFE ID of the agent attested with `token`.
pub(crate) fn agent_id(token: &str) -> String {
    format!("spiffe://example.org/spire/agent/join_token/{token}")
}

/// This process's effective uid.
pub(crate) fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Creates `n` entries under `parent`, each with the single selector `unix:uid:<uid>` (so one caller
/// gets all of them), through `entry create -data` (one BatchCreateEntry).
pub(crate) fn create_entries(server: &TestServer, dir: &Path, parent: &str, prefix: &str, n: usize) {
    let entries: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "selectors": [{"type": "unix", "value": format!("uid:{}", uid())}],
                "spiffe_id": format!("spiffe://example.org/{prefix}/{i}"),
                "parent_id": parent,
            })
        })
        .collect();
    let file = dir.join(format!("{prefix}-entries.json"));
    std::fs::write(&file, serde_json::to_vec(&serde_json::json!({ "entries": entries })).unwrap()).unwrap();
    server_cli(server, &["entry", "create", "-data", file.to_str().unwrap()]);
}

/// `spire-agent run` as a process, with its own dir, config and log.
pub(crate) struct AgentProcess {
    child: Child,
    /// Config, data and log.
    pub(crate) dir: PathBuf,
    /// The Workload API socket.
    pub(crate) socket: PathBuf,
}

impl AgentProcess {
    /// Starts an agent (INFO logs, SPIRE's default 5 s sync interval, disk keys, the `unix` workload
    /// attestor with `discover_workload_path` as given) and waits for its Workload API socket.
    pub(crate) async fn start(dir: &Path, server_port: u16, token: &str, discover_workload_path: bool) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("agent.sock");
        let config = format!(
            r#"agent {{
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{socket}"
    data_dir = "{data}"
    log_level = "INFO"
    insecure_bootstrap = true
}}
plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            directory = "{data}"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{
            discover_workload_path = {discover_workload_path}
        }}
    }}
}}
"#,
            socket = socket.display(),
            data = dir.join("data").display(),
        );
        std::fs::write(dir.join("agent.conf"), config).unwrap();
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
        let child = Command::new(AGENT)
            .args(["run", "-config"])
            .arg(dir.join("agent.conf"))
            .args(["-joinToken", token])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut agent = Self { child, dir: dir.to_path_buf(), socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::UnixStream::connect(&agent.socket).await.is_ok() {
                return agent;
            }
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("spire-agent exited with {status}: {}", agent.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("spire-agent did not open its socket: {}", agent.log());
    }

    /// The agent's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...), in kB.
    pub(crate) fn status_kb(&self, field: &str) -> u64 {
        proc_status_kb(self.pid(), field)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` line of `/proc/<pid>/status`, in kB.
pub(crate) fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A gRPC channel over a Unix socket (one HTTP/2 connection).
pub(crate) async fn channel(socket: &Path) -> Channel {
    spire_testkit::process::uds_channel(socket).await
}

/// The `workload.spiffe.io: true` header every Workload API call needs.
pub(crate) fn with_header<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("workload.spiffe.io", tonic::metadata::MetadataValue::from_static("true"));
    req
}

/// FetchX509SVID's first message; the stream is then dropped.
pub(crate) async fn fetch_x509(channel: &Channel) -> Result<X509svidResponse, tonic::Status> {
    let mut client = SpiffeWorkloadApiClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut stream = client.fetch_x509svid(with_header(X509svidRequest {})).await?.into_inner();
    stream.message().await?.ok_or_else(|| tonic::Status::unknown("the stream ended without a message"))
}

/// The `q`-quantile (0.5 = median) of `samples`, nearest rank.
pub(crate) fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    let rank = ((s.len() as f64 * q).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Microseconds, for printing.
pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds, for printing.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs each of `cases` (name, attestors) against `pid` in `rounds` turns of `block` calls, so that
/// the machine's slow moments spread over every case; the samples per case, in order. Each case
/// runs once first (warm-up, and a failure shows before the clock starts).
pub(crate) async fn attest_in_turns(
    cases: &[(&str, spire_agent::workload_attestor::WorkloadAttestors)],
    pid: i32,
    rounds: usize,
    block: usize,
) -> Vec<Vec<Duration>> {
    for (name, attestors) in cases {
        attestors.attest_pid(pid).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, attestors)) in cases.iter().enumerate() {
            for _ in 0..block {
                let start = Instant::now();
                attestors.attest_pid(pid).await.expect("attest");
                samples[i].push(start.elapsed());
            }
        }
    }
    samples
}

/// Prints each case's p50 and p99 and its p50 as a multiple of the first case's.
pub(crate) fn print_cases(names: &[&str], samples: &[Vec<Duration>]) {
    let base = quantile(&samples[0], 0.5);
    println!("{:<28} {:>10} {:>10} {:>8}", "case", "p50 µs", "p99 µs", "p50 ×");
    for (name, case) in names.iter().zip(samples) {
        let p50 = quantile(case, 0.5);
        let p99 = quantile(case, 0.99);
        println!("{name:<28} {:>10.1} {:>10.1} {:>8.2}", us(p50), us(p99), p50.as_secs_f64() / base.as_secs_f64());
    }
}
