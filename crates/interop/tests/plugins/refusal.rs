//! A server that must refuse to start because of one of its plugins: how it ends (exit status) and
//! what it said (stdout and stderr together; the config sets no `log_file`, so its log is there too).

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use spire_testkit::process::free_port;

use super::config::{self, data, external};
use super::{Implementation, TestPlugins};

/// How long a refusing server may take to exit (go-plugin's start timeout is a minute; the cases
/// here fail well before).
const EXIT_TIMEOUT: Duration = Duration::from_secs(45);

/// How a failed start ended.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The exit status, or `None` if the server was still running at the timeout (then killed).
    pub(crate) status: Option<ExitStatus>,
    /// Everything the server printed.
    pub(crate) output: String,
}

/// Which plugin misbehaves, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// NodeAttestor "challenge" with a `plugin_checksum` that is another file's.
    WrongChecksum,
    /// NodeAttestor "misbehave" exiting 1 before it serves.
    ExitAtStart,
    /// NodeAttestor "misbehave" answering Configure with InvalidArgument.
    ConfigureError,
}

/// The faulty plugin's block.
fn faulty_plugin(plugins: &TestPlugins, fault: Fault) -> String {
    match fault {
        Fault::WrongChecksum => {
            let mut plugin = plugins.get("challenge-server").clone();
            plugin.checksum = plugins.get("notifier").checksum.clone();
            external("NodeAttestor", "challenge", &plugin, &[], &data(&[("secret", config::SECRET)]))
        }
        Fault::ExitAtStart => {
            external("NodeAttestor", "misbehave", plugins.get("misbehave"), &["-mode", "exit-at-start"], "")
        }
        Fault::ConfigureError => {
            external("NodeAttestor", "misbehave", plugins.get("misbehave"), &["-mode", "configure-error"], "")
        }
    }
}

/// Starts `implementation`'s server with a NodeAttestor plugin that serves, then exits after 3 s,
/// and lets it run for `observe`; `None` when a peer is missing (the test skipped). The status is
/// `None` when the server was still running then.
pub(crate) async fn server_with_dying_plugin(implementation: Implementation, observe: Duration) -> Option<Refusal> {
    let (server_bin, _) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let plugins_block = format!(
        "    KeyManager \"memory\" {{\n        plugin_data {{}}\n    }}\n{}",
        external("NodeAttestor", "misbehave", plugins.get("misbehave"), &["-mode", "die-later", "-after", "3"], "")
    );
    Some(run_to_exit(&server_bin, tmp.path(), &plugins_block, observe).await)
}

/// Starts `implementation`'s server with the built-in memory key manager and the faulty plugin, and
/// waits for it to exit; `None` when a peer is missing (the test skipped).
pub(crate) async fn server_start(implementation: Implementation, fault: Fault) -> Option<Refusal> {
    let (server_bin, _) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let plugins_block =
        format!("    KeyManager \"memory\" {{\n        plugin_data {{}}\n    }}\n{}", faulty_plugin(&plugins, fault));
    Some(run_to_exit(&server_bin, tmp.path(), &plugins_block, EXIT_TIMEOUT).await)
}

/// `implementation`'s `spire-server validate` on a config whose plugin would refuse to start
/// (`fault`): its exit code and the last line of its stdout (SPIRE's log, before it, may warn of
/// experimental settings); `None` when a peer is missing (the test skipped).
pub(crate) fn validate(implementation: Implementation, fault: Fault) -> Option<(Option<i32>, String)> {
    let (server_bin, _) = implementation.binaries()?;
    let plugins = TestPlugins::find()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let plugins_block =
        format!("    KeyManager \"memory\" {{\n        plugin_data {{}}\n    }}\n{}", faulty_plugin(&plugins, fault));
    let conf = tmp.path().join("server.conf");
    std::fs::write(&conf, config::server(tmp.path(), free_port(), &plugins_block, false)).expect("write config");
    let out = Command::new(server_bin).args(["validate", "-config"]).arg(&conf).output().expect("run validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Some((out.status.code(), stdout.lines().last().unwrap_or_default().to_owned()))
}

/// Runs `spire-server run` in `dir` with `plugins`, for up to `timeout`.
pub(crate) async fn run_to_exit(server_bin: &Path, dir: &Path, plugins: &str, timeout: Duration) -> Refusal {
    let conf = dir.join("server.conf");
    std::fs::write(&conf, config::server(dir, free_port(), plugins, false)).expect("write config");
    let out_path = dir.join("output.log");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(server_bin)
        .args(["run", "-config"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("start spire-server");
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
