//! Persistent storage for the server: registration entries, attested nodes, join tokens, bundles, the
//! CA journal and federation relationships, behind one store trait with one SQL backend per engine.
//!
//! Lands with the spire-server issue; this crate holds its place in the workspace layout.
