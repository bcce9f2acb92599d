//! An external server NodeAttestor: SPIRE's `Attest` stream (payload, then challenge rounds, then
//! the agent's attributes), behind our [`NodeAttestor`] trait.

use spire_identity::SpiffeId;
use spire_proto::spire::plugin::server::nodeattestor::v1 as pb;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::facade_status;
use crate::catalog::nodeattestor::{AttestResult, Challenger, NodeAttestor};

/// The SDK service an external server NodeAttestor serves.
pub const SERVICE: &str = "spire.plugin.server.nodeattestor.v1.NodeAttestor";

/// A NodeAttestor served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalNodeAttestor {
    name: String,
    client: pb::node_attestor_client::NodeAttestorClient<Channel>,
}

impl ExternalNodeAttestor {
    /// The facade for the plugin `name` on `channel`.
    pub fn new(name: &str, channel: Channel) -> Self {
        Self { name: name.to_owned(), client: pb::node_attestor_client::NodeAttestorClient::new(channel) }
    }

    fn error(&self, code: Code, message: &str) -> Status {
        facade_status("nodeattestor", &self.name, &Status::new(code, message))
    }
}

#[async_trait::async_trait]
impl NodeAttestor for ExternalNodeAttestor {
    fn name(&self) -> &str {
        &self.name
    }

    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        if payload.is_empty() {
            return Err(Status::invalid_argument("payload cannot be empty"));
        }
        let (requests, outbound) = tokio::sync::mpsc::channel::<pb::AttestRequest>(2);
        let send = |request| {
            let requests = requests.clone();
            async move { requests.send(pb::AttestRequest { request: Some(request) }).await.is_ok() }
        };
        send(pb::attest_request::Request::Payload(payload.to_vec())).await;
        let mut client = self.client.clone();
        let mut responses = client
            .attest(tokio_stream::wrappers::ReceiverStream::new(outbound))
            .await
            .map_err(|s| facade_status("nodeattestor", &self.name, &s))?
            .into_inner();
        let attributes = loop {
            let response = match responses.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Err(self.error(Code::Internal, "plugin closed stream unexpectedly")),
                Err(s) => return Err(facade_status("nodeattestor", &self.name, &s)),
            };
            match response.response {
                Some(pb::attest_response::Response::AgentAttributes(attributes)) => break attributes,
                Some(pb::attest_response::Response::Challenge(challenge)) => {
                    let answer = challenger.challenge(challenge).await?;
                    if !send(pb::attest_request::Request::ChallengeResponse(answer)).await {
                        return Err(self.error(Code::Internal, "plugin closed stream unexpectedly"));
                    }
                }
                None => {
                    return Err(self.error(Code::Internal, "plugin response missing challenge or agent attributes"));
                }
            }
        };
        if attributes.spiffe_id.is_empty() {
            return Err(self.error(Code::Internal, "plugin response missing agent ID"));
        }
        let agent_id = SpiffeId::parse(&attributes.spiffe_id).map_err(|e| {
            self.error(Code::Internal, &format!("plugin returned an invalid agent ID {:?}: {e}", attributes.spiffe_id))
        })?;
        Ok(AttestResult {
            agent_id,
            selector_values: attributes.selector_values,
            can_reattest: attributes.can_reattest,
        })
    }
}
