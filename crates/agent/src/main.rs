//! The `spire-agent` binary: `run` and `validate` here, the Workload API client commands in `spire-cli`.

use std::process::ExitCode;

use spire_agent::cli_run::{load, settings, validate};
use spire_agent::external::ExternalPlugins;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(run(&args[2..]))
        }
        // Settings this build accepts without acting on them go to stderr; stdout and the exit
        // status stay SPIRE's.
        Some("validate") => {
            // External plugins are started to validate their data.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            validate_command(rt.block_on(validate(&args[2..])))
        }
        _ => {
            // A client command makes a call or two: one thread, no workers to start and hand off to,
            // which is a good part of a short command's run time.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            let code = rt.block_on(spire_cli::agent::run(args[1..].to_vec(), &mut out, &mut err));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// Prints what `validate` found: SPIRE's line on stdout; warnings and plugin notes on stderr.
fn validate_command(validated: Result<spire_agent::cli_run::Validated, String>) -> ExitCode {
    match validated {
        Ok(validated) => {
            for setting in spire_agent::inert_settings::find(&validated.config) {
                eprintln!("Warning: {setting}");
            }
            for (plugin, notes) in &validated.notes {
                for note in notes {
                    eprintln!("Note: {plugin}: {note}");
                }
            }
            println!("SPIRE agent configuration file is valid.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("SPIRE agent configuration file is invalid: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: &[String]) -> ExitCode {
    let config = match load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = spire_cli::logging::init(&config.log) {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    for setting in spire_agent::inert_settings::find(&config) {
        tracing::warn!("{setting}");
    }
    raise_open_file_limit();
    // Every external plugin the agent starts is kept here and stopped when the agent stops.
    let external = ExternalPlugins::new();
    let code = run_with(&config, &external).await;
    external.shutdown().await;
    code
}

async fn run_with(config: &spire_config::agent::AgentConfig, external: &ExternalPlugins) -> ExitCode {
    let settings = match settings(config, external).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Agent crashed");
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // A data directory SPIRE's agent wrote does not name the SVID's key: find it, as SPIRE does, so
    // that the agent binary can be replaced in place.
    let storage = spire_agent::storage::Storage::new(&settings.data_dir);
    if let Err(e) = storage.adopt_svid_key(settings.keys.as_ref()).await {
        tracing::warn!(error = %e, "failed to find the stored agent SVID's key");
    }
    let mut agent = match spire_agent::run::start(settings).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "agent failed to start");
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("received interrupt, stopping"); ExitCode::SUCCESS }
        _ = term.recv() => { tracing::info!("received SIGTERM, stopping"); ExitCode::SUCCESS }
        e = agent.wait() => {
            // A banned or evicted agent forgets its SVID, as SPIRE does: it must attest again.
            if matches!(e, spire_agent::run::AgentError::Revoked(_))
                && let Err(clear) = spire_agent::storage::Storage::new(&config.data_dir).clear()
            {
                tracing::warn!(error = %clear, "failed to remove the revoked agent SVID");
            }
            tracing::error!(error = %e, "agent stopped");
            eprintln!("{e}");
            ExitCode::from(1)
        }
    };
    agent.shutdown().await;
    code
}

/// Raises the soft limit on open files to the hard one, as Go programs (SPIRE included) do at start:
/// each Workload API connection holds a few descriptors (socket, `/proc` handles, pidfd), and the
/// usual soft limit of 1,024 would cap connected workloads at a few hundred.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "could not raise the open file limit");
        }
    }
}
