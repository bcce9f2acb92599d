//! Whole-process `spire-agent api fetch x509 -silent`: the wall time of running the release binary
//! (exec, runtime start, connect, FetchX509SVID, parse and verify the SVID, exit), beside running
//! `/bin/true` (the cost of spawning any process) in the same run.
//!
//! A real `spire-server` and two real `spire-agent run` processes, each with one entry for this uid:
//! one with the `unix` attestor's default config (`discover_workload_path = false`), one with
//! `discover_workload_path = true`, which makes the agent add `path` and `sha256` selectors for the
//! caller: it hashes the caller's executable (here the `spire-agent` binary itself) on every call.
//! A second reference runs the same command against a socket nobody listens on: the binary's own
//! start-up (exec, dynamic loading, tokio runtime, flag parsing) and exit, without a Workload API call.
//!
//! Run: `cargo build --release -p spire-server --bin spire-server` once, then
//! `cargo bench -p spire-agent --bench api_fetch_process`.

mod support;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{AGENT, AgentProcess, ms, quantile};

const RUNS: usize = 50;

/// Runs `program args` to completion, stdout and stderr discarded; its wall time (and it must succeed).
fn run(program: &str, args: &[&str]) -> Duration {
    run_expecting(program, args, true)
}

fn run_expecting(program: &str, args: &[&str], success: bool) -> Duration {
    let t = Instant::now();
    let status = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    let elapsed = t.elapsed();
    if status.success() != success {
        let out = Command::new(program).args(args).output().unwrap();
        panic!("{program} {args:?}: {status}: {}", String::from_utf8_lossy(&out.stderr));
    }
    elapsed
}

fn fetch_args(socket: &Path) -> Vec<String> {
    ["api", "fetch", "x509", "-socketPath", socket.to_str().unwrap(), "-silent"].map(String::from).to_vec()
}

/// SHA-256 of a file, read in 64 KiB chunks (what the attestor does for `sha256:` selectors).
fn sha256_file(path: &str) -> Duration {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).unwrap();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    std::hint::black_box(ctx.finish());
    t.elapsed()
}

fn line(name: &str, samples: &[Duration], baseline: &[Duration]) {
    let (p50, p90) = (quantile(samples, 0.5), quantile(samples, 0.9));
    let b = quantile(baseline, 0.5);
    println!(
        "  {name:<46} median {:>7.2} ms   p90 {:>7.2} ms   {:.1}x /bin/true   (+{:.2} ms)",
        ms(p50),
        ms(p90),
        p50.as_secs_f64() / b.as_secs_f64(),
        ms(p50.saturating_sub(b))
    );
}

#[tokio::main]
async fn main() {
    let server = support::start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for (name, discover) in [("default", false), ("discover", true)] {
        let token = support::join_token(&server);
        support::create_entries(&server, dir.path(), &support::agent_id(&token), name, 1);
        agents.push(AgentProcess::start(&dir.path().join(name), server.port, &token, discover).await);
        // The server allows one node attestation per second per IP, loopback included.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let default_args = fetch_args(&agents[0].socket);
    let discover_args = fetch_args(&agents[1].socket);
    let default_args: Vec<&str> = default_args.iter().map(String::as_str).collect();
    let discover_args: Vec<&str> = discover_args.iter().map(String::as_str).collect();

    let size = std::fs::metadata(AGENT).unwrap().len();
    println!("`spire-agent api fetch x509 -silent`, whole process, {RUNS} runs per case, cases in turn");
    println!("  (binary: {AGENT}, {:.1} MB)", size as f64 / 1e6);
    // Warm-up: page cache, the agents' first attestations.
    for _ in 0..3 {
        run("/bin/true", &[]);
        run(AGENT, &default_args);
        run(AGENT, &discover_args);
    }
    let missing = dir.path().join("missing.sock");
    let missing_args = fetch_args(&missing);
    let missing_args: Vec<&str> = missing_args.iter().map(String::as_str).collect();
    let (mut base, mut default, mut discover, mut hash) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut no_call = Vec::new();
    for _ in 0..RUNS {
        base.push(run("/bin/true", &[]));
        no_call.push(run_expecting(AGENT, &missing_args, false));
        default.push(run(AGENT, &default_args));
        discover.push(run(AGENT, &discover_args));
        hash.push(sha256_file(AGENT));
    }
    line("/bin/true (baseline: process spawn)", &base, &base);
    line("api fetch x509, no agent at the socket (fails)", &no_call, &base);
    line("api fetch x509, discover_workload_path = false", &default, &base);
    line("api fetch x509, discover_workload_path = true", &discover, &base);
    println!(
        "  discover_workload_path costs +{:.2} ms per call; SHA-256 of the {:.1} MB binary alone: median {:.2} ms",
        ms(quantile(&discover, 0.5).saturating_sub(quantile(&default, 0.5))),
        size as f64 / 1e6,
        ms(quantile(&hash, 0.5))
    );
}
