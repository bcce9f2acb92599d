//! `spire-agent api fetch jwt`: FetchJWTBundles (first message), then FetchJWTSVID, each under its own
//! deadline, printed as `token(<id>):` / `hint(<id>):` / `bundle(<td>):` blocks or as protojson.
//!
//! As in SPIRE, `-audience` is one comma-separated value (the last one given wins), `-format` is a
//! deprecated alias of `-output`, and only a failure to open the bundle stream (which, with grpc-go's
//! lazy connection, means a failure to connect) is prefixed with `failed to receive JWT bundles: `.
//! Bundles are printed in trust domain order (Go's map order is random).

use spire_proto::workload::{JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse};

use super::{ApiCtx, CallError, CmdError, protojson, recv, with_header, within};
use crate::agent::vars::{VarFlags, VarKind};
use crate::flags::FlagSet;
use crate::output::OutputFormat;

pub(crate) const SYNOPSIS: &str = "Fetches a JWT SVID from the Workload API";

pub(crate) fn flags(fs: &mut FlagSet, vars: &mut VarFlags) {
    vars.declare(fs, "audience", VarKind::CommaStrings, "comma separated list of audience values");
    fs.string("spiffeID", "", "SPIFFE ID subject (optional)");
    vars.declare_output(fs);
    vars.declare(fs, "format", VarKind::Output, "deprecated; use -output");
}

pub(crate) async fn run(ctx: &mut ApiCtx<'_>) -> Result<(), CmdError> {
    let audience = ctx.vars.list("audience");
    if audience.is_empty() {
        return Err("audience must be specified".to_owned());
    }
    let bundles = fetch_bundles(ctx).await.map_err(|e| e.to_string())?;
    let svids = fetch_svids(ctx, audience).await.map_err(|e| e.to_string())?;
    match ctx.output() {
        OutputFormat::Json => ctx.out(&protojson::cli_json(&[
            protojson::jwt_svid_response(&svids),
            protojson::jwt_bundles_response(&bundles),
        ])),
        OutputFormat::Pretty => ctx.out(&pretty(&svids, &bundles)),
    }
}

/// Why the bundles could not be fetched, worded as SPIRE wraps it.
enum BundlesError {
    /// Opening the stream failed.
    Open(CallError),
    /// The stream gave no first message.
    Recv(CallError),
}

impl From<CallError> for BundlesError {
    fn from(e: CallError) -> Self {
        Self::Recv(e)
    }
}

impl std::fmt::Display for BundlesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open(e) => write!(f, "failed to receive JWT bundles: {e}"),
            Self::Recv(e) => write!(f, "{e}"),
        }
    }
}

async fn fetch_bundles(ctx: &mut ApiCtx<'_>) -> Result<JwtBundlesResponse, BundlesError> {
    let deadline = ctx.client.deadline();
    let client = &mut ctx.client;
    within(deadline, async {
        let mut api = client.api().await.map_err(|s| BundlesError::Open(s.into()))?;
        // A status answered before any message arrives here too; grpc-go would only see it at `Recv`.
        let mut stream = api
            .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
            .await
            .map_err(|s| BundlesError::Recv(s.into()))?
            .into_inner();
        Ok(recv(&mut stream).await?)
    })
    .await
}

async fn fetch_svids(ctx: &mut ApiCtx<'_>, audience: Vec<String>) -> Result<JwtsvidResponse, CallError> {
    let deadline = ctx.client.deadline();
    let spiffe_id = ctx.flags.string("spiffeID");
    let client = &mut ctx.client;
    within(deadline, async {
        let mut api = client.api().await?;
        let req = with_header(JwtsvidRequest { audience, spiffe_id });
        Ok(api.fetch_jwtsvid(req).await?.into_inner())
    })
    .await
}

/// SPIRE's `printPrettyResult`.
fn pretty(svids: &JwtsvidResponse, bundles: &JwtBundlesResponse) -> String {
    let mut out = String::new();
    for svid in &svids.svids {
        out.push_str(&format!("token({}):\n\t{}\n", svid.spiffe_id, svid.svid));
        if !svid.hint.is_empty() {
            out.push_str(&format!("hint({}):\n\t{}\n", svid.spiffe_id, svid.hint));
        }
    }
    let mut domains: Vec<&String> = bundles.bundles.keys().collect();
    domains.sort();
    for td in domains {
        out.push_str(&format!("bundle({td}):\n\t{}\n", String::from_utf8_lossy(&bundles.bundles[td])));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_proto::workload::Jwtsvid;

    #[test]
    fn pretty_like_spire() {
        let svids = JwtsvidResponse {
            svids: vec![
                Jwtsvid { spiffe_id: "spiffe://domain1.test".into(), svid: "h.c.s".into(), hint: String::new() },
                Jwtsvid { spiffe_id: "spiffe://domain2.test".into(), svid: "h2.c2.s2".into(), hint: "internal".into() },
            ],
        };
        let bundles = JwtBundlesResponse {
            bundles: [
                ("spiffe://domain2.test".to_owned(), br#"{"keys":[]}"#.to_vec()),
                ("spiffe://domain1.test".to_owned(), br#"{"keys":[{"kty":"EC"}]}"#.to_vec()),
            ]
            .into(),
        };
        assert_eq!(
            pretty(&svids, &bundles),
            "token(spiffe://domain1.test):\n\th.c.s\n\
             token(spiffe://domain2.test):\n\th2.c2.s2\n\
             hint(spiffe://domain2.test):\n\tinternal\n\
             bundle(spiffe://domain1.test):\n\t{\"keys\":[{\"kty\":\"EC\"}]}\n\
             bundle(spiffe://domain2.test):\n\t{\"keys\":[]}\n"
        );
    }
}
