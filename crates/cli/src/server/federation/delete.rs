//! `federation delete`: `TrustDomain/BatchDeleteFederationRelationship`.

use spire_proto::spire::api::server::trustdomain::v1::BatchDeleteFederationRelationshipRequest;

use super::client;
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Deletes a dynamic federation relationship";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("id", "", "SPIFFE ID of the trust domain");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let id = f.string("id");
    if id.is_empty() {
        return Err(CliError::msg("id is required"));
    }
    let resp = client(ctx)
        .await?
        .batch_delete_federation_relationship(BatchDeleteFederationRelationshipRequest { trust_domains: vec![id] })
        .await
        .map_err(|s| CliError::from(s).context("failed to delete federation relationship"))?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let Some(result) = resp.results.first() else {
        return Err(CliError::msg("internal error: cli printer; please report this bug"));
    };
    let status = result.status.clone().unwrap_or_default();
    if status.code == 0 {
        return ctx.out("federation relationship deleted.\n");
    }
    Err(CliError::msg(format!(
        "failed to delete federation relationship {}: {}",
        go_quote(&result.trust_domain),
        status.message
    )))
}
