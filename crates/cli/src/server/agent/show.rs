//! `agent show`: one attested agent (`Agent/GetAgent`).

use spire_proto::spire::api::server::agent::v1::GetAgentRequest;

use super::{client, declare_spiffe_id, print, required_id};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Shows the details of an attested agent given its SPIFFE ID";

pub(crate) fn flags(fs: &mut FlagSet) {
    declare_spiffe_id(fs, "show");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let id = required_id(f)?;
    let agent = client(ctx).await?.get_agent(GetAgentRequest { id: Some(id), output_mask: None }).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&agent)]);
    }
    let text = print::agent_details(&agent, &ctx.zone);
    ctx.out(&text)
}
