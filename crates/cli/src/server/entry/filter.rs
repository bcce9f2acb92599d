//! The filter flags `entry show` and `entry count` share, and the API filter they build.

use spire_proto::spire::api::server::entry::v1::{count_entries_request, list_entries_request};
use spire_proto::spire::api::types::{FederatesWithMatch, SelectorMatch, Spiffeid};

use crate::error::CliError;
use crate::flags::{FlagSet, Parsed, go_quote};
use crate::server::common::{MATCH_SELECTORS_USAGE, SELECTOR_USAGE, id_to_proto, parse_match, parse_selector};

/// Declares the filter flags; `verb` is `show` or `count`, as the usage texts say.
pub(crate) fn declare(fs: &mut FlagSet, verb: &str) {
    fs.string("parentID", "", format!("The Parent ID of the records to {verb}"))
        .string("spiffeID", "", format!("The SPIFFE ID of the records to {verb}"))
        .bool(
            "downstream",
            false,
            "A boolean value that, when set, indicates that the entry describes a downstream SPIRE server",
        )
        .strings("selector", SELECTOR_USAGE)
        .strings("federatesWith", "SPIFFE ID of a trust domain an entry is federate with. Can be used more than once")
        .string(
            "matchFederatesWithOn",
            "superset",
            "The match mode used when filtering by federates with. Options: exact, any, superset and subset",
        )
        .string("matchSelectorsOn", "superset", MATCH_SELECTORS_USAGE)
        .string("hint", "", format!("The Hint of the records to {verb} (optional)"));
}

/// The filter both ListEntries and CountEntries take.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct EntryFilter {
    by_spiffe_id: Option<Spiffeid>,
    by_parent_id: Option<Spiffeid>,
    by_selectors: Option<SelectorMatch>,
    by_federates_with: Option<FederatesWithMatch>,
    by_hint: Option<String>,
    by_downstream: Option<bool>,
}

fn match_mode(text: &str) -> Result<i32, CliError> {
    parse_match(text).ok_or_else(|| CliError::msg(format!("match behavior {} unknown", go_quote(text))))
}

impl EntryFilter {
    /// Builds the filter from the flags, with SPIRE's messages for bad values.
    pub(crate) fn from_flags(f: &Parsed) -> Result<Self, CliError> {
        let mut filter = Self::default();
        let parent = f.string("parentID");
        if !parent.is_empty() {
            filter.by_parent_id = Some(
                id_to_proto(&parent)
                    .map_err(|e| e.context(&format!("error parsing parent ID {}", go_quote(&parent))))?,
            );
        }
        let spiffe_id = f.string("spiffeID");
        if !spiffe_id.is_empty() {
            filter.by_spiffe_id = Some(
                id_to_proto(&spiffe_id)
                    .map_err(|e| e.context(&format!("error parsing SPIFFE ID {}", go_quote(&spiffe_id))))?,
            );
        }
        let selectors = f.strings("selector");
        if !selectors.is_empty() {
            let mode = match_mode(&f.string("matchSelectorsOn"))?;
            let selectors = selectors
                .iter()
                .map(|s| parse_selector(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.context("error parsing selectors"))?;
            filter.by_selectors = Some(SelectorMatch { selectors, r#match: mode });
        }
        let federates_with = f.strings("federatesWith");
        if !federates_with.is_empty() {
            let mode = match_mode(&f.string("matchFederatesWithOn"))?;
            filter.by_federates_with = Some(FederatesWithMatch { trust_domains: federates_with, r#match: mode });
        }
        let hint = f.string("hint");
        if !hint.is_empty() {
            filter.by_hint = Some(hint);
        }
        if f.bool("downstream") {
            filter.by_downstream = Some(true);
        }
        Ok(filter)
    }

    /// As ListEntries' filter.
    pub(crate) fn list(&self) -> list_entries_request::Filter {
        let s = self.clone();
        list_entries_request::Filter {
            by_spiffe_id: s.by_spiffe_id,
            by_parent_id: s.by_parent_id,
            by_selectors: s.by_selectors,
            by_federates_with: s.by_federates_with,
            by_hint: s.by_hint,
            by_downstream: s.by_downstream,
        }
    }

    /// As CountEntries' filter.
    pub(crate) fn count(&self) -> count_entries_request::Filter {
        let s = self.clone();
        count_entries_request::Filter {
            by_spiffe_id: s.by_spiffe_id,
            by_parent_id: s.by_parent_id,
            by_selectors: s.by_selectors,
            by_federates_with: s.by_federates_with,
            by_hint: s.by_hint,
            by_downstream: s.by_downstream,
        }
    }
}
