//! `spire-agent api validate jwt`: ValidateJWTSVID, printed as `SVID is valid.` with the SPIFFE ID and
//! the claims (protojson of the `Struct`: compact, keys sorted) or as protojson.
//!
//! The agent answers `InvalidArgument` for a token that does not validate; SPIRE shows that status's
//! message alone (`SVID is not valid: ...`) and wraps any other failure in `unable to validate JWT
//! SVID: `.

use spire_proto::workload::{ValidateJwtsvidRequest, ValidateJwtsvidResponse};

use super::{ApiCtx, CallError, CmdError, protojson, with_header, within};
use crate::agent::vars::VarFlags;
use crate::flags::FlagSet;
use crate::output::OutputFormat;

pub(crate) const SYNOPSIS: &str = "Validates a JWT SVID";

pub(crate) fn flags(fs: &mut FlagSet, vars: &mut VarFlags) {
    fs.string("audience", "", "expected audience value").string("svid", "", "JWT SVID");
    vars.declare_output(fs);
}

pub(crate) async fn run(ctx: &mut ApiCtx<'_>) -> Result<(), CmdError> {
    let audience = ctx.flags.string("audience");
    let svid = ctx.flags.string("svid");
    if audience.is_empty() {
        return Err("audience must be specified".to_owned());
    }
    if svid.is_empty() {
        return Err("svid must be specified".to_owned());
    }
    let resp = validate(ctx, audience, svid).await.map_err(|e| match e {
        CallError::Status(s) if s.code() == tonic::Code::InvalidArgument => {
            format!("SVID is not valid: {}", s.message())
        }
        other => format!("unable to validate JWT SVID: {other}"),
    })?;
    let text = match ctx.output() {
        OutputFormat::Json => protojson::cli_json(&[protojson::validate_response(&resp)]),
        OutputFormat::Pretty => pretty(&resp),
    };
    ctx.out(&text)
}

async fn validate(ctx: &mut ApiCtx<'_>, audience: String, svid: String) -> Result<ValidateJwtsvidResponse, CallError> {
    let deadline = ctx.client.deadline();
    let client = &mut ctx.client;
    within(deadline, async {
        let mut api = client.api().await?;
        let req = with_header(ValidateJwtsvidRequest { audience, svid });
        Ok(api.validate_jwtsvid(req).await?.into_inner())
    })
    .await
}

/// SPIRE's `prettyPrintValidate`; missing claims print as protojson prints a nil message, `{}`.
fn pretty(resp: &ValidateJwtsvidResponse) -> String {
    let claims = resp.claims.as_ref().map_or_else(|| "{}".to_owned(), protojson::structure);
    format!("SVID is valid.\nSPIFFE ID : {}\nClaims    : {claims}\n", resp.spiffe_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;
    use prost_types::{ListValue, Struct, Value};

    #[test]
    fn pretty_like_spire_test() {
        // SPIRE's api_test.go TestValidateJWTCommand "valid svid".
        let aud = Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![Value { kind: Some(Kind::StringValue("foo".into())) }],
            })),
        };
        let resp = ValidateJwtsvidResponse {
            spiffe_id: "spiffe://example.org/foo".into(),
            claims: Some(Struct { fields: [("aud".to_owned(), aud)].into() }),
        };
        assert_eq!(
            pretty(&resp),
            "SVID is valid.\nSPIFFE ID : spiffe://example.org/foo\nClaims    : {\"aud\":[\"foo\"]}\n"
        );
        let bare = ValidateJwtsvidResponse { spiffe_id: "spiffe://example.org/foo".into(), claims: None };
        assert_eq!(pretty(&bare), "SVID is valid.\nSPIFFE ID : spiffe://example.org/foo\nClaims    : {}\n");
    }
}
