//! The records the store keeps: plain Rust types rather than protobuf messages, with the identity
//! crate's typed IDs and selectors, so that the API layer converts once at its edge.

mod bundle;
mod ca_journal;
mod entry;
mod events;
mod federation;
mod join_token;
mod node;

pub use bundle::{BundleMask, DeleteMode, JwtKey, StoredBundle, X509Authority};
pub use ca_journal::CaJournal;
pub use entry::{EntryMask, RegistrationEntry};
pub use events::{EntryEvent, NodeEvent};
pub use federation::{BundleEndpointProfile, FederationRelationship, FederationRelationshipMask};
pub use join_token::JoinToken;
pub use node::{AttestedNode, NodeMask};
