//! protojson's field order for federation relationships. protojson writes fields in declaration order,
//! where the `bundle_endpoint_profile` oneof members (fields 3 and 4) come before `trust_domain_bundle`
//! (field 5); the generated serde code puts oneof members last, so these wrappers restore the order.
//! (What SPIRE's CLI prints is then re-sorted by its printer's Go map: see `output::go_map_roundtrip`.)

use serde::Serialize;
use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipResponse, BatchUpdateFederationRelationshipResponse,
    ListFederationRelationshipsResponse,
};
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile;
use spire_proto::spire::api::types::{Bundle, FederationRelationship, HttpsWebProfile, HttpsspiffeProfile, Status};

/// One relationship in protojson order.
#[derive(Serialize)]
pub(crate) struct Relationship<'a> {
    trust_domain: &'a str,
    bundle_endpoint_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    https_web: Option<&'a HttpsWebProfile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    https_spiffe: Option<&'a HttpsspiffeProfile>,
    trust_domain_bundle: &'a Option<Bundle>,
}

impl<'a> Relationship<'a> {
    pub(crate) fn new(fr: &'a FederationRelationship) -> Self {
        let (https_web, https_spiffe) = match &fr.bundle_endpoint_profile {
            Some(BundleEndpointProfile::HttpsWeb(p)) => (Some(p), None),
            Some(BundleEndpointProfile::HttpsSpiffe(p)) => (None, Some(p)),
            None => (None, None),
        };
        Self {
            trust_domain: &fr.trust_domain,
            bundle_endpoint_url: &fr.bundle_endpoint_url,
            https_web,
            https_spiffe,
            trust_domain_bundle: &fr.trust_domain_bundle,
        }
    }
}

/// `ListFederationRelationshipsResponse`.
#[derive(Serialize)]
pub(crate) struct List<'a> {
    federation_relationships: Vec<Relationship<'a>>,
    next_page_token: &'a str,
}

impl<'a> List<'a> {
    pub(crate) fn new(resp: &'a ListFederationRelationshipsResponse) -> Self {
        Self {
            federation_relationships: resp.federation_relationships.iter().map(Relationship::new).collect(),
            next_page_token: &resp.next_page_token,
        }
    }
}

/// A batch create/update result.
#[derive(Serialize)]
struct BatchResult<'a> {
    status: &'a Option<Status>,
    federation_relationship: Option<Relationship<'a>>,
}

/// `BatchCreate/UpdateFederationRelationshipResponse`.
#[derive(Serialize)]
pub(crate) struct Batch<'a> {
    results: Vec<BatchResult<'a>>,
}

impl<'a> Batch<'a> {
    fn from_results(results: impl Iterator<Item = (&'a Option<Status>, &'a Option<FederationRelationship>)>) -> Self {
        Self {
            results: results
                .map(|(status, fr)| BatchResult { status, federation_relationship: fr.as_ref().map(Relationship::new) })
                .collect(),
        }
    }

    pub(crate) fn create(resp: &'a BatchCreateFederationRelationshipResponse) -> Self {
        Self::from_results(resp.results.iter().map(|r| (&r.status, &r.federation_relationship)))
    }

    pub(crate) fn update(resp: &'a BatchUpdateFederationRelationshipResponse) -> Self {
        Self::from_results(resp.results.iter().map(|r| (&r.status, &r.federation_relationship)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::JsonValue;

    #[test]
    fn printed_sorted_without_nulls() {
        let fr = FederationRelationship {
            trust_domain: "td.org".into(),
            bundle_endpoint_url: "https://td.org/bundle".into(),
            bundle_endpoint_profile: Some(BundleEndpointProfile::HttpsSpiffe(HttpsspiffeProfile {
                endpoint_spiffe_id: "spiffe://td.org/spire/server".into(),
            })),
            trust_domain_bundle: None,
        };
        assert_eq!(
            JsonValue::of(&Relationship::new(&fr)).as_str(),
            r#"{"bundle_endpoint_url":"https://td.org/bundle","https_spiffe":{"endpoint_spiffe_id":"spiffe://td.org/spire/server"},"trust_domain":"td.org"}"#
        );
    }
}
