//! SPIRE's OIDC Discovery Provider (`support/oidc-discovery-provider` of SPIRE v1.13.3): serves an
//! OIDC discovery document and the JWKS of a trust domain's JWT authorities, so that relying
//! parties that only speak OIDC (cloud IAM federation, for one) can verify JWT-SVIDs.
//!
//! The keys come from the server's Bundle API, an agent's Workload API or a bundle file
//! ([`source`]), polled into a shared [`keyset::KeySet`]; [`handler`] answers the two endpoints and
//! [`health`] the probes; [`serve`] opens the listeners.

pub mod config;
pub mod content;
pub mod document;
pub mod domain;
pub mod handler;
pub mod health;
pub mod keyset;
pub mod serve;
pub mod source;
pub mod urlpath;
