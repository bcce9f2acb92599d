//! `bundle delete`: `Bundle/BatchDeleteFederatedBundle` with a deletion mode.

use spire_proto::spire::api::server::bundle::v1::BatchDeleteFederatedBundleRequest;
use spire_proto::spire::api::server::bundle::v1::batch_delete_federated_bundle_request::Mode;

use super::client;
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Deletes bundle data";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("id", "", "SPIFFE ID of the trust domain").string(
        "mode",
        "restrict",
        "Deletion mode: one of restrict, delete, or dissociate",
    );
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let id = f.string("id");
    if id.is_empty() {
        return Err(CliError::msg("id is required"));
    }
    let mode_text = f.string("mode");
    let mode = match mode_text.to_ascii_lowercase().as_str() {
        "restrict" => Mode::Restrict,
        "delete" => Mode::Delete,
        "dissociate" => Mode::Dissociate,
        _ => return Err(CliError::msg(format!("unsupported mode {}", go_quote(&mode_text)))),
    };
    let resp = client(ctx)
        .await?
        .batch_delete_federated_bundle(BatchDeleteFederatedBundleRequest {
            trust_domains: vec![id.clone()],
            mode: mode as i32,
        })
        .await
        .map_err(|s| CliError::from(s).context("failed to delete federated bundle"))?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    match resp.results.first().and_then(|r| r.status.clone()) {
        Some(status) if status.code == 0 => ctx.out("bundle deleted.\n"),
        Some(status) => {
            Err(CliError::msg(format!("failed to delete federated bundle {}: {}", go_quote(&id), status.message)))
        }
        None => Err(CliError::msg("internal error: unexpected response from the server")),
    }
}
