//! The conformance suite: what every [`DataStore`] backend must do, written once against the trait.
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests) with a factory that
//! returns a fresh, empty store wrapped in a [`Harness`]; the macro expands to one `#[tokio::test]`
//! per check, so failures are reported by name and run in parallel. The calling crate needs `tokio`
//! (with the `macros` and `rt-multi-thread` features) among its dev-dependencies.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use spire_datastore::testsuite::Harness;
//! use spire_datastore::{SqliteOptions, SqlStore};
//!
//! async fn sqlite_store() -> Harness {
//!     let dir = tempfile::tempdir().unwrap();
//!     let path = dir.path().join("datastore.sqlite3");
//!     let store = SqlStore::open_path(path, SqliteOptions::default()).await.unwrap();
//!     Harness::new(Arc::new(store), dir)
//! }
//!
//! // At the top level of a test file:
//! // spire_datastore::conformance_tests!(sqlite_store);
//! ```
//!
//! Checks panic on failure. They read the clock only to bound `created_at` and to prune events;
//! every other time is passed in.

mod bundles;
mod concurrency;
mod entries;
mod entry_filters;
mod events;
mod misc;
mod nodes;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use spire_identity::x509::{CaParams, Subject, self_signed_ca};
use spire_identity::{KeyType, PrivateKey, Selector, SelectorSet, SpiffeId, TrustDomain};

use crate::{DataStore, EntryFilter, JwtKey, Pagination, RegistrationEntry, StoredBundle};

/// Every check, by name, for the macro to call.
pub mod checks {
    pub use super::bundles::*;
    pub use super::concurrency::*;
    pub use super::entries::*;
    pub use super::entry_filters::*;
    pub use super::events::*;
    pub use super::misc::*;
    pub use super::nodes::*;
}

/// A store under test plus whatever must live as long as it (a temporary directory, a database
/// container handle).
pub struct Harness {
    store: Arc<dyn DataStore>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl Harness {
    /// Wraps a fresh, empty store and the guard that keeps its backing resources alive.
    pub fn new(store: Arc<dyn DataStore>, guard: impl Any + Send + Sync) -> Self {
        Self { store, _guard: Box::new(guard) }
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn DataStore> {
        self.store.clone()
    }
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

/// What a store factory gives: a [`Harness`], or `Option<Harness>` where the backend may be missing.
pub trait MaybeHarness {
    /// The harness, if there is one.
    fn into_harness(self) -> Option<Harness>;
}

impl MaybeHarness for Harness {
    fn into_harness(self) -> Option<Harness> {
        Some(self)
    }
}

impl MaybeHarness for Option<Harness> {
    fn into_harness(self) -> Option<Harness> {
        self
    }
}

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh store from `$factory`
/// (anything callable with no arguments that returns a future of a [`Harness`], or of
/// `Option<Harness>` to skip when the backend is not available).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory;
            // entries
            entry_create_generates_id_and_normalizes,
            entry_create_keeps_given_id,
            entry_all_fields_round_trip,
            entry_ids_are_validated,
            entry_content_is_validated,
            entry_duplicate_id_is_refused,
            entry_similar_is_refused,
            entry_federating_without_bundle_is_refused,
            entry_fetch_missing_is_none,
            entry_fetch_entries_returns_found_ones,
            entry_update_changes_only_masked_fields,
            entry_update_bumps_revision_every_time,
            entry_update_missing_is_not_found,
            entry_update_refused_leaves_entry_intact,
            entry_delete_returns_entry_and_frees_it,
            entry_prune_removes_only_expired,
            // entry listing
            entries_list_everything_in_id_order,
            entries_filter_by_simple_fields,
            entries_filter_by_selectors_all_modes,
            entries_filter_by_federates_with_all_modes,
            entries_filter_combinations,
            entries_filter_refuses_empty_sets,
            entries_pagination_walks_every_page_size,
            entries_pagination_of_empty_results,
            entries_pagination_refuses_bad_requests,
            entries_pagination_survives_concurrent_inserts,
            // events
            entry_events_follow_every_write,
            failed_writes_leave_no_events,
            node_events_follow_every_write,
            events_prune_and_ids_are_never_reused,
            // nodes
            node_create_and_fetch_round_trip,
            node_duplicate_is_refused,
            node_update_changes_only_masked_fields,
            node_delete_returns_node_and_selectors,
            node_selectors_set_get_and_list,
            nodes_filter_all_fields_and_modes,
            nodes_pagination_walks_every_page_size,
            // bundles
            bundle_create_fetch_and_duplicate,
            bundle_list_count_and_pagination,
            bundle_update_changes_only_masked_fields,
            bundle_set_creates_or_replaces,
            bundle_append_merges_without_duplicates,
            bundle_delete_restrict_refuses_and_changes_nothing,
            bundle_delete_modes_handle_federated_entries,
            bundle_prune_drops_expired_authorities,
            bundle_prune_keeps_the_last_x509_authority,
            // join tokens, federation, CA journal
            join_token_lifecycle,
            join_token_prune,
            federation_relationship_lifecycle,
            ca_journal_lifecycle,
            // concurrency
            concurrent_join_token_deletes_succeed_once,
            concurrent_entry_writes_end_in_acknowledged_state,
            concurrent_updates_of_one_entry_lose_nothing,
            concurrent_similar_creates_admit_one,
            concurrent_bundle_appends_lose_nothing,
        );
    };
    (@each $factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                // `None`: the backend is not available here and the factory said so (skipped).
                let Some(harness) = $crate::testsuite::MaybeHarness::into_harness(($factory)().await) else {
                    return;
                };
                $crate::testsuite::checks::$check(harness.store()).await;
            }
        )*
    };
}

// ---- Fixtures shared by the checks ----

fn id(text: &str) -> SpiffeId {
    SpiffeId::parse(text).unwrap()
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

fn sel(text: &str) -> Selector {
    Selector::parse(text).unwrap()
}

fn sels(texts: &[&str]) -> Vec<Selector> {
    texts.iter().map(|s| sel(s)).collect()
}

fn set(texts: &[&str]) -> SelectorSet {
    texts.iter().map(|s| sel(s)).collect()
}

/// An entry under `spiffe://example.org/<parent>` for `spiffe://example.org/<name>`.
fn entry(name: &str, parent: &str, selectors: &[&str]) -> RegistrationEntry {
    RegistrationEntry::new(
        id(&format!("spiffe://example.org/{name}")),
        id(&format!("spiffe://example.org/{parent}")),
        sels(selectors),
    )
}

/// The same with a fixed entry ID, so checks can name expected results.
fn entry_with_id(entry_id: &str, name: &str, parent: &str, selectors: &[&str]) -> RegistrationEntry {
    RegistrationEntry { id: entry_id.to_owned(), ..entry(name, parent, selectors) }
}

fn now() -> i64 {
    crate::now_unix()
}

fn jwt_key(key_id: &str, expires_at: i64) -> JwtKey {
    JwtKey { key_id: key_id.to_owned(), public_key_der: key_id.as_bytes().to_vec(), expires_at, tainted: false }
}

/// A self-signed CA certificate for `trust_domain` whose NotAfter is exactly `not_after` (unix s).
fn ca_cert(trust_domain: &str, not_after: i64) -> Vec<u8> {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let public = key.public_key_der();
    let td = td(trust_domain);
    let params = CaParams {
        trust_domain: &td,
        public_key_der: &public,
        subject: Subject::default_ca(),
        now: UNIX_EPOCH + Duration::from_secs(not_after as u64 - 3600),
        ttl: Duration::from_secs(3600),
    };
    self_signed_ca(&params, &key).unwrap()
}

/// Creates an empty bundle for each trust domain, so entries may federate with them.
async fn create_bundles(store: &Arc<dyn DataStore>, names: &[&str]) {
    for name in names {
        store.create_bundle(StoredBundle::new(td(name))).await.unwrap();
    }
}

async fn list_all(store: &Arc<dyn DataStore>, filter: &EntryFilter) -> Vec<RegistrationEntry> {
    let (entries, token) = store.list_entries(filter, None).await.unwrap();
    assert_eq!(token, "", "an unpaginated listing has no next page");
    entries
}

fn ids_of(entries: &[RegistrationEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

/// Walks every page of a listing; returns the IDs in order and the number of pages. Checks that only
/// the last page has an empty token and that no page is larger than asked.
async fn walk_entries(store: &Arc<dyn DataStore>, filter: &EntryFilter, page_size: u32) -> (Vec<String>, usize) {
    let mut pagination = Pagination::first(page_size);
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let (entries, token) = store.list_entries(filter, Some(&pagination)).await.unwrap();
        pages += 1;
        assert!(entries.len() <= page_size as usize, "page of {} > page size {page_size}", entries.len());
        ids.extend(ids_of(&entries));
        if token.is_empty() {
            return (ids, pages);
        }
        assert_eq!(entries.len(), page_size as usize, "only the last page may be short");
        assert!(pages < 10_000, "pagination does not end");
        pagination = pagination.next(token);
    }
}

/// Asserts that a result is the given error variant; evaluates to the message.
macro_rules! assert_err {
    ($result:expr, $variant:ident) => {
        match $result {
            Err($crate::DataStoreError::$variant(message)) => message,
            other => panic!("expected {} error, got {:?}", stringify!($variant), other),
        }
    };
}
use assert_err;

#[cfg(test)]
mod tests {
    /// The macro's list must name every check, or a check silently never runs.
    #[test]
    fn macro_lists_every_check() {
        let macro_text = include_str!("mod.rs");
        let sources = [
            include_str!("bundles.rs"),
            include_str!("concurrency.rs"),
            include_str!("entries.rs"),
            include_str!("entry_filters.rs"),
            include_str!("events.rs"),
            include_str!("misc.rs"),
            include_str!("nodes.rs"),
        ];
        let mut count = 0;
        for source in sources {
            for line in source.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = rest.split('(').next().unwrap();
                    assert!(macro_text.contains(&format!("            {name},\n")), "check {name} is not in the macro");
                    count += 1;
                }
            }
        }
        assert!(count > 40);
    }
}
