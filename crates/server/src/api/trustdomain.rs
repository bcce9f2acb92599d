//! `spire.api.server.trustdomain.v1.TrustDomain`: the federation relationships that say which foreign
//! trust domains' bundles this server fetches, from where and how the endpoint is authenticated.
//! Messages follow SPIRE's `pkg/server/api/trustdomain/v1/service.go` and `pkg/server/api/trustdomain.go`.
//!
//! A relationship may carry the foreign trust domain's bundle (`trust_domain_bundle`), which is stored
//! as that trust domain's federated bundle: an `https_spiffe` endpoint cannot be authenticated on the
//! first fetch without it.

use std::sync::Arc;

use spire_datastore::{
    BundleEndpointProfile, DataStoreError, FederationRelationship, FederationRelationshipMask, Pagination, StoredBundle,
};
use spire_identity::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::trustdomain::v1 as api;
use spire_proto::spire::api::server::trustdomain::v1::trust_domain_server::TrustDomain as TrustDomainApi;
use spire_proto::spire::api::types as pb;
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile as PbProfile;
use tonic::{Request, Response, Status};

use super::bundle::convert as bundle_convert;
use super::{ServerContext, ds_status, item_status, ok_status};

/// Every field of a relationship, the default for absent masks (SPIRE's
/// `AllTrueFederationRelationshipMask`).
const ALL_FIELDS: pb::FederationRelationshipMask = pb::FederationRelationshipMask {
    bundle_endpoint_url: true,
    bundle_endpoint_profile: true,
    trust_domain_bundle: true,
};

/// Checks a bundle endpoint URL the way SPIRE does (`https`, a host, no user info), and returns it as
/// given: the federation spec requires the https scheme and forbids userinfo, and operators expect to
/// read back exactly what they configured.
pub fn bundle_endpoint_url(raw: &str) -> Result<String, String> {
    let url = match url::Url::parse(raw) {
        Ok(url) => url,
        // Go's url.Parse accepts these and the scheme/host checks below reject them; keep those messages.
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err("bundle endpoint URL must use the https scheme".into());
        }
        Err(url::ParseError::EmptyHost) => return Err("bundle endpoint URL must specify the host".into()),
        Err(e) => return Err(format!("failed to parse bundle endpoint URL: {e}")),
    };
    if url.scheme() != "https" {
        return Err("bundle endpoint URL must use the https scheme".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("bundle endpoint URL must specify the host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("bundle endpoint URL must not contain user info".into());
    }
    Ok(raw.to_owned())
}

/// The endpoint profile of a relationship.
pub fn profile(p: Option<&PbProfile>) -> Result<BundleEndpointProfile, String> {
    match p {
        Some(PbProfile::HttpsWeb(_)) => Ok(BundleEndpointProfile::HttpsWeb),
        Some(PbProfile::HttpsSpiffe(s)) => {
            let endpoint_spiffe_id = SpiffeId::parse(&s.endpoint_spiffe_id)
                .map_err(|e| format!("failed to parse endpoint SPIFFE ID: {e}"))?;
            Ok(BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id })
        }
        None => Err("unsupported bundle endpoint profile type: none given; set https_web or https_spiffe".into()),
    }
}

/// A relationship from the API, validating the fields `mask` selects (SPIRE's
/// `ProtoToFederationRelationshipWithMask`). Unselected fields get placeholders the datastore's update
/// mask ignores. Returns the bundle to store with it, if one was given and selected.
pub fn relationship(
    f: &pb::FederationRelationship,
    mask: &pb::FederationRelationshipMask,
) -> Result<(FederationRelationship, Option<StoredBundle>), String> {
    let trust_domain = TrustDomain::parse(&f.trust_domain).map_err(|e| format!("failed to parse trust domain: {e}"))?;
    let bundle_endpoint_url =
        if mask.bundle_endpoint_url { bundle_endpoint_url(&f.bundle_endpoint_url)? } else { String::new() };
    let profile = if mask.bundle_endpoint_profile {
        profile(f.bundle_endpoint_profile.as_ref())?
    } else {
        BundleEndpointProfile::HttpsWeb
    };
    let bundle = match (&f.trust_domain_bundle, mask.trust_domain_bundle) {
        (Some(b), true) => {
            let bundle = bundle_convert::bundle(b).map_err(|e| format!("failed to parse bundle: {e}"))?;
            if bundle.trust_domain != trust_domain {
                return Err(format!(
                    "trust domain bundle ({:?}) must match the trust domain of the federation relationship ({:?})",
                    b.trust_domain,
                    trust_domain.as_str()
                ));
            }
            Some(bundle)
        }
        _ => None,
    };
    Ok((FederationRelationship { trust_domain, bundle_endpoint_url, profile }, bundle))
}

/// A relationship to its API form with the fields of `mask` (all when `None`); the trust domain is
/// always set. `bundle` is the trust domain's stored bundle, if any.
pub fn relationship_proto(
    r: &FederationRelationship,
    bundle: Option<&StoredBundle>,
    mask: Option<&pb::FederationRelationshipMask>,
) -> pb::FederationRelationship {
    let m = mask.unwrap_or(&ALL_FIELDS);
    let profile = match &r.profile {
        BundleEndpointProfile::HttpsWeb => PbProfile::HttpsWeb(pb::HttpsWebProfile {}),
        BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
            PbProfile::HttpsSpiffe(pb::HttpsspiffeProfile { endpoint_spiffe_id: endpoint_spiffe_id.to_string() })
        }
    };
    pb::FederationRelationship {
        trust_domain: r.trust_domain.as_str().to_owned(),
        bundle_endpoint_url: if m.bundle_endpoint_url { r.bundle_endpoint_url.clone() } else { String::new() },
        bundle_endpoint_profile: m.bundle_endpoint_profile.then_some(profile),
        trust_domain_bundle: if m.trust_domain_bundle {
            bundle.map(|b| bundle_convert::bundle_proto(b, None))
        } else {
            None
        },
    }
}

/// A datastore failure as a status that keeps the datastore's code and says what was being done.
fn ds_err(doing: &str, e: DataStoreError) -> Status {
    let status = ds_status(e);
    Status::new(status.code(), format!("{doing}: {}", status.message()))
}

/// The TrustDomain service.
#[derive(Debug, Clone)]
pub struct TrustDomainService {
    ctx: Arc<ServerContext>,
}

impl TrustDomainService {
    /// A service over `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        Self { ctx }
    }

    fn parse_trust_domain(raw: &str) -> Result<TrustDomain, Status> {
        TrustDomain::parse(raw).map_err(|e| Status::invalid_argument(format!("failed to parse trust domain: {e}")))
    }

    /// The relationship in its API form, with the stored bundle when the mask asks for it.
    async fn to_proto(
        &self,
        r: &FederationRelationship,
        mask: Option<&pb::FederationRelationshipMask>,
    ) -> Result<pb::FederationRelationship, DataStoreError> {
        let bundle = if mask.unwrap_or(&ALL_FIELDS).trust_domain_bundle {
            self.ctx.ds.fetch_bundle(&r.trust_domain).await?
        } else {
            None
        };
        Ok(relationship_proto(r, bundle.as_ref(), mask))
    }

    /// Stores a relationship's bundle as the trust domain's federated bundle. The server's own bundle
    /// belongs to its CA and is never replaced this way.
    async fn store_bundle(&self, bundle: StoredBundle) -> Result<(), Status> {
        if bundle.trust_domain == self.ctx.trust_domain {
            return Err(Status::invalid_argument(
                "the server's own bundle cannot be set through a federation relationship",
            ));
        }
        self.ctx.ds.set_bundle(bundle).await.map(|_| ()).map_err(|e| ds_err("failed to set trust domain bundle", e))
    }

    /// An `https_spiffe` endpoint can only be authenticated with its trust domain's bundle; SPIRE only
    /// warns when it is missing, since it may be set later.
    async fn warn_without_endpoint_bundle(&self, r: &FederationRelationship) {
        if let BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } = &r.profile
            && let Ok(None) = self.ctx.ds.fetch_bundle(endpoint_spiffe_id.trust_domain()).await
        {
            tracing::warn!(
                trust_domain = %r.trust_domain,
                endpoint_spiffe_id = %endpoint_spiffe_id,
                "bundle not found for the endpoint SPIFFE ID trust domain"
            );
        }
    }

    async fn create_one(
        &self,
        f: &pb::FederationRelationship,
        mask: Option<&pb::FederationRelationshipMask>,
    ) -> Result<pb::FederationRelationship, Status> {
        let (rel, bundle) = relationship(f, &ALL_FIELDS)
            .map_err(|m| Status::invalid_argument(format!("failed to convert federation relationship: {m}")))?;
        if rel.trust_domain == self.ctx.trust_domain {
            return Err(Status::invalid_argument("unable to create federation relationship for server trust domain"));
        }
        let created = self
            .ctx
            .ds
            .create_federation_relationship(rel)
            .await
            .map_err(|e| ds_err("failed to create federation relationship", e))?;
        if let Some(bundle) = bundle
            && let Err(status) = self.store_bundle(bundle).await
        {
            // No half-made relationship: without its bundle an https_spiffe endpoint cannot be fetched.
            if let Err(e) = self.ctx.ds.delete_federation_relationship(&created.trust_domain).await {
                tracing::warn!(error = %e, trust_domain = %created.trust_domain, "failed to roll back relationship");
            }
            return Err(Status::new(
                status.code(),
                format!("failed to create federation relationship: {}", status.message()),
            ));
        }
        self.warn_without_endpoint_bundle(&created).await;
        self.to_proto(&created, mask).await.map_err(|e| ds_err("failed to convert datastore response", e))
    }

    async fn update_one(
        &self,
        f: &pb::FederationRelationship,
        input: Option<&pb::FederationRelationshipMask>,
        output: Option<&pb::FederationRelationshipMask>,
    ) -> Result<pb::FederationRelationship, Status> {
        let input = input.unwrap_or(&ALL_FIELDS);
        let (rel, bundle) = relationship(f, input)
            .map_err(|m| Status::invalid_argument(format!("failed to convert federation relationship: {m}")))?;
        let mask = FederationRelationshipMask {
            bundle_endpoint_url: input.bundle_endpoint_url,
            profile: input.bundle_endpoint_profile,
        };
        let updated = self
            .ctx
            .ds
            .update_federation_relationship(rel, &mask)
            .await
            .map_err(|e| ds_err("failed to update federation relationship", e))?;
        if let Some(bundle) = bundle {
            self.store_bundle(bundle).await.map_err(|s| {
                Status::new(s.code(), format!("failed to update federation relationship: {}", s.message()))
            })?;
        }
        self.warn_without_endpoint_bundle(&updated).await;
        self.to_proto(&updated, output)
            .await
            .map_err(|e| ds_err("failed to convert federation relationship to proto", e))
    }

    /// Has the bundle client reread the relationships when any item of a batch succeeded, as SPIRE
    /// does, so that a new relationship is fetched at once rather than at the next periodic reread.
    fn reload_if_any_ok<'a>(&self, statuses: impl Iterator<Item = Option<&'a pb::Status>>) {
        if statuses.flatten().any(|s| s.code == 0) {
            self.ctx.bundle_client.trigger_config_reload();
        }
    }

    async fn delete_one(&self, raw: &str) -> (pb::Status, String) {
        if raw.is_empty() {
            return (item_status(&Status::invalid_argument("missing trust domain")), String::new());
        }
        let td = match Self::parse_trust_domain(raw) {
            Ok(td) => td,
            Err(s) => return (item_status(&s), raw.to_owned()),
        };
        let status = match self.ctx.ds.delete_federation_relationship(&td).await {
            Ok(()) => ok_status(),
            Err(DataStoreError::NotFound(_)) => item_status(&Status::not_found("federation relationship not found")),
            Err(e) => item_status(&ds_err("failed to delete federation relationship", e)),
        };
        (status, td.as_str().to_owned())
    }
}

/// The page size of a list request: SPIRE pages only when a positive size is given.
fn pagination(page_size: i32, page_token: &str) -> Option<Pagination> {
    u32::try_from(page_size).ok().filter(|&n| n > 0).map(|page_size| Pagination { page_size, token: page_token.into() })
}

#[tonic::async_trait]
impl TrustDomainApi for TrustDomainService {
    async fn list_federation_relationships(
        &self,
        request: Request<api::ListFederationRelationshipsRequest>,
    ) -> Result<Response<api::ListFederationRelationshipsResponse>, Status> {
        let req = request.into_inner();
        let page = pagination(req.page_size, &req.page_token);
        let (relationships, next_page_token) = self
            .ctx
            .ds
            .list_federation_relationships(page.as_ref())
            .await
            .map_err(|e| ds_err("failed to list federation relationships", e))?;
        let mut federation_relationships = Vec::with_capacity(relationships.len());
        for r in &relationships {
            federation_relationships.push(
                self.to_proto(r, req.output_mask.as_ref())
                    .await
                    .map_err(|e| ds_err("failed to convert datastore response", e))?,
            );
        }
        Ok(Response::new(api::ListFederationRelationshipsResponse { federation_relationships, next_page_token }))
    }

    async fn get_federation_relationship(
        &self,
        request: Request<api::GetFederationRelationshipRequest>,
    ) -> Result<Response<pb::FederationRelationship>, Status> {
        let req = request.into_inner();
        let td = Self::parse_trust_domain(&req.trust_domain)?;
        let rel = self
            .ctx
            .ds
            .fetch_federation_relationship(&td)
            .await
            .map_err(|e| ds_err("failed to fetch federation relationship", e))?
            .ok_or_else(|| Status::not_found("federation relationship does not exist"))?;
        let out = self
            .to_proto(&rel, req.output_mask.as_ref())
            .await
            .map_err(|e| ds_err("failed to convert datastore response", e))?;
        Ok(Response::new(out))
    }

    async fn batch_create_federation_relationship(
        &self,
        request: Request<api::BatchCreateFederationRelationshipRequest>,
    ) -> Result<Response<api::BatchCreateFederationRelationshipResponse>, Status> {
        use api::batch_create_federation_relationship_response::Result as Item;
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.federation_relationships.len());
        for f in &req.federation_relationships {
            results.push(match self.create_one(f, req.output_mask.as_ref()).await {
                Ok(r) => Item { status: Some(ok_status()), federation_relationship: Some(r) },
                Err(s) => Item { status: Some(item_status(&s)), federation_relationship: None },
            });
        }
        self.reload_if_any_ok(results.iter().map(|r| r.status.as_ref()));
        Ok(Response::new(api::BatchCreateFederationRelationshipResponse { results }))
    }

    async fn batch_update_federation_relationship(
        &self,
        request: Request<api::BatchUpdateFederationRelationshipRequest>,
    ) -> Result<Response<api::BatchUpdateFederationRelationshipResponse>, Status> {
        use api::batch_update_federation_relationship_response::Result as Item;
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.federation_relationships.len());
        for f in &req.federation_relationships {
            results.push(match self.update_one(f, req.input_mask.as_ref(), req.output_mask.as_ref()).await {
                Ok(r) => Item { status: Some(ok_status()), federation_relationship: Some(r) },
                Err(s) => Item { status: Some(item_status(&s)), federation_relationship: None },
            });
        }
        self.reload_if_any_ok(results.iter().map(|r| r.status.as_ref()));
        Ok(Response::new(api::BatchUpdateFederationRelationshipResponse { results }))
    }

    async fn batch_delete_federation_relationship(
        &self,
        request: Request<api::BatchDeleteFederationRelationshipRequest>,
    ) -> Result<Response<api::BatchDeleteFederationRelationshipResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.trust_domains.len());
        for raw in &req.trust_domains {
            let (status, trust_domain) = self.delete_one(raw).await;
            results.push(api::batch_delete_federation_relationship_response::Result {
                status: Some(status),
                trust_domain,
            });
        }
        self.reload_if_any_ok(results.iter().map(|r| r.status.as_ref()));
        Ok(Response::new(api::BatchDeleteFederationRelationshipResponse { results }))
    }

    /// Fetches the trust domain's bundle now through the bundle client, which first rereads the
    /// relationships (so one just created counts, and so do the configuration's `federates_with`).
    async fn refresh_bundle(&self, request: Request<api::RefreshBundleRequest>) -> Result<Response<()>, Status> {
        let td = Self::parse_trust_domain(&request.get_ref().trust_domain)?;
        match self.ctx.bundle_client.refresh_bundle_for(&td).await {
            Ok(true) => Ok(Response::new(())),
            Ok(false) => Err(Status::not_found(format!("no relationship with trust domain {:?}", td.as_str()))),
            Err(e) => Err(Status::internal(format!("failed to refresh bundle: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_endpoint_urls() {
        assert_eq!(bundle_endpoint_url("https://example.org").unwrap(), "https://example.org");
        let cases = [
            ("http://example.org/bundle", "bundle endpoint URL must use the https scheme"),
            ("example.org/bundle", "bundle endpoint URL must use the https scheme"),
            ("https://", "bundle endpoint URL must specify the host"),
            ("https://user:pw@example.org", "bundle endpoint URL must not contain user info"),
            ("https://exa mple.org", "failed to parse bundle endpoint URL"),
        ];
        for (url, want) in cases {
            let err = bundle_endpoint_url(url).unwrap_err();
            assert!(err.starts_with(want), "{url}: {err}");
        }
    }

    #[test]
    fn masked_update_skips_unselected_fields() {
        let f = pb::FederationRelationship { trust_domain: "other.org".into(), ..Default::default() };
        let mask = pb::FederationRelationshipMask::default();
        let (rel, bundle) = relationship(&f, &mask).unwrap();
        assert_eq!(rel.trust_domain.as_str(), "other.org");
        assert!(bundle.is_none());
        assert!(relationship(&f, &ALL_FIELDS).unwrap_err().starts_with("bundle endpoint URL must use"));
    }
}
