//! `spire.api.server.bundle.v1.Bundle`: the server's own trust bundle (read by anyone, appended to by
//! admins and downstream servers) and the bundles of federated trust domains (admin CRUD with
//! per-item batch statuses). Messages follow SPIRE's `pkg/server/api/bundle/v1/service.go`, which
//! operators' scripts match on.
//!
//! Authorization has already happened in the [`auth`](super::auth) layer, so the handlers only
//! validate and store.

use std::sync::Arc;

use spire_datastore::{DataStoreError, DeleteMode, EntryFilter, Pagination, StoredBundle};
use spire_identity::{MatchMode, TrustDomain};
use spire_proto::spire::api::server::bundle::v1 as api;
use spire_proto::spire::api::server::bundle::v1::batch_delete_federated_bundle_request::Mode;
use spire_proto::spire::api::server::bundle::v1::bundle_server::Bundle;
use spire_proto::spire::api::types as pb;
use tonic::{Request, Response, Status};

use super::{ServerContext, ds_status, item_status, ok_status};

/// Conversions between the API's `Bundle` and the datastore's [`StoredBundle`], validating on the way
/// in. Shared with the TrustDomain service, whose relationships may carry a bundle.
pub mod convert {
    use spire_datastore::{BundleMask, JwtKey, StoredBundle, X509Authority};
    use spire_identity::TrustDomain;
    use spire_identity::jwk::Jwk;
    use spire_proto::spire::api::types as pb;
    use x509_parser::prelude::{FromDer, X509Certificate};

    /// Checks that an X.509 authority is one DER certificate that may sign (basicConstraints CA=true).
    /// SPIRE only parses it; we also refuse leaves, which can never anchor a chain, so that the mistake
    /// is reported on the request that made it rather than as verification failures later.
    pub fn x509_authority(index: usize, der: &[u8]) -> Result<(), String> {
        if der.is_empty() {
            return Err(format!("authority {index} is empty: give the DER bytes of a CA certificate"));
        }
        let cert = match X509Certificate::from_der(der) {
            Ok(([], cert)) => cert,
            Ok(_) => {
                return Err(format!(
                    "authority {index} has trailing data after the certificate: give one DER certificate per authority"
                ));
            }
            Err(e) => return Err(format!("authority {index} is not a valid DER certificate: {e}")),
        };
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| format!("authority {index} has malformed basic constraints: {e}"))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(format!(
                "authority {index} is not a CA certificate (basicConstraints CA=true is required): {}",
                cert.subject()
            ));
        }
        Ok(())
    }

    /// API X.509 authorities to stored ones. As in SPIRE, the `tainted` flag is not taken from the
    /// request: authorities are tainted through the LocalAuthority API, not by uploading a bundle.
    pub fn x509_authorities(certs: &[pb::X509Certificate]) -> Result<Vec<X509Authority>, String> {
        certs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                x509_authority(i, &c.asn1)?;
                Ok(X509Authority { der: c.asn1.clone(), tainted: false })
            })
            .collect()
    }

    /// Checks a JWT authority: its key must be a SubjectPublicKeyInfo we can publish as a JWK (the
    /// federation endpoint and agents serve it as one), and it needs a key ID (SPIRE's `missing key ID`),
    /// since JWT-SVIDs name their signing key by `kid`.
    pub fn jwt_authority(key: &pb::JwtKey) -> Result<JwtKey, String> {
        Jwk::from_spki(&key.public_key).map_err(|e| e.to_string())?;
        if key.key_id.is_empty() {
            return Err("missing key ID".into());
        }
        Ok(JwtKey {
            key_id: key.key_id.clone(),
            public_key_der: key.public_key.clone(),
            expires_at: key.expires_at,
            tainted: key.tainted,
        })
    }

    /// API JWT authorities to stored ones.
    pub fn jwt_authorities(keys: &[pb::JwtKey]) -> Result<Vec<JwtKey>, String> {
        keys.iter().map(jwt_authority).collect()
    }

    /// An API bundle to a stored one, with SPIRE's `ProtoToBundle` messages. WIT authorities are
    /// refused rather than silently dropped, since this server does not store them yet.
    pub fn bundle(b: &pb::Bundle) -> Result<StoredBundle, String> {
        let trust_domain = TrustDomain::parse(&b.trust_domain).map_err(|e| format!("invalid trust domain: {e}"))?;
        let x509_authorities =
            x509_authorities(&b.x509_authorities).map_err(|e| format!("unable to parse X.509 authority: {e}"))?;
        let jwt_authorities =
            jwt_authorities(&b.jwt_authorities).map_err(|e| format!("unable to parse JWT authority: {e}"))?;
        if !b.wit_authorities.is_empty() {
            return Err("unable to parse WIT authority: WIT authorities are not supported by this server".into());
        }
        Ok(StoredBundle {
            trust_domain,
            x509_authorities,
            jwt_authorities,
            refresh_hint: b.refresh_hint,
            sequence_number: b.sequence_number,
        })
    }

    /// A stored bundle to its API form, keeping only the fields of `mask` (all when `None`). The trust
    /// domain is always returned, as in SPIRE's `applyBundleMask`.
    pub fn bundle_proto(b: &StoredBundle, mask: Option<&pb::BundleMask>) -> pb::Bundle {
        let mut out = b.to_proto();
        if let Some(m) = mask {
            if !m.x509_authorities {
                out.x509_authorities.clear();
            }
            if !m.jwt_authorities {
                out.jwt_authorities.clear();
            }
            if !m.refresh_hint {
                out.refresh_hint = 0;
            }
            if !m.sequence_number {
                out.sequence_number = 0;
            }
        }
        out
    }

    /// An API input mask as the datastore's update mask; no mask means every field, as in SPIRE.
    pub fn update_mask(mask: Option<&pb::BundleMask>) -> BundleMask {
        mask.map_or(BundleMask::ALL, |m| BundleMask {
            x509_authorities: m.x509_authorities,
            jwt_authorities: m.jwt_authorities,
            refresh_hint: m.refresh_hint,
            sequence_number: m.sequence_number,
        })
    }
}

/// The Bundle service.
#[derive(Debug, Clone)]
pub struct BundleService {
    ctx: Arc<ServerContext>,
}

impl BundleService {
    /// A service over `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        Self { ctx }
    }
}

/// A datastore failure as a status that keeps the datastore's code and says what was being done.
fn ds_err(doing: &str, e: DataStoreError) -> Status {
    let status = ds_status(e);
    Status::new(status.code(), format!("{doing}: {}", status.message()))
}

/// The batch operations on federated bundles, for their per-verb messages.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Create,
    Update,
    Set,
    Delete,
}

impl Verb {
    /// SPIRE's refusal for the server's own trust domain, whose bundle belongs to the CA.
    fn own_trust_domain_refusal(self) -> &'static str {
        match self {
            Verb::Get => "getting a federated bundle for the server's own trust domain is not allowed",
            Verb::Create => "creating a federated bundle for the server's own trust domain is not allowed",
            Verb::Update => "updating a federated bundle for the server's own trust domain is not allowed",
            Verb::Set => "setting a federated bundle for the server's own trust domain is not allowed",
            Verb::Delete => "removing the bundle for the server trust domain is not allowed",
        }
    }
}

/// The delete mode of a request; unknown values fail the whole RPC, as in SPIRE.
fn delete_mode(mode: i32) -> Result<DeleteMode, Status> {
    match Mode::try_from(mode) {
        Ok(Mode::Restrict) => Ok(DeleteMode::Restrict),
        Ok(Mode::Delete) => Ok(DeleteMode::Delete),
        Ok(Mode::Dissociate) => Ok(DeleteMode::Dissociate),
        Err(_) => Err(Status::invalid_argument(format!(
            "failed to parse deletion mode: unhandled delete mode \"{mode}\" (use RESTRICT, DELETE or DISSOCIATE)"
        ))),
    }
}

impl BundleService {
    /// Parses a federated trust domain argument, refusing the server's own.
    fn federated_trust_domain(&self, raw: &str, verb: Verb) -> Result<TrustDomain, Status> {
        let td = TrustDomain::parse(raw)
            .map_err(|e| Status::invalid_argument(format!("trust domain argument is not valid: {e}")))?;
        if td == self.ctx.trust_domain {
            return Err(Status::invalid_argument(verb.own_trust_domain_refusal()));
        }
        Ok(td)
    }

    /// Parses and validates a federated bundle of a batch request.
    fn federated_bundle(&self, b: &pb::Bundle, verb: Verb) -> Result<StoredBundle, Status> {
        self.federated_trust_domain(&b.trust_domain, verb)?;
        convert::bundle(b).map_err(|m| Status::invalid_argument(format!("failed to convert bundle: {m}")))
    }

    async fn create_one(&self, b: &pb::Bundle, mask: Option<&pb::BundleMask>) -> (pb::Status, Option<pb::Bundle>) {
        let bundle = match self.federated_bundle(b, Verb::Create) {
            Ok(bundle) => bundle,
            Err(s) => return (item_status(&s), None),
        };
        match self.ctx.ds.create_bundle(bundle).await {
            Ok(created) => (ok_status(), Some(convert::bundle_proto(&created, mask))),
            Err(DataStoreError::AlreadyExists(_)) => {
                (item_status(&Status::already_exists("bundle already exists")), None)
            }
            Err(e) => (item_status(&ds_err("unable to create bundle", e)), None),
        }
    }

    async fn update_one(
        &self,
        b: &pb::Bundle,
        input: Option<&pb::BundleMask>,
        output: Option<&pb::BundleMask>,
    ) -> (pb::Status, Option<pb::Bundle>) {
        let bundle = match self.federated_bundle(b, Verb::Update) {
            Ok(bundle) => bundle,
            Err(s) => return (item_status(&s), None),
        };
        match self.ctx.ds.update_bundle(bundle, &convert::update_mask(input)).await {
            Ok(updated) => (ok_status(), Some(convert::bundle_proto(&updated, output))),
            Err(DataStoreError::NotFound(_)) => (item_status(&Status::not_found("bundle not found")), None),
            Err(e) => (item_status(&ds_err("failed to update bundle", e)), None),
        }
    }

    async fn set_one(&self, b: &pb::Bundle, mask: Option<&pb::BundleMask>) -> (pb::Status, Option<pb::Bundle>) {
        let bundle = match self.federated_bundle(b, Verb::Set) {
            Ok(bundle) => bundle,
            Err(s) => return (item_status(&s), None),
        };
        match self.ctx.ds.set_bundle(bundle).await {
            Ok(set) => (ok_status(), Some(convert::bundle_proto(&set, mask))),
            Err(e) => (item_status(&ds_err("failed to set bundle", e)), None),
        }
    }

    async fn delete_one(&self, raw: &str, mode: DeleteMode) -> pb::Status {
        let td = match self.federated_trust_domain(raw, Verb::Delete) {
            Ok(td) => td,
            Err(s) => return item_status(&s),
        };
        // Entries federating with the bundle are deleted or changed with it; the authorized-entry
        // index must follow, so note them first.
        let affected = match mode {
            DeleteMode::Restrict => Vec::new(),
            DeleteMode::Delete | DeleteMode::Dissociate => match self.federated_entry_ids(&td).await {
                Ok(ids) => ids,
                Err(e) => return item_status(&ds_err("failed to delete federated bundle", e)),
            },
        };
        match self.ctx.ds.delete_bundle(&td, mode).await {
            Ok(()) => {
                self.reindex(&affected, mode).await;
                ok_status()
            }
            Err(DataStoreError::NotFound(_)) => item_status(&Status::not_found("bundle not found")),
            Err(e) => item_status(&ds_err("failed to delete federated bundle", e)),
        }
    }

    /// IDs of the entries that federate with `td`.
    async fn federated_entry_ids(&self, td: &TrustDomain) -> Result<Vec<String>, DataStoreError> {
        let filter =
            EntryFilter { by_federates_with: Some((vec![td.clone()], MatchMode::Superset)), ..EntryFilter::default() };
        let (entries, _) = self.ctx.ds.list_entries(&filter, None).await?;
        Ok(entries.into_iter().map(|e| e.id).collect())
    }

    /// Brings the authorized-entry index in line after a bundle deletion removed (DELETE) or changed
    /// (DISSOCIATE) these entries.
    async fn reindex(&self, ids: &[String], mode: DeleteMode) {
        if ids.is_empty() {
            return;
        }
        let current = match mode {
            DeleteMode::Dissociate => match self.ctx.ds.fetch_entries(ids).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to reload entries dissociated from a deleted bundle");
                    Default::default()
                }
            },
            _ => Default::default(),
        };
        let mut index = self.ctx.index.write().expect("index lock");
        for id in ids {
            match current.get(id) {
                Some(entry) => index.upsert(entry.clone()),
                None => {
                    index.remove(id);
                }
            }
        }
    }

    async fn own_bundle(&self) -> Result<StoredBundle, Status> {
        self.ctx
            .ds
            .fetch_bundle(&self.ctx.trust_domain)
            .await
            .map_err(|e| ds_err("failed to fetch bundle", e))?
            .ok_or_else(|| Status::not_found("bundle not found"))
    }
}

#[tonic::async_trait]
impl Bundle for BundleService {
    async fn count_bundles(
        &self,
        _request: Request<api::CountBundlesRequest>,
    ) -> Result<Response<api::CountBundlesResponse>, Status> {
        let count = self.ctx.ds.count_bundles().await.map_err(|e| ds_err("failed to count bundles", e))?;
        Ok(Response::new(api::CountBundlesResponse { count: i32::try_from(count).unwrap_or(i32::MAX) }))
    }

    async fn get_bundle(&self, request: Request<api::GetBundleRequest>) -> Result<Response<pb::Bundle>, Status> {
        let bundle = self.own_bundle().await?;
        Ok(Response::new(convert::bundle_proto(&bundle, request.get_ref().output_mask.as_ref())))
    }

    async fn append_bundle(&self, request: Request<api::AppendBundleRequest>) -> Result<Response<pb::Bundle>, Status> {
        let req = request.into_inner();
        if !req.wit_authorities.is_empty() {
            return Err(Status::invalid_argument(
                "failed to convert WIT authority: WIT authorities are not supported by this server",
            ));
        }
        if req.x509_authorities.is_empty() && req.jwt_authorities.is_empty() {
            return Err(Status::invalid_argument("no authorities to append"));
        }
        let jwt_authorities = convert::jwt_authorities(&req.jwt_authorities)
            .map_err(|m| Status::invalid_argument(format!("failed to convert JWT authority: {m}")))?;
        let x509_authorities = convert::x509_authorities(&req.x509_authorities)
            .map_err(|m| Status::invalid_argument(format!("failed to convert X.509 authority: {m}")))?;
        let incoming =
            StoredBundle { x509_authorities, jwt_authorities, ..StoredBundle::new(self.ctx.trust_domain.clone()) };
        let bundle = self.ctx.ds.append_bundle(incoming).await.map_err(|e| ds_err("failed to append bundle", e))?;
        Ok(Response::new(convert::bundle_proto(&bundle, req.output_mask.as_ref())))
    }

    /// A downstream server publishes the JWT key it will sign with, so that workloads of the whole trust
    /// domain accept its JWT-SVIDs. Without an upstream SPIRE server to forward to, the key goes
    /// straight into our bundle.
    async fn publish_jwt_authority(
        &self,
        request: Request<api::PublishJwtAuthorityRequest>,
    ) -> Result<Response<api::PublishJwtAuthorityResponse>, Status> {
        let req = request.into_inner();
        let key = req.jwt_authority.ok_or_else(|| Status::invalid_argument("missing JWT authority"))?;
        let key = convert::jwt_authority(&key)
            .map_err(|m| Status::invalid_argument(format!("invalid JWT authority: {m}")))?;
        let incoming = StoredBundle { jwt_authorities: vec![key], ..StoredBundle::new(self.ctx.trust_domain.clone()) };
        let bundle = self.ctx.ds.append_bundle(incoming).await.map_err(|e| ds_err("failed to publish JWT key", e))?;
        Ok(Response::new(api::PublishJwtAuthorityResponse { jwt_authorities: bundle.to_proto().jwt_authorities }))
    }

    async fn publish_wit_authority(
        &self,
        _request: Request<api::PublishWitAuthorityRequest>,
    ) -> Result<Response<api::PublishWitAuthorityResponse>, Status> {
        Err(Status::unimplemented("publishing WIT authorities is not supported by this server"))
    }

    /// Pages over all stored bundles and leaves out the server's own, as SPIRE does, so a page can hold
    /// one bundle fewer than asked for.
    async fn list_federated_bundles(
        &self,
        request: Request<api::ListFederatedBundlesRequest>,
    ) -> Result<Response<api::ListFederatedBundlesResponse>, Status> {
        let req = request.into_inner();
        let pagination = u32::try_from(req.page_size)
            .ok()
            .filter(|&n| n > 0)
            .map(|page_size| Pagination { page_size, token: req.page_token.clone() });
        let (bundles, next_page_token) =
            self.ctx.ds.list_bundles(pagination.as_ref()).await.map_err(|e| ds_err("failed to list bundles", e))?;
        let mask = req.output_mask.as_ref();
        Ok(Response::new(api::ListFederatedBundlesResponse {
            bundles: bundles
                .iter()
                .filter(|b| b.trust_domain != self.ctx.trust_domain)
                .map(|b| convert::bundle_proto(b, mask))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_federated_bundle(
        &self,
        request: Request<api::GetFederatedBundleRequest>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let req = request.into_inner();
        let td = self.federated_trust_domain(&req.trust_domain, Verb::Get)?;
        let bundle = self
            .ctx
            .ds
            .fetch_bundle(&td)
            .await
            .map_err(|e| ds_err("failed to fetch bundle", e))?
            .ok_or_else(|| Status::not_found("bundle not found"))?;
        Ok(Response::new(convert::bundle_proto(&bundle, req.output_mask.as_ref())))
    }

    async fn batch_create_federated_bundle(
        &self,
        request: Request<api::BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchCreateFederatedBundleResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.bundle.len());
        for b in &req.bundle {
            let (status, bundle) = self.create_one(b, req.output_mask.as_ref()).await;
            results.push(api::batch_create_federated_bundle_response::Result { status: Some(status), bundle });
        }
        Ok(Response::new(api::BatchCreateFederatedBundleResponse { results }))
    }

    async fn batch_update_federated_bundle(
        &self,
        request: Request<api::BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchUpdateFederatedBundleResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.bundle.len());
        for b in &req.bundle {
            let (status, bundle) = self.update_one(b, req.input_mask.as_ref(), req.output_mask.as_ref()).await;
            results.push(api::batch_update_federated_bundle_response::Result { status: Some(status), bundle });
        }
        Ok(Response::new(api::BatchUpdateFederatedBundleResponse { results }))
    }

    async fn batch_set_federated_bundle(
        &self,
        request: Request<api::BatchSetFederatedBundleRequest>,
    ) -> Result<Response<api::BatchSetFederatedBundleResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.bundle.len());
        for b in &req.bundle {
            let (status, bundle) = self.set_one(b, req.output_mask.as_ref()).await;
            results.push(api::batch_set_federated_bundle_response::Result { status: Some(status), bundle });
        }
        Ok(Response::new(api::BatchSetFederatedBundleResponse { results }))
    }

    async fn batch_delete_federated_bundle(
        &self,
        request: Request<api::BatchDeleteFederatedBundleRequest>,
    ) -> Result<Response<api::BatchDeleteFederatedBundleResponse>, Status> {
        let req = request.into_inner();
        let mode = delete_mode(req.mode)?;
        let mut results = Vec::with_capacity(req.trust_domains.len());
        for trust_domain in req.trust_domains {
            let status = self.delete_one(&trust_domain, mode).await;
            results.push(api::batch_delete_federated_bundle_response::Result { status: Some(status), trust_domain });
        }
        Ok(Response::new(api::BatchDeleteFederatedBundleResponse { results }))
    }
}

#[cfg(test)]
mod tests {
    use super::convert;
    use spire_identity::{KeyType, PrivateKey};
    use spire_proto::spire::api::types as pb;

    #[test]
    fn jwt_authority_needs_a_key_and_an_id() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let good = pb::JwtKey { public_key: key.public_key_der(), key_id: "kid".into(), ..Default::default() };
        assert!(convert::jwt_authority(&good).is_ok());
        let no_id = pb::JwtKey { key_id: String::new(), ..good.clone() };
        assert_eq!(convert::jwt_authority(&no_id).unwrap_err(), "missing key ID");
        let garbage = pb::JwtKey { public_key: b"nope".to_vec(), ..good };
        assert!(convert::jwt_authority(&garbage).unwrap_err().contains("SubjectPublicKeyInfo"));
    }

    #[test]
    fn x509_authority_refuses_empty_and_garbage() {
        assert!(convert::x509_authority(0, b"").unwrap_err().contains("empty"));
        assert!(convert::x509_authority(2, b"\x30\x03abc").unwrap_err().starts_with("authority 2 is not a valid DER"));
    }

    #[test]
    fn output_mask_keeps_the_trust_domain() {
        let mut b = spire_datastore::StoredBundle::new(spire_identity::TrustDomain::parse("example.org").unwrap());
        b.refresh_hint = 60;
        b.sequence_number = 3;
        let masked = convert::bundle_proto(&b, Some(&pb::BundleMask { refresh_hint: true, ..Default::default() }));
        assert_eq!((masked.trust_domain.as_str(), masked.refresh_hint, masked.sequence_number), ("example.org", 60, 0));
        assert_eq!(convert::bundle_proto(&b, None).sequence_number, 3);
    }
}
