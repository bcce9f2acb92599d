//! `spire-server run` and `spire-server validate`: flags, config loading, logging, signals.

use std::path::PathBuf;
use std::sync::Arc;

use spire_config::{ServerConfig, ServerOverrides};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::api::logger::LevelSetter;

/// The flags of `run` and `validate`.
#[derive(Debug, Default)]
pub struct RunFlags {
    /// `-config`.
    pub config: Option<PathBuf>,
    /// `-expandEnv`.
    pub expand_env: bool,
    /// Everything that overrides the file.
    pub overrides: ServerOverrides,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

/// Parses Go-style flags (`-name value`, `-name=value`, `--name`, bare booleans).
pub fn parse_flags(args: &[String]) -> Result<RunFlags, FlagError> {
    let mut flags = RunFlags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(FlagError(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let bool_flag = matches!(name, "expandEnv" | "logSourceLocation");
        let value = if bool_flag {
            inline.unwrap_or_else(|| "true".into())
        } else if let Some(v) = inline {
            v
        } else {
            i += 1;
            args.get(i).cloned().ok_or_else(|| FlagError(format!("flag needs an argument: -{name}")))?
        };
        let parse_bool = |v: &str| {
            matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
                || (!matches!(v, "0" | "f" | "F" | "false" | "FALSE" | "False") && v.is_empty())
        };
        let o = &mut flags.overrides;
        match name {
            "config" => flags.config = Some(PathBuf::from(value)),
            "expandEnv" => flags.expand_env = parse_bool(&value),
            "logSourceLocation" => o.log_source_location = parse_bool(&value),
            "bindAddress" => o.bind_address = Some(value),
            "serverPort" => {
                o.server_port =
                    Some(value.parse().map_err(|_| {
                        FlagError(format!("invalid value {value:?} for flag -serverPort: parse error"))
                    })?);
            }
            "dataDir" => o.data_dir = Some(PathBuf::from(value)),
            "trustDomain" => o.trust_domain = Some(value),
            "socketPath" => o.socket_path = Some(PathBuf::from(value)),
            "logLevel" => o.log_level = Some(value),
            "logFormat" => o.log_format = Some(value),
            "logFile" => o.log_file = Some(PathBuf::from(value)),
            other => return Err(FlagError(format!("flag provided but not defined: -{other}"))),
        }
        i += 1;
    }
    Ok(flags)
}

/// Loads the configuration the flags point at.
pub fn load_config(flags: &RunFlags) -> Result<ServerConfig, spire_config::ConfigError> {
    let path = flags.config.clone().unwrap_or_else(|| PathBuf::from(spire_config::server::DEFAULT_CONFIG_PATH));
    ServerConfig::load_file(path, flags.expand_env, &flags.overrides)
}

fn filter_for(level: spire_proto::spire::api::types::LogLevel) -> EnvFilter {
    use spire_proto::spire::api::types::LogLevel as L;
    let name = match level {
        L::Trace => "trace",
        L::Debug => "debug",
        L::Info | L::Unspecified => "info",
        L::Warn => "warn",
        L::Error | L::Fatal | L::Panic => "error",
    };
    EnvFilter::new(format!("{name},h2=warn,hyper=warn,tower=warn,sqlx=warn,rustls=warn"))
}

/// Installs the process logger per the config; returns the handle the Logger API uses.
pub fn init_logging(config: &ServerConfig) -> Result<LevelSetter, String> {
    let level = crate::api::logger_level(config.log.level);
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter_for(level));
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match &config.log.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            let file = Arc::new(file);
            Box::new(move || Box::new(file.clone().try_clone().expect("log file handle")))
        }
        None => Box::new(|| Box::new(std::io::stderr())),
    };
    let json = config.log.format == spire_config::log::LogFormat::Json;
    let source = config.log.source_location;
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_file(source).with_line_number(source);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt.json()).try_init().map_err(|e| e.to_string())?;
    } else {
        registry.with(fmt.with_ansi(false)).try_init().map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(move |level| handle.reload(filter_for(level)).map_err(|e| e.to_string())))
}
