//! The SPIRE server: signing authority and registry of one trust domain.
//!
//! Lands with the spire-server issue; this crate holds its place in the workspace layout.
