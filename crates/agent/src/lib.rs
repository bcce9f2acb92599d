//! The SPIRE agent: node attestation, entry sync, SVID cache and the SPIFFE Workload API.
//!
//! Lands with the spire-agent issue; this crate holds its place in the workspace layout.
