//! `spire-server entry create|update|show|count|delete`: registration entries.

pub(crate) mod count;
pub(crate) mod create;
pub(crate) mod data;
pub(crate) mod delete;
pub(crate) mod fields;
pub(crate) mod filter;
pub(crate) mod print;
pub(crate) mod show;
pub(crate) mod update;

use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use tonic::transport::Channel;

use super::ctx::Ctx;
use crate::error::CliError;

/// A client for the Entry API.
pub(crate) async fn client(ctx: &mut Ctx<'_>) -> Result<EntryClient<Channel>, CliError> {
    Ok(EntryClient::new(ctx.channel().await?))
}
