//! The authorization middleware: SPIRE's policy table (`pkg/server/authpolicy/policy_data.json`),
//! applied to every RPC before its handler runs. A method missing from the table is refused, so a new
//! RPC cannot be exposed by accident.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use prost::Message;
use spire_datastore::{EntryFilter, NodeMask};
use spire_proto::spire::api::types as pb;
use spire_proto::spire::api::types::permission_denied_details::Reason;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Code, Status};
use tower::{Layer, Service};

use super::caller::{Caller, PeerInfo};
use super::ratelimit::Limit;
use super::{ServerContext, ds_status};

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, even without a client certificate.
    Any,
    /// Agents with a current SVID.
    Agent,
    /// Agents, admins and local callers.
    AgentOrAdmin,
    /// Downstream servers.
    Downstream,
    /// Local callers (the private socket) only.
    Local,
    /// Admins and local callers.
    Admin,
}

/// The rule for a gRPC method path, `None` for methods we do not serve.
pub fn rule_for(path: &str) -> Option<Rule> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    let short = service.rsplit('.').next()?;
    Some(match (service, short, method) {
        (_, "Bundle", "GetBundle") | (_, "Agent", "AttestAgent") => Rule::Any,
        (_, "SVID", "BatchNewX509SVID" | "NewJWTSVID" | "BatchNewWITSVID")
        | (_, "Entry", "GetAuthorizedEntries" | "SyncAuthorizedEntries")
        | (_, "Agent", "RenewAgent" | "PostStatus") => Rule::Agent,
        (_, "Bundle", "GetFederatedBundle") => Rule::AgentOrAdmin,
        (_, "SVID", "NewDownstreamX509CA") | (_, "Bundle", "PublishJWTAuthority" | "PublishWITAuthority") => {
            Rule::Downstream
        }
        ("spire.api.server.debug.v1.Debug", _, _)
        | ("spire.api.server.logger.v1.Logger", _, _)
        | ("grpc.health.v1.Health", _, _)
        | ("grpc.reflection.v1.ServerReflection", _, _)
        | ("grpc.reflection.v1alpha.ServerReflection", _, _) => Rule::Local,
        (
            "spire.api.server.entry.v1.Entry"
            | "spire.api.server.agent.v1.Agent"
            | "spire.api.server.bundle.v1.Bundle"
            | "spire.api.server.svid.v1.SVID"
            | "spire.api.server.trustdomain.v1.TrustDomain"
            | "spire.api.server.localauthority.v1.LocalAuthority",
            _,
            _,
        ) => Rule::Admin,
        _ => return None,
    })
}

/// Classifies the caller of a request and checks `rule`; returns the caller to hand to the handler.
pub async fn authorize(ctx: &ServerContext, local: bool, peer: PeerInfo, rule: Rule) -> Result<Caller, Status> {
    let mut caller = Caller { local, peer, ..Caller::default() };
    if let Some(id) = caller.peer.id.clone() {
        caller.admin = ctx.settings.admin_ids.contains(&id);
        let needs_entries = matches!(rule, Rule::Admin | Rule::AgentOrAdmin | Rule::Downstream);
        if needs_entries {
            let filter = EntryFilter { by_spiffe_id: Some(id.clone()), ..EntryFilter::default() };
            let (entries, _) = ctx.ds.list_entries(&filter, None).await.map_err(ds_status)?;
            caller.admin |= entries.iter().any(|e| e.admin);
            caller.downstream = entries.iter().any(|e| e.downstream);
        }
        if matches!(rule, Rule::Agent | Rule::AgentOrAdmin) && !caller.admin {
            authorize_agent(ctx, &mut caller).await?;
        }
    }
    let allowed = match rule {
        Rule::Any => true,
        Rule::Agent => caller.agent,
        Rule::AgentOrAdmin => caller.agent || caller.admin || caller.local,
        Rule::Downstream => caller.downstream,
        Rule::Local => caller.local,
        Rule::Admin => caller.admin || caller.local,
    };
    if allowed {
        Ok(caller)
    } else if matches!(rule, Rule::Agent) && caller.peer.id.is_none() {
        Err(Status::permission_denied("authorization denied: caller did not present an agent SVID"))
    } else {
        Err(Status::permission_denied(format!("authorization denied for method: caller {}", caller.describe())))
    }
}

/// PermissionDenied carrying `spire.api.types.PermissionDeniedDetails` in the status details. SPIRE's
/// agent acts on the reason alone: it re-attests (or, when it cannot, removes its SVID and exits) on
/// AGENT_EXPIRED, AGENT_NOT_ATTESTED, AGENT_NOT_ACTIVE and AGENT_MUST_REATTEST, removes its SVID and
/// exits on AGENT_BANNED, and just retries on a PermissionDenied without details.
pub(crate) fn permission_denied(reason: Reason, message: &str) -> Status {
    let details = pb::PermissionDeniedDetails { reason: reason as i32 };
    let status = spire_proto::google::rpc::Status {
        code: Code::PermissionDenied as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/spire.api.types.PermissionDeniedDetails".into(),
            value: details.encode_to_vec(),
        }],
    };
    Status::with_details(Code::PermissionDenied, message, status.encode_to_vec().into())
}

/// SPIRE's agent check (`AgentAuthorizer`): an SVID not expired, an attested and not banned agent,
/// presenting its current SVID (or the new one it was just issued, which then becomes current); each
/// refusal with the reason SPIRE gives.
async fn authorize_agent(ctx: &ServerContext, caller: &mut Caller) -> Result<(), Status> {
    let id = caller.peer.id.clone().expect("checked by caller");
    if !id.is_member_of(&ctx.trust_domain) || !id.path().starts_with("/spire/agent/") {
        return Ok(());
    }
    if caller.peer.cert_expires_at != 0 && unix_now() > caller.peer.cert_expires_at {
        return Err(permission_denied(Reason::AgentExpired, &format!("agent \"{id}\" SVID is expired")));
    }
    let node = ctx.ds.fetch_attested_node(&id).await.map_err(ds_status)?;
    let Some(mut node) = node else {
        return Err(permission_denied(Reason::AgentNotAttested, &format!("agent \"{id}\" is not attested")));
    };
    if node.is_banned() {
        return Err(permission_denied(Reason::AgentBanned, &format!("agent \"{id}\" is banned")));
    }
    let serial = &caller.peer.cert_serial;
    caller.node_selectors = node.selectors.clone();
    if *serial == node.cert_serial_number {
        caller.agent = true;
        return Ok(());
    }
    if !node.new_cert_serial_number.is_empty() && *serial == node.new_cert_serial_number {
        node.cert_serial_number = std::mem::take(&mut node.new_cert_serial_number);
        node.cert_not_after = std::mem::take(&mut node.new_cert_not_after);
        let mask = NodeMask {
            cert_serial_number: true,
            cert_not_after: true,
            new_cert_serial_number: true,
            new_cert_not_after: true,
            ..NodeMask::default()
        };
        ctx.ds.update_attested_node(node, &mask).await.map_err(ds_status)?;
        caller.agent = true;
        return Ok(());
    }
    Err(permission_denied(
        Reason::AgentNotActive,
        &format!("agent \"{id}\" expected to have serial number \"{}\"; has \"{serial}\"", node.cert_serial_number),
    ))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Tower layer running [`authorize`] in front of every gRPC service.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    ctx: Arc<ServerContext>,
}

impl AuthLayer {
    /// A layer over `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        Self { ctx }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, ctx: self.ctx.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    ctx: Arc<ServerContext>,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let Some(rule) = rule_for(request.uri().path()) else {
                return Ok(Status::unimplemented(format!("unknown method {}", request.uri().path())).into_http());
            };
            let local = request.extensions().get::<UdsConnectInfo>().is_some();
            let peer = request.extensions().get::<PeerInfo>().cloned().unwrap_or_default();
            if let (false, Some(limit), Some(addr)) = (local, Limit::for_path(request.uri().path()), peer.addr)
                && let Err(status) = ctx.limits.check(limit, addr.ip(), 1)
            {
                return Ok(status.into_http());
            }
            match authorize(&ctx, local, peer, rule).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let cases = [
            ("/spire.api.server.bundle.v1.Bundle/GetBundle", Rule::Any),
            ("/spire.api.server.agent.v1.Agent/AttestAgent", Rule::Any),
            ("/spire.api.server.svid.v1.SVID/BatchNewX509SVID", Rule::Agent),
            ("/spire.api.server.entry.v1.Entry/SyncAuthorizedEntries", Rule::Agent),
            ("/spire.api.server.bundle.v1.Bundle/GetFederatedBundle", Rule::AgentOrAdmin),
            ("/spire.api.server.svid.v1.SVID/NewDownstreamX509CA", Rule::Downstream),
            ("/spire.api.server.debug.v1.Debug/GetInfo", Rule::Local),
            ("/grpc.health.v1.Health/Check", Rule::Local),
            ("/spire.api.server.entry.v1.Entry/BatchCreateEntry", Rule::Admin),
            ("/spire.api.server.svid.v1.SVID/MintX509SVID", Rule::Admin),
            ("/spire.api.server.agent.v1.Agent/CreateJoinToken", Rule::Admin),
        ];
        for (path, rule) in cases {
            assert_eq!(rule_for(path), Some(rule), "{path}");
        }
        assert_eq!(rule_for("/SpiffeWorkloadAPI/FetchX509SVID"), None);
        assert_eq!(rule_for("/spire.api.server.entry.v1.Entry"), None);
    }

    #[test]
    fn permission_denied_carries_the_reason_in_the_details() {
        let s = permission_denied(Reason::AgentMustReattest, "agent must reattest");
        assert_eq!(s.code(), Code::PermissionDenied);
        let status = spire_proto::google::rpc::Status::decode(s.details()).unwrap();
        assert_eq!(status.message, "agent must reattest");
        let any = &status.details[0];
        assert_eq!(any.type_url, "type.googleapis.com/spire.api.types.PermissionDeniedDetails");
        let details = pb::PermissionDeniedDetails::decode(any.value.as_slice()).unwrap();
        assert_eq!(details.reason, Reason::AgentMustReattest as i32);
    }
}
