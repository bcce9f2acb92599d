//! `debug getinfo`: `Debug/GetInfo`.

use std::fmt::Write as _;

use spire_proto::spire::api::server::debug::v1::debug_client::DebugClient;
use spire_proto::spire::api::server::debug::v1::{GetInfoRequest, GetInfoResponse};

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::gotime::GoDuration;
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Prints debug information about the server";

pub(crate) fn flags(_fs: &mut FlagSet) {}

pub(crate) async fn run(ctx: &mut Ctx<'_>, _f: &Parsed) -> Result<(), CliError> {
    let resp = DebugClient::new(ctx.channel().await?).get_info(GetInfoRequest {}).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    ctx.out(&pretty(&resp))
}

/// The pretty report.
pub(crate) fn pretty(resp: &GetInfoResponse) -> String {
    let mut out = String::from("Server Debug Info:\n");
    let _ = writeln!(out, "  Uptime:                  {}", GoDuration::from_secs(i64::from(resp.uptime)));
    let _ = writeln!(out, "  Registered Agents:       {}", resp.agents_count);
    let _ = writeln!(out, "  Registration Entries:    {}", resp.entries_count);
    let _ = writeln!(out, "  Federated Bundles:       {}", resp.federated_bundles_count);
    if !resp.svid_chain.is_empty() {
        out.push_str("  SVID Chain:\n");
        for (i, cert) in resp.svid_chain.iter().enumerate() {
            let id = cert
                .id
                .as_ref()
                .map(|id| format!("spiffe://{}{}", id.trust_domain, id.path))
                .unwrap_or_else(|| "(none)".to_owned());
            let expires = jiff::Timestamp::from_second(cert.expires_at)
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            let _ = writeln!(out, "    [{i}] SPIFFE ID:  {id}");
            let _ = writeln!(out, "        Subject:    {}", cert.subject);
            let _ = writeln!(out, "        Expires At: {expires}");
        }
    }
    out
}
