//! The agent's side of the node APIs: attestation (any [`NodeAttestor`], challenges included),
//! renewal and the trust bundle.

use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use spire_identity::x509::certificate_request;
use spire_identity::{Bundle, JwtAuthority, SigningKey, TrustDomain};
use spire_proto::spire::api::server::agent::v1 as agent_api;
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::types as pb;
use spire_proto::spire::api::types::permission_denied_details::Reason;
use tokio::sync::mpsc;
use tonic::Status;

use crate::node_attestor::{Attempt, NodeAttestor, NodeAttestorError};
use crate::server_client::{ClientError, ServerClient};

/// Why attestation, renewal or the bundle fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The server could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server refused; shown as grpc-go shows a status, so that operators read the server's
    /// reason (and SPIRE's docs and searches match).
    #[error("{}", go_status(.0))]
    Refused(Status),
    /// The server's answer was not what the protocol says.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    /// A CSR could not be made.
    #[error("failed to create a CSR: {0}")]
    Csr(String),
    /// The server did not answer within `limit` ([`RPC_TIMEOUT`]); retried like an unreachable server.
    #[error("{what}: no answer from the server within {limit:?}")]
    Timeout {
        /// The call that was given up.
        what: &'static str,
        /// How long it was given.
        limit: Duration,
    },
    /// The node attestor plugin failed (SPIRE's `nodeattestor(<name>): ...`; an external plugin's
    /// status carries that prefix in its message, as SPIRE's facade puts it).
    #[error("{}", attestor_message(plugin, source))]
    Attestor {
        /// The plugin name.
        plugin: String,
        /// Why.
        #[source]
        source: NodeAttestorError,
    },
}

fn attestor_message(plugin: &str, source: &NodeAttestorError) -> String {
    match source {
        NodeAttestorError::Status(_) => source.to_string(),
        other => format!("nodeattestor({plugin}): {other}"),
    }
}

/// How long one exchange with the server may take (SPIRE's `rpcTimeout`, 30 s). A server that
/// accepts connections but never answers must not hold the agent, nor the rotation lock a sync or a
/// re-attestation holds, forever.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// `call`, given up after `limit` as [`NodeError::Timeout`] naming it `what`.
pub async fn within<T>(
    limit: Duration,
    what: &'static str,
    call: impl Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    tokio::time::timeout(limit, call).await.unwrap_or(Err(NodeError::Timeout { what, limit }))
}

/// A status as grpc-go's `Error()` prints it: `rpc error: code = PermissionDenied desc = ...`.
pub fn go_status(status: &Status) -> String {
    format!("rpc error: code = {} desc = {}", go_code_name(status.code()), status.message())
}

/// grpc-go's name of `code` (tonic's `Debug` differs for `Ok` and `Cancelled`).
fn go_code_name(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".into(),
        tonic::Code::Cancelled => "Canceled".into(),
        other => format!("{other:?}"),
    }
}

impl NodeError {
    /// Whether the server says this agent must attest again (its SVID expired, superseded or
    /// unknown): SPIRE's `nodeutil.ShouldAgentReattest`. A banned agent is not among them.
    pub fn should_reattest(&self) -> bool {
        matches!(self, Self::Refused(s) if matches!(
            agent_refusal(s),
            Some(Reason::AgentExpired | Reason::AgentNotActive | Reason::AgentNotAttested | Reason::AgentMustReattest)
        ))
    }

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

fn csr(key: &SigningKey) -> Result<Vec<u8>, NodeError> {
    certificate_request(key, &[], &[]).map_err(|e| NodeError::Csr(e.to_string()))
}

/// Attests with `attestor`: sends its payload with a CSR for `key`, answers the server's challenges
/// until the server issues the agent SVID (SPIRE's `ServerStream`). A server that closes the stream
/// early is reported with its status. The connection presents no client certificate, as SPIRE's
/// (the node is proven by its attestation data; the agent SVID, when re-attesting, may have expired
/// and would fail the handshake).
pub async fn attest(
    client: &ServerClient,
    attestor: &dyn NodeAttestor,
    key: &SigningKey,
) -> Result<AgentSvid, NodeError> {
    let mut attempt = attestor.begin().await.map_err(|e| attestor_error(attestor, e))?;
    let payload = attempt.payload().await.map_err(|e| attestor_error(attestor, e))?;
    let params = agent_api::attest_agent_request::Params {
        data: Some(pb::AttestationData { r#type: attestor.name().into(), payload }),
        params: Some(agent_api::AgentX509svidParams { csr: csr(key)? }),
    };
    // Room for the first request before the call starts, so that the server sees it at once.
    let (requests, outbound) = mpsc::channel(1);
    let _ = requests.send(request(agent_api::attest_agent_request::Step::Params(params))).await;
    let mut agent = AgentClient::new(client.channel_without_identity().await?);
    let inbound = agent
        .attest_agent(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .map_err(NodeError::Refused)?
        .into_inner();
    exchange(attestor.name(), attempt.as_mut(), inbound, requests).await
}

/// Attests with a join token (one exchange, no challenge).
pub async fn attest_join_token(client: &ServerClient, token: &str, key: &SigningKey) -> Result<AgentSvid, NodeError> {
    attest(client, &crate::node_attestor::JoinTokenAttestor::new(Some(token.to_owned())), key).await
}

fn request(step: agent_api::attest_agent_request::Step) -> agent_api::AttestAgentRequest {
    agent_api::AttestAgentRequest { step: Some(step) }
}

fn attestor_error(attestor: &dyn NodeAttestor, source: NodeAttestorError) -> NodeError {
    NodeError::Attestor { plugin: attestor.name().to_owned(), source }
}

/// The rounds after the first request: each challenge from `inbound` is answered by `attempt` (of
/// the plugin `plugin`) on `requests` until a result arrives. Dropping `requests` on return
/// half-closes the stream, as SPIRE's agent does once it has its SVID.
async fn exchange(
    plugin: &str,
    attempt: &mut dyn Attempt,
    mut inbound: impl Stream<Item = Result<agent_api::AttestAgentResponse, Status>> + Unpin,
    requests: mpsc::Sender<agent_api::AttestAgentRequest>,
) -> Result<AgentSvid, NodeError> {
    use agent_api::attest_agent_response::Step;
    loop {
        let msg = inbound
            .next()
            .await
            .ok_or_else(|| NodeError::Protocol("attestation stream ended without a result".into()))?
            .map_err(NodeError::Refused)?;
        match msg.step {
            Some(Step::Result(r)) => {
                let svid = r.svid.ok_or_else(|| NodeError::Protocol("attest response is missing SVID".into()))?;
                if svid.cert_chain.is_empty() {
                    return Err(NodeError::Protocol("empty SVID cert chain".into()));
                }
                return Ok(AgentSvid { chain: svid.cert_chain, reattestable: r.reattestable });
            }
            Some(Step::Challenge(challenge)) => {
                let answer = attempt
                    .challenge(&challenge)
                    .await
                    .map_err(|source| NodeError::Attestor { plugin: plugin.to_owned(), source })?;
                // If the server has gone, the next read says why.
                let _ = requests.send(request(agent_api::attest_agent_request::Step::ChallengeResponse(answer))).await;
            }
            None => return Err(NodeError::Protocol("empty attestation response".into())),
        }
    }
}

/// Renews the agent SVID for `key` (RenewAgent), authenticating with the current one.
pub async fn renew(client: &ServerClient, key: &SigningKey) -> Result<Vec<Vec<u8>>, NodeError> {
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

    /// Answers a challenge with it reversed, counting rounds.
    #[derive(Debug, Default)]
    struct Reverser {
        rounds: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl NodeAttestor for Reverser {
        fn name(&self) -> &str {
            "reverser"
        }
        async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
            Ok(b"payload".to_vec())
        }
        async fn challenge(&self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
            self.rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(challenge.iter().rev().copied().collect())
        }
    }

    fn challenge(c: &[u8]) -> Result<agent_api::AttestAgentResponse, Status> {
        Ok(agent_api::AttestAgentResponse { step: Some(agent_api::attest_agent_response::Step::Challenge(c.to_vec())) })
    }

    fn result(chain: Vec<Vec<u8>>, reattestable: bool) -> Result<agent_api::AttestAgentResponse, Status> {
        let svid = pb::X509svid { cert_chain: chain, ..Default::default() };
        Ok(agent_api::AttestAgentResponse {
            step: Some(agent_api::attest_agent_response::Step::Result(agent_api::attest_agent_response::Result {
                svid: Some(svid),
                reattestable,
            })),
        })
    }

    /// Runs [`exchange`] over `responses`, returning its outcome and the challenge responses sent.
    async fn run(
        attestor: &dyn NodeAttestor,
        responses: Vec<Result<agent_api::AttestAgentResponse, Status>>,
    ) -> (Result<AgentSvid, NodeError>, Vec<Vec<u8>>) {
        let (tx, mut rx) = mpsc::channel(8);
        let mut attempt = attestor.begin().await.unwrap();
        let outcome = exchange(attestor.name(), attempt.as_mut(), tokio_stream::iter(responses), tx).await;
        let mut sent = Vec::new();
        while let Some(req) = rx.recv().await {
            match req.step {
                Some(agent_api::attest_agent_request::Step::ChallengeResponse(r)) => sent.push(r),
                other => panic!("unexpected request {other:?}"),
            }
        }
        (outcome, sent)
    }

    #[tokio::test]
    async fn challenges_are_answered_until_the_result() {
        let a = Reverser::default();
        let (outcome, sent) =
            run(&a, vec![challenge(b"abc"), challenge(b"xy"), result(vec![b"leaf".to_vec()], true)]).await;
        let svid = outcome.unwrap();
        assert_eq!((svid.chain, svid.reattestable), (vec![b"leaf".to_vec()], true));
        assert_eq!(sent, [b"cba".to_vec(), b"yx".to_vec()]);
        assert_eq!(a.rounds.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_plugin_without_challenges_names_itself() {
        let token = crate::node_attestor::JoinTokenAttestor::new(Some("t".into()));
        let (outcome, sent) = run(&token, vec![challenge(b"abc")]).await;
        assert_eq!(outcome.unwrap_err().to_string(), "nodeattestor(join_token): server issued unexpected challenge");
        assert!(sent.is_empty());
    }

    #[tokio::test]
    async fn refusals_and_broken_streams() {
        let a = Reverser::default();
        let refused = Status::invalid_argument("failed to attest: join token does not exist or has already been used");
        let (outcome, _) = run(&a, vec![challenge(b"a"), Err(refused)]).await;
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "rpc error: code = InvalidArgument desc = failed to attest: join token does not exist or has already been used"
        );
        let (outcome, _) = run(&a, vec![challenge(b"a")]).await;
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "unexpected response from the server: attestation stream ended without a result"
        );
        let (outcome, _) = run(&a, vec![result(vec![], false)]).await;
        assert_eq!(outcome.unwrap_err().to_string(), "unexpected response from the server: empty SVID cert chain");
        let (outcome, _) = run(&a, vec![Ok(agent_api::AttestAgentResponse { step: None })]).await;
        assert!(matches!(outcome, Err(NodeError::Protocol(_))));
    }

    /// An agent whose SVID expired while the server was down must still be able to attest again:
    /// AttestAgent never presents the SVID, which both servers would refuse in the handshake.
    #[tokio::test]
    async fn attestation_presents_no_client_certificate_even_with_an_svid() {
        use crate::server_client::testing;
        let pki = spire_testkit::pki::Pki::new(spire_identity::KeyType::EcP256);
        let (addr, mut presented) = testing::recording_server(&pki).await;
        let client = testing::client_with_expired_svid(&addr, &pki);
        let key = SigningKey::from(spire_identity::PrivateKey::generate(spire_identity::KeyType::EcP256).unwrap());
        let attesting = tokio::spawn(async move { attest(&client, &Reverser::default(), &key).await });
        assert_eq!(testing::next(&mut presented).await, 0);
        attesting.abort();
    }

    #[tokio::test]
    async fn a_silent_server_is_given_up_on() {
        let limit = Duration::from_millis(20);
        let silent = within(limit, "AttestAgent", std::future::pending::<Result<(), NodeError>>()).await;
        let e = silent.unwrap_err();
        assert_eq!(e.to_string(), "AttestAgent: no answer from the server within 20ms");
        assert!(!e.is_permission_denied(), "retried");
        assert_eq!(within(limit, "x", async { Ok(7) }).await.unwrap(), 7);
    }

    #[test]
    fn statuses_read_as_grpc_go_prints_them() {
        assert_eq!(
            go_status(&Status::permission_denied("agent is banned")),
            "rpc error: code = PermissionDenied desc = agent is banned"
        );
        assert_eq!(go_status(&Status::cancelled("")), "rpc error: code = Canceled desc = ");
        assert_eq!(go_status(&Status::ok("")), "rpc error: code = OK desc = ");
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
