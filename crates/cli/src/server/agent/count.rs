//! `agent count`: `Agent/CountAgents` with the filters of `agent list`.

use spire_proto::spire::api::server::agent::v1::CountAgentsRequest;

use super::client;
use super::filter::{self, AgentFilter};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::common::pluralize;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Count attested agents";

pub(crate) fn flags(fs: &mut FlagSet) {
    filter::declare(fs);
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let filter = AgentFilter::from_flags(f)?.count();
    let resp = client(ctx).await?.count_agents(CountAgentsRequest { filter: Some(filter) }).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let n = usize::try_from(resp.count).unwrap_or(0);
    ctx.out(&format!("{}\n", pluralize(&format!("{} attested ", resp.count), "agent", "agents", n)))
}
