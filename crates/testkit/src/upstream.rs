//! The real SPIRE (v1.13.3, built by `crates/interop/peers/spire/install.sh`) as processes, for
//! agent ⇄ server tests across the two implementations: [`UpstreamServer`] runs `spire-server run`
//! and [`UpstreamAgent`] runs `spire-agent run`, each in a temp dir with a kill on drop.
//!
//! Both reuse our own fixtures ([`TestServer`], [`TestAgent`]): the configuration keys are SPIRE's,
//! so only what SPIRE does differently is here. SPIRE logs to stdout, which those fixtures discard,
//! so the configs set `log_file` to the file their `log()` reads.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::agent::{AgentOptions, TestAgent};
use crate::process::TestServer;

/// Where SPIRE's server keeps its CA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyManager {
    /// `KeyManager "disk"`: `<dir>/data/keys.json`, kept across restarts.
    #[default]
    Disk,
    /// `KeyManager "memory"`: a new CA on every start.
    Memory,
}

/// How an [`UpstreamServer`] is configured (trust domain `example.org`, SQLite, join_token).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The KeyManager plugin.
    pub key_manager: KeyManager,
    /// `ca_ttl`, when set (SPIRE's default is 24h).
    pub ca_ttl: Option<String>,
    /// `default_x509_svid_ttl`, when set (SPIRE's default is 1h; agents' own SVIDs get it too).
    pub default_x509_svid_ttl: Option<String>,
    /// `experimental.cache_reload_interval`: how often the entry cache agents are served from
    /// catches up with the datastore. 1 s by default here (SPIRE's default, 5 s, would hold every new
    /// or changed entry back from agents for up to 5 s); `None` leaves SPIRE's default.
    pub cache_reload_interval: Option<String>,
    /// Lines added to the `server` block.
    pub extra_config: String,
    /// Plugin blocks added to `plugins` (an `UpstreamAuthority`, say).
    pub extra_plugins: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            key_manager: KeyManager::default(),
            ca_ttl: None,
            default_x509_svid_ttl: None,
            cache_reload_interval: Some("1s".into()),
            extra_config: String::new(),
            extra_plugins: String::new(),
        }
    }
}

/// A running SPIRE `spire-server run`; derefs to the [`TestServer`] that manages the process
/// (`socket`, `port`, `log()`, `stop()`, `restart()`, `channel()`).
#[derive(Debug)]
pub struct UpstreamServer {
    server: TestServer,
    binary: PathBuf,
}

impl UpstreamServer {
    /// SPIRE's server config for `dir`: private socket `<dir>/api.sock`, data under `<dir>/data`,
    /// log at `<dir>/server.log`, TCP on `127.0.0.1:<port>`.
    pub fn config(dir: &Path, port: u16, options: &ServerOptions) -> String {
        let data = dir.join("data");
        let mut server_extra = String::new();
        if let Some(ttl) = &options.ca_ttl {
            server_extra.push_str(&format!("    ca_ttl = \"{ttl}\"\n"));
        }
        if let Some(ttl) = &options.default_x509_svid_ttl {
            server_extra.push_str(&format!("    default_x509_svid_ttl = \"{ttl}\"\n"));
        }
        if let Some(interval) = &options.cache_reload_interval {
            server_extra
                .push_str(&format!("    experimental {{\n        cache_reload_interval = \"{interval}\"\n    }}\n"));
        }
        server_extra.push_str(&options.extra_config);
        let key_manager = match options.key_manager {
            KeyManager::Disk => {
                format!(
                    "KeyManager \"disk\" {{\n        plugin_data {{\n            keys_path = \"{}/keys.json\"\n        }}\n    }}",
                    data.display()
                )
            }
            KeyManager::Memory => "KeyManager \"memory\" {\n        plugin_data {}\n    }".to_owned(),
        };
        format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
    log_level = "DEBUG"
    log_file = "{log}"
{server_extra}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    {key_manager}
{extra_plugins}
}}
"#,
            extra_plugins = options.extra_plugins,
            socket = dir.join("api.sock").display(),
            data = data.display(),
            log = dir.join("server.log").display(),
        )
    }

    /// Starts SPIRE's `binary` and waits until its private socket answers.
    pub async fn start(binary: impl Into<PathBuf>, options: &ServerOptions) -> Self {
        let binary = binary.into();
        let server = TestServer::start_with_config(&binary, |dir, port| Self::config(dir, port, options)).await;
        Self { server, binary }
    }

    /// SPIRE's `spire-server` binary, for its admin CLI.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs SPIRE's `spire-server <args> -socketPath <socket>`, whatever its exit status.
    pub fn try_cli(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .arg("-socketPath")
            .arg(&self.server.socket)
            .output()
            .expect("run spire-server")
    }

    /// Runs SPIRE's `spire-server <args>` and returns its stdout; panics (with the server log) if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.try_cli(args);
        assert!(
            out.status.success(),
            "spire-server {args:?}: {}{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// A fresh join token from SPIRE's `spire-server token generate`.
    pub fn generate_token(&self) -> String {
        let out = self.cli(&["token", "generate"]);
        out.lines().next().and_then(|l| l.strip_prefix("Token: ")).expect("a `Token: ` line").trim().to_owned()
    }
}

impl Deref for UpstreamServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl DerefMut for UpstreamServer {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.server
    }
}

/// A running SPIRE `spire-agent run`; derefs to the [`TestAgent`] that manages the process
/// (`socket`, `endpoint()`, `log()`, `wait_for_log()`, `stop()`).
#[derive(Debug)]
pub struct UpstreamAgent {
    agent: TestAgent,
    binary: PathBuf,
}

impl UpstreamAgent {
    /// `options` with what SPIRE's agent needs on top of our agent's test config: the log written to
    /// `<dir>/agent.log`.
    pub fn options_for(dir: &Path, options: &AgentOptions) -> AgentOptions {
        let mut options = options.clone();
        options.extra_config.push_str(&format!("\n    log_file = \"{}\"\n", dir.join("agent.log").display()));
        options
    }

    /// Starts SPIRE's `binary` (`spire-agent`) in `dir` against the server at `127.0.0.1:<server_port>`
    /// with [`TestAgent::config`]'s keys (join token from `options`, unix workload attestor, Workload
    /// API socket `<dir>/public/api.sock`), and waits until that socket accepts connections (SPIRE
    /// opens it after attesting and its first sync).
    pub async fn start(binary: impl Into<PathBuf>, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        let binary = binary.into();
        let agent = TestAgent::start(&binary, dir, server_port, &Self::options_for(dir, options)).await;
        Self { agent, binary }
    }

    /// Like [`UpstreamAgent::start`], without waiting: for agents expected to fail.
    pub fn launch(binary: impl Into<PathBuf>, dir: &Path, server_port: u16, options: &AgentOptions) -> Self {
        let binary = binary.into();
        let agent = TestAgent::launch(&binary, dir, server_port, &Self::options_for(dir, options));
        Self { agent, binary }
    }

    /// Runs SPIRE's `spire-agent <args> -socketPath <Workload API socket>` (e.g. `api fetch x509`).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .arg("-socketPath")
            .arg(&self.agent.socket)
            .output()
            .expect("run spire-agent")
    }
}

impl Deref for UpstreamAgent {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.agent
    }
}

impl DerefMut for UpstreamAgent {
    fn deref_mut(&mut self) -> &mut TestAgent {
        &mut self.agent
    }
}
