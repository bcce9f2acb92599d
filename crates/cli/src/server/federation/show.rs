//! `federation show`: `TrustDomain/GetFederationRelationship`.

use spire_proto::spire::api::server::trustdomain::v1::GetFederationRelationshipRequest;

use super::{client, json, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Show a federation relationship";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("trustDomain", "", "The trust domain name of the federation relationship to show");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let trust_domain = f.string("trustDomain");
    if trust_domain.is_empty() {
        return Err(CliError::msg("a trust domain name is required"));
    }
    let fr = client(ctx)
        .await?
        .get_federation_relationship(GetFederationRelationshipRequest {
            trust_domain: trust_domain.clone(),
            output_mask: None,
        })
        .await
        .map_err(|s| CliError::from(s).context("error showing federation relationship"))?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&json::Relationship::new(&fr))]);
    }
    ctx.out(&format!("Found a federation relationship with trust domain {trust_domain}:\n\n"))?;
    ctx.out(&print::relationship_block(&fr))
}
