//! The one error type of this crate, and the collector that lets us report every mistake of a file
//! at once instead of making the operator fix them one run at a time.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration was refused.
///
/// Every message names the offending key by its full path (`server.bind_port`) and, when it comes
/// from the file, its line, because operators fix these by hand.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file does not exist (SPIRE's wording, with the absolute path).
    #[error("could not find config file {}: please use the -config flag", path.display())]
    NotFound {
        /// The absolute path that was tried.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("unable to read configuration at {:?}: {source}", path.display().to_string())]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid HCL or JSON.
    #[error("unable to parse configuration: line {line}, column {column}: {message}")]
    Syntax {
        /// Line of the offending token.
        line: usize,
        /// Column of the offending token.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A key that this section does not have (usually a typo).
    #[error("unknown configuration key {key:?} at line {line} ({})", section_label(section))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The dotted path of the section it is in (`server`, `plugins.DataStore.sql.plugin_data`);
        /// empty for the top level.
        section: String,
        /// Its line.
        line: usize,
    },
    /// A value of the wrong type (`bind_port = "abc"`).
    #[error("invalid value for {path} at line {line}: expected {expected}, got {found}")]
    WrongType {
        /// The dotted path of the key (`server.bind_port`).
        path: String,
        /// The line of the value.
        line: usize,
        /// What the key takes ("an integer").
        expected: &'static str,
        /// What was found, strings quoted ("\"abc\"").
        found: String,
    },
    /// A value of the right type that is not acceptable, or a missing required key.
    #[error("{message}{}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        /// What is wrong, naming the key.
        message: String,
        /// The line, when the problem is at one place in the file.
        line: Option<usize>,
    },
    /// Several of the above, in file order.
    #[error("{}", ErrorList(.0))]
    Multiple(Vec<ConfigError>),
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] at a line.
    pub fn invalid(message: impl Into<String>, line: impl Into<Option<usize>>) -> Self {
        Self::Invalid { message: message.into(), line: line.into() }
    }

    /// The individual errors: the list of a [`ConfigError::Multiple`], or this error alone.
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            Self::Multiple(list) => list.iter().flat_map(ConfigError::errors).collect(),
            other => vec![other],
        }
    }

    /// The line this error points at, if any (used to sort collected errors into file order).
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::UnknownKey { line, .. } | Self::WrongType { line, .. } => Some(*line),
            Self::Invalid { line, .. } => *line,
            Self::Multiple(list) => list.iter().filter_map(ConfigError::line).min(),
            Self::NotFound { .. } | Self::Read { .. } => None,
        }
    }
}

fn section_label(section: &str) -> String {
    if section.is_empty() { "at the top level".to_owned() } else { format!("in {section}") }
}

struct ErrorList<'a>(&'a [ConfigError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} configuration errors:", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Errors and warnings gathered while decoding, so that one run reports them all.
#[derive(Debug, Default)]
pub struct Diagnostics {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Diagnostics {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error.
    pub fn error(&mut self, error: ConfigError) {
        match error {
            ConfigError::Multiple(list) => self.errors.extend(list),
            other => self.errors.push(other),
        }
    }

    /// Records a warning (something accepted that the operator should look at).
    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The warnings recorded so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `Ok((value, warnings))` if no error was recorded; otherwise the errors in file order
    /// (errors without a line last), as one error or a [`ConfigError::Multiple`].
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<String>), ConfigError> {
        let Diagnostics { errors, warnings } = self;
        match combine(errors) {
            Some(e) => Err(e),
            None => Ok((value, warnings)),
        }
    }

    /// The recorded errors as one error, or `None`.
    pub fn into_error(self) -> Option<ConfigError> {
        combine(self.errors)
    }
}

fn combine(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
    errors.sort_by_key(|e| e.line().unwrap_or(usize::MAX));
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(ConfigError::Multiple(errors)),
    }
}
