//! Real `spire-agent` processes for end-to-end tests, next to a [`TestServer`]: the agent config
//! the tests use, the admin CLI of the server, and a kill on drop so a failing test leaves nothing
//! running.
//!
//! `CARGO_BIN_EXE_spire-agent` exists only in the agent crate's tests, so every helper takes the
//! agent binary's path; `spire-server` is expected next to it (`cargo test --workspace` builds both).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::TestServer;

/// `spire-server`, built next to `agent` (the `spire-agent` binary) by `cargo test --workspace`.
pub fn server_binary(agent: &Path) -> PathBuf {
    let path = agent.with_file_name("spire-server");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` or build it first with \
         `cargo build -p spire-server`",
        path.display()
    );
    path
}

/// Runs `spire-server <args> -socketPath <server's socket>` and returns what it printed, whatever the
/// exit status.
pub fn try_server_cli(binary: &Path, server: &TestServer, args: &[&str]) -> Output {
    Command::new(binary).args(args).arg("-socketPath").arg(&server.socket).output().expect("run spire-server")
}

/// Runs `spire-server <args>` against `server` and returns its stdout; panics if it fails.
pub fn server_cli(binary: &Path, server: &TestServer, args: &[&str]) -> String {
    let out = try_server_cli(binary, server, args);
    assert!(out.status.success(), "spire-server {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A fresh join token from `spire-server token generate`.
pub fn generate_token(binary: &Path, server: &TestServer) -> String {
    let out = server_cli(binary, server, &["token", "generate"]);
    out.lines().next().expect("a token line").trim_start_matches("Token: ").trim().to_owned()
}

/// The SPIFFE ID an agent attested with `token` gets in `example.org`.
pub fn join_token_agent_id(token: &str) -> String {
    format!("spiffe://example.org/spire/agent/join_token/{token}")
}

/// How a [`TestAgent`] is configured.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `-joinToken`; `None` to resume from the data directory.
    pub join_token: Option<String>,
    /// `experimental.sync_interval`.
    pub sync_interval: String,
    /// The unix workload attestor's `discover_workload_path` (hashes the caller's binary: slow for
    /// big test binaries).
    pub discover_workload_path: bool,
    /// `insecure_bootstrap = true` (the default); turn it off to bootstrap from `extra_config`.
    pub insecure_bootstrap: bool,
    /// Lines added to the `agent` block (a `trust_bundle_*` source, for instance).
    pub extra_config: String,
    /// Environment variables set for the agent process.
    pub env: Vec<(String, String)>,
    /// Plugin blocks in place of the default `NodeAttestor "join_token"` and `WorkloadAttestor
    /// "unix"` (the KeyManager stays).
    pub attestors: Option<String>,
    /// A KeyManager plugin block in place of the default `KeyManager "disk"` (an external plugin's,
    /// say).
    pub key_manager: Option<String>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            join_token: None,
            sync_interval: "200ms".into(),
            discover_workload_path: true,
            insecure_bootstrap: true,
            extra_config: String::new(),
            env: Vec::new(),
            attestors: None,
            key_manager: None,
        }
    }
}

impl AgentOptions {
    /// Default options, attesting with `token`.
    pub fn with_token(token: &str) -> Self {
        Self { join_token: Some(token.to_owned()), ..Self::default() }
    }
}

/// A running `spire-agent run`, with its config, data, log and socket under one directory.
#[derive(Debug)]
pub struct TestAgent {
    child: Option<Child>,
    /// Holds `agent.conf`, `agent.log`, `data/` and `public/`.
    pub dir: PathBuf,
    /// The Workload API socket, `<dir>/public/api.sock`.
    pub socket: PathBuf,
}

impl TestAgent {
    /// The agent config the tests use: join token attestation against `127.0.0.1:<server_port>`,
    /// insecure bootstrap (unless turned off), disk keys and the unix workload attestor.
    pub fn config(dir: &Path, server_port: u16, socket: &Path, options: &AgentOptions) -> String {
        format!(
            r#"agent {{
    trust_domain = "example.org"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{socket}"
    data_dir = "{data}"
    log_level = "DEBUG"
    insecure_bootstrap = {insecure_bootstrap}
{extra_config}
    experimental {{
        sync_interval = "{sync_interval}"
    }}
}}
plugins {{
{key_manager}
{attestors}
}}
"#,
            socket = socket.display(),
            data = dir.join("data").display(),
            sync_interval = options.sync_interval,
            insecure_bootstrap = options.insecure_bootstrap,
            extra_config = options.extra_config,
            key_manager = options.key_manager.clone().unwrap_or_else(|| format!(
                "    KeyManager \"disk\" {{\n        plugin_data {{\n            directory = \"{}\"\n        }}\n    }}",
                dir.join("data").display()
            )),
            attestors = options.attestors.clone().unwrap_or_else(|| format!(
                "    NodeAttestor \"join_token\" {{\n        plugin_data {{}}\n    }}\n    WorkloadAttestor \"unix\" {{\n        plugin_data {{\n            discover_workload_path = {}\n        }}\n    }}",
                options.discover_workload_path
            )),
        )
    }

    /// Starts `binary` (`spire-agent`) in `dir` and waits until its Workload API socket accepts
    /// connections (the agent opens it after its first sync). `dir` and the socket's directory are
    /// made traversable by every user, so workloads may run as other uids.
    pub async fn start(binary: impl AsRef<Path>, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        let mut agent = Self::launch(binary, dir, server_port, options);
        agent.wait_ready().await;
        agent
    }

    /// Like [`TestAgent::start`], without waiting: for agents expected to fail.
    pub fn launch(binary: impl AsRef<Path>, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        let public = dir.join("public");
        std::fs::create_dir_all(&public).expect("create the socket directory");
        for d in [dir, public.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let socket = public.join("api.sock");
        std::fs::write(dir.join("agent.conf"), Self::config(dir, server_port, &socket, options)).expect("config");
        // A socket left by a previous run would answer nothing: wait for the new one.
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("agent.log")).expect("agent log");
        let mut cmd = Command::new(binary.as_ref());
        cmd.args(["run", "-config"]).arg(dir.join("agent.conf"));
        if let Some(t) = &options.join_token {
            cmd.args(["-joinToken", t]);
        }
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("start spire-agent");
        Self { child: Some(child), dir: dir.to_path_buf(), socket }
    }

    /// Waits up to 30 s for the Workload API socket to accept connections; panics if the agent exits
    /// or never opens it.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                return;
            }
            if let Some(status) = self.try_wait() {
                panic!("spire-agent exited with {status}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("spire-agent did not open its socket: {}", self.log());
    }

    /// The agent process's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `unix:<socket>`, the endpoint for Workload API clients.
    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// The agent's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Waits up to `timeout` for the log, past its first `from` bytes, to contain `needle`.
    pub async fn wait_for_log(&self, needle: &str, from: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().get(from..).is_some_and(|new| new.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop();
    }
}
