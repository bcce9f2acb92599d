//! `federation refresh`: `TrustDomain/RefreshBundle`.

use spire_proto::spire::api::server::trustdomain::v1::RefreshBundleRequest;
use spire_proto::spire::api::types::Status;
use tonic::Code;

use super::client;
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Refreshes the bundle from the specified federated trust domain";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("id", "", "SPIFFE ID of the trust domain");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let id = f.string("id");
    if id.is_empty() {
        return Err(CliError::msg("id is required"));
    }
    match client(ctx).await?.refresh_bundle(RefreshBundleRequest { trust_domain: id.clone() }).await {
        Ok(_) => {}
        Err(s) if s.code() == Code::NotFound => {
            return Err(CliError::msg(format!(
                "there is no federation relationship with trust domain {}",
                go_quote(&id)
            )));
        }
        Err(s) => return Err(CliError::from(s).context("failed to refresh bundle")),
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&Status { code: 0, message: "OK".into() })]);
    }
    ctx.out("Bundle refreshed\n")
}
