//! `spire-server logger get|set|reset`: the server's runtime log level.

pub(crate) mod get;
pub(crate) mod reset;
pub(crate) mod set;

use spire_proto::spire::api::server::logger::v1::logger_client::LoggerClient;
use spire_proto::spire::api::types::{LogLevel, Logger};
use tonic::transport::Channel;

use super::ctx::Ctx;
use crate::error::CliError;
use crate::output::JsonValue;

pub(crate) async fn client(ctx: &mut Ctx<'_>) -> Result<LoggerClient<Channel>, CliError> {
    Ok(LoggerClient::new(ctx.channel().await?))
}

/// logrus's name for a level, as SPIRE prints it.
pub(crate) fn level_name(level: i32) -> Option<&'static str> {
    Some(match LogLevel::try_from(level).ok()? {
        LogLevel::Panic => "panic",
        LogLevel::Fatal => "fatal",
        LogLevel::Error => "error",
        LogLevel::Warn => "warning",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
        LogLevel::Unspecified => return None,
    })
}

/// Prints the logger's current and launch levels.
pub(crate) fn print(ctx: &mut Ctx<'_>, logger: &Logger) -> Result<(), CliError> {
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(logger)]);
    }
    ctx.out(&pretty(logger)?)
}

pub(crate) fn pretty(logger: &Logger) -> Result<String, CliError> {
    let current = level_name(logger.current_level).ok_or_else(|| {
        CliError::msg("internal error: returned current log level is undefined; please report this as a bug")
    })?;
    let launch = level_name(logger.launch_level).ok_or_else(|| {
        CliError::msg("internal error: returned launch log level is undefined; please report this as a bug")
    })?;
    Ok(format!("Logger Level : {current}\nLaunch Level : {launch}\n\n"))
}
