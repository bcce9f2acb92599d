//! Kubernetes workload registrar: creates registration entries for pods (webhook, reconcile and CRD
//! modes).
//!
//! Lands with its own issue; this crate holds its place in the workspace layout.
