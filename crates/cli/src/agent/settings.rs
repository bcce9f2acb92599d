//! What an agent command line runs with besides its arguments (the environment variables SPIRE's
//! agent CLI reads, and what interrupts `api watch`), and how the public socket path is worked out.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

/// Default path of the agent's public (Workload API) socket.
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-agent/public/api.sock";

const SOCKET_TEMPLATE_ENV: &str = "SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE";
/// SPIRE derives it by trimming `_TEMPLATE` from the template variable's name.
const SOCKET_ENV: &str = "SPIRE_AGENT_PUBLIC_SOCKET";

/// The environment of one agent command line.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    vars: HashMap<String, String>,
    /// Stops `api watch` as Ctrl-C does; `None` waits for Ctrl-C itself.
    interrupt: Option<Arc<Notify>>,
}

impl Settings {
    /// The process environment; `api watch` stops on Ctrl-C.
    pub fn from_process() -> Self {
        let vars = [SOCKET_ENV, SOCKET_TEMPLATE_ENV]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        Self { vars, interrupt: None }
    }

    /// No environment variables: what tests want.
    pub fn isolated() -> Self {
        Self::default()
    }

    /// Sets an environment variable as the command will see it.
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Makes `api watch` stop when `interrupt` is notified (`notify_one`), instead of on Ctrl-C.
    pub fn with_interrupt(mut self, interrupt: Arc<Notify>) -> Self {
        self.interrupt = Some(interrupt);
        self
    }

    fn var(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or("")
    }

    /// Resolves when the user interrupts the command.
    pub(crate) async fn interrupted(&self) {
        match &self.interrupt {
            Some(notify) => notify.notified().await,
            None => {
                if tokio::signal::ctrl_c().await.is_err() {
                    // No signal handling available: never interrupted.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The socket to dial, as SPIRE's `common.ResolveSocketPath` and `util.GetUnixAddrWithAbsPath` pick
/// it: an explicit `-socketPath`, else `-instance` substituted into
/// `SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE`, else `SPIRE_AGENT_PUBLIC_SOCKET`, else the default; then made
/// absolute, because gRPC's `unix://` targets must be.
pub(crate) fn resolve_socket_path(socket_path: &str, instance: &str, settings: &Settings) -> Result<String, String> {
    let template = settings.var(SOCKET_TEMPLATE_ENV);
    if !instance.is_empty() {
        // SPIRE's agent words these with a capital letter (the server's start in lower case).
        if template.is_empty() {
            return Err(format!("You must define {SOCKET_TEMPLATE_ENV} to use the instance flag"));
        }
        if !template.contains("%i") {
            return Err(format!("Failed to find %i in {SOCKET_TEMPLATE_ENV}"));
        }
    }
    let chosen = if socket_path != DEFAULT_SOCKET_PATH {
        socket_path.to_owned()
    } else if !instance.is_empty() {
        template.replace("%i", instance)
    } else if !settings.var(SOCKET_ENV).is_empty() {
        settings.var(SOCKET_ENV).to_owned()
    } else {
        DEFAULT_SOCKET_PATH.to_owned()
    };
    go_abs(&chosen)
}

/// Go's `filepath.Abs`: the path joined to the working directory when relative, then cleaned.
fn go_abs(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        return Ok(go_clean(path));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| format!("failed to get absolute path for socket path: {}", crate::goerror::errno_text(&e)))?;
    Ok(go_join(&cwd.to_string_lossy(), path))
}

/// Go's `path.Join` of two elements: joined with a slash and cleaned (an empty element is skipped).
pub(crate) fn go_join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, true) => String::new(),
        (true, false) => go_clean(name),
        (false, true) => go_clean(dir),
        (false, false) => go_clean(&format!("{dir}/{name}")),
    }
}

/// Go's `path.Clean`: no repeated slashes, no `.` elements, `..` resolved lexically, no trailing slash;
/// `.` for an empty result.
pub(crate) fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_resolution_like_spire() {
        let plain = Settings::isolated();
        assert_eq!(resolve_socket_path(DEFAULT_SOCKET_PATH, "", &plain).unwrap(), DEFAULT_SOCKET_PATH);
        assert_eq!(
            resolve_socket_path(
                "/custom/spire.sock",
                "agent-1",
                &plain.clone().with_var(SOCKET_TEMPLATE_ENV, "/run/spire-%i.sock")
            )
            .unwrap(),
            "/custom/spire.sock"
        );
        let tpl = Settings::isolated().with_var(SOCKET_TEMPLATE_ENV, "/tmp/spire/public-%i.sock");
        assert_eq!(
            resolve_socket_path(DEFAULT_SOCKET_PATH, "prod-node", &tpl).unwrap(),
            "/tmp/spire/public-prod-node.sock"
        );
        // The template is ignored without -instance.
        assert_eq!(resolve_socket_path(DEFAULT_SOCKET_PATH, "", &tpl).unwrap(), DEFAULT_SOCKET_PATH);
        let env = Settings::isolated().with_var(SOCKET_ENV, "/var/lib/spire/agent.sock");
        assert_eq!(resolve_socket_path(DEFAULT_SOCKET_PATH, "", &env).unwrap(), "/var/lib/spire/agent.sock");
        assert_eq!(
            resolve_socket_path(DEFAULT_SOCKET_PATH, "node-01", &plain).unwrap_err(),
            "You must define SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE to use the instance flag"
        );
        let bad = Settings::isolated().with_var(SOCKET_TEMPLATE_ENV, "/run/spire/static-path.sock");
        assert_eq!(
            resolve_socket_path(DEFAULT_SOCKET_PATH, "node-01", &bad).unwrap_err(),
            "Failed to find %i in SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE"
        );
    }

    #[test]
    fn relative_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let got = resolve_socket_path("./sub/../api.sock", "", &Settings::isolated()).unwrap();
        assert_eq!(got, format!("{}/api.sock", cwd.display()));
    }

    #[test]
    fn clean_like_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a//b/./c/", "a/b/c"),
            ("/../a", "/a"),
            ("../../a/..", "../.."),
            ("a/b/../../..", ".."),
            ("/tmp/x/", "/tmp/x"),
        ] {
            assert_eq!(go_clean(input), want, "{input}");
        }
        assert_eq!(go_join("/tmp/out/", "svid.0.pem"), "/tmp/out/svid.0.pem");
        assert_eq!(go_join(".", "svid.0.pem"), "svid.0.pem");
    }
}
