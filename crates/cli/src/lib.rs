//! Command-line plumbing shared by `spire-server` and `spire-agent`: Go-style single-dash flags,
//! SPIRE's pretty and JSON printers.
//!
//! Lands with the server CLI; this crate holds its place in the workspace layout.
