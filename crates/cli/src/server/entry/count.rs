//! `entry count`: `Entry/CountEntries` with the same filters as `entry show`.

use spire_proto::spire::api::server::entry::v1::CountEntriesRequest;

use super::client;
use super::filter::{self, EntryFilter};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::common::pluralize;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Count registration entries";

pub(crate) fn flags(fs: &mut FlagSet) {
    filter::declare(fs, "count");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let filter = EntryFilter::from_flags(f)?.count();
    let resp = client(ctx).await?.count_entries(CountEntriesRequest { filter: Some(filter) }).await?.into_inner();
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    ctx.out(&count_line(resp.count))
}

/// `3 registration entries` / `1 registration entry`.
pub(crate) fn count_line(count: i32) -> String {
    let n = usize::try_from(count).unwrap_or(0);
    format!("{}\n", pluralize(&format!("{count} registration "), "entry", "entries", n))
}
