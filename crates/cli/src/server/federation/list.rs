//! `federation list`: `TrustDomain/ListFederationRelationships`.

use spire_proto::spire::api::server::trustdomain::v1::{
    ListFederationRelationshipsRequest, ListFederationRelationshipsResponse,
};

use super::{client, json, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::common::pluralize;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "List federation relationships";

pub(crate) fn flags(_fs: &mut FlagSet) {}

pub(crate) async fn run(ctx: &mut Ctx<'_>, _f: &Parsed) -> Result<(), CliError> {
    let mut client = client(ctx).await?;
    let mut resp = ListFederationRelationshipsResponse::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_federation_relationships(ListFederationRelationshipsRequest {
                output_mask: None,
                page_size: 0,
                page_token: page_token.clone(),
            })
            .await
            .map_err(|s| CliError::from(s).context("error listing federation relationship"))?
            .into_inner();
        resp.federation_relationships.extend(page.federation_relationships);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&json::List::new(&resp))]);
    }
    let n = resp.federation_relationships.len();
    let mut out =
        format!("{}\n", pluralize(&format!("Found {n} "), "federation relationship", "federation relationships", n));
    for fr in &resp.federation_relationships {
        out.push('\n');
        out.push_str(&print::relationship_block(fr));
    }
    ctx.out(&out)
}
