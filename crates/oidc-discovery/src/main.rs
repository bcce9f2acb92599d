//! `oidc-discovery-provider [-config <file>] [-expandEnv] [-version]`, as SPIRE's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spire_oidc_discovery::config::{Config, DEFAULT_CONFIG_PATH};
use spire_oidc_discovery::domain::DomainPolicy;
use spire_oidc_discovery::handler::Handler;
use spire_oidc_discovery::health::Health;
use spire_oidc_discovery::keyset::KeySet;
use spire_oidc_discovery::serve::{self, Listener};

const USAGE: &str = "Usage of oidc-discovery-provider:
  -config string
    \tconfiguration file (default \"oidc-discovery-provider.conf\")
  -expandEnv
    \texpand environment variables in config file
  -version
    \tprint version
";

#[derive(Debug)]
struct Flags {
    config: PathBuf,
    expand_env: bool,
    version: bool,
}

/// Go's `flag` syntax: `-name value`, `-name=value`, `--name`; booleans take no value.
fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags { config: DEFAULT_CONFIG_PATH.into(), expand_env: false, version: false };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')).filter(|n| !n.is_empty()) else {
            return Err(format!("Error: unexpected arguments: [{}]", args[i..].join(" ")));
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (name, None),
        };
        let boolean = |v: Option<String>| match v.as_deref() {
            None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
            Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(format!("invalid boolean value {other:?} for -{name}: parse error")),
        };
        match name {
            "config" => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i).cloned().ok_or("flag needs an argument: -config")?
                    }
                };
                flags.config = value.into();
            }
            "expandEnv" => flags.expand_env = boolean(inline)?,
            "version" => flags.version = boolean(inline)?,
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
        i += 1;
    }
    Ok(flags)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match parse_flags(&args) {
        Ok(f) => f,
        Err(e) => {
            eprint!("{e}\n{USAGE}");
            return ExitCode::from(if e.starts_with("Error:") { 1 } else { 2 });
        }
    };
    if flags.version {
        println!("{}", spire_cli::version::VERSION);
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(&flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(flags: &Flags) -> anyhow::Result<()> {
    let config = Config::from_file(&flags.config, flags.expand_env)?;
    spire_cli::logging::init(&config.log).map_err(anyhow::Error::msg)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let domains = DomainPolicy::new(&config.domains)?;

    let keys = Arc::new(KeySet::new());
    let _poller = spire_oidc_discovery::source::spawn(&config.source, Arc::clone(&keys));
    let handler = Arc::new(Handler::new(
        Arc::clone(&keys),
        domains,
        config.allow_insecure_scheme,
        config.set_key_use,
        config.jwt_issuer.clone(),
        config.jwks_uri.clone(),
        &config.server_path_prefix,
    ));
    if config.log_requests {
        tracing::info!("Logging all requests");
    }
    let listener = Listener::open(&config.listen, &config.domains).await?;
    if let Some(hc) = &config.health_checks {
        let health = Arc::new(Health::new(Arc::clone(&keys), hc, config.source.poll_interval()));
        let port = hc.bind_port;
        tokio::spawn(async move {
            if let Err(e) = serve::serve_health(port, health).await {
                tracing::error!("{e}");
            }
        });
    }
    let serving = serve::serve(listener, handler, config.log_requests);
    tokio::select! {
        () = serving => Ok(()),
        signal = shutdown_signal() => signal.context("waiting for a signal"),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
