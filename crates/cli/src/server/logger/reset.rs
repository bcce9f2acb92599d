//! `logger reset`: `Logger/ResetLogLevel` back to the level the server was launched with.

use spire_proto::spire::api::server::logger::v1::ResetLogLevelRequest;

use super::{client, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Reset the logger details to launch level";

pub(crate) fn flags(_fs: &mut FlagSet) {}

pub(crate) async fn run(ctx: &mut Ctx<'_>, _f: &Parsed) -> Result<(), CliError> {
    let logger = client(ctx).await?.reset_log_level(ResetLogLevelRequest {}).await?.into_inner();
    print(ctx, &logger)
}
