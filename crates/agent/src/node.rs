//! The agent's side of the node APIs: attestation (join token), renewal and the trust bundle.

use spire_identity::x509::certificate_request;
use spire_identity::{Bundle, JwtAuthority, PrivateKey, TrustDomain};
use spire_proto::spire::api::server::agent::v1 as agent_api;
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::types as pb;
use spire_proto::spire::api::types::permission_denied_details::Reason;
use tonic::Status;

use crate::server_client::{ClientError, ServerClient};

/// Why attestation, renewal or the bundle fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The server could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server refused.
    #[error("{0}")]
    Refused(Status),
    /// The server's answer was not what the protocol says.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    /// A CSR could not be made.
    #[error("failed to create a CSR: {0}")]
    Csr(String),
}

impl NodeError {
    /// Whether the server says this agent may no longer act: a PermissionDenied carrying one of the
    /// `PermissionDeniedDetails` reasons SPIRE's agent acts on (banned; evicted, expired or superseded,
    /// which a join-token agent cannot fix by re-attesting). SPIRE's agent then removes its SVID and
    /// stops; any other PermissionDenied (an authorization policy's, say) it retries, and so do we.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::Refused(s) if agent_refusal(s).is_some())
    }
}

/// The reason of a PermissionDenied `status` that refuses the agent itself (SPIRE's
/// `nodeutil.ShouldAgentReattest` and `ShouldAgentShutdown`), `None` for anything else.
pub fn agent_refusal(status: &Status) -> Option<Reason> {
    use prost::Message;
    if status.code() != tonic::Code::PermissionDenied {
        return None;
    }
    let details = spire_proto::google::rpc::Status::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .filter(|any| any.type_url.rsplit('/').next() == Some("spire.api.types.PermissionDeniedDetails"))
        .filter_map(|any| pb::PermissionDeniedDetails::decode(any.value.as_slice()).ok())
        .filter_map(|d| Reason::try_from(d.reason).ok())
        .find(|r| {
            matches!(
                r,
                Reason::AgentExpired
                    | Reason::AgentNotActive
                    | Reason::AgentNotAttested
                    | Reason::AgentMustReattest
                    | Reason::AgentBanned
            )
        })
}

/// An agent SVID as the server issued it.
#[derive(Debug, Clone)]
pub struct AgentSvid {
    /// Leaf first.
    pub chain: Vec<Vec<u8>>,
    /// Whether the agent re-attests instead of renewing.
    pub reattestable: bool,
}

fn csr(key: &PrivateKey) -> Result<Vec<u8>, NodeError> {
    certificate_request(key, &[], &[]).map_err(|e| NodeError::Csr(e.to_string()))
}

/// Attests with a join token: one AttestAgent exchange, no challenge.
pub async fn attest_join_token(client: &ServerClient, token: &str, key: &PrivateKey) -> Result<AgentSvid, NodeError> {
    let params = agent_api::attest_agent_request::Params {
        data: Some(pb::AttestationData { r#type: "join_token".into(), payload: token.as_bytes().to_vec() }),
        params: Some(agent_api::AgentX509svidParams { csr: csr(key)? }),
    };
    let first = agent_api::AttestAgentRequest { step: Some(agent_api::attest_agent_request::Step::Params(params)) };
    let mut agent = AgentClient::new(client.channel().await?);
    let mut inbound =
        agent.attest_agent(tokio_stream::iter(vec![first])).await.map_err(NodeError::Refused)?.into_inner();
    let msg = inbound
        .message()
        .await
        .map_err(NodeError::Refused)?
        .ok_or_else(|| NodeError::Protocol("attestation stream ended without a result".into()))?;
    match msg.step {
        Some(agent_api::attest_agent_response::Step::Result(r)) => {
            let svid = r.svid.ok_or_else(|| NodeError::Protocol("attestation result without an SVID".into()))?;
            Ok(AgentSvid { chain: svid.cert_chain, reattestable: r.reattestable })
        }
        Some(agent_api::attest_agent_response::Step::Challenge(_)) => {
            Err(NodeError::Protocol("the join_token attestor does not answer challenges".into()))
        }
        None => Err(NodeError::Protocol("empty attestation response".into())),
    }
}

/// Renews the agent SVID for `key` (RenewAgent), authenticating with the current one.
pub async fn renew(client: &ServerClient, key: &PrivateKey) -> Result<Vec<Vec<u8>>, NodeError> {
    let mut agent = AgentClient::new(client.channel().await?);
    let req = agent_api::RenewAgentRequest { params: Some(agent_api::AgentX509svidParams { csr: csr(key)? }) };
    let resp = agent.renew_agent(req).await.map_err(NodeError::Refused)?.into_inner();
    Ok(resp.svid.ok_or_else(|| NodeError::Protocol("renewal without an SVID".into()))?.cert_chain)
}

/// The trust domain's bundle from the server.
pub async fn fetch_bundle(client: &ServerClient, td: &TrustDomain) -> Result<Bundle, NodeError> {
    let mut bundles = BundleClient::new(client.channel().await?);
    let b = bundles.get_bundle(GetBundleRequest { output_mask: None }).await.map_err(NodeError::Refused)?.into_inner();
    Ok(bundle_from_proto(td, &b))
}

/// An API bundle in the identity core's form; unreadable authorities are skipped.
pub fn bundle_from_proto(td: &TrustDomain, b: &pb::Bundle) -> Bundle {
    let mut bundle = Bundle::new(td.clone());
    for a in &b.x509_authorities {
        let _ = bundle.add_x509_authority(a.asn1.clone());
    }
    for k in &b.jwt_authorities {
        let _ = bundle.add_jwt_authority(JwtAuthority {
            key_id: k.key_id.clone(),
            public_key_der: k.public_key.clone(),
            expires_at: k.expires_at,
        });
    }
    bundle.sequence_number = b.sequence_number;
    bundle.refresh_hint = u64::try_from(b.refresh_hint).ok().filter(|h| *h > 0);
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn denied(reason: Option<Reason>) -> Status {
        let details = reason
            .map(|r| prost_types::Any {
                type_url: "type.googleapis.com/spire.api.types.PermissionDeniedDetails".into(),
                value: pb::PermissionDeniedDetails { reason: r as i32 }.encode_to_vec(),
            })
            .into_iter()
            .collect();
        let status = spire_proto::google::rpc::Status { code: 7, message: "no".into(), details };
        Status::with_details(tonic::Code::PermissionDenied, "no", status.encode_to_vec().into())
    }

    #[test]
    fn only_spire_reasons_refuse_the_agent() {
        for reason in [
            Reason::AgentExpired,
            Reason::AgentNotActive,
            Reason::AgentNotAttested,
            Reason::AgentMustReattest,
            Reason::AgentBanned,
        ] {
            assert_eq!(agent_refusal(&denied(Some(reason))), Some(reason));
            assert!(NodeError::Refused(denied(Some(reason))).is_permission_denied());
        }
        // Retried, as SPIRE's agent does: no details, an unknown reason, another code.
        assert!(!NodeError::Refused(denied(None)).is_permission_denied());
        assert!(!NodeError::Refused(Status::permission_denied("authorization denied")).is_permission_denied());
        assert_eq!(agent_refusal(&denied(Some(Reason::Unknown))), None);
        assert_eq!(agent_refusal(&Status::unavailable("down")), None);
    }
}
