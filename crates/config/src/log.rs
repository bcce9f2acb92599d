//! The `log_*` keys shared by the server and agent blocks.

use std::fmt;
use std::path::PathBuf;

/// A log level, named as SPIRE (logrus) names them; parsing is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (SPIRE's default).
    #[default]
    Info,
    /// Something to look at.
    Warn,
    /// Failures.
    Error,
    /// Failures that stop the process.
    Fatal,
    /// Failures that panic.
    Panic,
}

impl LogLevel {
    /// Parses `DEBUG`, `info`, `Warn`, `warning`... as logrus does.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" => Self::Error,
            "fatal" => Self::Fatal,
            "panic" => Self::Panic,
            _ => return None,
        })
    }

    /// The lower-case name (`debug`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warning",
            Self::Error => "error",
            Self::Fatal => "fatal",
            Self::Panic => "panic",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// logfmt-style text (SPIRE's default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Logging settings of a server or agent block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `log_level`, default `INFO`.
    pub level: LogLevel,
    /// `log_format`, default `text`.
    pub format: LogFormat,
    /// `log_file`: where to write logs instead of stderr.
    pub file: Option<PathBuf>,
    /// `log_source_location`: add file, line and function to each line.
    pub source_location: bool,
}

pub(crate) fn level_error(key_path: &str, value: &str) -> String {
    format!(
        "{key_path} {value:?} is not a valid log level: use one of DEBUG, INFO, WARN, ERROR (or TRACE, FATAL, PANIC)"
    )
}

pub(crate) fn format_error(key_path: &str, value: &str) -> String {
    format!("{key_path} {value:?} is not a valid log format: use \"text\" or \"json\"")
}
