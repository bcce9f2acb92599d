//! `entry show`: one entry by ID (`Entry/GetEntry`) or every entry matching the filters
//! (`Entry/ListEntries`, 500 per page), sorted as SPIRE sorts them.

use spire_proto::spire::api::server::entry::v1::{GetEntryRequest, ListEntriesRequest, ListEntriesResponse};

use super::filter::{self, EntryFilter};
use super::{client, print};
use crate::error::CliError;
use crate::flags::{FlagSet, Parsed};
use crate::output::JsonValue;
use crate::server::ctx::Ctx;

pub(crate) const SYNOPSIS: &str = "Displays configured registration entries";

/// ListEntries page size SPIRE's CLI asks for.
const PAGE_SIZE: i32 = 500;

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.string("entryID", "", "The Entry ID of the records to show");
    filter::declare(fs, "show");
}

pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let entry_id = f.string("entryID");
    if !entry_id.is_empty()
        && (!f.string("parentID").is_empty() || !f.string("spiffeID").is_empty() || !f.strings("selector").is_empty())
    {
        return Err(CliError::msg("the -entryID flag can't be combined with others"));
    }
    let mut resp = ListEntriesResponse::default();
    if entry_id.is_empty() {
        let filter = EntryFilter::from_flags(f)?.list();
        let mut client = client(ctx).await?;
        let mut page_token = String::new();
        loop {
            let page = client
                .list_entries(ListEntriesRequest {
                    filter: Some(filter.clone()),
                    output_mask: None,
                    page_size: PAGE_SIZE,
                    page_token: page_token.clone(),
                })
                .await
                .map_err(|s| CliError::from(s).context("error fetching entries"))?
                .into_inner();
            resp.entries.extend(page.entries);
            page_token = page.next_page_token;
            if page_token.is_empty() {
                break;
            }
        }
    } else {
        let entry = client(ctx)
            .await?
            .get_entry(GetEntryRequest { id: entry_id.clone(), output_mask: None })
            .await
            .map_err(|s| CliError::from(s).context(&format!("error fetching entry ID {entry_id}")))?
            .into_inner();
        resp.entries.push(entry);
    }
    print::sort_entries(&mut resp.entries);
    if ctx.json() {
        return ctx.print_json(&[JsonValue::of(&resp)]);
    }
    ctx.out(&print::entries_listing(&resp.entries))
}
