//! Filters and pagination for the list and count operations, with the semantics of SPIRE's
//! ListEntries/CountEntries and ListAgents/CountAgents. All filters given must match (AND).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use spire_identity::{MatchMode, SelectorSet, SpiffeId, TrustDomain};

use crate::DataStoreError;

/// Which registration entries to list or count; `Default` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Entries with this SPIFFE ID.
    pub by_spiffe_id: Option<SpiffeId>,
    /// Entries with this parent ID.
    pub by_parent_id: Option<SpiffeId>,
    /// Entries whose selectors match the set under the mode (see [`SelectorSet::matches`]).
    /// The set must not be empty.
    pub by_selectors: Option<(SelectorSet, MatchMode)>,
    /// Entries whose federated trust domains match the list under the mode, with the selector
    /// semantics applied to the set of trust domains. An entry that federates with nothing matches
    /// no such filter, as in SPIRE. The list must not be empty.
    pub by_federates_with: Option<(Vec<TrustDomain>, MatchMode)>,
    /// Entries with exactly this hint.
    pub by_hint: Option<String>,
    /// Entries with this `downstream` flag.
    pub by_downstream: Option<bool>,
}

/// Which attested nodes to list or count; `Default` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Nodes attested by this attestor.
    pub by_attestation_type: Option<String>,
    /// Nodes whose selectors match the set under the mode; a node without selectors matches no
    /// such filter. The set must not be empty.
    pub by_selectors: Option<(SelectorSet, MatchMode)>,
    /// Banned (`true`) or not banned (`false`) nodes.
    pub by_banned: Option<bool>,
    /// Nodes whose current certificate expires before this time (unix s).
    pub by_expires_before: Option<i64>,
    /// Nodes that can (`true`) or cannot (`false`) re-attest.
    pub by_can_reattest: Option<bool>,
}

/// One page of a listing. Results come in a fixed order (entries by ID, nodes by SPIFFE ID, bundles
/// and federation relationships by trust domain), so pages neither overlap nor skip records that
/// existed throughout the walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pagination {
    /// Maximum records per page; must be at least 1.
    pub page_size: u32,
    /// Empty for the first page; otherwise the token returned with the previous page.
    pub token: String,
}

impl Pagination {
    /// The first page of `page_size` records.
    pub fn first(page_size: u32) -> Self {
        Self { page_size, token: String::new() }
    }

    /// The page after the one that returned `token`.
    pub fn next(&self, token: impl Into<String>) -> Self {
        Self { page_size: self.page_size, token: token.into() }
    }

    /// Checks the page size and decodes the token into the sort key of the last record already
    /// returned (`None` for the first page).
    pub(crate) fn cursor(&self) -> Result<Option<String>, DataStoreError> {
        if self.page_size == 0 {
            return Err(DataStoreError::invalid("cannot paginate with a page size of 0: ask for at least 1"));
        }
        if self.token.is_empty() {
            return Ok(None);
        }
        URL_SAFE_NO_PAD.decode(&self.token).ok().and_then(|bytes| String::from_utf8(bytes).ok()).map(Some).ok_or_else(
            || {
                DataStoreError::invalid(format!(
                    "could not parse page token {:?}: pass back the token of the previous page unchanged",
                    self.token
                ))
            },
        )
    }
}

/// The opaque token for "the page after the record with this sort key".
pub(crate) fn page_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key.as_bytes())
}

/// Cuts a result fetched with one row of look-ahead (`LIMIT page_size + 1`) down to the page and
/// returns the next page's token: "" exactly when nothing follows.
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    pagination: Option<&Pagination>,
    key: impl Fn(&T) -> &str,
) -> (Vec<T>, String) {
    match pagination {
        Some(p) if rows.len() > p.page_size as usize => {
            rows.truncate(p.page_size as usize);
            let token = rows.last().map(|last| page_token(key(last))).unwrap_or_default();
            (rows, token)
        }
        _ => (rows, String::new()),
    }
}

/// The `LIMIT` that fetches one page plus one row of look-ahead.
pub(crate) fn look_ahead_limit(pagination: &Pagination) -> i64 {
    i64::from(pagination.page_size) + 1
}

/// Refuses filters whose set is empty: under SPIRE's rules they would match nothing or everything
/// depending on the mode, which is never what a caller meant.
pub(crate) fn check_filters(
    selectors: Option<&(SelectorSet, MatchMode)>,
    federates_with: Option<&(Vec<TrustDomain>, MatchMode)>,
) -> Result<(), DataStoreError> {
    if selectors.is_some_and(|(set, _)| set.is_empty()) {
        return Err(DataStoreError::invalid("the selector filter is empty: give at least one selector"));
    }
    if federates_with.is_some_and(|(tds, _)| tds.is_empty()) {
        return Err(DataStoreError::invalid("the federates-with filter is empty: give at least one trust domain"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let p = Pagination::first(2).next(page_token("entry-1"));
        assert_eq!(p.cursor().unwrap().as_deref(), Some("entry-1"));
        assert_eq!(Pagination::first(2).cursor().unwrap(), None);
        assert!(matches!(Pagination::first(0).cursor(), Err(DataStoreError::InvalidArgument(_))));
        assert!(matches!(Pagination::first(1).next("!!").cursor(), Err(DataStoreError::InvalidArgument(_))));
    }
}
