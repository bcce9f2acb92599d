//! `bundle list`: federated bundles (`Bundle/ListFederatedBundles`), or one (`Bundle/GetFederatedBundle`)
//! with `-id`.

use spire_proto::spire::api::server::bundle::v1::{
    GetFederatedBundleRequest, ListFederatedBundlesRequest, ListFederatedBundlesResponse,
};
use spire_proto::spire::api::types::Bundle;

use super::{BundleFormat, SHOW_FORMAT_USAGE, client, format, parse_format};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Lists federated bundle data";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("id", "", "SPIFFE ID of the trust domain").string("format", "pem", SHOW_FORMAT_USAGE);
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let fmt = parse_format(&f.string("format"))?;
    let id = f.string("id");
    let mut client = client(ctx).await?;
    if !id.is_empty() {
        let bundle = client
            .get_federated_bundle(GetFederatedBundleRequest { trust_domain: id, output_mask: None })
            .await?
            .into_inner();
        if ctx.json() {
            return ctx.print_json(&[JsonValue::of(&bundle)]);
        }
        let text = format::render(&bundle, fmt)?;
        return ctx.out(&text);
    }
    let mut resp = ListFederatedBundlesResponse::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_federated_bundles(ListFederatedBundlesRequest {
                output_mask: None,
                page_size: 0,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        resp.bundles.extend(page.bundles);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let text = listing(&resp.bundles, fmt)?;
    ctx.out(&text)
}

/// Each bundle behind its banner, separated by blank lines.
pub(crate) fn listing(bundles: &[Bundle], fmt: BundleFormat) -> Result<String, CliError> {
    let mut out = String::new();
    for (i, bundle) in bundles.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format::header(&bundle.trust_domain));
        out.push_str(&format::render(bundle, fmt)?);
    }
    Ok(out)
}
