//! `entry delete`: `Entry/BatchDeleteEntry` for `-entryID`, or for the IDs of a `-file`
//! (`{"ids":[...]}`, or stdin with `-`).

use serde::Deserialize;
use spire_proto::spire::api::server::entry::v1::{BatchDeleteEntryRequest, BatchDeleteEntryResponse};

use super::client;
use crate::error::{CliError, go_code_name};
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Deletes registration entries";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("entryID", "", "The Registration Entry ID of the record to delete.").string(
        "file",
        "",
        "Path to a file containing a JSON structure for batch deletion (optional). If set to '-', read from stdin.",
    );
}

/// The `-file` document.
#[derive(Debug, Deserialize)]
struct IdsFile {
    #[serde(default, alias = "IDS", alias = "Ids")]
    ids: Option<Vec<String>>,
}

/// Reads the IDs of a `-file` document.
pub(crate) fn parse_ids(data: &[u8]) -> Result<Vec<String>, CliError> {
    let doc: IdsFile = serde_json::from_slice(data).map_err(|e| {
        CliError::msg(if e.is_eof() { "unexpected end of JSON input".to_owned() } else { e.to_string() })
    })?;
    Ok(doc.ids.unwrap_or_default())
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let file = f.string("file");
    let ids = if !file.is_empty() {
        parse_ids(&ctx.read_input(&file)?)?
    } else {
        let id = f.string("entryID");
        if id.is_empty() {
            return Err(CliError::msg("an entry ID is required"));
        }
        vec![id]
    };
    let resp = client(ctx).await?.batch_delete_entry(BatchDeleteEntryRequest { ids }).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    print_results(ctx, &resp)
}

/// SPIRE's `prettyPrintDelete`: `Deleted entry with ID: <id>` per success on stdout, each failure on
/// stderr, then on stdout a blank-line-led summary (`Deleted N entries successfully`, `Failed to
/// delete M entries` or both counts), without a final newline.
fn print_results(ctx: &mut Ctx<'_>, resp: &BatchDeleteEntryResponse) -> Result<(), CliError> {
    let (succeeded, failed): (Vec<_>, Vec<_>) =
        resp.results.iter().partition(|r| r.status.as_ref().is_none_or(|s| s.code == 0));
    for r in &succeeded {
        ctx.out(&format!("Deleted entry with ID: {}\n", r.id))?;
    }
    if !succeeded.is_empty() {
        ctx.out("\n\n")?;
    }
    for r in &failed {
        let status = r.status.clone().unwrap_or_default();
        ctx.err(&format!(
            "Failed to delete entry with ID {} (code: {}, msg: {})\n",
            r.id,
            go_code_name(status.code),
            go_quote(&status.message)
        ))?;
    }
    if !failed.is_empty() {
        let summary = if succeeded.is_empty() {
            format!("Failed to delete {} entries", failed.len())
        } else {
            format!("Deleted {} entries successfully, but failed to delete {} entries", succeeded.len(), failed.len())
        };
        ctx.out(&format!("\n\n{summary}"))?;
        return Err(CliError::msg("failed to delete one or more entries"));
    }
    ctx.out(&format!("Deleted {} entries successfully", succeeded.len()))?;
    Ok(())
}
