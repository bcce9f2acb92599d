//! Federation relationships: which foreign trust domains the server fetches bundles from, and how.

use spire_identity::{SpiffeId, TrustDomain};

/// How the bundle endpoint of a foreign trust domain authenticates itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleEndpointProfile {
    /// Web PKI: the endpoint has an ordinary TLS certificate.
    HttpsWeb,
    /// SPIFFE authentication: the endpoint presents an X509-SVID with this ID.
    HttpsSpiffe {
        /// The SPIFFE ID the endpoint's SVID must carry.
        endpoint_spiffe_id: SpiffeId,
    },
}

impl BundleEndpointProfile {
    /// SPIRE's name for the profile, as stored.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HttpsWeb => "https_web",
            Self::HttpsSpiffe { .. } => "https_spiffe",
        }
    }
}

/// A federation relationship with one foreign trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationRelationship {
    /// The foreign trust domain; the key.
    pub trust_domain: TrustDomain,
    /// Where its bundle is published.
    pub bundle_endpoint_url: String,
    /// How that endpoint is authenticated.
    pub profile: BundleEndpointProfile,
}

/// Which fields an update changes; the trust domain selects the relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FederationRelationshipMask {
    /// Update `bundle_endpoint_url`.
    pub bundle_endpoint_url: bool,
    /// Update `profile` (including the endpoint SPIFFE ID).
    pub profile: bool,
}

impl FederationRelationshipMask {
    /// Every updatable field.
    pub const ALL: Self = Self { bundle_endpoint_url: true, profile: true };

    /// Copies the masked fields of `update` into `stored`.
    pub fn apply(&self, stored: &mut FederationRelationship, update: FederationRelationship) {
        if self.bundle_endpoint_url {
            stored.bundle_endpoint_url = update.bundle_endpoint_url;
        }
        if self.profile {
            stored.profile = update.profile;
        }
    }
}
