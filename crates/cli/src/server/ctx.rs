//! What a running command works with: its input and output streams, the output format, the time zone
//! times are shown in, and a lazily dialled connection to the server.

use std::collections::HashMap;
use std::io::{Read, Write};

use jiff::tz::TimeZone;
use tonic::transport::Channel;

use super::DEFAULT_SOCKET_PATH;
use crate::client::connect_unix;
use crate::error::{CliError, go_path_error};
use crate::output::{JsonValue, OutputFormat, write_json};

const SOCKET_ENV: &str = "SPIRE_SERVER_PRIVATE_SOCKET";
const SOCKET_TEMPLATE_ENV: &str = "SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE";

/// The environment a command line is run in: the variables SPIRE's CLI reads and the local time zone Go
/// would print times in.
#[derive(Debug, Clone)]
pub struct Settings {
    vars: HashMap<String, String>,
    pub(crate) zone: TimeZone,
}

impl Settings {
    /// The process environment and the system time zone (`TZ`, else `/etc/localtime`, else UTC).
    pub fn from_process() -> Self {
        let vars = [SOCKET_ENV, SOCKET_TEMPLATE_ENV]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        Self { vars, zone: TimeZone::try_system().unwrap_or(TimeZone::UTC) }
    }

    /// No environment variables, times in UTC: what tests want.
    pub fn isolated() -> Self {
        Self { vars: HashMap::new(), zone: TimeZone::UTC }
    }

    /// Sets an environment variable as the command will see it.
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    fn var(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or("")
    }
}

/// The socket to dial, as SPIRE's adapter picks it: an explicit `-socketPath`, else the
/// `-instance` substituted into `SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE`, else
/// `SPIRE_SERVER_PRIVATE_SOCKET`, else the default.
pub(crate) fn resolve_socket_path(socket_path: &str, instance: &str, settings: &Settings) -> Result<String, CliError> {
    let template = settings.var(SOCKET_TEMPLATE_ENV);
    if !instance.is_empty() {
        if template.is_empty() {
            return Err(CliError::msg(format!("you must define {SOCKET_TEMPLATE_ENV} to use the instance flag")));
        }
        if !template.contains("%i") {
            return Err(CliError::msg(format!("failed to find %i in {SOCKET_TEMPLATE_ENV}")));
        }
    }
    Ok(if socket_path != DEFAULT_SOCKET_PATH {
        socket_path.to_owned()
    } else if !instance.is_empty() {
        template.replace("%i", instance)
    } else if !settings.var(SOCKET_ENV).is_empty() {
        settings.var(SOCKET_ENV).to_owned()
    } else {
        DEFAULT_SOCKET_PATH.to_owned()
    })
}

/// One command's run.
pub(crate) struct Ctx<'a> {
    pub(crate) stdin: &'a mut dyn Read,
    pub(crate) stdout: &'a mut dyn Write,
    pub(crate) stderr: &'a mut dyn Write,
    pub(crate) output: OutputFormat,
    /// Zone for times Go prints with `time.Unix(..)` (local time).
    pub(crate) zone: TimeZone,
    socket_path: String,
    channel: Option<Channel>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        stdin: &'a mut dyn Read,
        stdout: &'a mut dyn Write,
        stderr: &'a mut dyn Write,
        output: OutputFormat,
        zone: TimeZone,
        socket_path: String,
    ) -> Self {
        Self { stdin, stdout, stderr, output, zone, socket_path, channel: None }
    }

    /// The connection to the server, dialled on first use so that input is validated before any
    /// connection is attempted.
    pub(crate) async fn channel(&mut self) -> Result<Channel, CliError> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let channel = connect_unix(&self.socket_path).await?;
        self.channel = Some(channel.clone());
        Ok(channel)
    }

    /// Whether `-output json` was given.
    pub(crate) fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Prints values as `cliprinter`'s JSON printer does.
    pub(crate) fn print_json(&mut self, values: &[JsonValue]) -> Result<(), CliError> {
        write_json(self.stdout, values)?;
        Ok(())
    }

    /// Writes text to stdout.
    pub(crate) fn out(&mut self, text: &str) -> Result<(), CliError> {
        self.stdout.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Writes text to stderr.
    pub(crate) fn err(&mut self, text: &str) -> Result<(), CliError> {
        self.stderr.write_all(text.as_bytes())?;
        Ok(())
    }

    /// The contents of `path`, or of stdin when `path` is `-`.
    pub(crate) fn read_input(&mut self, path: &str) -> Result<Vec<u8>, CliError> {
        let mut data = Vec::new();
        if path == "-" {
            self.stdin.read_to_end(&mut data)?;
        } else {
            data = std::fs::read(path).map_err(|e| go_path_error("open", path, &e))?;
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_resolution() {
        let plain = Settings::isolated();
        assert_eq!(resolve_socket_path(DEFAULT_SOCKET_PATH, "", &plain).unwrap(), DEFAULT_SOCKET_PATH);
        assert_eq!(resolve_socket_path("/x.sock", "", &plain).unwrap(), "/x.sock");

        let env = Settings::isolated().with_var(SOCKET_ENV, "/env.sock");
        assert_eq!(resolve_socket_path(DEFAULT_SOCKET_PATH, "", &env).unwrap(), "/env.sock");
        assert_eq!(resolve_socket_path("/x.sock", "", &env).unwrap(), "/x.sock");

        let tpl = Settings::isolated().with_var(SOCKET_TEMPLATE_ENV, "/run/spire-%i/api.sock");
        assert_eq!(resolve_socket_path(DEFAULT_SOCKET_PATH, "a", &tpl).unwrap(), "/run/spire-a/api.sock");

        assert_eq!(
            resolve_socket_path(DEFAULT_SOCKET_PATH, "a", &plain).unwrap_err().to_string(),
            "you must define SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE to use the instance flag"
        );
        let bad = Settings::isolated().with_var(SOCKET_TEMPLATE_ENV, "/run/x.sock");
        assert_eq!(
            resolve_socket_path(DEFAULT_SOCKET_PATH, "a", &bad).unwrap_err().to_string(),
            "failed to find %i in SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE"
        );
    }
}
