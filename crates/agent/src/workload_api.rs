//! The SPIFFE Workload API on the agent's public Unix socket, to the letter of the spec: the security
//! header, caller attestation by PID, streams that push the full state on every change, and SPIRE's
//! exact errors (clients such as rust-spiffe map them).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use prost_types::value::Kind;
use spire_identity::jwt::{JwtSvidError, validate_jwt_svid};
use spire_identity::x509::join_der_chain;
use spire_identity::{SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::svid::v1 as svid_api;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApi;
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse, WitsvidRequest, WitsvidResponse,
    X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest, X509svidResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::manager::{AgentEntry, Cache, Identity, Snapshot, SubscriberGuard};
use crate::node::{NodeError, RPC_TIMEOUT, within};
use crate::peer::PeerInfo;
use crate::server_client::ServerClient;
use crate::workload_attestor::WorkloadAttestors;

/// Finds out who a caller is: the selectors of the process behind a connection.
#[async_trait::async_trait]
pub trait CallerAttestor: Send + Sync + 'static {
    /// The caller's selectors, or why attestation failed.
    async fn attest(&self, caller: &PeerInfo) -> Result<SelectorSet, String>;
}

#[async_trait::async_trait]
impl CallerAttestor for WorkloadAttestors {
    async fn attest(&self, caller: &PeerInfo) -> Result<SelectorSet, String> {
        WorkloadAttestors::attest(self, caller.watcher()).await.map_err(|e| e.to_string())
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// JWT cache key: SPIFFE ID and the sorted audiences.
type JwtCacheKey = (String, Vec<String>);

/// A cached JWT-SVID.
#[derive(Debug, Clone)]
struct CachedJwt {
    token: String,
    issued_at: i64,
    expires_at: i64,
}

/// The Workload API handler.
#[derive(Clone)]
pub struct WorkloadApi {
    cache: Cache,
    attestor: Arc<dyn CallerAttestor>,
    client: ServerClient,
    jwt_cache: Arc<Mutex<HashMap<JwtCacheKey, CachedJwt>>>,
    jwt_cache_max: usize,
    allow_unauthenticated_verifiers: bool,
    /// Claims kept, besides `sub`, `aud` and `exp`, when validating another trust domain's JWT-SVID.
    allowed_foreign_jwt_claims: Arc<BTreeSet<String>>,
}

impl std::fmt::Debug for WorkloadApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadApi").finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// SPIFFE Workload Endpoint: exactly one `workload.spiffe.io: true`, else InvalidArgument.
fn check_header<T>(request: &Request<T>) -> Result<(), Status> {
    let values: Vec<_> = request.metadata().get_all("workload.spiffe.io").iter().collect();
    if values.len() == 1 && values[0] == "true" {
        Ok(())
    } else {
        Err(Status::invalid_argument("security header missing from request"))
    }
}

fn no_identity() -> Status {
    Status::permission_denied("no identity issued")
}

fn attestation_failed() -> Status {
    Status::unavailable("workload attestation failed")
}

impl WorkloadApi {
    /// A handler serving from `cache`, attesting callers with `attestor`, minting JWT-SVIDs through
    /// `client`.
    pub fn new(
        cache: Cache,
        attestor: Arc<dyn CallerAttestor>,
        client: ServerClient,
        jwt_cache_max: usize,
        allow_unauthenticated_verifiers: bool,
    ) -> Self {
        Self {
            cache,
            attestor,
            client,
            jwt_cache: Arc::default(),
            jwt_cache_max,
            allow_unauthenticated_verifiers,
            allowed_foreign_jwt_claims: Arc::default(),
        }
    }

    /// `allowed_foreign_jwt_claims`: the claims ValidateJWTSVID keeps, besides `sub`, `aud` and
    /// `exp`, for tokens of other trust domains (SPIRE drops the rest, so that a federated issuer
    /// cannot make up claims a verifier would trust).
    pub fn with_allowed_foreign_jwt_claims(mut self, claims: impl IntoIterator<Item = String>) -> Self {
        self.allowed_foreign_jwt_claims = Arc::new(claims.into_iter().collect());
        self
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<SelectorSet, Status> {
        check_header(request)?;
        // The peer was recorded when the connection was accepted (see `peer::TrackedUnixStream`), so a
        // PID reused since then is caught by the attestation's liveness check.
        let caller = request.extensions().get::<PeerInfo>().ok_or_else(attestation_failed)?;
        self.attestor.attest(caller).await.map_err(|e| {
            tracing::warn!(pid = caller.pid(), error = %e, "workload attestation failed");
            attestation_failed()
        })
    }

    /// Bundles a workload with these identities receives: own plus federated ones its entries ask for.
    fn federated_for<'a>(
        snapshot: &Snapshot,
        entries: impl IntoIterator<Item = &'a AgentEntry>,
    ) -> BTreeSet<TrustDomain> {
        entries
            .into_iter()
            .flat_map(|e| e.federates_with.iter().cloned())
            .filter(|td| *td != snapshot.trust_domain && snapshot.bundles.get(td).is_some())
            .collect()
    }

    fn x509_response(snapshot: &Snapshot, identities: &[Identity]) -> X509svidResponse {
        let own = snapshot.own_bundle().map(|b| b.x509_authorities_der()).unwrap_or_default();
        let svids = identities
            .iter()
            .map(|i| X509svid {
                spiffe_id: i.entry.spiffe_id.to_string(),
                x509_svid: join_der_chain(&i.svid.chain),
                x509_svid_key: i.svid.key.pkcs8_der().to_vec(),
                bundle: own.clone(),
                hint: i.entry.hint.clone(),
            })
            .collect();
        let federated_bundles = Self::federated_for(snapshot, identities.iter().map(|i| &i.entry))
            .into_iter()
            .filter_map(|td| snapshot.bundles.get(&td).map(|b| (td.id_string(), b.x509_authorities_der())))
            .collect();
        X509svidResponse { svids, crl: vec![], federated_bundles }
    }

    fn bundle_map<F: Fn(&spire_identity::Bundle) -> Vec<u8>>(
        snapshot: &Snapshot,
        identities: &[Identity],
        render: F,
    ) -> HashMap<String, Vec<u8>> {
        let mut map = HashMap::new();
        if let Some(own) = snapshot.own_bundle() {
            map.insert(snapshot.trust_domain.id_string(), render(own));
        }
        for td in Self::federated_for(snapshot, identities.iter().map(|i| &i.entry)) {
            if let Some(b) = snapshot.bundles.get(&td) {
                map.insert(td.id_string(), render(b));
            }
        }
        map
    }

    /// The current snapshot once the agent has synced and (if `need_svids`) every entry the caller is
    /// entitled to has its X509-SVID, as SPIRE's cache subscribers wait; the caller's deadline bounds
    /// the wait.
    async fn settled(rx: &mut SnapshotRx, selectors: &SelectorSet, need_svids: bool) -> Result<Arc<Snapshot>, Status> {
        loop {
            let snapshot = rx.borrow_and_update().clone();
            if snapshot.ready && !(need_svids && snapshot.missing_svids_for(selectors)) {
                return Ok(snapshot);
            }
            rx.changed().await.map_err(|_| Status::unavailable("the agent is shutting down"))?;
        }
    }

    /// Streams `build(snapshot, identities)` once the caller's SVIDs are there, then on every change
    /// that alters it. The caller is a registered subscriber of the cache for as long as the stream
    /// lives, so its SVIDs are minted (beyond `x509_svid_cache_max_size` if need be) and never evicted.
    /// Fails with PermissionDenied when the caller has no identity (unless `allow_empty`), and ends the
    /// stream with it if a later change leaves the caller without one.
    async fn watch<T, F>(&self, selectors: SelectorSet, allow_empty: bool, build: F) -> Result<BoxStream<T>, Status>
    where
        T: PartialEq + Clone + Send + Sync + Unpin + 'static,
        F: Fn(&Snapshot, &[Identity]) -> T + Send + Unpin + 'static,
    {
        let subscription = self.cache.register_subscriber(selectors.clone());
        let mut rx = self.cache.subscribe();
        // The first message is built here, in the caller's task, so that it goes out without waiting
        // for another task to be scheduled; the stream itself then follows the cache for the later
        // ones, in the task that sends the response (no task of its own to spawn and wake).
        let snapshot = Self::settled(&mut rx, &selectors, true).await?;
        let identities = snapshot.identities_for(&selectors);
        if identities.is_empty() && !allow_empty {
            return Err(no_identity());
        }
        let first = build(&snapshot, &identities);
        let follow = Follow {
            pending: Some(next_change(rx)),
            selectors,
            allow_empty,
            build,
            last: first.clone(),
            _subscription: subscription,
        };
        Ok(Box::pin(tokio_stream::StreamExt::chain(tokio_stream::once(Ok(first)), follow)))
    }

    async fn jwt_for(&self, entry: &AgentEntry, audience: &[String]) -> Result<String, Status> {
        let mut aud = audience.to_vec();
        aud.sort();
        aud.dedup();
        let key = (entry.spiffe_id.to_string(), aud);
        let now = unix_now();
        if let Some(c) = self.jwt_cache.lock().expect("jwt cache lock").get(&key)
            && now < c.issued_at + (c.expires_at - c.issued_at) / 2
        {
            return Ok(c.token.clone());
        }
        let svid = self.new_jwt_svid(entry, audience).await?;
        let mut cache = self.jwt_cache.lock().expect("jwt cache lock");
        if cache.len() >= self.jwt_cache_max {
            cache.retain(|_, c| c.expires_at > now);
            if cache.len() >= self.jwt_cache_max {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CachedJwt { token: svid.token.clone(), issued_at: svid.issued_at, expires_at: svid.expires_at },
        );
        Ok(svid.token)
    }

    /// NewJWTSVID for `entry`, as SPIRE's client makes it: not while the agent SVID changes hands
    /// (the read side of the rotation lock, held for this call only), and given up after
    /// [`RPC_TIMEOUT`] so that a silent server holds neither the caller nor a rotation forever.
    async fn new_jwt_svid(
        &self,
        entry: &AgentEntry,
        audience: &[String],
    ) -> Result<spire_proto::spire::api::types::Jwtsvid, Status> {
        let _no_rotation = self.client.sync_guard().await;
        let req = svid_api::NewJwtsvidRequest { entry_id: entry.id.clone(), audience: audience.to_vec() };
        let call = async {
            let channel = self.client.channel().await?;
            SvidClient::new(channel).new_jwtsvid(req).await.map_err(NodeError::Refused)
        };
        let svid = match within(RPC_TIMEOUT, "NewJWTSVID", call).await {
            Ok(response) => response.into_inner().svid,
            Err(NodeError::Refused(e)) => {
                return Err(Status::unavailable(format!("could not mint a JWT-SVID: {}", e.message())));
            }
            Err(e) => return Err(Status::unavailable(e.to_string())),
        };
        svid.ok_or_else(|| Status::internal("server answered without a JWT-SVID"))
    }
}

type SnapshotRx = tokio::sync::watch::Receiver<Arc<Snapshot>>;
type ChangeFuture = Pin<Box<dyn Future<Output = (SnapshotRx, bool)> + Send>>;

/// The next change of the cache (`false` once the cache is gone), handing the receiver back.
fn next_change(mut rx: SnapshotRx) -> ChangeFuture {
    Box::pin(async move {
        let changed = rx.changed().await.is_ok();
        (rx, changed)
    })
}

/// The messages after the first of a [`WorkloadApi::watch`] stream: one per cache change that alters
/// what the caller gets, then PermissionDenied (and the end) if it loses every identity.
struct Follow<T, F> {
    /// `None` once the stream has ended.
    pending: Option<ChangeFuture>,
    selectors: SelectorSet,
    allow_empty: bool,
    build: F,
    last: T,
    /// Keeps the caller registered as a subscriber of the cache until the stream is dropped.
    _subscription: SubscriberGuard,
}

impl<T, F> Stream for Follow<T, F>
where
    T: PartialEq + Clone + Unpin,
    F: Fn(&Snapshot, &[Identity]) -> T + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(pending) = this.pending.as_mut() else { return Poll::Ready(None) };
            let (mut rx, changed) = std::task::ready!(pending.as_mut().poll(cx));
            this.pending = None;
            if !changed {
                return Poll::Ready(None);
            }
            let snapshot = rx.borrow_and_update().clone();
            let identities = snapshot.identities_for(&this.selectors);
            if identities.is_empty() && !this.allow_empty {
                return Poll::Ready(Some(Err(no_identity())));
            }
            let msg = (this.build)(&snapshot, &identities);
            this.pending = Some(next_change(rx));
            if msg != this.last {
                this.last = msg.clone();
                return Poll::Ready(Some(Ok(msg)));
            }
        }
    }
}

/// The claims ValidateJWTSVID answers with: all of a token of the agent's own trust domain; of
/// another trust domain's token only `sub`, `aud`, `exp` and the `allowed_foreign_jwt_claims`.
fn returned_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    foreign: bool,
    allowed: &BTreeSet<String>,
) -> prost_types::Struct {
    let keep = |claim: &str| !foreign || matches!(claim, "sub" | "aud" | "exp") || allowed.contains(claim);
    prost_types::Struct {
        fields: claims.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), json_to_prost(v))).collect(),
    }
}

fn json_to_prost(v: &serde_json::Value) -> prost_types::Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => {
            Kind::ListValue(prost_types::ListValue { values: a.iter().map(json_to_prost).collect() })
        }
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), json_to_prost(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Why a token failed ValidateJWTSVID, in the words of SPIRE's agent (`jwtsvid.ValidateToken` and the
/// go-jose and go-spiffe errors it passes on), which `spire-agent api validate jwt` prints as
/// `SVID is not valid: <message>`. Rules SPIRE's validator has no message of its own for keep ours.
fn spire_validation_message(e: &JwtSvidError) -> String {
    match e {
        JwtSvidError::Malformed(m) if m.contains("three dot-separated parts") => {
            "unable to parse JWT token: go-jose/go-jose: compact JWS format must have three parts".into()
        }
        JwtSvidError::MissingKeyId => "token header missing key id".into(),
        JwtSvidError::MissingSubject => "token missing subject claim".into(),
        JwtSvidError::MissingExpiry => "token missing exp claim".into(),
        JwtSvidError::BadSubject(id) => format!("token has in invalid subject claim: {}", id.go_spiffe_message()),
        JwtSvidError::NoBundle(td) => format!("no keys found for trust domain \"{td}\""),
        JwtSvidError::UnknownKeyId { kid, trust_domain } => {
            format!("public key \"{kid}\" not found in trust domain \"{trust_domain}\"")
        }
        JwtSvidError::BadSignature => "go-jose/go-jose: error in cryptographic primitive".into(),
        JwtSvidError::AudienceMismatch { expected, actual } => {
            format!("expected audience in {} (audience={})", go_quoted_list(expected), go_quoted_list(actual))
        }
        other => other.to_string(),
    }
}

/// A list of strings as Go's `%q` prints a `[]string`: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = BoxStream<X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<JwtBundlesResponse>;
    type FetchWITSVIDStream = BoxStream<WitsvidResponse>;
    type FetchWITBundlesStream = BoxStream<WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let selectors = self.caller(&request).await?;
        Ok(Response::new(self.watch(selectors, false, Self::x509_response).await?))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let selectors = self.caller(&request).await?;
        let allow = self.allow_unauthenticated_verifiers;
        Ok(Response::new(
            self.watch(selectors, allow, |s, ids| X509BundlesResponse {
                crl: vec![],
                bundles: Self::bundle_map(s, ids, |b| b.x509_authorities_der()),
            })
            .await?,
        ))
    }

    async fn fetch_jwtsvid(&self, request: Request<JwtsvidRequest>) -> Result<Response<JwtsvidResponse>, Status> {
        // As SPIRE: the request is checked before the caller is attested.
        check_header(&request)?;
        let req = request.get_ref();
        if req.audience.is_empty() || req.audience.iter().any(String::is_empty) {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        let wanted = match req.spiffe_id.as_str() {
            "" => None,
            id => Some(
                SpiffeId::parse(id)
                    .map_err(|e| Status::invalid_argument(format!("invalid requested SPIFFE ID: {e}")))?,
            ),
        };
        let selectors = self.caller(&request).await?;
        // JWT-SVIDs need entries, not X509-SVIDs: only the first sync is waited for.
        let snapshot = Self::settled(&mut self.cache.subscribe(), &selectors, false).await?;
        let mut entries = snapshot.entries_for(&selectors);
        if let Some(wanted) = &wanted {
            entries.retain(|e| e.spiffe_id == *wanted);
        }
        if entries.is_empty() {
            return Err(no_identity());
        }
        let mut svids = Vec::with_capacity(entries.len());
        for e in entries {
            let token = self.jwt_for(e, &req.audience).await?;
            svids.push(Jwtsvid { spiffe_id: e.spiffe_id.to_string(), svid: token, hint: e.hint.clone() });
        }
        Ok(Response::new(JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let selectors = self.caller(&request).await?;
        let allow = self.allow_unauthenticated_verifiers;
        Ok(Response::new(
            self.watch(selectors, allow, |s, ids| JwtBundlesResponse {
                bundles: Self::bundle_map(s, ids, spire_identity::Bundle::to_jwt_jwks),
            })
            .await?,
        ))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        // As SPIRE: the request is checked before the caller is attested.
        check_header(&request)?;
        let req = request.get_ref();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let selectors = self.caller(&request).await?;
        let snapshot = Self::settled(&mut self.cache.subscribe(), &selectors, false).await?;
        let entries = snapshot.entries_for(&selectors);
        if !self.allow_unauthenticated_verifiers && entries.is_empty() {
            return Err(no_identity());
        }
        // Validate against the bundles this caller can see: its own trust domain and its federations.
        let mut visible = spire_identity::BundleSet::new();
        if let Some(own) = snapshot.own_bundle() {
            visible.insert(own.clone());
        }
        for td in Self::federated_for(&snapshot, entries.iter().copied()) {
            if let Some(b) = snapshot.bundles.get(&td) {
                visible.insert(b.clone());
            }
        }
        let validated = validate_jwt_svid(&req.svid, &visible, &[req.audience.as_str()], SystemTime::now())
            .map_err(|e| Status::invalid_argument(spire_validation_message(&e)))?;
        let foreign = validated.spiffe_id.trust_domain() != &snapshot.trust_domain;
        let claims = returned_claims(&validated.claims, foreign, &self.allowed_foreign_jwt_claims);
        Ok(Response::new(ValidateJwtsvidResponse { spiffe_id: validated.spiffe_id.to_string(), claims: Some(claims) }))
    }

    async fn fetch_witsvid(
        &self,
        request: Request<WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        check_header(&request)?;
        Err(Status::unimplemented("WIT-SVID profile is not supported"))
    }

    async fn fetch_wit_bundles(
        &self,
        request: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        check_header(&request)?;
        Err(Status::unimplemented("WIT-SVID profile is not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ValidateJWTSVID refusals read as SPIRE's agent words them.
    #[test]
    fn validation_messages_like_spire() {
        let cases = [
            (
                JwtSvidError::Malformed("a JWT-SVID must be three dot-separated parts (JWS compact serialization)"),
                "unable to parse JWT token: go-jose/go-jose: compact JWS format must have three parts",
            ),
            (JwtSvidError::MissingKeyId, "token header missing key id"),
            (JwtSvidError::NoBundle("other.org".into()), "no keys found for trust domain \"other.org\""),
            (
                JwtSvidError::UnknownKeyId { kid: "k1".into(), trust_domain: "example.org".into() },
                "public key \"k1\" not found in trust domain \"example.org\"",
            ),
            (
                JwtSvidError::AudienceMismatch { expected: vec!["c".into()], actual: vec!["a".into(), "b".into()] },
                "expected audience in [\"c\"] (audience=[\"a\" \"b\"])",
            ),
            (JwtSvidError::Expired, "token has expired"),
        ];
        for (err, want) in cases {
            assert_eq!(spire_validation_message(&err), want);
        }
    }
    use crate::manager::cache::X509Svid;
    use spire_identity::{KeyType, PrivateKey, Selector};
    use std::time::Duration;

    fn entry(td: &TrustDomain) -> AgentEntry {
        AgentEntry {
            id: "e1".into(),
            spiffe_id: td.id_with_path("/w").unwrap(),
            selectors: [Selector::new("unix", "uid:1").unwrap()].into_iter().collect(),
            federates_with: vec![],
            dns_names: vec![],
            revision: 1,
            hint: String::new(),
            created_at: 0,
            jwt_svid_ttl: 0,
            disable_x509_svid_prefetch: false,
        }
    }

    #[test]
    fn foreign_tokens_keep_only_sub_aud_exp_and_the_allowed_claims() {
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"sub":"spiffe://other.org/w","aud":["a"],"exp":1,"iat":0,"iss":"x","email":"e@x","admin":true}"#,
        )
        .unwrap();
        let allowed: BTreeSet<String> = ["email".to_owned()].into();
        let names = |s: prost_types::Struct| s.fields.into_keys().collect::<Vec<_>>();
        assert_eq!(names(returned_claims(&claims, true, &allowed)), ["aud", "email", "exp", "sub"]);
        assert_eq!(names(returned_claims(&claims, true, &BTreeSet::new())), ["aud", "exp", "sub"]);
        assert_eq!(names(returned_claims(&claims, false, &BTreeSet::new())).len(), 7, "own tokens keep everything");
    }

    /// Whether `settled` is still waiting after a moment.
    async fn still_waiting(task: &tokio::task::JoinHandle<Result<Arc<Snapshot>, Status>>) -> bool {
        tokio::time::sleep(Duration::from_millis(50)).await;
        !task.is_finished()
    }

    #[tokio::test]
    async fn the_first_answer_waits_for_the_first_sync_and_for_the_callers_svids() {
        let td = TrustDomain::parse("example.org").unwrap();
        let cache = Cache::new(td.clone());
        let selectors: SelectorSet = [Selector::new("unix", "uid:1").unwrap()].into_iter().collect();
        let (mut rx, s) = (cache.subscribe(), selectors.clone());
        let task = tokio::spawn(async move { WorkloadApi::settled(&mut rx, &s, true).await });

        // Not synced yet: no answer (before, callers were told "no identity issued").
        assert!(still_waiting(&task).await);
        // Synced, but the caller's entry has no SVID yet.
        let mut snapshot = Snapshot::new(td.clone());
        snapshot.ready = true;
        snapshot.entries.insert("e1".into(), entry(&td));
        cache.publish(snapshot.clone());
        assert!(still_waiting(&task).await);
        // The SVID is there: answered.
        let svid = X509Svid {
            entry_id: "e1".into(),
            spiffe_id: td.id_with_path("/w").unwrap(),
            chain: vec![vec![1]],
            key: PrivateKey::generate(KeyType::EcP256).unwrap(),
            issued_at: 0,
            expires_at: 10,
            revision: 1,
        };
        snapshot.svids.insert("e1".into(), Arc::new(svid));
        cache.publish(snapshot);
        let settled = tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap().unwrap();
        assert_eq!(settled.identities_for(&selectors).len(), 1);

        // A caller entitled to nothing is answered as soon as the agent has synced.
        let mut rx = cache.subscribe();
        let nobody: SelectorSet = [Selector::new("unix", "uid:2").unwrap()].into_iter().collect();
        let s = WorkloadApi::settled(&mut rx, &nobody, true).await.unwrap();
        assert!(s.identities_for(&nobody).is_empty());
    }
}
