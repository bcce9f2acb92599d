//! `token generate`: `Agent/CreateJoinToken`.

use spire_proto::spire::api::server::agent::v1::CreateJoinTokenRequest;
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::common::id_to_proto;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Generates a join token";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.int("ttl", 600, "Token TTL in seconds").string(
        "spiffeID",
        "",
        "Additional SPIFFE ID to assign the token owner (optional)",
    );
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let spiffe_id = f.string("spiffeID");
    let agent_id = if spiffe_id.is_empty() { None } else { Some(id_to_proto(&spiffe_id)?) };
    let token = AgentClient::new(ctx.channel().await?)
        .create_join_token(CreateJoinTokenRequest { ttl: f.int("ttl") as i32, token: String::new(), agent_id })
        .await?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&token)]);
    }
    ctx.out(&format!("Token: {}\n", token.value))?;
    if spiffe_id.is_empty() {
        ctx.out("Warning: Missing SPIFFE ID.\n")?;
    }
    Ok(())
}
