//! SPIRE's pretty layout of a federation relationship (`printFederationRelationship`).

use std::fmt::Write as _;

use spire_proto::spire::api::types::FederationRelationship;
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile;

/// The relationship's lines (no trailing blank line).
pub(crate) fn relationship_block(fr: &FederationRelationship) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Trust domain              : {}", fr.trust_domain);
    let _ = writeln!(out, "Bundle endpoint URL       : {}", fr.bundle_endpoint_url);
    match &fr.bundle_endpoint_profile {
        Some(BundleEndpointProfile::HttpsWeb(_)) => {
            let _ = writeln!(out, "Bundle endpoint profile   : https_web");
        }
        Some(BundleEndpointProfile::HttpsSpiffe(p)) => {
            let _ = writeln!(out, "Bundle endpoint profile   : https_spiffe");
            let _ = writeln!(out, "Endpoint SPIFFE ID        : {}", p.endpoint_spiffe_id);
        }
        None => {}
    }
    out
}
