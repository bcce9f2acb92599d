//! `spire-server bundle show|list|set|delete|count`: the server's own bundle and federated bundles.

pub(crate) mod count;
pub(crate) mod delete;
pub(crate) mod format;
pub(crate) mod list;
pub(crate) mod set;
pub(crate) mod show;

use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use tonic::transport::Channel;

use super::ctx::Ctx;
use crate::error::CliError;
use crate::flags::go_quote;

pub(crate) async fn client(ctx: &mut Ctx<'_>) -> Result<BundleClient<Channel>, CliError> {
    Ok(BundleClient::new(ctx.channel().await?))
}

/// How bundles are read and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BundleFormat {
    /// PEM `CERTIFICATE` blocks of the X.509 authorities.
    Pem,
    /// The SPIFFE bundle (JWKS) document.
    Spiffe,
}

/// `-format` usage of `bundle show` and `bundle list`.
pub(crate) const SHOW_FORMAT_USAGE: &str =
    "The format to show the bundle (only pretty output format supports this flag). Either \"pem\" or \"spiffe\".";

/// Parses `-format`, case-insensitively.
pub(crate) fn parse_format(text: &str) -> Result<BundleFormat, CliError> {
    match text.to_ascii_lowercase().as_str() {
        "pem" => Ok(BundleFormat::Pem),
        "spiffe" => Ok(BundleFormat::Spiffe),
        _ => Err(CliError::msg(format!("invalid format: {}", go_quote(&text.to_ascii_lowercase())))),
    }
}
