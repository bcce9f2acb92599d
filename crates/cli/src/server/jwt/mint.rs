//! `jwt mint`: `SVID/MintJWTSVID` for a SPIFFE ID and audiences; prints the token or writes it to a file.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use spire_proto::spire::api::server::svid::v1::MintJwtsvidRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::gotime::GoDuration;
use crate::output::JsonValue;
use crate::server::common::id_to_proto;
use crate::server::ctx::Ctx;
use crate::server::x509::mint::{ttl_seconds, warn_if_capped, write_file};

pub(crate) const SYNOPSIS: &str = "Mints a JWT-SVID";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("spiffeID", "", "SPIFFE ID of the JWT-SVID")
        .duration("ttl", GoDuration(0), "TTL of the JWT-SVID")
        .strings("audience", "Audience claim that will be included in the SVID. Can be used more than once.")
        .string("write", "", "File to write token to instead of stdout");
}

/// The `exp` claim of a compact JWT, read without verifying it (only to warn about capping).
fn expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("exp")?.as_i64()
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let spiffe_id = f.string("spiffeID");
    if spiffe_id.is_empty() {
        return Err(CliError::msg("spiffeID must be specified"));
    }
    let audience = f.strings("audience");
    if audience.is_empty() {
        return Err(CliError::msg("at least one audience must be specified"));
    }
    let id = id_to_proto(&spiffe_id)?;
    let ttl = f.duration("ttl");
    let resp = SvidClient::new(ctx.channel().await?)
        .mint_jwtsvid(MintJwtsvidRequest { id: Some(id), audience, ttl: ttl_seconds(ttl) })
        .await
        .map_err(|s| CliError::from(s).context("unable to mint SVID"))?
        .into_inner();
    let token = resp.svid.as_ref().map(|s| s.token.clone()).unwrap_or_default();
    if token.is_empty() {
        return Err(CliError::msg("server response missing token"));
    }
    if let Some(exp) = expiry(&token) {
        warn_if_capped(ctx, exp, ttl, "JWT-SVID")?;
    }
    let write = f.string("write");
    if !write.is_empty() {
        return write_file(std::path::Path::new(&write), &token, 0o600)
            .map_err(|e| CliError::msg(format!("unable to write token: {e}")));
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    ctx.out(&format!("{token}\n"))
}
