//! Starting the plugin's process as go-plugin's client does, reading its handshake, and watching it.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::handshake::{self, Address, HandshakeError};
use crate::logs;

/// Why the process could not be started; go-plugin's messages.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The executable could not be started.
    #[error("exec: {0}")]
    Spawn(#[source] std::io::Error),
    /// No handshake in time.
    #[error("timeout while waiting for plugin to start")]
    Timeout,
    /// The process exited (or closed its stdout) before its handshake.
    #[error("plugin exited before we could connect{}", last_words(.0))]
    Exited(Option<String>),
    /// The executable is not the one `plugin_checksum` names.
    #[error(transparent)]
    Checksum(crate::checksum::ChecksumError),
    /// The handshake line was refused.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

fn last_words(stderr: &Option<String>) -> String {
    stderr.as_ref().map(|line| format!(" (its last output: {line})")).unwrap_or_default()
}

/// A started plugin process whose handshake was read.
#[derive(Debug)]
pub(crate) struct Running {
    /// Where it serves gRPC.
    pub(crate) address: Address,
    /// Its exit status once it exited.
    pub(crate) exited: watch::Receiver<Option<ExitStatus>>,
    /// Kills it (dropping it does too).
    pub(crate) kill: Option<oneshot::Sender<()>>,
    /// Set before the host stops the plugin, so that its exit is not reported as a failure.
    pub(crate) stopping: Arc<AtomicBool>,
}

/// Identifies the plugin in log events.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) plugin_type: String,
    pub(crate) name: String,
}

/// Starts `path` with go-plugin's environment (magic cookie `<Type>=<Type>`, protocol versions,
/// port range) and waits up to `timeout` for its handshake line.
pub(crate) async fn start(path: &Path, args: &[String], tag: &Tag, timeout: Duration) -> Result<Running, LaunchError> {
    let mut command = Command::new(path);
    command
        .args(args)
        .env(&tag.plugin_type, &tag.plugin_type)
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .env("PLUGIN_PROTOCOL_VERSIONS", handshake::APP_PROTOCOL_VERSION.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(LaunchError::Spawn)?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    // stderr carries the plugin's logs from the start; the last raw line is kept to explain an
    // early exit.
    let last_raw: Arc<Mutex<Option<String>>> = Arc::default();
    let stderr_task = {
        let (tag, last_raw) = (tag.clone(), last_raw.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                let line = logs::parse(&text);
                if line.level.is_none() && !line.message.is_empty() {
                    *last_raw.lock().expect("not poisoned") = Some(line.message.clone());
                }
                logs::emit(&tag.plugin_type, &tag.name, &line);
            }
        })
    };

    let mut stdout = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(timeout, stdout.next_line()).await;
    let line = match first {
        Err(_) => return Err(LaunchError::Timeout),
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None) | Err(_)) => {
            // Let the process finish and its stderr drain, so that its last words are known.
            if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                tracing::error!(plugin_type = %tag.plugin_type, plugin_name = %tag.name, error = %go_exit_status(status), "plugin process exited");
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), stderr_task).await;
            return Err(LaunchError::Exited(last_raw.lock().expect("not poisoned").take()));
        }
    };
    let address = handshake::parse(&line)?;

    // Anything printed on stdout afterwards is logged (go-plugin mirrors it at debug level).
    {
        let tag = tag.clone();
        tokio::spawn(async move {
            while let Ok(Some(text)) = stdout.next_line().await {
                tracing::debug!(target: "spire_plugin", plugin_type = %tag.plugin_type, plugin_name = %tag.name, "{text}");
            }
        });
    }

    let (exited_tx, exited) = watch::channel(None);
    let (kill, kill_rx) = oneshot::channel::<()>();
    let stopping = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch_exit(child, tag.clone(), exited_tx, kill_rx, stopping.clone()));
    Ok(Running { address, exited, kill: Some(kill), stopping })
}

/// Waits for the process to exit, reporting an exit nobody asked for; kills it when told to (or
/// when the sender is dropped).
async fn watch_exit(
    mut child: Child,
    tag: Tag,
    exited: watch::Sender<Option<ExitStatus>>,
    kill: oneshot::Receiver<()>,
    stopping: Arc<AtomicBool>,
) {
    let status = tokio::select! {
        status = child.wait() => {
            let status = status.ok();
            let error = status.map_or_else(|| "unknown".to_owned(), go_exit_status);
            if stopping.load(Ordering::SeqCst) {
                tracing::debug!(plugin_type = %tag.plugin_type, plugin_name = %tag.name, error, "plugin process exited");
            } else {
                // go-plugin's words; the daemon keeps running and the plugin's calls fail from now on.
                tracing::error!(plugin_type = %tag.plugin_type, plugin_name = %tag.name, error, "plugin process exited");
            }
            status
        }
        _ = kill => {
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    };
    let _ = exited.send(status);
}

/// An exit status as Go's `exec.ExitError` prints it: `exit status 1`, `signal: killed`.
fn go_exit_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".to_owned(),
        (None, Some(15)) => "signal: terminated".to_owned(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => status.to_string(),
    }
}
