//! `spire.api.server.svid.v1.SVID`: SVIDs for the workloads of an agent (only for entries that agent
//! is authorized for), SVIDs minted by admins for any workload ID of the trust domain, and CA
//! certificates for downstream servers.
//!
//! The authorization check that matters most lives here, not in the auth layer: an agent may only
//! obtain SVIDs for entries in its own authorized set (descendants of its ID and of its node
//! aliases), so a compromised agent cannot impersonate workloads of other nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_datastore::RegistrationEntry;
use spire_identity::SpiffeId;
use spire_proto::spire::api::server::svid::v1 as api;
use spire_proto::spire::api::server::svid::v1::svid_server::Svid;
use spire_proto::spire::api::types as pb;
use tonic::{Request, Response, Status};

use super::agent::workload_id;
use super::caller::Caller;
use super::csr::{self, CsrError};
use super::{ServerContext, ca_status, convert, dns, ds_status, item_status, ok_status};
use crate::ca::CaError;
use crate::catalog::credentialcomposer::X509SvidKind;

/// Lifetime of a downstream CA when the request states none: as long as our own CA allows (the CA
/// caps it at its own expiry).
const DOWNSTREAM_DEFAULT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The SVID service.
#[derive(Debug, Clone)]
pub struct SvidService {
    ctx: Arc<ServerContext>,
}

impl SvidService {
    /// A service over `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        Self { ctx }
    }
}

/// A signing failure as a status: the CA's code, with `what` in front of its message.
pub(crate) fn sign_status(what: &str, e: CaError) -> Status {
    let s = ca_status(e);
    Status::new(s.code(), format!("{what}: {}", s.message()))
}

/// Whether a path is in SPIRE's reserved `/spire` namespace (agents, the server), which workload
/// entries and minted SVIDs may not use.
pub(crate) fn is_reserved_path(path: &str) -> bool {
    path == "/spire" || path.starts_with("/spire/")
}

fn ttl_or(seconds: i32, default: Duration) -> Duration {
    if seconds > 0 { Duration::from_secs(seconds as u64) } else { default }
}

impl SvidService {
    /// The caller's authorized entries by ID. Computed from the index with the node selectors the
    /// auth layer read for this very request, never from anything the agent sent.
    fn authorized(&self, caller: &Caller) -> Result<HashMap<String, Arc<RegistrationEntry>>, Status> {
        let agent = caller.agent_id()?;
        let entries = self.ctx.index.read().expect("index lock").authorized_entries(agent, &caller.node_selectors);
        Ok(entries.into_iter().map(|e| (e.id.clone(), e)).collect())
    }

    async fn new_x509_svid(
        &self,
        params: &api::NewX509svidParams,
        entries: &HashMap<String, Arc<RegistrationEntry>>,
    ) -> Result<pb::X509svid, Status> {
        if params.entry_id.is_empty() {
            return Err(Status::invalid_argument("missing entry ID"));
        }
        if params.csr.is_empty() {
            return Err(Status::invalid_argument("missing CSR"));
        }
        let entry =
            entries.get(&params.entry_id).ok_or_else(|| Status::not_found("entry not found or not authorized"))?;
        let csr = csr::parse(&params.csr)?;
        let ttl = ttl_or(entry.x509_svid_ttl, self.ctx.settings.default_x509_svid_ttl);
        let (subject, dns_names) = match self
            .ctx
            .compose_x509_svid(X509SvidKind::Workload, &entry.spiffe_id, &csr.public_key_der, None, &entry.dns_names)
            .await?
        {
            Some((subject, dns_names)) => (Some(subject), dns_names),
            None => (None, entry.dns_names.clone()),
        };
        let signed = self
            .ctx
            .ca
            .sign_x509_svid(&entry.spiffe_id, &csr.public_key_der, &dns_names, subject, ttl, SystemTime::now())
            .map_err(|e| sign_status("failed to sign X509-SVID", e))?;
        Ok(pb::X509svid {
            cert_chain: signed.chain,
            id: Some(convert::spiffe_id_proto(&entry.spiffe_id)),
            expires_at: signed.expires_at,
            hint: entry.hint.clone(),
        })
    }

    async fn sign_jwt(
        &self,
        id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        jti: bool,
    ) -> Result<pb::Jwtsvid, Status> {
        if audience.is_empty() {
            return Err(Status::invalid_argument("at least one audience is required"));
        }
        let jti = jti.then(|| uuid::Uuid::new_v4().to_string());
        let sign_error = |e| sign_status("failed to sign JWT-SVID", e);
        let ca = &self.ctx.ca;
        let signed = if self.ctx.composers.is_empty() {
            ca.sign_jwt_svid(id, audience, ttl, jti.as_deref(), SystemTime::now()).map_err(sign_error)?
        } else {
            let claims =
                ca.jwt_svid_claims(id, audience, ttl, jti.as_deref(), SystemTime::now()).map_err(sign_error)?;
            let composed = self.ctx.composers.workload_jwt_svid(id, claims).await?;
            ca.sign_jwt_claims(&composed).map_err(sign_error)?
        };
        Ok(pb::Jwtsvid {
            token: signed.token,
            id: Some(convert::spiffe_id_proto(id)),
            expires_at: signed.expires_at,
            issued_at: signed.issued_at,
            hint: String::new(),
        })
    }

    /// The SPIFFE ID a MintX509SVID CSR asks for, checked as SPIRE checks it.
    fn mint_id(&self, uris: &[String]) -> Result<SpiffeId, Status> {
        let uri = match uris {
            [] => return Err(Status::invalid_argument("CSR URI SAN is required")),
            [one] => one,
            _ => return Err(Status::invalid_argument("only one URI SAN is expected")),
        };
        let id = SpiffeId::parse(uri)
            .map_err(|e| Status::invalid_argument(format!("CSR URI SAN is invalid: {}", e.go_spiffe_message())))?;
        workload_id(&self.ctx.trust_domain, &id)
            .map_err(|m| Status::invalid_argument(format!("CSR URI SAN is invalid: {m}")))?;
        Ok(id)
    }
}

#[tonic::async_trait]
impl Svid for SvidService {
    async fn mint_x509svid(
        &self,
        request: Request<api::MintX509svidRequest>,
    ) -> Result<Response<api::MintX509svidResponse>, Status> {
        let req = request.into_inner();
        if req.csr.is_empty() {
            return Err(Status::invalid_argument("missing CSR"));
        }
        let csr = csr::parse(&req.csr).map_err(|e| match e {
            CsrError::Signature(_) => {
                Status::invalid_argument(format!("failed to verify CSR signature: {}", e.detail()))
            }
            other => other.into(),
        })?;
        let id = self.mint_id(&csr.uris)?;
        for name in &csr.dns_names {
            dns::validate_label(name).map_err(|m| Status::invalid_argument(format!("CSR DNS name is invalid: {m}")))?;
        }
        dns::check_wildcard_overlap(&csr.dns_names).map_err(|m| {
            Status::invalid_argument(format!(
                "CSR DNS name contains a wildcard that covers another non-wildcard name: {m}"
            ))
        })?;
        let ttl = ttl_or(req.ttl, self.ctx.settings.default_x509_svid_ttl);
        let (subject, dns_names) = match self
            .ctx
            .compose_x509_svid(X509SvidKind::Workload, &id, &csr.public_key_der, csr.subject.clone(), &csr.dns_names)
            .await?
        {
            Some((subject, dns_names)) => (Some(subject), dns_names),
            None => (csr.subject, csr.dns_names),
        };
        let signed = self
            .ctx
            .ca
            .sign_x509_svid(&id, &csr.public_key_der, &dns_names, subject, ttl, SystemTime::now())
            .map_err(|e| sign_status("failed to sign X509-SVID", e))?;
        tracing::info!(spiffe_id = %id, "X509-SVID minted");
        Ok(Response::new(api::MintX509svidResponse {
            svid: Some(pb::X509svid {
                cert_chain: signed.chain,
                id: Some(convert::spiffe_id_proto(&id)),
                expires_at: signed.expires_at,
                hint: String::new(),
            }),
        }))
    }

    async fn mint_jwtsvid(
        &self,
        request: Request<api::MintJwtsvidRequest>,
    ) -> Result<Response<api::MintJwtsvidResponse>, Status> {
        let req = request.into_inner();
        let id = convert::spiffe_id(req.id.as_ref())
            .and_then(|id| workload_id(&self.ctx.trust_domain, &id).map(|()| id))
            .map_err(|m| Status::invalid_argument(format!("invalid SPIFFE ID: {m}")))?;
        let ttl = ttl_or(req.ttl, self.ctx.settings.default_jwt_svid_ttl);
        let svid = self.sign_jwt(&id, &req.audience, ttl, false).await?;
        tracing::info!(spiffe_id = %id, "JWT-SVID minted");
        Ok(Response::new(api::MintJwtsvidResponse { svid: Some(svid) }))
    }

    async fn batch_new_x509svid(
        &self,
        request: Request<api::BatchNewX509svidRequest>,
    ) -> Result<Response<api::BatchNewX509svidResponse>, Status> {
        let entries = self.authorized(Caller::of(&request)?)?;
        let req = request.into_inner();
        if req.params.is_empty() {
            return Err(Status::invalid_argument("missing parameters"));
        }
        let mut results = Vec::with_capacity(req.params.len());
        for p in &req.params {
            results.push(match self.new_x509_svid(p, &entries).await {
                Ok(svid) => api::batch_new_x509svid_response::Result { status: Some(ok_status()), svid: Some(svid) },
                Err(s) => api::batch_new_x509svid_response::Result { status: Some(item_status(&s)), svid: None },
            });
        }
        Ok(Response::new(api::BatchNewX509svidResponse { results }))
    }

    async fn new_jwtsvid(
        &self,
        request: Request<api::NewJwtsvidRequest>,
    ) -> Result<Response<api::NewJwtsvidResponse>, Status> {
        let entries = self.authorized(Caller::of(&request)?)?;
        let req = request.into_inner();
        let entry = entries.get(&req.entry_id).ok_or_else(|| Status::not_found("entry not found or not authorized"))?;
        let ttl = ttl_or(entry.jwt_svid_ttl, self.ctx.settings.default_jwt_svid_ttl);
        let mut svid = self.sign_jwt(&entry.spiffe_id, &req.audience, ttl, entry.jwt_svid_include_jti).await?;
        svid.hint = entry.hint.clone();
        Ok(Response::new(api::NewJwtsvidResponse { svid: Some(svid) }))
    }

    async fn new_downstream_x509ca(
        &self,
        request: Request<api::NewDownstreamX509caRequest>,
    ) -> Result<Response<api::NewDownstreamX509caResponse>, Status> {
        if !Caller::of(&request)?.downstream {
            return Err(Status::internal("caller is not a downstream workload"));
        }
        let req = request.into_inner();
        let csr = csr::parse(&req.csr)?;
        let ttl = ttl_or(req.preferred_ttl, DOWNSTREAM_DEFAULT_TTL);
        let chain = self
            .ctx
            .ca
            .sign_downstream_ca(&csr.public_key_der, ttl, SystemTime::now())
            .map_err(|e| sign_status("failed to sign downstream X.509 CA", e))?;
        let bundle = self
            .ctx
            .ds
            .fetch_bundle(&self.ctx.trust_domain)
            .await
            .map_err(|e| {
                let s = ds_status(e);
                Status::new(s.code(), format!("failed to fetch bundle: {}", s.message()))
            })?
            .ok_or_else(|| Status::not_found("bundle not found"))?;
        Ok(Response::new(api::NewDownstreamX509caResponse {
            ca_cert_chain: chain,
            x509_authorities: bundle.x509_authorities.into_iter().map(|a| a.der).collect(),
        }))
    }

    async fn mint_witsvid(
        &self,
        _request: Request<api::MintWitsvidRequest>,
    ) -> Result<Response<api::MintWitsvidResponse>, Status> {
        Err(Status::unimplemented("WIT-SVIDs are not supported"))
    }

    async fn batch_new_witsvid(
        &self,
        _request: Request<api::BatchNewWitsvidRequest>,
    ) -> Result<Response<api::BatchNewWitsvidResponse>, Status> {
        Err(Status::unimplemented("WIT-SVIDs are not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths() {
        assert!(is_reserved_path("/spire"));
        assert!(is_reserved_path("/spire/agent/x"));
        assert!(!is_reserved_path("/spire-like"));
    }

    #[test]
    fn zero_or_negative_ttl_means_default() {
        let d = Duration::from_secs(7);
        assert_eq!(ttl_or(0, d), d);
        assert_eq!(ttl_or(-3, d), d);
        assert_eq!(ttl_or(5, d), Duration::from_secs(5));
    }
}
