//! The SPIRE agent: node attestation, entry sync, SVID cache and the SPIFFE Workload API.
//!
//! - [`bootstrap`]: the bootstrap trust bundle (`trust_bundle_path`, `_url`, `_spiffe_workload_api`).
//! - [`server_client`]: TLS to the server, accepting only `spiffe://<td>/spire/server`.
//! - [`node`]: the attestation exchange (challenges included), renewal, the trust bundle.
//! - [`node_attestor`]: the node attestor plugins (`join_token`, `k8s_psat`) that attestation runs.
//! - [`storage`]: the SVID and bundle kept in the data directory across restarts.
//! - [`manager`]: the cache of entries, SVIDs and bundles, and the sync loop.
//! - [`workload_api`]: the SPIFFE Workload API served to workloads.
//! - [`peer`]: who is calling on the Workload API socket, guarded against PID reuse.
//! - [`rotation`]: when the agent's and the workloads' X509-SVIDs are renewed.
//! - [`workload_attestor`]: the selectors of a caller (the `unix` attestor), plugins run in parallel.
//! - [`inert_settings`]: the configured settings this build does not act on, logged at start.

pub mod bootstrap;
pub mod cli_run;
pub mod external;
pub mod health;
pub mod inert_settings;
pub mod manager;
pub mod node;
pub mod node_attestor;
pub mod peer;
pub mod remote_tls;
pub mod rotation;
pub mod run;
pub mod server_client;
pub mod storage;
pub mod workload_api;
pub mod workload_attestor;

#[cfg(test)]
mod test_config;
