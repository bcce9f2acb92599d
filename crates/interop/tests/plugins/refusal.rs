//! A server or agent that must refuse to start because of one of its plugins: how it ends (exit
//! status) and what it said (stdout and stderr together; the configs set no `log_file`, so the log
//! is there too). And a server whose plugin dies after start, and `spire-server validate`.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use spire_testkit::process::free_port;

use super::config::{self, data, external};
use super::{Implementation, TestPlugins};

/// How long a refusing daemon may take to exit (go-plugin's start timeout is a minute; the cases
/// here fail well before).
const EXIT_TIMEOUT: Duration = Duration::from_secs(45);

/// The built-in memory key manager, so that the faulty plugin is the only external one.
const MEMORY_KEY_MANAGER: &str = "    KeyManager \"memory\" {\n        plugin_data {}\n    }\n";

/// How a daemon's run ended.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The exit status, or `None` if the daemon was still running at the timeout (then killed).
    pub(crate) status: Option<ExitStatus>,
    /// Everything the daemon printed.
    pub(crate) output: String,
}

/// Which daemon loads the faulty plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daemon {
    /// `spire-server`, whose faulty plugin is a NodeAttestor.
    Server,
    /// `spire-agent`, whose faulty plugin is a WorkloadAttestor.
    Agent,
}

/// How the plugin misbehaves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// A test plugin whose `plugin_checksum` is another file's: NodeAttestor "challenge" on the
    /// server, WorkloadAttestor "test_workload" on the agent.
    WrongChecksum,
    /// Plugin "misbehave" exiting 1 before it serves.
    ExitAtStart,
    /// Plugin "misbehave" answering Configure with InvalidArgument.
    ConfigureError,
    /// Plugin "misbehave" never shaking hands (ours only: SPIRE waits go-plugin's minute).
    HangStart,
    /// Plugin "misbehave" never answering Configure (ours only: SPIRE waits forever).
    HangConfigure,
}

/// What our daemons are given as `SPIRE_PLUGIN_TIMEOUT`, so that hung plugins are given up on fast.
pub(crate) const PLUGIN_TIMEOUT: &str = "3s";

impl Daemon {
    /// The type of the faulty plugin.
    pub(crate) fn plugin_type(self) -> &'static str {
        match self {
            Self::Server => "NodeAttestor",
            Self::Agent => "WorkloadAttestor",
        }
    }

    /// The name of the faulty plugin.
    pub(crate) fn plugin_name(self, fault: Fault) -> &'static str {
        match (self, fault) {
            (Self::Server, Fault::WrongChecksum) => "challenge",
            (Self::Agent, Fault::WrongChecksum) => "test_workload",
            _ => "misbehave",
        }
    }

    /// The misbehave plugin's `plugin_args` for `mode`, posing as this daemon's plugin type.
    fn misbehave_args(self, mode: &'static str) -> Vec<&'static str> {
        let mut args = vec!["-mode", mode];
        if self == Self::Agent {
            args.extend(["-type", "WorkloadAttestor", "-side", "agent"]);
        }
        args
    }

    /// The faulty plugin's block.
    fn faulty_plugin(self, plugins: &TestPlugins, fault: Fault) -> String {
        let (kind, name) = (self.plugin_type(), self.plugin_name(fault));
        match fault {
            Fault::WrongChecksum => {
                let (plugin, data) = match self {
                    Self::Server => ("challenge-server", data(&[("secret", config::SECRET)])),
                    Self::Agent => ("workload", data(&[("label", config::LABEL)])),
                };
                let mut plugin = plugins.get(plugin).clone();
                plugin.checksum = plugins.get("notifier").checksum.clone();
                external(kind, name, &plugin, &[], &data)
            }
            Fault::ExitAtStart => {
                external(kind, name, plugins.get("misbehave"), &self.misbehave_args("exit-at-start"), "")
            }
            Fault::ConfigureError => {
                external(kind, name, plugins.get("misbehave"), &self.misbehave_args("configure-error"), "")
            }
            Fault::HangStart => external(kind, name, plugins.get("misbehave"), &self.misbehave_args("hang-start"), ""),
            Fault::HangConfigure => {
                external(kind, name, plugins.get("misbehave"), &self.misbehave_args("hang-configure"), "")
            }
        }
    }

    /// The whole config of this daemon in `dir` with `plugin` as its only external plugin.
    fn config(self, dir: &Path, plugin: &str) -> String {
        match self {
            Self::Server => config::server(dir, free_port(), &format!("{MEMORY_KEY_MANAGER}{plugin}"), false, ""),
            Self::Agent => {
                let join_token = "    NodeAttestor \"join_token\" {\n        plugin_data {}\n    }\n";
                // Nothing listens on the server port: the agent loads its plugins before it dials.
                config::agent(dir, free_port(), &format!("{MEMORY_KEY_MANAGER}{join_token}{plugin}"))
            }
        }
    }
}

/// Starts `implementation`'s `daemon` with the faulty plugin and waits for it to exit; `None` when a
/// peer is missing (the test skipped).
pub(crate) async fn start(implementation: Implementation, daemon: Daemon, fault: Fault) -> Option<Refusal> {
    let (server_bin, agent_bin) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = daemon.config(tmp.path(), &daemon.faulty_plugin(&plugins, fault));
    let (binary, extra): (&Path, &[&str]) = match daemon {
        Daemon::Server => (&server_bin, &[]),
        Daemon::Agent => (&agent_bin, &["-joinToken", "never-used"]),
    };
    Some(run_to_exit(binary, tmp.path(), &conf, extra, EXIT_TIMEOUT).await)
}

/// Starts `implementation`'s server with a NodeAttestor plugin that serves, then exits after 3 s,
/// and lets it run for `observe`; `None` when a peer is missing (the test skipped). The status is
/// `None` when the server was still running then.
pub(crate) async fn server_with_dying_plugin(implementation: Implementation, observe: Duration) -> Option<Refusal> {
    let (server_bin, _) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = Daemon::Server.misbehave_args("die-later").into_iter().chain(["-after", "3"]).collect::<Vec<_>>();
    let plugin = external("NodeAttestor", "misbehave", plugins.get("misbehave"), &args, "");
    let conf = Daemon::Server.config(tmp.path(), &plugin);
    Some(run_to_exit(&server_bin, tmp.path(), &conf, &[], observe).await)
}

/// `implementation`'s `spire-server validate` on a config whose plugin would refuse to start
/// (`fault`): its exit code and the last line of its stdout (SPIRE's log, before it, may warn of
/// experimental settings); `None` when a peer is missing (the test skipped).
pub(crate) fn validate(implementation: Implementation, fault: Fault) -> Option<(Option<i32>, String)> {
    let (server_bin, _) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("server.conf");
    let daemon = Daemon::Server;
    std::fs::write(&conf, daemon.config(tmp.path(), &daemon.faulty_plugin(&plugins, fault))).expect("write config");
    let out = Command::new(server_bin).args(["validate", "-config"]).arg(&conf).output().expect("run validate");
    // The verdict: stdout's last line when valid, stderr's when not.
    let said = if out.status.success() { &out.stdout } else { &out.stderr };
    let said = String::from_utf8_lossy(said);
    Some((out.status.code(), said.lines().last().unwrap_or_default().to_owned()))
}

/// Runs `<binary> run -config <dir>/daemon.conf <extra>` for up to `timeout`.
async fn run_to_exit(binary: &Path, dir: &Path, conf: &str, extra: &[&str], timeout: Duration) -> Refusal {
    let conf_path = dir.join("daemon.conf");
    std::fs::write(&conf_path, conf).expect("write config");
    let out_path = dir.join("output.log");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(binary)
        .args(["run", "-config"])
        .arg(&conf_path)
        .args(extra)
        .env("SPIRE_PLUGIN_TIMEOUT", PLUGIN_TIMEOUT)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Refusal { status, output: std::fs::read_to_string(&out_path).unwrap_or_default() }
}
