//! `spire-agent run`: attest (or resume from the data directory), keep the agent SVID renewed, sync
//! the cache, and serve the Workload API until stopped, banned or evicted.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use spire_identity::{Bundle, BundleSet, KeyType, SpiffeId, TrustDomain};
use spire_keymanager::KeyManager;
use tokio::net::UnixListener;

use crate::manager::sync::{svid_id, svid_validity};
use crate::manager::{Cache, Syncer};
use crate::node::{AgentSvid, NodeError, RPC_TIMEOUT, attest, fetch_bundle, renew, within};
use crate::node_attestor::NodeAttestor;
use crate::peer::{PeerTracker, TrackedUnixStream};
use crate::rotation::{Jitter, RotationPolicy};
use crate::server_client::{AgentIdentity, ServerClient};
use crate::storage::{AgentData, Storage};
use crate::workload_api::{CallerAttestor, WorkloadApi};

/// How often the agent SVID is checked for renewal (SPIRE's rotator interval).
pub const ROTATE_CHECK: Duration = Duration::from_secs(5);

/// Why the agent stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// Talking to the server failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Node attestation failed: the server refused (its status says why) or the node attestor could
    /// not attest (its message says why).
    #[error("node attestation failed: {0}")]
    Attestation(#[source] NodeError),
    /// The server says this agent may not act any more. The stored SVID is then removed, so the
    /// agent must attest again: a join-token agent needs a new token.
    #[error("agent is no longer authorized by the server (banned or evicted): {0}; it must attest again")]
    Revoked(String),
    /// Local storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The key manager failed.
    #[error(transparent)]
    Keys(#[from] spire_keymanager::KeyManagerError),
    /// The Workload API socket could not be served.
    #[error("Workload API socket {path}: {reason}")]
    Socket {
        /// The socket path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What the agent runs with (from `agent.conf` and flags).
#[derive(Clone)]
pub struct AgentSettings {
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `server_address:server_port`.
    pub server_address: String,
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// `socket_path`.
    pub socket_path: PathBuf,
    /// How the node attests: `join_token` (from `join_token`, `join_token_file`, `-joinToken`,
    /// which win over any plugin, as in SPIRE) or the configured NodeAttestor plugin.
    pub node_attestor: Arc<dyn NodeAttestor>,
    /// Where the bootstrap bundle comes from (`trust_bundle_path`, `trust_bundle_url`,
    /// `trust_bundle_spiffe_workload_api`); `None` with `insecure_bootstrap`. Remote sources are only
    /// reached when the data directory has no bundle.
    pub trust_bootstrap: Option<crate::bootstrap::TrustBootstrap>,
    /// `insecure_bootstrap`.
    pub insecure_bootstrap: bool,
    /// `workload_x509_svid_key_type`.
    pub workload_key_type: KeyType,
    /// `availability_target`: renew X509-SVIDs with at least this much validity left.
    pub availability_target: Option<Duration>,
    /// `experimental.sync_interval`.
    pub sync_interval: Duration,
    /// `jwt_svid_cache_max_size`.
    pub jwt_cache_max: usize,
    /// `x509_svid_cache_max_size` (a soft limit; 0 means SPIRE's default, 1000).
    pub x509_cache_max: usize,
    /// `allow_unauthenticated_verifiers`.
    pub allow_unauthenticated_verifiers: bool,
    /// `allowed_foreign_jwt_claims`.
    pub allowed_foreign_jwt_claims: Vec<String>,
    /// Where the agent's key lives.
    pub keys: Arc<dyn KeyManager>,
    /// Who workloads are.
    pub attestor: Arc<dyn CallerAttestor>,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("trust_domain", &self.trust_domain)
            .field("server_address", &self.server_address)
            .field("socket_path", &self.socket_path)
            .field("node_attestor", &self.node_attestor.name())
            .finish_non_exhaustive()
    }
}

fn other_slot(key_id: &str) -> &'static str {
    if key_id == "agent-svid-A" { "agent-svid-B" } else { "agent-svid-A" }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    /// The agent's SPIFFE ID.
    pub id: SpiffeId,
    /// The cache the Workload API serves from.
    pub cache: Cache,
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::sync::mpsc::Receiver<AgentError>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Waits until the agent must stop on its own (banned, evicted, socket failure).
    pub async fn wait(&mut self) -> AgentError {
        self.done.recv().await.unwrap_or_else(|| AgentError::Config("agent tasks ended".into()))
    }

    /// Stops every task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Attests or resumes, then starts the agent's tasks.
pub async fn start(settings: AgentSettings) -> Result<Agent, AgentError> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| AgentError::Config(format!("cannot create data_dir {}: {e}", settings.data_dir.display())))?;
    let storage = Storage::new(&settings.data_dir);
    let mut data = storage.load()?;
    let td = settings.trust_domain.clone();

    // Trust: what the data dir learned last time, else the configured bootstrap bundle (downloaded
    // only now, when it is needed).
    let mut bundles = BundleSet::new();
    if !data.bundle.is_empty() {
        let mut b = Bundle::new(td.clone());
        for der in &data.bundle {
            let _ = b.add_x509_authority(der.clone());
        }
        bundles.insert(b);
    } else if let Some(source) = &settings.trust_bootstrap {
        let bundle = source.fetch(&td).await.map_err(|e| AgentError::Config(e.to_string()))?;
        let authorities = bundle.x509_authorities().len();
        tracing::info!(source = %source.describe(), authorities, "bootstrap trust bundle loaded");
        bundles.insert(bundle);
    } else if !settings.insecure_bootstrap {
        return Err(AgentError::Config(
            "no trust bundle: set trust_bundle_path, trust_bundle_url or insecure_bootstrap".into(),
        ));
    }
    let insecure = bundles.get(&td).is_none();
    let client = ServerClient::new(settings.server_address.clone(), &td, Arc::new(RwLock::new(bundles)), insecure);

    // Resume with the stored SVID while it is valid and its key is still there; else attest.
    let now = unix(SystemTime::now());
    let resumed = match svid_validity(&data.svid) {
        Some((_, expires)) if expires > now && !data.key_id.is_empty() => {
            settings.keys.get_key(&data.key_id).await?.map(|key| AgentIdentity { chain: data.svid.clone(), key })
        }
        _ => None,
    };
    let identity = match resumed {
        Some(identity) => {
            tracing::info!("resuming with the stored agent SVID");
            identity
        }
        None => {
            let key_id = other_slot(&data.key_id);
            let key = settings.keys.generate_key(key_id, KeyType::EcP256).await?;
            let attestor = settings.node_attestor.as_ref();
            let svid = attest(&client, attestor, &key).await.map_err(AgentError::Attestation)?;
            data = AgentData {
                svid: svid.chain.clone(),
                bundle: data.bundle,
                reattestable: svid.reattestable,
                key_id: key_id.into(),
            };
            storage.save(&data)?;
            tracing::info!(attestor = attestor.name(), reattestable = svid.reattestable, "node attestation succeeded");
            AgentIdentity { chain: svid.chain, key }
        }
    };
    let id = svid_id(&identity.chain).ok_or_else(|| AgentError::Config("the agent SVID has no SPIFFE ID".into()))?;
    client.set_identity(identity);

    // Replace a bootstrap trust with the real bundle, authenticated by the agent SVID.
    let bundle = fetch_bundle(&client, &td).await.map_err(revoked)?;
    *client.bundles().write().expect("bundle lock") = BundleSet::from(bundle.clone());
    client.end_insecure_bootstrap();
    data.bundle = bundle.x509_authorities().to_vec();
    storage.save(&data)?;
    tracing::info!(agent = %id, "agent started");

    let cache = Cache::new(td.clone());
    let rotation = RotationPolicy::new(settings.availability_target);
    let syncer = Syncer::new(client.clone(), cache.clone(), settings.workload_key_type, td, settings.x509_cache_max)
        .with_rotation(rotation);
    // The first sync happens before the socket opens, so the first workload is served at once.
    if let Err(e) = syncer.sync_once(SystemTime::now()).await {
        if e.is_permission_denied() {
            return Err(revoked(e));
        }
        tracing::warn!(error = %e, "first sync failed; retrying in the background");
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done_tx, done) = tokio::sync::mpsc::channel(4);
    let mut tasks = Vec::new();
    let (reattest_tx, reattest_rx) = tokio::sync::mpsc::channel(1);
    {
        let (done_tx, stopped) = (done_tx.clone(), stopped.clone());
        let interval = settings.sync_interval;
        tasks.push(tokio::spawn(async move {
            loop {
                let e = syncer.run(interval, stopped.clone()).await;
                if !e.is_permission_denied() {
                    return;
                }
                // As SPIRE's cache manager: an agent the server no longer knows by this SVID
                // attests again and carries on; a banned one, or one that cannot, stops.
                if e.should_reattest() {
                    tracing::warn!(error = %e, "Agent needs to re-attest; will attempt to re-attest");
                    match request_reattestation(&reattest_tx).await {
                        Ok(()) => continue,
                        Err(why) => {
                            tracing::error!(error = %why, "Agent failed re-attestation; removing SVID and shutting down")
                        }
                    }
                }
                let _ = done_tx.send(revoked(e)).await;
                return;
            }
        }));
    }
    tasks.push(tokio::spawn(rotate_agent_svid(
        AgentSvidRotation {
            client: client.clone(),
            attestor: settings.node_attestor.clone(),
            keys: settings.keys.clone(),
            storage,
            rotation,
        },
        data,
        reattest_rx,
        done_tx.clone(),
    )));

    let cache_for_health = cache.clone();
    let api = WorkloadApi::new(
        cache.clone(),
        settings.attestor.clone(),
        client,
        settings.jwt_cache_max,
        settings.allow_unauthenticated_verifiers,
    )
    .with_allowed_foreign_jwt_claims(settings.allowed_foreign_jwt_claims.iter().cloned());
    let listener = bind(&settings.socket_path)?;
    let socket = settings.socket_path.display().to_string();
    let tracker = PeerTracker::new();
    // Each connection's peer is recorded as it is accepted; a peer that is already gone is dropped.
    // Any `:authority` is accepted (grpc-core and grpc-java send the socket path).
    let incoming = spire_uds::incoming(listener, move |stream| match TrackedUnixStream::new(stream, &tracker) {
        Ok(tracked) => Some(tracked),
        Err(e) => {
            tracing::debug!(error = %e, "dropping a connection whose caller cannot be tracked");
            None
        }
    });
    // Server reflection, as the SPIFFE Workload Endpoint spec recommends, from the checked-in descriptors.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(spire_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| AgentError::Socket { path: socket.clone(), reason: format!("reflection: {e}") })?;
    tasks.push(tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(reflection)
            .add_service(spire_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer::new(api))
            .add_service(spire_proto::grpc::health::v1::health_server::HealthServer::new(
                crate::health::AgentHealth::new(cache_for_health),
            ))
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = result {
            let _ = done_tx.send(AgentError::Socket { path: socket, reason: e.to_string() }).await;
        }
    }));
    Ok(Agent { id, cache, stop, done, tasks })
}

/// Asks the rotation task to attest again at once and waits for the outcome.
async fn request_reattestation(rotation: &tokio::sync::mpsc::Sender<ReattestReply>) -> Result<(), String> {
    let (reply, replied) = tokio::sync::oneshot::channel();
    rotation.send(reply).await.map_err(|_| "the rotation task has stopped".to_owned())?;
    replied.await.unwrap_or_else(|_| Err("the rotation task has stopped".into()))
}

fn revoked(e: NodeError) -> AgentError {
    if e.is_permission_denied() { AgentError::Revoked(e.to_string()) } else { AgentError::Node(e) }
}

/// Binds the public socket, world-connectable from the moment it exists (workloads are told apart
/// by attestation, not by file permissions, as in SPIRE).
fn bind(path: &std::path::Path) -> Result<UnixListener, AgentError> {
    spire_uds::bind(path, spire_uds::PUBLIC_MODE).map_err(|e| AgentError::Socket {
        path: path.display().to_string(),
        reason: format!("{}: {}", e.step, e.source),
    })
}

/// What replacing the agent SVID needs.
struct AgentSvidRotation {
    client: ServerClient,
    attestor: Arc<dyn NodeAttestor>,
    keys: Arc<dyn KeyManager>,
    storage: Storage,
    rotation: RotationPolicy,
}

/// The rotation task's answer to a forced re-attestation: why it failed, if it did.
type ReattestReply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Why a forced re-attestation of an agent that cannot attest again (join token) fails at once, as
/// SPIRE's `Reattest` says.
const NOT_REATTESTABLE: &str = "attestation method is not re-attestable";

/// Renews the agent SVID when `rotation` says so (SPIRE's jittered half-life, ±10%, or the availability
/// target), or at once when the sync task asks (`forced`, answered with why it failed, if it did;
/// an agent that cannot re-attest is refused at once, as SPIRE's `Reattest` refuses it), with a
/// fresh key in the other KeyManager slot.
async fn rotate_agent_svid(
    r: AgentSvidRotation,
    mut data: AgentData,
    mut forced: tokio::sync::mpsc::Receiver<ReattestReply>,
    done: tokio::sync::mpsc::Sender<AgentError>,
) {
    let mut jitter_seed = u64::from(std::process::id());
    loop {
        let reply = tokio::select! {
            _ = tokio::time::sleep(ROTATE_CHECK) => None,
            Some(reply) = forced.recv() => Some(reply),
        };
        match reply {
            None if !rotation_due(&r, &data, &mut jitter_seed) => continue,
            // Not even RenewAgent: the server wants this node proven again, which it cannot be.
            Some(reply) if !data.reattestable => {
                tracing::warn!(error = NOT_REATTESTABLE, "agent SVID re-attestation failed");
                let _ = reply.send(Err(NOT_REATTESTABLE.into()));
                continue;
            }
            _ => {}
        }
        let how = if data.reattestable { "re-attestation" } else { "renewal" };
        let result = replace_agent_svid(&r, &mut data).await;
        match &result {
            Ok(()) => tracing::info!("agent SVID renewed by {how}"),
            // Asked by the sync task, which decides what a failure means.
            Err(e) if reply.is_some() => tracing::warn!(error = %e, "agent SVID {how} failed"),
            Err(AgentError::Revoked(m)) => {
                let _ = done.send(AgentError::Revoked(m.clone())).await;
                return;
            }
            Err(e) => tracing::warn!(error = %e, "agent SVID {how} failed; retrying"),
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map_err(|e| e.to_string()));
        }
    }
}

/// Whether the agent SVID in `data` is due for renewal now.
fn rotation_due(r: &AgentSvidRotation, data: &AgentData, jitter_seed: &mut u64) -> bool {
    svid_validity(&data.svid).is_some_and(|(issued, expires)| {
        r.rotation.due(issued, expires, unix(SystemTime::now()), Jitter::draw(jitter_seed))
    })
}

/// Replaces the agent SVID in `data` and in the client, with a fresh key in the other KeyManager
/// slot. No sync runs meanwhile: a re-attestation retires the old SVID at once. The exchange with
/// the server is bounded by [`RPC_TIMEOUT`], so that a silent server cannot hold up syncs forever.
async fn replace_agent_svid(r: &AgentSvidRotation, data: &mut AgentData) -> Result<(), AgentError> {
    let _no_sync = r.client.rotation_guard().await;
    let key_id = other_slot(&data.key_id);
    let key = r.keys.generate_key(key_id, KeyType::EcP256).await?;
    let what = if data.reattestable { "AttestAgent" } else { "RenewAgent" };
    let svid = within(RPC_TIMEOUT, what, new_agent_svid(&r.client, r.attestor.as_ref(), data.reattestable, &key))
        .await
        .map_err(revoked)?;
    data.svid = svid.chain.clone();
    data.reattestable = svid.reattestable;
    data.key_id = key_id.into();
    if let Err(e) = r.storage.save(data) {
        tracing::error!(error = %e, "failed to persist the renewed agent SVID");
    }
    r.client.set_identity(AgentIdentity { chain: svid.chain, key });
    Ok(())
}

/// A new agent SVID for `key`. A re-attestable agent proves its node again, as SPIRE's rotator
/// does (with a fresh token, for `k8s_psat`), and the server may answer that it is no longer
/// re-attestable; the others ask for a renewal (RenewAgent) with their current SVID.
async fn new_agent_svid(
    client: &ServerClient,
    attestor: &dyn NodeAttestor,
    reattestable: bool,
    key: &spire_identity::SigningKey,
) -> Result<AgentSvid, NodeError> {
    if reattestable {
        attest(client, attestor, key).await
    } else {
        Ok(AgentSvid { chain: renew(client, key).await?, reattestable: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPIRE's `Reattest` refuses a join-token agent at once: no new key, no RenewAgent.
    #[tokio::test]
    async fn a_forced_reattestation_of_a_join_token_agent_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let td = TrustDomain::parse("example.org").unwrap();
        // Nothing listens there: an attempt would fail with a connection error instead.
        let client = ServerClient::new("127.0.0.1:1".into(), &td, Arc::new(RwLock::new(BundleSet::new())), true);
        let keys = Arc::new(spire_keymanager::MemoryKeyManager::new());
        let r = AgentSvidRotation {
            client,
            attestor: Arc::new(crate::node_attestor::JoinTokenAttestor::new(None)),
            keys: keys.clone(),
            storage: Storage::new(dir.path()),
            rotation: RotationPolicy::default(),
        };
        let (forced, requests) = tokio::sync::mpsc::channel(1);
        let (done, _stopped) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(rotate_agent_svid(r, AgentData::default(), requests, done));
        let outcome = tokio::time::timeout(Duration::from_secs(5), request_reattestation(&forced)).await;
        assert_eq!(outcome.expect("an answer at once"), Err(NOT_REATTESTABLE.to_owned()));
        for slot in crate::storage::KEY_SLOTS {
            assert!(keys.get_key(slot).await.unwrap().is_none(), "{slot} was generated");
        }
        task.abort();
    }
}
