//! What the independent-client tests share: a real `spire-server` and `spire-agent` of ours with
//! entries for this process's uid, and a way to run a peer client and read the JSON it prints.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spire_testkit::agent::{AgentOptions, TestAgent, generate_token, join_token_agent_id, server_cli};
use spire_testkit::peers;
use spire_testkit::process::TestServer;

/// One registration entry for this process's uid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload<'a> {
    pub(crate) spiffe_id: &'a str,
    pub(crate) hint: &'a str,
}

/// A server, an agent attested to it, and the entries the agent serves this process.
#[derive(Debug)]
pub(crate) struct Deployment {
    pub(crate) server: TestServer,
    pub(crate) agent: TestAgent,
    pub(crate) agent_id: String,
    server_bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Deployment {
    /// Starts our server, registers `workloads` under a join-token agent, starts that agent and
    /// waits until its Workload API serves every one of them to this process.
    pub(crate) async fn start(workloads: &[Workload<'_>]) -> Self {
        let server_bin = peers::workspace_binary("spire-server");
        let agent_bin = peers::workspace_binary("spire-agent");
        let server = TestServer::start(&server_bin, "").await;
        let token = generate_token(&server_bin, &server);
        let agent_id = join_token_agent_id(&token);
        let selector = format!("unix:uid:{}", uid());
        for w in workloads {
            let mut args = vec!["entry", "create", "-parentID", &agent_id, "-spiffeID", w.spiffe_id];
            args.extend(["-selector", &selector]);
            if !w.hint.is_empty() {
                args.extend(["-hint", w.hint]);
            }
            server_cli(&server_bin, &server, &args);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // Only uid selectors are used: hashing the caller's binary (python, java) would just cost time.
        let options = AgentOptions { discover_workload_path: false, ..AgentOptions::with_token(&token) };
        let agent = TestAgent::start(&agent_bin, dir.path(), server.port, &options).await;
        let deployment = Self { server, agent, agent_id, server_bin, _dir: dir };
        deployment.wait_for_svids(workloads).await;
        deployment
    }

    /// Polls the Workload API (through rust-spiffe, not the client under test) until it hands this
    /// process an SVID for each of `workloads`.
    pub(crate) async fn wait_for_svids(&self, workloads: &[Workload<'_>]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            match spiffe::WorkloadApiClient::connect_to(self.agent.endpoint()).await {
                Ok(client) => match client.fetch_all_x509_svids().await {
                    Ok(svids) => {
                        let ids: Vec<String> = svids.iter().map(|s| s.spiffe_id().to_string()).collect();
                        if workloads.iter().all(|w| ids.iter().any(|id| id == w.spiffe_id)) {
                            return;
                        }
                        last = format!("served {ids:?}");
                    }
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the agent did not serve {workloads:?} in time ({last}): {}", self.agent.log());
    }

    /// Runs `spire-server <args>` against this server and returns its stdout.
    pub(crate) fn server_cli(&self, args: &[&str]) -> String {
        server_cli(&self.server_bin, &self.server, args)
    }

    /// Runs a peer client and returns the JSON object it printed on stdout; panics with its stderr
    /// and both daemons' logs when it fails.
    pub(crate) fn run_json(&self, program: &Path, args: &[&str]) -> serde_json::Value {
        self.run_json_with_env(program, args, &[])
    }

    /// [`Deployment::run_json`] with `env` added to the client's environment.
    pub(crate) fn run_json_with_env(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
        let out = run_peer(program, args, env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{stderr}\n--- agent log ---\n{}\n--- server log ---\n{}",
            program.display(),
            out.status,
            tail(&self.agent.log()),
            tail(&self.server.log()),
        );
        let line =
            stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_else(|| {
                panic!("{} {args:?} printed no JSON object:\n{stdout}\n{stderr}", program.display())
            });
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

/// Runs `program args` with no stdin, capturing its output; kills it after two minutes so a hung
/// client fails the test instead of stalling it.
pub(crate) fn run_peer(program: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    // Drain both pipes on their own threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// This process's effective uid (the owner of `/proc/self`), which the agent's unix attestor sees.
pub(crate) fn uid() -> u32 {
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// The last lines of a log, enough to diagnose without flooding the failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The string at `key` of a JSON object, or a panic showing the whole object.
pub(crate) fn str_at<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}
