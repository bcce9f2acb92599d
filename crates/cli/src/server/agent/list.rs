//! `agent list`: every attested agent matching the filters (`Agent/ListAgents`, 1000 per page).

use spire_proto::spire::api::server::agent::v1::{ListAgentsRequest, ListAgentsResponse};

use super::filter::{self, AgentFilter};
use super::{client, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Lists attested agents and their SPIFFE IDs";

const PAGE_SIZE: i32 = 1000;

pub(crate) fn flags(fs: &mut FlagSet) {
    filter::declare(fs);
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let filter = AgentFilter::from_flags(f)?.list();
    let mut client = client(ctx).await?;
    let mut resp = ListAgentsResponse::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_agents(ListAgentsRequest {
                filter: Some(filter.clone()),
                output_mask: None,
                page_size: PAGE_SIZE,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        resp.agents.extend(page.agents);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let text = print::agents_listing(&resp.agents, &ctx.zone);
    ctx.out(&text)
}
