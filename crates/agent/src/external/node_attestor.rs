//! An external agent NodeAttestor: SPIRE's agent plugin protocol is one bidirectional stream per
//! attestation, `AidAttestation(stream Challenge) returns (stream PayloadOrChallengeResponse)`: the
//! plugin sends the payload first, then answers each server challenge the agent relays on the same
//! stream. So each attempt ([`NodeAttestor::begin`]) opens its own stream and owns it; dropping the
//! attempt ends the stream (SPIRE's facade cancels it when its `Attest` returns).
//!
//! The attestation data type sent to the server is the plugin's configured name, and the plugin's
//! errors are prefixed `nodeattestor(<name>): `, as SPIRE's facade does.

use async_trait::async_trait;
use spire_proto::spire::plugin::agent::nodeattestor::v1 as nodev1;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Channel;

use nodev1::node_attestor_client::NodeAttestorClient;
use nodev1::payload_or_challenge_response::Data;

use crate::node_attestor::{Attempt, NodeAttestor, NodeAttestorError};

/// The plugin type, in the facade's prefix.
const PLUGIN_TYPE: &str = "NodeAttestor";

/// A node attestor served by an external plugin.
#[derive(Debug, Clone)]
pub struct ExternalNodeAttestor {
    name: String,
    client: NodeAttestorClient<Channel>,
}

impl ExternalNodeAttestor {
    /// The facade of the plugin `name` reached over `channel` (from [`super::ExternalPlugins::start`]).
    pub fn new(name: impl Into<String>, channel: Channel) -> Self {
        Self { name: name.into(), client: NodeAttestorClient::new(channel) }
    }

    fn wrap(&self, status: &tonic::Status) -> NodeAttestorError {
        NodeAttestorError::Status(spire_plugin_host::facade_status(PLUGIN_TYPE, &self.name, status))
    }

    fn fail(&self, message: &str) -> NodeAttestorError {
        NodeAttestorError::Status(spire_plugin_host::facade_error(PLUGIN_TYPE, &self.name, Code::Internal, message))
    }
}

#[async_trait]
impl NodeAttestor for ExternalNodeAttestor {
    fn name(&self) -> &str {
        &self.name
    }

    /// A payload from an attempt of its own, which then ends: for callers that never relay a
    /// challenge. Attestation uses [`NodeAttestor::begin`].
    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        self.begin().await?.payload().await
    }

    async fn begin(&self) -> Result<Box<dyn Attempt + '_>, NodeAttestorError> {
        // One challenge in flight at a time: the plugin answers before the next is relayed.
        let (challenges, outbound) = mpsc::channel(1);
        let responses = self
            .client
            .clone()
            .aid_attestation(tokio_stream::wrappers::ReceiverStream::new(outbound))
            .await
            .map_err(|s| self.wrap(&s))?
            .into_inner();
        Ok(Box::new(StreamAttempt { attestor: self, challenges, responses }))
    }
}

/// One `AidAttestation` stream.
struct StreamAttempt<'a> {
    attestor: &'a ExternalNodeAttestor,
    challenges: mpsc::Sender<nodev1::Challenge>,
    responses: tonic::Streaming<nodev1::PayloadOrChallengeResponse>,
}

impl StreamAttempt<'_> {
    /// The plugin's next message, `None` if it closed the stream.
    async fn next(&mut self) -> Result<Option<Data>, NodeAttestorError> {
        match self.responses.message().await {
            Ok(Some(message)) => Ok(Some(message.data.unwrap_or(Data::Payload(Vec::new())))),
            Ok(None) => Ok(None),
            Err(status) => Err(self.attestor.wrap(&status)),
        }
    }
}

#[async_trait]
impl Attempt for StreamAttempt<'_> {
    async fn payload(&mut self) -> Result<Vec<u8>, NodeAttestorError> {
        match self.next().await? {
            None => Err(self.attestor.fail("plugin closed stream before returning attestation data")),
            Some(Data::Payload(payload)) if !payload.is_empty() => Ok(payload),
            Some(_) => Err(self.attestor.fail("plugin response missing attestation payload")),
        }
    }

    async fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        let closed = "plugin closed stream before handling the challenge";
        if self.challenges.send(nodev1::Challenge { challenge: challenge.to_vec() }).await.is_err() {
            return Err(self.attestor.fail(closed));
        }
        match self.next().await? {
            None => Err(self.attestor.fail(closed)),
            Some(Data::ChallengeResponse(response)) if !response.is_empty() => Ok(response),
            Some(_) => Err(self.attestor.fail("plugin response missing challenge response")),
        }
    }
}
