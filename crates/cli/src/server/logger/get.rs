//! `logger get`: `Logger/GetLogger`.

use spire_proto::spire::api::server::logger::v1::GetLoggerRequest;

use super::{client, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Gets the logger details";

pub(crate) fn flags(_fs: &mut FlagSet) {}

pub(crate) async fn run(ctx: &mut Ctx<'_>, _f: &Parsed) -> Result<(), CliError> {
    let logger = client(ctx).await?.get_logger(GetLoggerRequest {}).await?.into_inner();
    print(ctx, &logger)
}
