//! `entry update`: `Entry/BatchUpdateEntry` replacing an entry with the one the flags (or `-data`) give.

use spire_proto::spire::api::server::entry::v1::{BatchUpdateEntryRequest, GetEntryRequest};

use super::{client, data, fields, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Updates registration entries";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("entryID", "", "The Registration Entry ID of the record to update");
    fields::declare(fs);
}

/// Input checks, skipped when a `-data` file describes the entries.
fn validate(f: &Parsed) -> Result<(), CliError> {
    if f.string("entryID").is_empty() {
        return Err(CliError::msg("entry ID is required"));
    }
    if f.strings("selector").is_empty() {
        return Err(CliError::msg("at least one selector is required"));
    }
    if f.string("parentID").is_empty() {
        return Err(CliError::msg("a parent ID is required"));
    }
    fields::validate_common(f)
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let path = f.string("data");
    let entries = if path.is_empty() {
        validate(f)?;
        let mut entry = fields::entry_from_flags(f, f.string("entryID"), false)?;
        if fields::sets_additional_attributes(f) {
            // The flags change one attribute each; keep the others as stored.
            let stored = client(ctx)
                .await?
                .get_entry(GetEntryRequest { id: entry.id.clone(), output_mask: None })
                .await?
                .into_inner();
            entry.additional_attributes = fields::additional_attributes(f, stored.additional_attributes);
        }
        vec![entry]
    } else {
        data::parse_entries(&ctx.read_input(&path)?)?
    };
    let mut resp = client(ctx)
        .await?
        .batch_update_entry(BatchUpdateEntryRequest { entries: entries.clone(), input_mask: None, output_mask: None })
        .await?
        .into_inner();
    for (result, asked) in resp.results.iter_mut().zip(&entries) {
        if result.status.as_ref().is_some_and(|s| s.code != 0) {
            result.entry = Some(asked.clone());
        }
    }
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    let results: Vec<_> = resp.results.into_iter().map(|r| (r.status, r.entry)).collect();
    print::print_results(ctx, &results, "update")
}
