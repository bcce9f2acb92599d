//! `spire-server federation create|update|delete|list|show|refresh`: federation relationships
//! (TrustDomain API).

pub(crate) mod config;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod json;
pub(crate) mod list;
pub(crate) mod print;
pub(crate) mod refresh;
pub(crate) mod show;
pub(crate) mod update;

use spire_proto::spire::api::server::trustdomain::v1::trust_domain_client::TrustDomainClient;
use tonic::transport::Channel;

use super::ctx::Ctx;
use crate::error::CliError;

pub(crate) async fn client(ctx: &mut Ctx<'_>) -> Result<TrustDomainClient<Channel>, CliError> {
    Ok(TrustDomainClient::new(ctx.channel().await?))
}
