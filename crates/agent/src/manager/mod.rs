//! The agent's cache of entries, SVIDs and bundles, and the loop that keeps it in sync with the server.

pub mod cache;
pub mod sync;

pub use cache::{AgentEntry, Cache, Identity, Snapshot, SubscriberGuard};
pub use sync::Syncer;
