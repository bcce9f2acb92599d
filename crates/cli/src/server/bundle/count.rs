//! `bundle count`: `Bundle/CountBundles`.

use spire_proto::spire::api::server::bundle::v1::CountBundlesRequest;

use super::client;
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::common::pluralize;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Count bundles";

pub(crate) fn flags(_fs: &mut FlagSet) {}

pub(crate) async fn run(ctx: &mut Ctx<'_>, _f: &Parsed) -> Result<(), CliError> {
    let resp = client(ctx).await?.count_bundles(CountBundlesRequest {}).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let n = usize::try_from(resp.count).unwrap_or(0);
    ctx.out(&format!("{}\n", pluralize(&format!("{} ", resp.count), "bundle", "bundles", n)))
}
