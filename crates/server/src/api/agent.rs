//! `spire.api.server.agent.v1.Agent`: agent management for admins (list, count, show, evict, ban,
//! join tokens), node attestation for agents that have no SVID yet, and SVID renewal and status
//! reports for attested agents.
//!
//! Who may call what was settled by the auth layer; the handlers here only check what SPIRE's
//! handlers check (IDs in the trust domain, banned agents, well-formed CSRs).

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use spire_datastore::{AttestedNode, DataStoreError, NodeFilter, NodeMask, Pagination, RegistrationEntry};
use spire_identity::{MatchMode, Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::agent::v1 as api;
use spire_proto::spire::api::server::agent::v1::agent_server::Agent;
use spire_proto::spire::api::types as pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::permission_denied;
use super::caller::Caller;
use super::csr::{self, Csr};
use super::svid::{is_reserved_path, sign_status};
use super::{ServerContext, convert, ds_status};
use crate::catalog::credentialcomposer::X509SvidKind;
use crate::catalog::nodeattestor::{self, AttestResult, Challenger, JoinTokenAttestor, NodeAttestors};

/// Largest ListAgents page; bigger requests are clamped.
pub const MAX_LIST_PAGE_SIZE: i32 = 1000;
/// Longest agent version PostStatus records (SPIRE's limit).
pub const MAX_AGENT_VERSION_LEN: usize = 255;
/// How long one AttestAgent stream may take, challenges included. The RPC is unauthenticated, so an
/// idle caller must not hold a task open indefinitely.
pub const ATTEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The layout SPIRE's `agent list/count -expiresBefore` sends, in Go's reference-time notation.
pub const EXPIRES_BEFORE_LAYOUT: &str = "2006-01-02 15:04:05 -0700 -07";

/// The Agent service.
#[derive(Debug, Clone)]
pub struct AgentService {
    ctx: Arc<ServerContext>,
    attestors: Arc<NodeAttestors>,
}

impl AgentService {
    /// A service over `ctx` with the context's node attestors and the built-in `join_token`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        let attestors = ctx.node_attestors.clone();
        Self::with_attestors(ctx, attestors)
    }

    /// A service over `ctx` with the configured node attestors; `join_token` is always added, as in
    /// SPIRE, where it needs no plugin configuration.
    pub fn with_attestors(ctx: Arc<ServerContext>, mut attestors: NodeAttestors) -> Self {
        attestors.register(Arc::new(JoinTokenAttestor::new(ctx.trust_domain.clone(), ctx.ds.clone())));
        Self { ctx, attestors: Arc::new(attestors) }
    }
}

/// A status with a message prefix, keeping the code.
fn wrap(what: &str, s: Status) -> Status {
    Status::new(s.code(), format!("{what}: {}", s.message()))
}

/// A datastore error on an agent: NotFound reads "agent not found", as SPIRE answers.
fn agent_ds_status(what: &str, e: DataStoreError) -> Status {
    match e {
        DataStoreError::NotFound(_) => Status::not_found("agent not found"),
        other => wrap(what, ds_status(other)),
    }
}

/// An agent ID from the API: in our trust domain and under `/spire/agent/` (SPIRE's
/// `TrustDomainAgentIDFromProto`).
fn agent_id(td: &TrustDomain, id: Option<&pb::Spiffeid>) -> Result<SpiffeId, Status> {
    let bad = |m: String| Status::invalid_argument(format!("invalid agent ID: {m}"));
    let id = convert::spiffe_id(id).map_err(bad)?;
    if !id.is_member_of(td) {
        return Err(bad(format!("\"{id}\" is not a member of trust domain \"{td}\"")));
    }
    if id.path().is_empty() {
        return Err(bad(format!("\"{id}\" is not an agent in trust domain \"{td}\"; path is empty")));
    }
    if !id.path().starts_with("/spire/agent/") {
        return Err(bad(format!(
            "\"{id}\" is not an agent in trust domain \"{td}\"; path is not in the agent namespace"
        )));
    }
    Ok(id)
}

/// A workload ID from the API: in our trust domain, with a path outside `/spire` (SPIRE's
/// `TrustDomainWorkloadIDFromProto`).
pub(crate) fn workload_id(td: &TrustDomain, id: &SpiffeId) -> Result<(), String> {
    if !id.is_member_of(td) {
        return Err(format!("\"{id}\" is not a member of trust domain \"{td}\""));
    }
    if id.path().is_empty() {
        return Err(format!("\"{id}\" is not a workload in trust domain \"{td}\"; path is empty"));
    }
    if is_reserved_path(id.path()) {
        return Err(format!("\"{id}\" is not a workload in trust domain \"{td}\"; path is in the reserved namespace"));
    }
    Ok(())
}

/// Parses the `by_expires_before` filter. SPIRE's CLI sends the layout of [`EXPIRES_BEFORE_LAYOUT`]
/// (when both offsets are given, the last wins, as in Go's `time.Parse`); RFC 3339 is accepted too.
pub fn parse_expires_before(text: &str) -> Result<i64, Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "malformed expires before filter: {text:?} is neither like \"{EXPIRES_BEFORE_LAYOUT}\" nor RFC 3339"
        ))
    };
    if let Some(rfc3339) = go_layout_to_rfc3339(text) {
        return rfc3339.parse::<jiff::Timestamp>().map(|t| t.as_second()).map_err(|_| bad());
    }
    text.parse::<jiff::Timestamp>().map(|t| t.as_second()).map_err(|_| bad())
}

/// `2006-01-02 15:04:05 -0700 -07` to `2006-01-02T15:04:05-07:00`, or `None` if it is not that shape.
fn go_layout_to_rfc3339(text: &str) -> Option<String> {
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let (time, rest) = (rest.strip_prefix(' ')?.get(..8)?, rest.get(9..)?);
    let mut offsets = rest.split(' ').filter(|s| !s.is_empty());
    let long = offsets.next()?;
    let short = offsets.next()?;
    if offsets.next().is_some() || long.len() != 5 || short.len() != 3 {
        return None;
    }
    let sign_ok = |s: &str| s.starts_with(['+', '-']) && s[1..].bytes().all(|b| b.is_ascii_digit());
    if !sign_ok(long) || !sign_ok(short) {
        return None;
    }
    Some(format!("{date}T{time}{short}:00"))
}

fn match_mode(value: i32) -> Result<MatchMode, Status> {
    Ok(match value {
        0 => MatchMode::Exact,
        1 => MatchMode::Subset,
        2 => MatchMode::Superset,
        3 => MatchMode::Any,
        other => {
            return Err(Status::invalid_argument(format!("failed to parse selectors: unknown match behavior {other}")));
        }
    })
}

/// The filter fields shared by ListAgents and CountAgents.
fn node_filter(
    by_attestation_type: &str,
    by_selector_match: Option<&pb::SelectorMatch>,
    by_banned: Option<bool>,
    by_can_reattest: Option<bool>,
    by_expires_before: &str,
) -> Result<NodeFilter, Status> {
    let mut f = NodeFilter {
        by_attestation_type: (!by_attestation_type.is_empty()).then(|| by_attestation_type.to_owned()),
        by_banned,
        by_can_reattest,
        ..NodeFilter::default()
    };
    if !by_expires_before.is_empty() {
        f.by_expires_before = Some(parse_expires_before(by_expires_before)?);
    }
    if let Some(m) = by_selector_match {
        let bad = |m: String| Status::invalid_argument(format!("failed to parse selectors: {m}"));
        if m.selectors.is_empty() {
            return Err(bad("empty selector set".into()));
        }
        let set: SelectorSet = m.selectors.iter().map(convert::selector).collect::<Result<_, _>>().map_err(bad)?;
        f.by_selectors = Some((set, match_mode(m.r#match)?));
    }
    Ok(f)
}

/// Serial (decimal, as SPIRE records it and as the auth layer compares it with the TLS peer's) and
/// NotAfter (unix s) of an issued leaf.
fn leaf_serial(chain: &[Vec<u8>]) -> Result<(String, i64), Status> {
    let der = chain.first().ok_or_else(|| Status::internal("the CA returned an empty chain"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Status::internal(format!("failed to read the issued SVID: {e}")))?;
    Ok((cert.serial.to_string(), cert.validity().not_after.timestamp()))
}

/// An X509-SVID signed for an agent, with what the attested node records about it.
struct AgentSvid {
    proto: pb::X509svid,
    serial: String,
    not_after: i64,
}

impl AgentService {
    async fn sign_agent_svid(&self, agent_id: &SpiffeId, csr: &Csr) -> Result<AgentSvid, Status> {
        let ttl = self.ctx.settings.agent_ttl;
        let (subject, dns_names) = self
            .ctx
            .compose_x509_svid(X509SvidKind::Agent, agent_id, &csr.public_key_der, None, &[])
            .await?
            .map_or((None, Vec::new()), |(subject, dns)| (Some(subject), dns));
        let signed = self
            .ctx
            .ca
            .sign_x509_svid(agent_id, &csr.public_key_der, &dns_names, subject, ttl, SystemTime::now())
            .map_err(|e| sign_status("failed to sign X509 SVID", e))?;
        let (serial, not_after) = leaf_serial(&signed.chain)?;
        let proto = pb::X509svid {
            cert_chain: signed.chain,
            id: Some(convert::spiffe_id_proto(agent_id)),
            expires_at: not_after,
            hint: String::new(),
        };
        Ok(AgentSvid { proto, serial, not_after })
    }

    /// The part of AttestAgent after the first message: attest, check, sign, record.
    async fn attest(
        &self,
        params: Option<api::attest_agent_request::Params>,
        challenger: &mut dyn Challenger,
    ) -> Result<api::attest_agent_response::Result, Status> {
        let malformed = |m: &str| Status::invalid_argument(format!("malformed param: {m}"));
        let params = params.ok_or_else(|| malformed("missing params"))?;
        let data = params.data.ok_or_else(|| malformed("missing attestation data"))?;
        let svid_params = params.params.ok_or_else(|| malformed("missing X509-SVID parameters"))?;
        if svid_params.csr.is_empty() {
            return Err(malformed("missing CSR"));
        }
        if data.r#type.is_empty() {
            return Err(malformed("missing attestation data type"));
        }
        if data.payload.is_empty() {
            return Err(malformed("missing attestation data payload"));
        }
        // Checked before attesting so that a bad CSR does not burn a single-use join token.
        let csr = csr::parse(&svid_params.csr)?;
        let attestor = self.attestors.get(&data.r#type).ok_or_else(|| {
            Status::failed_precondition(format!(
                "error getting node attestor: could not find node attestor type \"{}\"",
                data.r#type
            ))
        })?;
        let result = attestor.attest(&data.payload, challenger).await?;
        let selectors = self.selectors(&data.r#type, &result)?;
        let agent_id = result.agent_id;
        if agent_id == self.ctx.server_id {
            return Err(Status::internal("agent ID cannot collide with the server ID"));
        }
        if !agent_id.is_member_of(&self.ctx.trust_domain) {
            return Err(Status::internal(format!(
                "node attestor produced agent ID \"{agent_id}\" outside trust domain \"{}\"",
                self.ctx.trust_domain
            )));
        }
        let existing = self
            .ctx
            .ds
            .fetch_attested_node(&agent_id)
            .await
            .map_err(|e| wrap("failed to fetch agent", ds_status(e)))?;
        if existing.as_ref().is_some_and(AttestedNode::is_banned) {
            return Err(Status::permission_denied("failed to attest: agent is banned"));
        }
        let svid = self.sign_agent_svid(&agent_id, &csr).await?;
        let node = AttestedNode {
            cert_serial_number: svid.serial.clone(),
            cert_not_after: svid.not_after,
            can_reattest: result.can_reattest,
            selectors,
            ..AttestedNode::new(agent_id.clone(), data.r#type.clone())
        };
        self.record_attested_node(node, existing.is_some()).await?;
        tracing::info!(agent_id = %agent_id, attestor = %data.r#type, "agent attested");
        Ok(api::attest_agent_response::Result { svid: Some(svid.proto), reattestable: result.can_reattest })
    }

    /// The attestor's selector values, typed with its name.
    fn selectors(&self, attestor: &str, result: &AttestResult) -> Result<Vec<Selector>, Status> {
        result
            .selector_values
            .iter()
            .map(|v| Selector::new(attestor, v.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::internal(format!("node attestor returned an invalid selector: {e}")))
    }

    /// Creates the node, or (re-attestation) replaces its certificate, re-attestability and
    /// selectors in one transaction. A concurrent first attestation of the same ID turns the create
    /// into an update.
    async fn record_attested_node(&self, node: AttestedNode, exists: bool) -> Result<(), Status> {
        if !exists {
            match self.ctx.ds.create_attested_node(node.clone()).await {
                Ok(_) => return Ok(()),
                Err(DataStoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(wrap("failed to create attested agent", ds_status(e))),
            }
        }
        let mask = NodeMask {
            cert_serial_number: true,
            cert_not_after: true,
            new_cert_serial_number: true,
            new_cert_not_after: true,
            can_reattest: true,
            selectors: true,
            agent_version: false,
        };
        self.ctx
            .ds
            .update_attested_node(node, &mask)
            .await
            .map(drop)
            .map_err(|e| wrap("failed to update attested agent", ds_status(e)))
    }

    /// The alias entry CreateJoinToken makes when given an agent ID: it parents `agent_id` to the
    /// token's agent ID, so the agent is also authorized for what is registered under `agent_id`.
    async fn create_alias_entry(&self, token_id: &SpiffeId, agent_id: SpiffeId) -> Result<(), Status> {
        let selector = Selector::new("spiffe_id", token_id.to_string())
            .map_err(|e| Status::internal(format!("failed to create join token registration entry: {e}")))?;
        let entry = RegistrationEntry::new(agent_id, token_id.clone(), [selector]);
        let created = self
            .ctx
            .ds
            .create_entry(entry)
            .await
            .map_err(|e| Status::internal(format!("failed to create join token registration entry: {e}")))?;
        self.ctx.index.write().expect("index lock").upsert(created);
        Ok(())
    }
}

/// Relays challenges over the AttestAgent stream.
struct StreamChallenger<'a> {
    tx: &'a mpsc::Sender<Result<api::AttestAgentResponse, Status>>,
    rx: &'a mut Streaming<api::AttestAgentRequest>,
}

#[async_trait::async_trait]
impl Challenger for StreamChallenger<'_> {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, Status> {
        let msg = api::AttestAgentResponse { step: Some(api::attest_agent_response::Step::Challenge(challenge)) };
        self.tx.send(Ok(msg)).await.map_err(|_| Status::internal("failed to send challenge to agent"))?;
        let reply = self
            .rx
            .message()
            .await
            .map_err(|e| wrap("failed to receive challenge from agent", e))?
            .ok_or_else(|| Status::internal("failed to receive challenge from agent: stream closed"))?;
        match reply.step {
            Some(api::attest_agent_request::Step::ChallengeResponse(answer)) => Ok(answer),
            _ => Err(Status::invalid_argument("expected a challenge response")),
        }
    }
}

type AttestStream = Pin<Box<dyn Stream<Item = Result<api::AttestAgentResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn count_agents(
        &self,
        request: Request<api::CountAgentsRequest>,
    ) -> Result<Response<api::CountAgentsResponse>, Status> {
        let req = request.into_inner();
        let f = match &req.filter {
            Some(f) => node_filter(
                &f.by_attestation_type,
                f.by_selector_match.as_ref(),
                f.by_banned,
                f.by_can_reattest,
                &f.by_expires_before,
            )?,
            None => NodeFilter::default(),
        };
        let count =
            self.ctx.ds.count_attested_nodes(&f).await.map_err(|e| wrap("failed to count agents", ds_status(e)))?;
        Ok(Response::new(api::CountAgentsResponse { count: i32::try_from(count).unwrap_or(i32::MAX) }))
    }

    async fn list_agents(
        &self,
        request: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        let req = request.into_inner();
        if req.page_size < 0 {
            return Err(Status::invalid_argument(format!(
                "invalid page size {}: it must not be negative",
                req.page_size
            )));
        }
        let f = match &req.filter {
            Some(f) => node_filter(
                &f.by_attestation_type,
                f.by_selector_match.as_ref(),
                f.by_banned,
                f.by_can_reattest,
                &f.by_expires_before,
            )?,
            None => NodeFilter::default(),
        };
        let pagination = (req.page_size > 0 || !req.page_token.is_empty()).then(|| Pagination {
            page_size: req.page_size.clamp(1, MAX_LIST_PAGE_SIZE) as u32,
            token: req.page_token.clone(),
        });
        let (nodes, next) = self
            .ctx
            .ds
            .list_attested_nodes(&f, pagination.as_ref())
            .await
            .map_err(|e| wrap("failed to list agents", ds_status(e)))?;
        let mask = req.output_mask.as_ref();
        Ok(Response::new(api::ListAgentsResponse {
            agents: nodes.iter().map(|n| convert::agent_proto(n, mask)).collect(),
            next_page_token: next,
        }))
    }

    async fn get_agent(&self, request: Request<api::GetAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let req = request.into_inner();
        let id = agent_id(&self.ctx.trust_domain, req.id.as_ref())?;
        let node =
            self.ctx.ds.fetch_attested_node(&id).await.map_err(|e| wrap("failed to fetch agent", ds_status(e)))?;
        let node = node.ok_or_else(|| Status::not_found("agent not found"))?;
        Ok(Response::new(convert::agent_proto(&node, req.output_mask.as_ref())))
    }

    async fn delete_agent(&self, request: Request<api::DeleteAgentRequest>) -> Result<Response<()>, Status> {
        let id = agent_id(&self.ctx.trust_domain, request.get_ref().id.as_ref())?;
        // The datastore removes the node's selectors with it.
        self.ctx.ds.delete_attested_node(&id).await.map_err(|e| agent_ds_status("failed to remove agent", e))?;
        tracing::info!(agent_id = %id, "agent deleted");
        Ok(Response::new(()))
    }

    async fn ban_agent(&self, request: Request<api::BanAgentRequest>) -> Result<Response<()>, Status> {
        let id = agent_id(&self.ctx.trust_domain, request.get_ref().id.as_ref())?;
        // Banned is "no current serial": the auth layer then refuses the agent's SVIDs, and
        // AttestAgent refuses the ID until an admin deletes the node.
        let mask = NodeMask { cert_serial_number: true, new_cert_serial_number: true, ..NodeMask::default() };
        self.ctx
            .ds
            .update_attested_node(AttestedNode::new(id.clone(), ""), &mask)
            .await
            .map_err(|e| agent_ds_status("failed to ban agent", e))?;
        tracing::info!(agent_id = %id, "agent banned");
        Ok(Response::new(()))
    }

    type AttestAgentStream = AttestStream;

    async fn attest_agent(
        &self,
        request: Request<Streaming<api::AttestAgentRequest>>,
    ) -> Result<Response<Self::AttestAgentStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let this = self.clone();
        tokio::spawn(async move {
            let run = async {
                let first = match incoming.message().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => return Err(Status::invalid_argument("failed to receive request from stream: EOF")),
                    Err(e) => return Err(wrap("failed to receive request from stream", e)),
                };
                let params = match first.step {
                    Some(api::attest_agent_request::Step::Params(p)) => Some(p),
                    _ => None,
                };
                let mut challenger = StreamChallenger { tx: &tx, rx: &mut incoming };
                this.attest(params, &mut challenger).await
            };
            let reply = match tokio::time::timeout(ATTEST_TIMEOUT, run).await {
                Ok(reply) => reply,
                Err(_) => Err(Status::deadline_exceeded("agent attestation timed out")),
            };
            if let Err(s) = &reply {
                tracing::warn!(code = ?s.code(), message = s.message(), "agent attestation failed");
            }
            let reply = reply.map(|result| api::AttestAgentResponse {
                step: Some(api::attest_agent_response::Step::Result(result)),
            });
            let _ = tx.send(reply).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn renew_agent(
        &self,
        request: Request<api::RenewAgentRequest>,
    ) -> Result<Response<api::RenewAgentResponse>, Status> {
        let caller_id = Caller::of(&request)?.agent_id()?.clone();
        let node = self
            .ctx
            .ds
            .fetch_attested_node(&caller_id)
            .await
            .map_err(|e| wrap("failed to fetch agent", ds_status(e)))?
            .ok_or_else(|| Status::not_found("agent not found"))?;
        if node.can_reattest {
            return Err(permission_denied(
                pb::permission_denied_details::Reason::AgentMustReattest,
                "agent must reattest instead of renew",
            ));
        }
        let params = request.into_inner().params.ok_or_else(|| Status::invalid_argument("params cannot be nil"))?;
        if params.csr.is_empty() {
            return Err(Status::invalid_argument("missing CSR"));
        }
        let csr = csr::parse(&params.csr)?;
        let svid = self.sign_agent_svid(&caller_id, &csr).await?;
        // The new serial becomes current when the agent first presents it (see the auth layer), so
        // an agent that loses this response keeps working with its old SVID.
        let update = AttestedNode {
            new_cert_serial_number: svid.serial,
            new_cert_not_after: svid.not_after,
            ..AttestedNode::new(caller_id.clone(), "")
        };
        let mask = NodeMask { new_cert_serial_number: true, new_cert_not_after: true, ..NodeMask::default() };
        self.ctx
            .ds
            .update_attested_node(update, &mask)
            .await
            .map_err(|e| agent_ds_status("failed to update agent", e))?;
        tracing::info!(agent_id = %caller_id, "agent SVID renewed");
        Ok(Response::new(api::RenewAgentResponse { svid: Some(svid.proto) }))
    }

    async fn create_join_token(
        &self,
        request: Request<api::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let req = request.into_inner();
        if req.ttl < 1 {
            return Err(Status::invalid_argument("ttl is required, you must provide one"));
        }
        // The agent ID is checked before anything is stored, so a bad one leaves no token behind.
        let alias = match &req.agent_id {
            Some(id) => {
                let id = convert::spiffe_id(Some(id))
                    .and_then(|id| workload_id(&self.ctx.trust_domain, &id).map(|()| id))
                    .map_err(|m| Status::invalid_argument(format!("invalid agent ID: {m}")))?;
                Some(id)
            }
            None => None,
        };
        let token = if req.token.is_empty() { uuid::Uuid::new_v4().to_string() } else { req.token };
        let token_id = nodeattestor::join_token::agent_id(&self.ctx.trust_domain, &token)
            .map_err(|m| Status::invalid_argument(format!("invalid token: {m}")))?;
        let expires_at = crate::ca::signer::unix(SystemTime::now()) + i64::from(req.ttl);
        let stored = spire_datastore::JoinToken { token: token.clone(), expires_at };
        self.ctx.ds.create_join_token(stored).await.map_err(|e| wrap("failed to create token", ds_status(e)))?;
        if let Some(alias) = alias {
            self.create_alias_entry(&token_id, alias).await?;
        }
        Ok(Response::new(pb::JoinToken { value: token, expires_at }))
    }

    async fn post_status(
        &self,
        request: Request<api::PostStatusRequest>,
    ) -> Result<Response<api::PostStatusResponse>, Status> {
        let caller_id = Caller::of(&request)?.agent_id()?.clone();
        let version = request.into_inner().agent_version;
        if !version.is_empty() {
            if version.len() > MAX_AGENT_VERSION_LEN {
                return Err(Status::invalid_argument(format!(
                    "agent version is too long (max {MAX_AGENT_VERSION_LEN} characters)"
                )));
            }
            let update = AttestedNode { agent_version: version, ..AttestedNode::new(caller_id, "") };
            let mask = NodeMask { agent_version: true, ..NodeMask::default() };
            self.ctx
                .ds
                .update_attested_node(update, &mask)
                .await
                .map_err(|e| agent_ds_status("failed to update agent", e))?;
        }
        Ok(Response::new(api::PostStatusResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn expires_before_takes_spire_cli_layout_and_rfc3339() {
        // 2024-01-02T15:04:05Z
        let utc = 1_704_207_845;
        assert_eq!(parse_expires_before("2024-01-02 15:04:05 +0000 +00").unwrap(), utc);
        assert_eq!(parse_expires_before("2024-01-02 17:04:05 +0200 +02").unwrap(), utc);
        assert_eq!(parse_expires_before("2024-01-02T15:04:05Z").unwrap(), utc);
        for bad in ["yesterday", "2024-01-02 15:04:05", "2024-13-02 15:04:05 +0000 +00"] {
            let err = parse_expires_before(bad).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
            assert!(err.message().starts_with("malformed expires before filter"), "{}", err.message());
        }
    }

    #[test]
    fn agent_ids_must_be_agents_of_our_trust_domain() {
        let td = TrustDomain::parse("example.org").unwrap();
        let id = |td: &str, path: &str| Some(pb::Spiffeid { trust_domain: td.into(), path: path.into() });
        assert!(agent_id(&td, id("example.org", "/spire/agent/x509pop/abc").as_ref()).is_ok());
        for (t, p, want) in [
            ("other.org", "/spire/agent/a", "is not a member of trust domain"),
            ("example.org", "", "path is empty"),
            ("example.org", "/workload", "not in the agent namespace"),
        ] {
            let err = agent_id(&td, id(t, p).as_ref()).unwrap_err();
            assert!(
                err.message().starts_with("invalid agent ID: ") && err.message().contains(want),
                "{}",
                err.message()
            );
        }
    }
}
