//! The host services the server offers its external plugins, as SPIRE's: `AgentStore` (is this
//! agent attested?), `IdentityProvider` (the server's own X509-SVID and key, and the bundle) and
//! `Metrics`.

use std::sync::Arc;

use spire_datastore::DataStore;
use spire_identity::{SpiffeId, TrustDomain};
use spire_plugin_host::{HostServices, PluginMetrics};
use spire_proto::spire::hostservice::server::agentstore::v1 as agentstorev1;
use spire_proto::spire::hostservice::server::identityprovider::v1 as identityproviderv1;
use tonic::{Request, Response, Status};

use crate::endpoints::tls::ServerCert;

/// What the host services need from the server.
#[derive(Clone)]
pub struct ServerHost {
    /// The datastore (attested agents, the bundle).
    pub datastore: Arc<dyn DataStore>,
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// The server's current SVID, installed once the CA is up.
    pub cert: Arc<ServerCert>,
    /// Where plugin metrics go.
    pub metrics: PluginMetrics,
}

impl std::fmt::Debug for ServerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHost").field("trust_domain", &self.trust_domain).finish_non_exhaustive()
    }
}

impl ServerHost {
    /// The services every server plugin is offered.
    pub fn services(&self) -> HostServices {
        HostServices::new()
            .with(agentstorev1::agent_store_server::AgentStoreServer::new(self.clone()))
            .with(identityproviderv1::identity_provider_server::IdentityProviderServer::new(self.clone()))
            .with(self.metrics.service())
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl agentstorev1::agent_store_server::AgentStore for ServerHost {
    async fn get_agent_info(
        &self,
        request: Request<agentstorev1::GetAgentInfoRequest>,
    ) -> Result<Response<agentstorev1::GetAgentInfoResponse>, Status> {
        let agent_id = request.into_inner().agent_id;
        // An ID that does not parse names no agent, as in SPIRE (whose lookup is by string).
        let Ok(id) = SpiffeId::parse(&agent_id) else {
            return Err(Status::not_found("no such agent"));
        };
        match self.datastore.fetch_attested_node(&id).await.map_err(internal)? {
            Some(_) => Ok(Response::new(agentstorev1::GetAgentInfoResponse {
                info: Some(agentstorev1::AgentInfo { agent_id }),
            })),
            None => Err(Status::not_found("no such agent")),
        }
    }
}

#[tonic::async_trait]
impl identityproviderv1::identity_provider_server::IdentityProvider for ServerHost {
    async fn fetch_x509_identity(
        &self,
        _request: Request<identityproviderv1::FetchX509IdentityRequest>,
    ) -> Result<Response<identityproviderv1::FetchX509IdentityResponse>, Status> {
        let bundle = self
            .datastore
            .fetch_bundle(&self.trust_domain)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::internal("the trust domain has no bundle yet"))?;
        let (cert_chain, private_key) =
            self.cert.identity().ok_or_else(|| Status::unavailable("the server has no X509-SVID yet"))?;
        Ok(Response::new(identityproviderv1::FetchX509IdentityResponse {
            identity: Some(identityproviderv1::X509Identity { cert_chain, private_key }),
            bundle: Some(super::bundle::to_plugin(&bundle)),
        }))
    }
}

/// The host services' names offered while `spire-server validate` runs a plugin's `Validate`: a
/// plugin may require them at `Init`, but there is no datastore or SVID to answer from yet, so each
/// call is refused.
pub fn validation_services() -> HostServices {
    HostServices::new()
        .with(agentstorev1::agent_store_server::AgentStoreServer::new(Validating))
        .with(identityproviderv1::identity_provider_server::IdentityProviderServer::new(Validating))
        .with(PluginMetrics::new().service())
}

/// Host services that refuse every call: the server is only validating its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Validating;

fn validating() -> Status {
    Status::failed_precondition("host services are not available while validating the configuration")
}

#[tonic::async_trait]
impl agentstorev1::agent_store_server::AgentStore for Validating {
    async fn get_agent_info(
        &self,
        _request: Request<agentstorev1::GetAgentInfoRequest>,
    ) -> Result<Response<agentstorev1::GetAgentInfoResponse>, Status> {
        Err(validating())
    }
}

#[tonic::async_trait]
impl identityproviderv1::identity_provider_server::IdentityProvider for Validating {
    async fn fetch_x509_identity(
        &self,
        _request: Request<identityproviderv1::FetchX509IdentityRequest>,
    ) -> Result<Response<identityproviderv1::FetchX509IdentityResponse>, Status> {
        Err(validating())
    }
}
