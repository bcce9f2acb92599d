//! Host services: gRPC services of the daemon that a plugin may call back (SPIRE's `AgentStore`,
//! `IdentityProvider`, `Metrics`), served to it through go-plugin's broker.

use std::convert::Infallible;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

/// The host services offered to one plugin, and their names (announced in the SDK's `Init`).
#[derive(Debug, Clone, Default)]
pub struct HostServices {
    pub(crate) routes: Routes,
    pub(crate) names: Vec<String>,
}

impl HostServices {
    /// No host services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tonic service (`FooServer::new(impl)`).
    pub fn with<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                tonic::codegen::http::Request<Body>,
                Response = tonic::codegen::http::Response<Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME.to_owned());
        self.routes = self.routes.add_service(service);
        self
    }

    /// The fully qualified names of the services (`spire.hostservice.server.agentstore.v1.AgentStore`).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}
