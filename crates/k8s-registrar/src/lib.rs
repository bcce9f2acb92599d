//! SPIRE's Kubernetes workload registrar: registration entries for pods, created and removed as the
//! cluster changes, in SPIRE v1.3.6's three modes and entry shapes.
//!
//! - [`webhook`]: a validating admission webhook; every pod entry hangs off one cluster-wide node entry.
//! - [`reconcile`]: Node and Pod controllers writing entries straight to the server, each pod's entry
//!   parented to its node's.
//! - [`crd`]: `SpiffeID` custom resources (written by Pod and Node controllers, or by hand), each kept
//!   in step with one entry.
//!
//! What the modes share: the configuration ([`config`]), how a pod's SPIFFE ID is derived
//! ([`workload_id`]), the SPIRE Entry API ([`spire_api`]), leader election ([`leader`]), Warning Events
//! and the host name ([`events`]) and the metrics listener ([`metrics`]).

pub mod config;
pub mod crd;
pub mod events;
pub mod generate_config;
pub mod https;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod spire_api;
pub mod webhook;
pub mod workload_id;
