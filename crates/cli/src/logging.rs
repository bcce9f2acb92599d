//! Process logging for the `spire-server run` and `spire-agent run` daemons: SPIRE's `log_level`,
//! `log_format` (text or JSON), `log_file` and `log_source_location`, with a handle that changes the
//! level at run time (the Logger APIs).

use std::sync::Arc;

use spire_config::log::{LogConfig, LogFormat, LogLevel as ConfigLevel};
use spire_proto::spire::api::types::LogLevel;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Applies a new level to the running logger.
pub type LevelSetter = Arc<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

/// The Logger API's level for a configured one.
pub fn api_level(level: ConfigLevel) -> LogLevel {
    match level {
        ConfigLevel::Trace => LogLevel::Trace,
        ConfigLevel::Debug => LogLevel::Debug,
        ConfigLevel::Info => LogLevel::Info,
        ConfigLevel::Warn => LogLevel::Warn,
        ConfigLevel::Error => LogLevel::Error,
        ConfigLevel::Fatal => LogLevel::Fatal,
        ConfigLevel::Panic => LogLevel::Panic,
    }
}

fn filter_for(level: LogLevel) -> EnvFilter {
    let name = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info | LogLevel::Unspecified => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Fatal | LogLevel::Panic => "error",
    };
    // The transport crates are chatty at debug; their warnings still show.
    EnvFilter::new(format!("{name},h2=warn,hyper=warn,tower=warn,sqlx=warn,rustls=warn"))
}

/// Installs the process logger per `log`; returns the handle the Logger API uses.
pub fn init(log: &LogConfig) -> Result<LevelSetter, String> {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter_for(api_level(log.level)));
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match &log.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            let file = Arc::new(file);
            Box::new(move || Box::new(file.try_clone().expect("log file handle")))
        }
        None => Box::new(|| Box::new(std::io::stderr())),
    };
    let source = log.source_location;
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_file(source).with_line_number(source);
    let registry = tracing_subscriber::registry().with(filter);
    if log.format == LogFormat::Json {
        registry.with(fmt.json()).try_init().map_err(|e| e.to_string())?;
    } else {
        registry.with(fmt.with_ansi(false)).try_init().map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(move |level| handle.reload(filter_for(level)).map_err(|e| e.to_string())))
}
