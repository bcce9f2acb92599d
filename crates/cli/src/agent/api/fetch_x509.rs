//! `spire-agent api fetch x509` (and plain `api fetch`): the first message of FetchX509SVID, printed
//! with SPIRE's X509-SVID layout or as protojson, optionally written to PEM files.
//!
//! Only the pretty path parses and verifies the response (as SPIRE's custom pretty printer does), so
//! `-silent` and `-write` apply to pretty output only, and a broken response is still printed in JSON.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Instant, SystemTime};

use spire_identity::x509::certs_to_pem;
use spire_proto::workload::{X509svidRequest, X509svidResponse};

use super::svid::{Cert, X509Svid};
use super::{ApiCtx, CallError, CmdError, printer, protojson, recv, svid, with_header, within};
use crate::agent::settings::go_join;
use crate::agent::vars::VarFlags;
use crate::flags::FlagSet;
use crate::goerror::errno_text;
use crate::gotime::GoDuration;
use crate::output::OutputFormat;

/// Certificates and bundles are world-readable, as SPIRE's `diskutil.WritePubliclyReadableFile` makes them.
const PUBLIC_MODE: u32 = 0o644;
/// Keys are private (`diskutil.WritePrivateFile`).
const PRIVATE_MODE: u32 = 0o600;

pub(crate) fn flags(fs: &mut FlagSet, vars: &mut VarFlags) {
    fs.bool("silent", false, "Suppress stdout").string(
        "write",
        "",
        "Write SVID data to the specified path (optional; only available for pretty output format)",
    );
    vars.declare_output(fs);
}

pub(crate) async fn run(ctx: &mut ApiCtx<'_>) -> Result<(), CmdError> {
    let start = Instant::now();
    let resp = fetch(ctx).await;
    let elapsed = GoDuration(i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX));
    let resp = resp.map_err(|e| e.to_string())?;
    match ctx.output() {
        OutputFormat::Json => ctx.out(&protojson::cli_json(&[protojson::x509_svid_response(&resp)])),
        OutputFormat::Pretty => pretty(ctx, &resp, elapsed),
    }
}

/// The stream's first message, under one deadline; the stream is then dropped.
async fn fetch(ctx: &mut ApiCtx<'_>) -> Result<X509svidResponse, CallError> {
    let deadline = ctx.client.deadline();
    let client = &mut ctx.client;
    within(deadline, async {
        let mut api = client.api().await?;
        let mut stream = api.fetch_x509svid(with_header(X509svidRequest {})).await?.into_inner();
        recv(&mut stream).await
    })
    .await
}

fn pretty(ctx: &mut ApiCtx<'_>, resp: &X509svidResponse, elapsed: GoDuration) -> Result<(), CmdError> {
    let svids = svid::parse_and_validate(resp, SystemTime::now())?;
    if !ctx.flags.bool("silent") {
        ctx.out(&printer::x509_svids(&svids, elapsed))?;
    }
    let dir = ctx.flags.string("write");
    if !dir.is_empty() {
        write_response(ctx, &dir, &svids)?;
    }
    Ok(())
}

/// SPIRE's `writeResponse`: per SVID `svid.N.pem`, `svid.N.key`, `bundle.N.pem` and
/// `federated_bundle.N.M.pem`, each announced on stdout (even with `-silent`).
fn write_response(ctx: &mut ApiCtx<'_>, dir: &str, svids: &[X509Svid]) -> Result<(), CmdError> {
    for (i, svid) in svids.iter().enumerate() {
        let svid_path = go_join(dir, &format!("svid.{i}.pem"));
        let key_path = go_join(dir, &format!("svid.{i}.key"));
        let bundle_path = go_join(dir, &format!("bundle.{i}.pem"));

        ctx.out(&format!("Writing SVID #{i} to file {svid_path}.\n"))?;
        write_certs(&svid_path, &svid.certificates)?;
        ctx.out(&format!("Writing key #{i} to file {key_path}.\n"))?;
        write_file(&key_path, svid.private_key.to_pem().as_bytes(), PRIVATE_MODE)?;
        ctx.out(&format!("Writing bundle #{i} to file {bundle_path}.\n"))?;
        write_certs(&bundle_path, &svid.bundle)?;

        for (j, (trust_domain, bundle)) in svid.federated.iter().enumerate() {
            let path = go_join(dir, &format!("federated_bundle.{i}.{j}.pem"));
            ctx.out(&format!("Writing federated bundle #{j} for trust domain {trust_domain} to file {path}.\n"))?;
            write_certs(&path, bundle)?;
        }
    }
    Ok(())
}

fn write_certs(path: &str, certs: &[Cert]) -> Result<(), CmdError> {
    let ders: Vec<&[u8]> = certs.iter().map(|c| c.der.as_slice()).collect();
    write_file(path, certs_to_pem(&ders).as_bytes(), PUBLIC_MODE)
}

/// `os.OpenFile(path, O_WRONLY|O_CREATE|O_TRUNC, mode)` then a write: the mode applies to new files
/// (less the umask); an existing file keeps its own, as in SPIRE.
fn write_file(path: &str, data: &[u8], mode: u32) -> Result<(), CmdError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("open {path}: {}", errno_text(&e)))?;
    file.write_all(data).map_err(|e| format!("write {path}: {}", errno_text(&e)))
}
