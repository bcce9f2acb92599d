//! `federation update`: `TrustDomain/BatchUpdateFederationRelationship`.

use spire_proto::spire::api::server::trustdomain::v1::BatchUpdateFederationRelationshipRequest;

use super::create::print_results;
use super::{client, config, json};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Updates a dynamic federation relationship with a foreign trust domain";

pub(crate) fn flags(fs: &mut FlagSet) {
    config::declare(fs);
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let asked = config::relationships(f, &mut |path| ctx.read_input(path))?;
    let mut resp = client(ctx)
        .await?
        .batch_update_federation_relationship(BatchUpdateFederationRelationshipRequest {
            federation_relationships: asked.clone(),
            input_mask: None,
            output_mask: None,
        })
        .await
        .map_err(|s| CliError::from(s).context("request failed"))?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&json::Batch::update(&resp))]);
    }
    for (result, fr) in resp.results.iter_mut().zip(&asked) {
        if result.status.as_ref().is_some_and(|s| s.code != 0) {
            result.federation_relationship = Some(fr.clone());
        }
    }
    let results: Vec<_> = resp.results.into_iter().map(|r| (r.status, r.federation_relationship)).collect();
    print_results(ctx, &results, "update")
}
