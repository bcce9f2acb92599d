//! The `spire-server` binary: `run` and `validate` here, every admin command in `spire-cli`.

use std::process::ExitCode;

use spire_server::cli_run::{init_logging, load_config, parse_flags};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(run(&args[2..]))
        }
        Some("validate") => validate(&args[2..]),
        _ => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            // A client command makes a few calls: one thread is all it needs, and starts faster.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let code = rt.block_on(spire_cli::server::run(args[1..].to_vec(), &mut out, &mut err));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// SPIRE's `validate`; settings this build accepts without acting on them are listed on stderr
/// (stdout and the exit status stay SPIRE's), since they are what a SPIRE user checks a config for.
fn validate(args: &[String]) -> ExitCode {
    match spire_server::cli_run::validate(args) {
        Ok((config, notes)) => {
            for setting in spire_server::inert_settings::find(&config) {
                eprintln!("Warning: {setting}");
            }
            for note in notes {
                eprintln!("Note: {note}");
            }
            println!("SPIRE server configuration file is valid.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("SPIRE server configuration file is invalid: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: &[String]) -> ExitCode {
    let config =
        match parse_flags(args).map_err(|e| e.to_string()).and_then(|f| load_config(&f).map_err(|e| e.to_string())) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
    let set_level = match init_logging(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut server = match spire_server::run::start(&config, set_level).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "server failed to start");
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received interrupt, stopping"),
        _ = term.recv() => tracing::info!("received SIGTERM, stopping"),
        r = server.wait() => {
            if let Err(e) = r {
                tracing::error!(error = %e, "server stopped");
                return ExitCode::from(1);
            }
        }
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}
