//! `agent ban`: `Agent/BanAgent`.

use spire_proto::spire::api::server::agent::v1::BanAgentRequest;

use super::{client, declare_spiffe_id, required_id};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Ban an attested agent given its SPIFFE ID";

pub(crate) fn flags(fs: &mut FlagSet) {
    declare_spiffe_id(fs, "ban");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let id = required_id(f)?;
    client(ctx).await?.ban_agent(BanAgentRequest { id: Some(id) }).await?;
    if ctx.json() {
        // google.protobuf.Empty
        return ctx.print_json(&[JsonValue::of(&serde_json::Map::new())]);
    }
    ctx.out("Agent banned successfully\n")
}
