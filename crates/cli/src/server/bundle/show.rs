//! `bundle show`: the server's own bundle (`Bundle/GetBundle`).

use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;

use super::{SHOW_FORMAT_USAGE, client, format, parse_format};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Prints server CA bundle to stdout";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("format", "pem", SHOW_FORMAT_USAGE);
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let fmt = parse_format(&f.string("format"))?;
    let bundle = client(ctx).await?.get_bundle(GetBundleRequest { output_mask: None }).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&bundle)]);
    }
    let text = format::render(&bundle, fmt)?;
    ctx.out(&text)
}
