//! `logger set -level <level>`: `Logger/SetLogLevel`.

use spire_proto::spire::api::server::logger::v1::SetLogLevelRequest;
use spire_proto::spire::api::types::LogLevel;

use super::{client, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Sets the logger details";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("level", "", "The new log level, one of (panic, fatal, error, warn, info, debug, trace)");
}

/// The level named on the command line (logrus names, case-insensitive).
fn parse_level(text: &str) -> Option<LogLevel> {
    Some(match text.to_ascii_lowercase().as_str() {
        "panic" => LogLevel::Panic,
        "fatal" => LogLevel::Fatal,
        "error" => LogLevel::Error,
        "warn" | "warning" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return None,
    })
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let text = f.string("level");
    if text.is_empty() {
        return Err(CliError::msg("a value (-level) must be set"));
    }
    let level = parse_level(&text).ok_or_else(|| CliError::msg(format!("the value {text} is not a valid setting")))?;
    let logger = client(ctx).await?.set_log_level(SetLogLevelRequest { new_level: level as i32 }).await?.into_inner();
    print(ctx, &logger)
}
