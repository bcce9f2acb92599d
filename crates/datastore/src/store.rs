//! The one interface the server programs against. It is object-safe (`Arc<dyn DataStore>`) so that
//! the backend is chosen from configuration at startup, and every backend passes the same
//! [`conformance suite`](crate::testsuite).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use spire_identity::{Selector, SpiffeId, TrustDomain};

use crate::{
    AttestedNode, BundleMask, CaJournal, DeleteMode, EntryEvent, EntryFilter, EntryMask, FederationRelationship,
    FederationRelationshipMask, JoinToken, NodeEvent, NodeFilter, NodeMask, Pagination, RegistrationEntry, Result,
    StoredBundle,
};

/// A page of results and the token of the next page ("" when there are no more).
pub type Page<T> = (Vec<T>, String);

/// Server storage. Every write is one transaction: it happens entirely or not at all. Every write to
/// an entry appends an [`EntryEvent`], and every write to a node or its selectors a [`NodeEvent`], in
/// the same transaction. `fetch_*` return `Ok(None)` for a missing record; updates and deletes
/// return [`NotFound`](crate::DataStoreError::NotFound). List operations take `None` for "everything
/// in one page".
#[async_trait]
pub trait DataStore: Send + Sync + 'static {
    // ---- Registration entries ----

    /// Stores a new entry and returns it as stored: ID generated (UUIDv4) when empty, selectors and
    /// federated trust domains sorted, `created_at` now, revision 0. Refuses an existing ID and a
    /// similar entry (same parent ID, SPIFFE ID and selector set) with AlreadyExists, a malformed
    /// entry with InvalidArgument, and a federated trust domain without a bundle with
    /// FailedPrecondition.
    async fn create_entry(&self, entry: RegistrationEntry) -> Result<RegistrationEntry>;

    /// The entry with this ID.
    async fn fetch_entry(&self, id: &str) -> Result<Option<RegistrationEntry>>;

    /// The entries with these IDs, keyed by ID; missing IDs are absent from the map.
    async fn fetch_entries(&self, ids: &[String]) -> Result<HashMap<String, RegistrationEntry>>;

    /// Entries matching the filter, ordered by ID.
    async fn list_entries(
        &self,
        filter: &EntryFilter,
        pagination: Option<&Pagination>,
    ) -> Result<Page<RegistrationEntry>>;

    /// How many entries match the filter.
    async fn count_entries(&self, filter: &EntryFilter) -> Result<u64>;

    /// Changes the masked fields of the entry with `entry.id` and bumps its revision number by one.
    /// The same rules as on create apply to the result.
    async fn update_entry(&self, entry: RegistrationEntry, mask: &EntryMask) -> Result<RegistrationEntry>;

    /// Deletes the entry and returns it as it was.
    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry>;

    /// Deletes entries whose `expires_at` is set and before `expires_before` (unix s); returns how
    /// many went.
    async fn prune_entries(&self, expires_before: i64) -> Result<u64>;

    // ---- Change events ----

    /// Entry events with an ID above `after_event_id`, oldest first, at most `limit` (0: no limit).
    async fn list_entry_events(&self, after_event_id: i64, limit: u32) -> Result<Vec<EntryEvent>>;

    /// Node events with an ID above `after_event_id`, oldest first, at most `limit` (0: no limit).
    async fn list_node_events(&self, after_event_id: i64, limit: u32) -> Result<Vec<NodeEvent>>;

    /// The highest entry event ID present, 0 when there is none.
    async fn latest_entry_event_id(&self) -> Result<i64>;

    /// The highest node event ID present, 0 when there is none.
    async fn latest_node_event_id(&self) -> Result<i64>;

    /// Deletes entry and node events written before `older_than` (unix s); returns how many went.
    async fn prune_events(&self, older_than: i64) -> Result<u64>;

    // ---- Attested nodes ----

    /// Stores a newly attested node and its selectors (replacing any left for that ID).
    async fn create_attested_node(&self, node: AttestedNode) -> Result<AttestedNode>;

    /// The node with this ID, with its selectors.
    async fn fetch_attested_node(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedNode>>;

    /// Nodes matching the filter, with their selectors, ordered by SPIFFE ID.
    async fn list_attested_nodes(
        &self,
        filter: &NodeFilter,
        pagination: Option<&Pagination>,
    ) -> Result<Page<AttestedNode>>;

    /// How many nodes match the filter.
    async fn count_attested_nodes(&self, filter: &NodeFilter) -> Result<u64>;

    /// Changes the masked fields of the node with `node.spiffe_id`.
    async fn update_attested_node(&self, node: AttestedNode, mask: &NodeMask) -> Result<AttestedNode>;

    /// Deletes the node and its selectors and returns the node as it was.
    async fn delete_attested_node(&self, spiffe_id: &SpiffeId) -> Result<AttestedNode>;

    /// Replaces the selectors stored for this node ID (the node need not exist yet).
    async fn set_node_selectors(&self, spiffe_id: &SpiffeId, selectors: Vec<Selector>) -> Result<()>;

    /// The selectors stored for this node ID, sorted; empty when there are none.
    async fn get_node_selectors(&self, spiffe_id: &SpiffeId) -> Result<Vec<Selector>>;

    /// Every node's selectors, for building the authorized-entry index. With `valid_at`, only attested
    /// nodes whose current certificate is still valid then (`cert_not_after > valid_at`).
    async fn list_node_selectors(&self, valid_at: Option<i64>) -> Result<BTreeMap<SpiffeId, Vec<Selector>>>;

    // ---- Join tokens ----

    /// Stores a join token; AlreadyExists if the token is taken.
    async fn create_join_token(&self, token: JoinToken) -> Result<()>;

    /// The join token, expired or not.
    async fn fetch_join_token(&self, token: &str) -> Result<Option<JoinToken>>;

    /// Deletes the token; returns whether it existed. Atomic: of concurrent calls for one token exactly
    /// one returns true, which is what makes tokens single-use.
    async fn delete_join_token(&self, token: &str) -> Result<bool>;

    /// Deletes tokens that expire before `expires_before` (unix s); returns how many went.
    async fn prune_join_tokens(&self, expires_before: i64) -> Result<u64>;

    // ---- Bundles ----

    /// Stores a new bundle; AlreadyExists if the trust domain has one.
    async fn create_bundle(&self, bundle: StoredBundle) -> Result<StoredBundle>;

    /// The bundle of this trust domain.
    async fn fetch_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<StoredBundle>>;

    /// Bundles ordered by trust domain.
    async fn list_bundles(&self, pagination: Option<&Pagination>) -> Result<Page<StoredBundle>>;

    /// How many bundles are stored.
    async fn count_bundles(&self) -> Result<u64>;

    /// Changes the masked fields of the bundle of `bundle.trust_domain`.
    async fn update_bundle(&self, bundle: StoredBundle, mask: &BundleMask) -> Result<StoredBundle>;

    /// Creates the bundle or replaces it whole.
    async fn set_bundle(&self, bundle: StoredBundle) -> Result<StoredBundle>;

    /// Adds the authorities the stored bundle lacks (see [`StoredBundle::merge`]), bumping the
    /// sequence number only if something was added; creates the bundle if absent. Returns the result.
    async fn append_bundle(&self, bundle: StoredBundle) -> Result<StoredBundle>;

    /// Deletes the bundle, handling entries that federate with it as `mode` says. RESTRICT fails with
    /// FailedPrecondition while any does; DELETE deletes them; DISSOCIATE removes the trust domain
    /// from them (bumping their revision). Either way those entries get events.
    async fn delete_bundle(&self, trust_domain: &TrustDomain, mode: DeleteMode) -> Result<()>;

    /// Drops authorities that expire before `expires_before` (see [`StoredBundle::prune`]); returns
    /// whether the bundle changed.
    async fn prune_bundle(&self, trust_domain: &TrustDomain, expires_before: i64) -> Result<bool>;

    // ---- Federation relationships ----

    /// Stores a new relationship; AlreadyExists if the trust domain has one.
    async fn create_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> Result<FederationRelationship>;

    /// The relationship with this trust domain.
    async fn fetch_federation_relationship(&self, trust_domain: &TrustDomain)
    -> Result<Option<FederationRelationship>>;

    /// Relationships ordered by trust domain.
    async fn list_federation_relationships(
        &self,
        pagination: Option<&Pagination>,
    ) -> Result<Page<FederationRelationship>>;

    /// Changes the masked fields of the relationship with `relationship.trust_domain`.
    async fn update_federation_relationship(
        &self,
        relationship: FederationRelationship,
        mask: &FederationRelationshipMask,
    ) -> Result<FederationRelationship>;

    /// Deletes the relationship (not the trust domain's bundle).
    async fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<()>;

    // ---- CA journal ----

    /// Inserts the journal when `journal.id` is 0 (returning it with its new ID), otherwise overwrites
    /// the journal with that ID (NotFound if there is none).
    async fn set_ca_journal(&self, journal: CaJournal) -> Result<CaJournal>;

    /// The most recent journal written while this X.509 authority was active.
    async fn fetch_ca_journal(&self, active_x509_authority_id: &str) -> Result<Option<CaJournal>>;

    /// The journal with the highest ID.
    async fn fetch_latest_ca_journal(&self) -> Result<Option<CaJournal>>;

    /// Deletes journals all of whose authorities expired before `all_expired_before` (unix s, compared
    /// with [`CaJournal::expires_at`]); returns how many went.
    async fn prune_ca_journals(&self, all_expired_before: i64) -> Result<u64>;
}
