//! `federation create`: `TrustDomain/BatchCreateFederationRelationship`.

use spire_proto::spire::api::server::trustdomain::v1::BatchCreateFederationRelationshipRequest;

use super::{client, config, json, print};
use crate::error::{CliError, go_code_name};
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Creates a dynamic federation relationship with a foreign trust domain";

pub(crate) fn flags(fs: &mut FlagSet) {
    config::declare(fs);
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let asked = config::relationships(f, &mut |path| ctx.read_input(path))?;
    let mut resp = client(ctx)
        .await?
        .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
            federation_relationships: asked.clone(),
            output_mask: None,
        })
        .await
        .map_err(|s| CliError::from(s).context("request failed"))?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&json::Batch::create(&resp))]);
    }
    for (result, fr) in resp.results.iter_mut().zip(&asked) {
        if result.status.as_ref().is_some_and(|s| s.code != 0) {
            result.federation_relationship = Some(fr.clone());
        }
    }
    let results: Vec<_> = resp.results.into_iter().map(|r| (r.status, r.federation_relationship)).collect();
    print_results(ctx, &results, "create")
}

/// Succeeded relationships on stdout, failed ones on stderr, each after an empty line on stdout.
pub(crate) fn print_results(
    ctx: &mut Ctx<'_>,
    results: &[(
        Option<spire_proto::spire::api::types::Status>,
        Option<spire_proto::spire::api::types::FederationRelationship>,
    )],
    verb: &str,
) -> Result<(), CliError> {
    let failed = |s: &Option<spire_proto::spire::api::types::Status>| s.as_ref().is_some_and(|s| s.code != 0);
    for (_, fr) in results.iter().filter(|(s, _)| !failed(s)) {
        ctx.out("\n")?;
        ctx.out(&print::relationship_block(&fr.clone().unwrap_or_default()))?;
    }
    let mut any = false;
    for (status, fr) in results.iter().filter(|(s, _)| failed(s)) {
        any = true;
        let status = status.clone().unwrap_or_default();
        ctx.out("\n")?;
        ctx.err(&format!(
            "Failed to {verb} the following federation relationship (code: {}, msg: {}):\n",
            go_code_name(status.code),
            go_quote(&status.message)
        ))?;
        ctx.err(&print::relationship_block(&fr.clone().unwrap_or_default()))?;
    }
    if any {
        return Err(CliError::msg(format!("failed to {verb} one or more federation relationships")));
    }
    Ok(())
}
