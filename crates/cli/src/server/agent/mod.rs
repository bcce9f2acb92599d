//! `spire-server agent list|show|count|ban|evict|purge`: attested agents.

pub(crate) mod ban;
pub(crate) mod count;
pub(crate) mod evict;
pub(crate) mod filter;
pub(crate) mod list;
pub(crate) mod print;
pub(crate) mod purge;
pub(crate) mod show;

use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;
use tonic::transport::Channel;

use super::common::id_to_proto;
use super::ctx::Ctx;
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use spire_proto::spire::api::types::Spiffeid;

/// A client for the Agent API.
pub(crate) async fn client(ctx: &mut Ctx<'_>) -> Result<AgentClient<Channel>, CliError> {
    Ok(AgentClient::new(ctx.channel().await?))
}

/// Declares `-spiffeID` for the commands acting on one agent; `verb` completes its usage text.
pub(crate) fn declare_spiffe_id(fs: &mut FlagSet, verb: &str) {
    fs.string("spiffeID", "", format!("The SPIFFE ID of the agent to {verb} (agent identity)"));
}

/// The required `-spiffeID`, parsed.
pub(crate) fn required_id(f: &Parsed) -> Result<Spiffeid, CliError> {
    let id = f.string("spiffeID");
    if id.is_empty() {
        return Err(CliError::msg("a SPIFFE ID is required"));
    }
    id_to_proto(&id)
}
