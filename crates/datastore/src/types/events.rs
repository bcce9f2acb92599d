//! Change events: one row per write to an entry or node, so that the server can keep its
//! authorized-entry index current by reading what changed after the last event it saw instead of
//! reloading everything.
//!
//! On SQLite writes are serialized, so event IDs are assigned in commit order and "after the last ID
//! seen" misses nothing. A backend with concurrent writers (PostgreSQL, MySQL) hands out IDs at insert
//! time and may commit them out of order: its readers must remember skipped IDs for a while, as
//! SPIRE's events-based cache does.

/// A registration entry was created, updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryEvent {
    /// Increasing, never reused (not even after pruning).
    pub event_id: i64,
    /// The entry that changed; fetch it to learn whether it still exists.
    pub entry_id: String,
}

/// An attested node (or its selectors) was created, updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// Increasing, never reused (not even after pruning).
    pub event_id: i64,
    /// The node that changed.
    pub spiffe_id: String,
}
