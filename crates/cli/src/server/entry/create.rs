//! `entry create`: `Entry/BatchCreateEntry` with one entry from flags, or every entry of a `-data` file.

use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;

use super::{client, data, fields, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Creates registration entries";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string(
        "entryID",
        "",
        "A custom ID for this registration entry (optional). If not set, a new entry ID will be generated",
    )
    .bool("node", false, "If set, this entry will be applied to matching nodes rather than workloads");
    fields::declare(fs);
}

/// Input checks, skipped when a `-data` file describes the entries.
fn validate(f: &Parsed) -> Result<(), CliError> {
    if f.strings("selector").is_empty() {
        return Err(CliError::msg("at least one selector is required"));
    }
    if f.bool("node") && !f.strings("federatesWith").is_empty() {
        return Err(CliError::msg("node entries can not federate"));
    }
    if f.string("parentID").is_empty() && !f.bool("node") {
        return Err(CliError::msg("a parent ID is required if the node flag is not set"));
    }
    fields::validate_common(f)
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let path = f.string("data");
    let entries = if path.is_empty() {
        validate(f)?;
        vec![fields::entry_from_flags(f, f.string("entryID"), f.bool("node"))?]
    } else {
        data::parse_entries(&ctx.read_input(&path)?)?
    };
    let mut resp = client(ctx)
        .await?
        .batch_create_entry(BatchCreateEntryRequest { entries: entries.clone(), output_mask: None })
        .await?
        .into_inner();
    // The API leaves failed entries out of the results; show what was asked for instead.
    for (result, asked) in resp.results.iter_mut().zip(&entries) {
        if result.status.as_ref().is_some_and(|s| s.code != 0) {
            result.entry = Some(asked.clone());
        }
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let results: Vec<_> = resp.results.into_iter().map(|r| (r.status, r.entry)).collect();
    print::print_results(ctx, &results, "create")
}
