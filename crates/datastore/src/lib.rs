//! Persistent storage for the server: registration entries, attested nodes, join tokens, bundles,
//! federation relationships and the CA journal, behind one object-safe trait, [`DataStore`], so the
//! server holds an `Arc<dyn DataStore>` and the backend is a configuration choice.
//!
//! - [`types`]: the records, as plain Rust types (the API layer converts protobuf at its edge).
//! - [`filters`]: list/count filters with SPIRE's match modes, and opaque page tokens.
//! - [`DataStore`]: the operations and their guarantees (one transaction per write, a change event per
//!   entry or node write).
//! - [`sql`]: the SQL store, for SQLite, PostgreSQL and MySQL/MariaDB.
//! - [`sql_connection`]: SPIRE's `connection_string` forms (libpq DSN, Go MySQL DSN, paths) as URLs.
//! - [`testsuite`]: the conformance suite every backend must pass, as a macro that generates one test
//!   per check.

mod error;
pub mod filters;
pub mod sql;
pub mod sql_connection;
mod store;
pub mod testsuite;
pub mod types;
mod validate;

pub use error::DataStoreError;
pub use filters::{EntryFilter, NodeFilter, Pagination};
pub use sql::{Dialect, SqlOptions, SqlStore, SqliteOptions};
pub use store::{DataStore, Page};
pub use types::*;

/// The result of every store operation.
pub type Result<T, E = DataStoreError> = std::result::Result<T, E>;

/// Unix seconds now. Stores stamp `created_at` and event times with it; callers pass every other
/// time in, so tests control expiry without a fake clock.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
