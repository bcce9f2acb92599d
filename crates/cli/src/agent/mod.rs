//! `spire-agent` client commands (everything but `run` and `validate`): the `api` commands, which talk
//! to the Workload API on the agent's public socket, and `healthcheck`.
//!
//! [`run`] takes the command line without the program name (`["api", "fetch", "-write", "/tmp"]`) and
//! finds the command the way SPIRE's `mitchellh/cli` does: the longest run of leading words naming a
//! command, with `api` and `api validate` existing only as parents that list their subcommands. Help
//! (`-h`, `-help` or `--help` anywhere before `--`) and the listings reproduce what that library prints,
//! including its quirks, because SPIRE users' scripts and docs show that text. Unlike the server's admin
//! commands, agent commands print errors bare (no `Error: ` prefix), as SPIRE's agent CLI does.

mod api;
mod dial;
mod healthcheck;
mod settings;
mod vars;

use std::io::Write;

pub use settings::{DEFAULT_SOCKET_PATH, Settings};

/// What a command-tree entry runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    FetchX509,
    FetchJwt,
    ValidateJwt,
    Watch,
    Healthcheck,
}

/// How an entry of the command tree behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Command(Cmd),
    /// A parent `mitchellh/cli` inserts for nested commands: running it prints its subcommands.
    Parent,
    /// Handled by the `spire-agent` binary itself; listed only.
    External,
}

struct Node {
    name: &'static str,
    synopsis: &'static str,
    kind: Kind,
}

const FETCH_X509_SYNOPSIS: &str = "Fetches X509 SVIDs from the Workload API";

const TREE: &[Node] = &[
    Node { name: "api", synopsis: "", kind: Kind::Parent },
    Node { name: "api fetch", synopsis: FETCH_X509_SYNOPSIS, kind: Kind::Command(Cmd::FetchX509) },
    Node { name: "api fetch jwt", synopsis: api::fetch_jwt::SYNOPSIS, kind: Kind::Command(Cmd::FetchJwt) },
    Node { name: "api fetch x509", synopsis: FETCH_X509_SYNOPSIS, kind: Kind::Command(Cmd::FetchX509) },
    Node { name: "api validate", synopsis: "", kind: Kind::Parent },
    Node { name: "api validate jwt", synopsis: api::validate_jwt::SYNOPSIS, kind: Kind::Command(Cmd::ValidateJwt) },
    Node { name: "api watch", synopsis: api::watch::SYNOPSIS, kind: Kind::Command(Cmd::Watch) },
    Node { name: "healthcheck", synopsis: healthcheck::SYNOPSIS, kind: Kind::Command(Cmd::Healthcheck) },
    Node { name: "run", synopsis: "Runs the agent", kind: Kind::External },
    Node { name: "validate", synopsis: "Validates a SPIRE agent configuration file", kind: Kind::External },
];

/// The help text of a parent entry.
const PARENT_HELP: &str = "This command is accessed by using one of the subcommands below.";

/// Runs one `spire-agent` client command with the process environment. `args` excludes the program
/// name. Returns the exit code.
pub async fn run(args: Vec<String>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    run_with(args, stdout, stderr, &Settings::from_process()).await
}

/// [`run`] with explicit settings (environment variables, what interrupts `api watch`), for tests and
/// embedding.
pub async fn run_with(args: Vec<String>, stdout: &mut dyn Write, stderr: &mut dyn Write, settings: &Settings) -> i32 {
    if let Some(code) = crate::version::answer(&args, stderr) {
        return code;
    }
    // mitchellh/cli: a help flag anywhere before `--` asks for help.
    let before_dashes = args.iter().take_while(|a| *a != "--");
    let is_help = before_dashes.clone().any(|a| matches!(a.as_str(), "-h" | "-help" | "--help"));
    let Some(start) = before_dashes.clone().position(|a| !a.is_empty() && !a.starts_with('-')) else {
        let _ = stderr.write_all(listing().as_bytes());
        return if is_help { 0 } else { 127 };
    };
    let top_flags = args[..start].iter().any(|a| !matches!(a.as_str(), "-h" | "-help" | "--help"));
    let Some((node, rest)) = find(&args[start..]) else {
        let _ = stderr.write_all(listing().as_bytes());
        return 127;
    };
    if is_help {
        let _ = stderr.write_all(command_help(node).as_bytes());
        return 0;
    }
    if top_flags {
        let _ = write!(
            stderr,
            "Invalid flags before the subcommand. If these flags are for\nthe subcommand, please put them after the subcommand.\n\n{}",
            command_help(node)
        );
        return 1;
    }
    match node.kind {
        Kind::Command(cmd) => dispatch(cmd, rest, stdout, stderr, settings).await,
        Kind::Parent => {
            let _ = stderr.write_all(command_help(node).as_bytes());
            1
        }
        Kind::External => {
            let _ = stderr.write_all(listing().as_bytes());
            127
        }
    }
}

async fn dispatch(
    cmd: Cmd,
    args: &[String],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    settings: &Settings,
) -> i32 {
    match cmd {
        Cmd::FetchX509 | Cmd::FetchJwt | Cmd::ValidateJwt => api::run(cmd, args, stdout, stderr, settings).await,
        Cmd::Watch => api::watch::run(args, stdout, stderr, settings).await,
        Cmd::Healthcheck => healthcheck::run(args, stdout, stderr, settings).await,
    }
}

/// The entry named by the longest run of leading words (stopping at a word that is empty or has a
/// space, as mitchellh/cli does), and the arguments after it.
fn find(args: &[String]) -> Option<(&'static Node, &[String])> {
    let usable = args.iter().take_while(|a| !a.is_empty() && !a.contains(' ')).count();
    (1..=usable).rev().find_map(|words| {
        let name = args[..words].join(" ");
        TREE.iter().find(|n| n.name == name).map(|n| (n, &args[words..]))
    })
}

/// Entries one level below `parent` ("" for the top level), sorted.
fn children(parent: &str) -> Vec<&'static Node> {
    TREE.iter()
        .filter(|n| match parent {
            "" => !n.name.contains(' '),
            p => n.name.strip_prefix(p).and_then(|r| r.strip_prefix(' ')).is_some_and(|r| !r.contains(' ')),
        })
        .collect()
}

/// `BasicHelpFunc` for the top level, plus the newline mitchellh/cli writes after it.
fn listing() -> String {
    let top = children("");
    let width = top.iter().map(|n| n.name.len()).max().unwrap_or(0);
    let mut out =
        String::from("Usage: spire-agent [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n");
    for n in top {
        out.push_str(&format!("    {:width$}    {}\n", n.name, n.synopsis));
    }
    out.push('\n');
    out
}

/// What asking an entry for help writes to stderr. A command's `Help()` prints its flag usage as a side
/// effect and returns the text the help template shows; mitchellh/cli calls `Help()` on the entry and
/// then on each of its subcommands (so `api fetch -h` prints three usage blocks) before rendering
/// `{{.Help}}` and the subcommand list.
fn command_help(node: &Node) -> String {
    let (mut out, help) = help_parts(node);
    let subs = children(node.name);
    let mut list = String::new();
    if !subs.is_empty() {
        let longest = subs.iter().map(|n| n.name.len()).max().unwrap_or(0);
        list.push_str("\n\nSubcommands:");
        for sub in &subs {
            out.push_str(&help_parts(sub).0);
            let short = sub.name.rsplit(' ').next().unwrap_or(sub.name);
            let pad = " ".repeat(longest - sub.name.len());
            list.push_str(&format!("\n    {short}{pad}    {}", sub.synopsis));
        }
    }
    out.push_str(help);
    out.push_str(&list);
    out.push('\n');
    out
}

/// What `Help()` prints, and what it returns.
fn help_parts(node: &Node) -> (String, &'static str) {
    match node.kind {
        Kind::Command(Cmd::Watch) => (api::watch::usage(), "flag: help requested"),
        Kind::Command(Cmd::Healthcheck) => (healthcheck::usage(), ""),
        Kind::Command(cmd) => (api::usage(cmd), ""),
        Kind::Parent => (String::new(), PARENT_HELP),
        Kind::External => (String::new(), ""),
    }
}

#[cfg(test)]
mod tests;
