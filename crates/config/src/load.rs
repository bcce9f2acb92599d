//! From file or text to a [`Value`] tree: reading, `-expandEnv` expansion, and choosing between the
//! HCL and JSON parsers the way HCL v1 does (JSON when the first non-blank character is `{`).

use std::path::Path;

use crate::env::expand_env;
use crate::error::ConfigError;
use crate::value::Value;
use crate::{hcl, json};

/// The two syntaxes SPIRE accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HCL v1.
    Hcl,
    /// JSON.
    Json,
}

impl Format {
    /// JSON if the first non-blank character is `{`, HCL otherwise.
    pub fn detect(text: &str) -> Self {
        if text.trim_start().starts_with('{') { Self::Json } else { Self::Hcl }
    }
}

/// Parses configuration text, expanding `$VAR` / `${VAR}` first if `expand_env` is set.
pub fn parse_str(text: &str, expand_env_vars: bool) -> Result<Value, ConfigError> {
    let expanded;
    let text = if expand_env_vars {
        expanded = expand_env(text);
        expanded.as_str()
    } else {
        text
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match Format::detect(text) {
        Format::Hcl => hcl::parse(text),
        Format::Json => json::parse(text),
    }
}

/// Reads and parses a configuration file. A missing file gets SPIRE's message, with the absolute
/// path, since the usual cause is running from another directory.
pub fn read_file(path: &Path, expand_env_vars: bool) -> Result<Value, ConfigError> {
    let text = read_text(path)?;
    parse_str(&text, expand_env_vars)
}

/// Reads a configuration file as text.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
            Err(ConfigError::NotFound { path })
        }
        Err(source) => Err(ConfigError::Read { path: path.to_owned(), source }),
    }
}
