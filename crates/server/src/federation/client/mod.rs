//! The federation bundle client: fetches the bundles of the trust domains this server federates
//! with from their bundle endpoints and stores them as federated bundles, as SPIRE's
//! `pkg/server/bundle/client` does.
//!
//! * [`manager`]: one updater per relationship (configuration and datastore merged), rereads them.
//! * [`updater`]: one fetch-and-store, keeping the old bundle on any failure.
//! * [`fetch`]: the HTTPS GET and the reading of the untrusted document.
//! * [`auth`]: the TLS verification of the `https_web` and `https_spiffe` profiles.
//! * [`schedule`]: when to fetch next, from the bundle's refresh hint.

pub mod auth;
pub mod fetch;
pub mod manager;
pub mod schedule;
pub mod updater;

use std::collections::HashMap;

use spire_config::federation::{FederatesWith, FederatesWithProfile};
use spire_datastore::BundleEndpointProfile;
use spire_identity::TrustDomain;

pub use manager::{Manager, Timing};
pub use updater::{Endpoint, UpdateError};

/// The configuration's `federates_with` entries as the manager's endpoints.
pub fn configured(federates_with: &[FederatesWith]) -> HashMap<TrustDomain, Endpoint> {
    federates_with
        .iter()
        .map(|f| {
            let profile = match &f.profile {
                FederatesWithProfile::HttpsWeb => BundleEndpointProfile::HttpsWeb,
                FederatesWithProfile::HttpsSpiffe { endpoint_spiffe_id } => {
                    BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id: endpoint_spiffe_id.clone() }
                }
            };
            (f.trust_domain.clone(), Endpoint { url: f.bundle_endpoint_url.clone(), profile })
        })
        .collect()
}

#[cfg(test)]
mod tests;
