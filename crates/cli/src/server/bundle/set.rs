//! `bundle set`: creates or replaces a federated bundle (`Bundle/BatchSetFederatedBundle`) from a file or
//! stdin.

use spire_proto::spire::api::server::bundle::v1::BatchSetFederatedBundleRequest;

use super::{client, format, parse_format};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Creates or updates federated bundle data";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("id", "", "SPIFFE ID of the trust domain").string("path", "", "Path to the bundle data").string(
        "format",
        "pem",
        "The format of the bundle data. Either \"pem\" or \"spiffe\".",
    );
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let id = f.string("id");
    if id.is_empty() {
        return Err(CliError::msg("id flag is required"));
    }
    let fmt = parse_format(&f.string("format"))?;
    let path = f.string("path");
    let data = ctx.read_input(if path.is_empty() { "-" } else { &path })?;
    let bundle = format::parse(&data, fmt, &id)?;
    let resp = client(ctx)
        .await?
        .batch_set_federated_bundle(BatchSetFederatedBundleRequest { bundle: vec![bundle], output_mask: None })
        .await
        .map_err(|s| CliError::from(s).context("failed to set federated bundle"))?
        .into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    match resp.results.first().and_then(|r| r.status.clone()) {
        Some(status) if status.code == 0 => ctx.out("bundle set.\n"),
        Some(status) => Err(CliError::msg(format!("failed to set federated bundle: {}", status.message))),
        None => Err(CliError::msg("internal error: unexpected response from the server")),
    }
}
