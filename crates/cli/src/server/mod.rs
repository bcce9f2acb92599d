//! `spire-server` administration commands (everything but `run` and `validate`), each talking to the
//! server's private API socket.
//!
//! [`run`] takes the command line without the program name (`["entry", "show", "-spiffeID", ...]`),
//! finds the command the way SPIRE's `mitchellh/cli` does (longest match of the leading words), adds the
//! flags SPIRE's `AdaptCommand` adds (`-socketPath`, `-instance`, `-output`), parses the rest with Go
//! `flag` semantics and runs the command. Failures print `Error: <message>` on stderr and give exit
//! code 1. Tests point `-socketPath` at any server.

mod agent;
mod bundle;
mod common;
mod ctx;
mod debug;
mod entry;
mod federation;
mod healthcheck;
mod jwt;
mod logger;
mod token;
mod x509;

use std::io::{Read, Write};

use crate::flags::{FlagError, FlagSet, Parsed};

pub use ctx::Settings;
use ctx::{Ctx, resolve_socket_path};

use crate::error::CliError;

/// Default path of the server's private API socket.
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";

/// One command: its name as typed (`entry show`), its one-line description and its own flags.
struct Command {
    name: &'static str,
    synopsis: &'static str,
    flags: fn(&mut FlagSet),
    /// Whether `AdaptCommand` adds `-output` (every command but `healthcheck`).
    output: bool,
}

const COMMANDS: &[Command] = &[
    cmd("agent ban", agent::ban::SYNOPSIS, agent::ban::flags),
    cmd("agent count", agent::count::SYNOPSIS, agent::count::flags),
    cmd("agent evict", agent::evict::SYNOPSIS, agent::evict::flags),
    cmd("agent list", agent::list::SYNOPSIS, agent::list::flags),
    cmd("agent purge", agent::purge::SYNOPSIS, agent::purge::flags),
    cmd("agent show", agent::show::SYNOPSIS, agent::show::flags),
    cmd("bundle count", bundle::count::SYNOPSIS, bundle::count::flags),
    cmd("bundle delete", bundle::delete::SYNOPSIS, bundle::delete::flags),
    cmd("bundle list", bundle::list::SYNOPSIS, bundle::list::flags),
    cmd("bundle set", bundle::set::SYNOPSIS, bundle::set::flags),
    cmd("bundle show", bundle::show::SYNOPSIS, bundle::show::flags),
    cmd("debug getinfo", debug::getinfo::SYNOPSIS, debug::getinfo::flags),
    cmd("entry count", entry::count::SYNOPSIS, entry::count::flags),
    cmd("entry create", entry::create::SYNOPSIS, entry::create::flags),
    cmd("entry delete", entry::delete::SYNOPSIS, entry::delete::flags),
    cmd("entry show", entry::show::SYNOPSIS, entry::show::flags),
    cmd("entry update", entry::update::SYNOPSIS, entry::update::flags),
    cmd("federation create", federation::create::SYNOPSIS, federation::create::flags),
    cmd("federation delete", federation::delete::SYNOPSIS, federation::delete::flags),
    cmd("federation list", federation::list::SYNOPSIS, federation::list::flags),
    cmd("federation refresh", federation::refresh::SYNOPSIS, federation::refresh::flags),
    cmd("federation show", federation::show::SYNOPSIS, federation::show::flags),
    cmd("federation update", federation::update::SYNOPSIS, federation::update::flags),
    Command { name: "healthcheck", synopsis: healthcheck::SYNOPSIS, flags: healthcheck::flags, output: false },
    cmd("jwt mint", jwt::mint::SYNOPSIS, jwt::mint::flags),
    cmd("logger get", logger::get::SYNOPSIS, logger::get::flags),
    cmd("logger reset", logger::reset::SYNOPSIS, logger::reset::flags),
    cmd("logger set", logger::set::SYNOPSIS, logger::set::flags),
    cmd("token generate", token::generate::SYNOPSIS, token::generate::flags),
    cmd("x509 mint", x509::mint::SYNOPSIS, x509::mint::flags),
];

const fn cmd(name: &'static str, synopsis: &'static str, flags: fn(&mut FlagSet)) -> Command {
    Command { name, synopsis, flags, output: true }
}

/// Runs one `spire-server` admin command with the process's stdin and environment. `args` excludes the
/// program name. Returns the exit code.
pub async fn run(args: Vec<String>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let mut stdin = std::io::stdin().lock();
    run_with(args, &mut stdin, stdout, stderr, &Settings::from_process()).await
}

/// [`run`] with explicit stdin and settings (environment variables, time zone), for tests and embedding.
pub async fn run_with(
    args: Vec<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    settings: &Settings,
) -> i32 {
    if let Some(code) = crate::version::answer(&args, stderr) {
        return code;
    }
    let Some((command, rest)) = find_command(&args) else {
        let _ = stderr.write_all(help_for(&args).as_bytes());
        return 127;
    };
    let mut fs = FlagSet::new(command.name);
    fs.string("socketPath", DEFAULT_SOCKET_PATH, "Path to the SPIRE Server API socket").string(
        "instance",
        "",
        "Instance name to substitute into socket templates (env SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE).",
    );
    if command.output {
        fs.output();
    }
    (command.flags)(&mut fs);

    // mitchellh/cli shows a command's help whenever a help flag appears before `--`, wherever it is.
    let wants_help = rest.iter().take_while(|a| *a != "--").any(|a| matches!(a.as_str(), "-h" | "-help" | "--help"));
    let parsed = match fs.parse(rest) {
        _ if wants_help => return print_help(&fs, stderr),
        Ok(parsed) => parsed,
        Err(FlagError::Help) => return print_help(&fs, stderr),
        Err(FlagError::Invalid(message)) => {
            let _ = write!(stderr, "{message}\n{}", fs.usage());
            return 1;
        }
    };
    match execute(command.name, &parsed, stdin, stdout, stderr, settings).await {
        Ok(()) => 0,
        Err(err) => {
            let _ = writeln!(stderr, "Error: {err}");
            1
        }
    }
}

async fn execute(
    name: &str,
    flags: &Parsed,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    settings: &Settings,
) -> Result<(), CliError> {
    let socket_path = resolve_socket_path(&flags.string("socketPath"), &flags.string("instance"), settings)?;
    let output = if name == "healthcheck" { Default::default() } else { flags.output() };
    let mut ctx = Ctx::new(stdin, stdout, stderr, output, settings.zone.clone(), socket_path);
    dispatch(name, &mut ctx, flags).await
}

async fn dispatch(name: &str, ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    match name {
        "agent ban" => agent::ban::run(ctx, f).await,
        "agent count" => agent::count::run(ctx, f).await,
        "agent evict" => agent::evict::run(ctx, f).await,
        "agent list" => agent::list::run(ctx, f).await,
        "agent purge" => agent::purge::run(ctx, f).await,
        "agent show" => agent::show::run(ctx, f).await,
        "bundle count" => bundle::count::run(ctx, f).await,
        "bundle delete" => bundle::delete::run(ctx, f).await,
        "bundle list" => bundle::list::run(ctx, f).await,
        "bundle set" => bundle::set::run(ctx, f).await,
        "bundle show" => bundle::show::run(ctx, f).await,
        "debug getinfo" => debug::getinfo::run(ctx, f).await,
        "entry count" => entry::count::run(ctx, f).await,
        "entry create" => entry::create::run(ctx, f).await,
        "entry delete" => entry::delete::run(ctx, f).await,
        "entry show" => entry::show::run(ctx, f).await,
        "entry update" => entry::update::run(ctx, f).await,
        "federation create" => federation::create::run(ctx, f).await,
        "federation delete" => federation::delete::run(ctx, f).await,
        "federation list" => federation::list::run(ctx, f).await,
        "federation refresh" => federation::refresh::run(ctx, f).await,
        "federation show" => federation::show::run(ctx, f).await,
        "federation update" => federation::update::run(ctx, f).await,
        "healthcheck" => healthcheck::run(ctx, f).await,
        "jwt mint" => jwt::mint::run(ctx, f).await,
        "logger get" => logger::get::run(ctx, f).await,
        "logger reset" => logger::reset::run(ctx, f).await,
        "logger set" => logger::set::run(ctx, f).await,
        "token generate" => token::generate::run(ctx, f).await,
        "x509 mint" => x509::mint::run(ctx, f).await,
        other => unreachable!("command {other} is in the table but not dispatched"),
    }
}

/// The command named by the longest run of leading words, and the arguments after them.
fn find_command(args: &[String]) -> Option<(&'static Command, &[String])> {
    (1..=args.len().min(3)).rev().find_map(|words| {
        let name = args[..words].join(" ");
        COMMANDS.iter().find(|c| c.name == name).map(|c| (c, &args[words..]))
    })
}

/// Usage text, then the text of `flag.ErrHelp` that `mitchellh/cli` prints as the command's help.
fn print_help(fs: &FlagSet, stderr: &mut dyn Write) -> i32 {
    let _ = writeln!(stderr, "{}flag: help requested", fs.usage());
    0
}

/// What is shown for a missing, unknown or partial command (`spire-server entry`): the commands under
/// the words given, or all of them, each with its synopsis.
fn help_for(args: &[String]) -> String {
    let words: Vec<&str> = args.iter().map(String::as_str).take_while(|a| !a.starts_with('-')).collect();
    let mut depth = words.len();
    let matching = loop {
        let prefix = format!("{} ", words[..depth].join(" "));
        let found: Vec<&Command> =
            COMMANDS.iter().filter(|c| depth == 0 || c.name.starts_with(prefix.trim_start())).collect();
        if !found.is_empty() || depth == 0 {
            break found;
        }
        depth -= 1;
    };
    let width = matching.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out =
        String::from("Usage: spire-server [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n");
    for c in matching {
        out.push_str(&format!("    {:width$}    {}\n", c.name, c.synopsis));
    }
    out
}

#[cfg(test)]
mod tests;
