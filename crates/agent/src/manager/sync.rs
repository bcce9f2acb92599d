//! The sync loop: every `sync_interval`, fetch the authorized entries (SyncAuthorizedEntries with its
//! paged revision protocol) and the bundles, mint SVIDs for new, changed and half-expired entries in
//! batches (keys are generated here, never sent), drop SVIDs of entries that are gone, and publish.
//! X509-SVIDs follow SPIRE's LRU cache: see [`plan_svids`] for `x509_svid_cache_max_size` and
//! `disable_x509_svid_prefetch`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use spire_identity::x509::certificate_request;
use spire_identity::{BundleSet, KeyType, PrivateKey, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::bundle::v1::GetFederatedBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::entry::v1 as entry_api;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::svid::v1 as svid_api;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::spire::api::types as pb;
use tonic::transport::Channel;

use super::cache::{AgentEntry, Cache, Snapshot, X509Svid};
use crate::node::{NodeError, RPC_TIMEOUT, bundle_from_proto, fetch_bundle, within};
use crate::rotation::RotationPolicy;
use crate::server_client::ServerClient;

/// SVIDs requested per BatchNewX509SVID call.
pub const BATCH_SIZE: usize = 250;

/// SPIRE's `x509_svid_cache_max_size` default.
pub const DEFAULT_X509_SVID_CACHE_MAX_SIZE: usize = 1000;

/// How soon a new subscriber that misses SVIDs gets them (SPIRE's `SVIDSyncInterval`).
pub const SVID_SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// The longest wait between syncs of an agent that holds no SVID (SPIRE's `defaultSyncInterval`).
pub const NO_SVID_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// SPIRE's sync schedule (`pkg/common/backoff` with the cache manager's limits): the sync interval
/// with ±10% jitter, growing ×1.5 per failed sync up to min(8 min, 48 × the interval); a successful
/// sync starts over. (Doubling up to 8 min, as before, left an agent up to twice as long without
/// syncing after an outage.)
#[derive(Debug, Clone)]
pub struct SyncBackoff {
    initial: Duration,
    current: Duration,
    max: Duration,
    seed: u64,
}

impl SyncBackoff {
    /// The schedule for `interval`; `seed` varies the jitter between agents.
    pub fn new(interval: Duration, seed: u64) -> Self {
        let max = (interval * 48).min(Duration::from_secs(480));
        Self { initial: interval, current: interval, max, seed }
    }

    /// Back to the sync interval, after a successful sync.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The next wait: the current interval ±10%; the interval then grows ×1.5, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // A uniform factor in [0.9, 1.1], from the generator's top bits.
        let factor = 0.9 + 0.2 * ((self.seed >> 11) as f64 / (1u64 << 53) as f64);
        let delay = self.current.mul_f64(factor);
        self.current = self.current.mul_f64(1.5).min(self.max);
        delay
    }
}

/// Everything one sync needs.
#[derive(Debug, Clone)]
pub struct Syncer {
    /// The server connection factory.
    pub client: ServerClient,
    /// Where results go.
    pub cache: Cache,
    /// `workload_x509_svid_key_type`.
    pub key_type: KeyType,
    /// The agent's trust domain.
    pub trust_domain: TrustDomain,
    /// `x509_svid_cache_max_size`: a soft limit on cached X509-SVIDs.
    pub max_svids: usize,
    /// When each cached SVID was last needed (a sync generation), for LRU eviction.
    pub access: Arc<Mutex<Access>>,
    /// When SVIDs are renewed.
    pub rotation: RotationPolicy,
    /// How long each exchange of a sync may take ([`RPC_TIMEOUT`]).
    pub rpc_timeout: Duration,
}

/// LRU bookkeeping: the current sync generation and the generation each entry's SVID was last
/// minted or needed by a subscriber in.
#[derive(Debug, Default)]
pub struct Access {
    generation: u64,
    last: HashMap<String, u64>,
}

/// Which entries hold an X509-SVID after a sync.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SvidPlan {
    /// Entries that will hold an SVID (kept or minted).
    pub cached: BTreeSet<String>,
    /// Entries to mint for (no SVID, an older revision, or half its life gone), sorted.
    pub mint: Vec<String>,
    /// Entries whose SVID is dropped to honour the limit, least recently used first.
    pub evicted: Vec<String>,
}

/// Chooses which entries hold an X509-SVID, as SPIRE's LRU cache does: entries matched by an active
/// subscriber (`demanded`) always do and are never evicted; other SVIDs are kept, but when there are
/// more than `max` the least recently used (`last_access`, then entry ID) are evicted; entries without
/// an SVID are prefetched (in entry ID order) while there is room, except those with
/// `disable_x509_svid_prefetch`. With fewer entries than `max` and no such flag, every entry has an SVID.
/// An SVID is re-minted when its entry's revision changed or `policy` says it is due at `now`.
pub fn plan_svids(
    entries: &BTreeMap<String, AgentEntry>,
    current: &HashMap<String, Arc<X509Svid>>,
    demanded: &HashSet<String>,
    last_access: &HashMap<String, u64>,
    max: usize,
    now: i64,
    policy: RotationPolicy,
) -> SvidPlan {
    let mut cached: BTreeSet<String> =
        entries.keys().filter(|id| current.contains_key(*id) || demanded.contains(*id)).cloned().collect();
    let mut evicted = Vec::new();
    if cached.len() > max {
        let mut candidates: Vec<(u64, &String)> = cached
            .iter()
            .filter(|id| !demanded.contains(*id))
            .map(|id| (last_access.get(id).copied().unwrap_or(0), id))
            .collect();
        candidates.sort();
        let extra = cached.len() - max;
        evicted = candidates.into_iter().take(extra).map(|(_, id)| id.clone()).collect();
        for id in &evicted {
            cached.remove(id);
        }
    }
    for e in entries.values() {
        if cached.len() >= max {
            break;
        }
        if !e.disable_x509_svid_prefetch && !cached.contains(&e.id) {
            cached.insert(e.id.clone());
        }
    }
    let mint = cached
        .iter()
        .filter(|id| match current.get(*id) {
            Some(s) => s.revision != entries[*id].revision || s.needs_rotation(now, policy),
            None => true,
        })
        .cloned()
        .collect();
    SvidPlan { cached, mint, evicted }
}

/// The entries matched by at least one of `subscribers`' selector sets.
pub fn demanded_entries(entries: &BTreeMap<String, AgentEntry>, subscribers: &[SelectorSet]) -> HashSet<String> {
    entries.values().filter(|e| subscribers.iter().any(|s| e.selectors.entitles(s))).map(|e| e.id.clone()).collect()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn agent_entry(e: &pb::Entry) -> Option<AgentEntry> {
    let id = e.spiffe_id.as_ref()?;
    let td = TrustDomain::parse(&id.trust_domain).ok()?;
    let spiffe_id = td.id_with_path(&id.path).ok()?;
    let selectors: SelectorSet = e
        .selectors
        .iter()
        .filter_map(|s| spire_identity::Selector::new(s.r#type.clone(), s.value.clone()).ok())
        .collect();
    Some(AgentEntry {
        id: e.id.clone(),
        spiffe_id,
        selectors,
        federates_with: e.federates_with.iter().filter_map(|t| TrustDomain::parse(t).ok()).collect(),
        dns_names: e.dns_names.clone(),
        revision: e.revision_number,
        hint: e.hint.clone(),
        created_at: e.created_at,
        jwt_svid_ttl: e.jwt_svid_ttl,
        disable_x509_svid_prefetch: e.additional_attributes.is_some_and(|a| a.disable_x509_svid_prefetch),
    })
}

/// SyncAuthorizedEntries: all entries when the set is small; otherwise revisions, then the full
/// entries whose revision we do not have.
async fn sync_entries(
    channel: Channel,
    known: &BTreeMap<String, AgentEntry>,
) -> Result<BTreeMap<String, AgentEntry>, NodeError> {
    let mut client = EntryClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(entry_api::SyncAuthorizedEntriesRequest::default()).await.expect("receiver alive");
    let mut inbound = client
        .sync_authorized_entries(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(NodeError::Refused)?
        .into_inner();
    let mut entries = BTreeMap::new();
    let mut revisions: Vec<entry_api::EntryRevision> = Vec::new();
    loop {
        let msg = inbound
            .message()
            .await
            .map_err(NodeError::Refused)?
            .ok_or_else(|| NodeError::Protocol("sync stream ended early".into()))?;
        entries.extend(msg.entries.iter().filter_map(agent_entry).map(|e| (e.id.clone(), e)));
        revisions.extend(msg.entry_revisions);
        if !msg.more {
            break;
        }
    }
    if revisions.is_empty() {
        return Ok(entries);
    }
    // Keep what is current; ask for the rest.
    let mut wanted = Vec::new();
    for r in &revisions {
        match known.get(&r.id) {
            Some(e) if e.revision == r.revision_number => {
                entries.insert(e.id.clone(), e.clone());
            }
            _ => wanted.push(r.id.clone()),
        }
    }
    if !wanted.is_empty() {
        let expected = wanted.len();
        tx.send(entry_api::SyncAuthorizedEntriesRequest { output_mask: None, ids: wanted }).await.ok();
        let mut got = 0;
        while got < expected {
            let Some(msg) = inbound.message().await.map_err(NodeError::Refused)? else { break };
            got += msg.entries.len();
            entries.extend(msg.entries.iter().filter_map(agent_entry).map(|e| (e.id.clone(), e)));
            if !msg.more && msg.entries.is_empty() {
                break;
            }
        }
    }
    Ok(entries)
}

impl Syncer {
    /// A syncer publishing to `cache`, keeping at most about `max_svids` X509-SVIDs
    /// (0 means SPIRE's default, 1000).
    pub fn new(
        client: ServerClient,
        cache: Cache,
        key_type: KeyType,
        trust_domain: TrustDomain,
        max_svids: usize,
    ) -> Self {
        let max_svids = if max_svids == 0 { DEFAULT_X509_SVID_CACHE_MAX_SIZE } else { max_svids };
        Self {
            client,
            cache,
            key_type,
            trust_domain,
            max_svids,
            access: Arc::default(),
            rotation: RotationPolicy::default(),
            rpc_timeout: RPC_TIMEOUT,
        }
    }

    /// Renews workload X509-SVIDs by `policy` (`availability_target`) instead of at half-life.
    pub fn with_rotation(mut self, policy: RotationPolicy) -> Self {
        self.rotation = policy;
        self
    }

    /// One sync cycle at `now`, holding off any agent SVID rotation meanwhile. Each exchange with
    /// the server is bounded by [`Self::rpc_timeout`] as in SPIRE's client (the entries and bundles
    /// together, then each batch of SVIDs), so a silent server cannot hold the rotation lock forever;
    /// returning drops the lock.
    pub async fn sync_once(&self, now: SystemTime) -> Result<(), NodeError> {
        let _no_rotation = self.client.sync_guard().await;
        let previous = self.cache.snapshot();
        let (channel, entries, bundles) =
            within(self.rpc_timeout, "sync of entries and bundles", self.fetch_updates(&previous.entries)).await?;

        // SVIDs: within the cache limit, keep current ones and mint the rest.
        let t = unix(now);
        let demanded = demanded_entries(&entries, &self.cache.subscribed_selectors());
        let plan = {
            let mut access = self.access.lock().expect("access lock");
            access.generation += 1;
            let generation = access.generation;
            for id in &demanded {
                access.last.insert(id.clone(), generation);
            }
            access.last.retain(|id, _| entries.contains_key(id));
            plan_svids(&entries, &previous.svids, &demanded, &access.last, self.max_svids, t, self.rotation)
        };
        let mut svids: HashMap<String, Arc<X509Svid>> = HashMap::new();
        for id in &plan.cached {
            if let Some(s) = previous.svids.get(id) {
                svids.insert(id.clone(), s.clone());
            }
        }
        let stale: Vec<&AgentEntry> = plan.mint.iter().map(|id| &entries[id]).collect();
        for e in &stale {
            svids.remove(&e.id);
        }
        let mut svid_client = SvidClient::new(channel);
        for batch in stale.chunks(BATCH_SIZE) {
            let keys: Vec<PrivateKey> = batch
                .iter()
                .map(|_| PrivateKey::generate(self.key_type))
                .collect::<Result<_, _>>()
                .map_err(|e| NodeError::Csr(e.to_string()))?;
            let params = batch
                .iter()
                .zip(&keys)
                .map(|(e, k)| {
                    let csr = certificate_request(k, &[], &[]).map_err(|e| NodeError::Csr(e.to_string()))?;
                    Ok(svid_api::NewX509svidParams { entry_id: e.id.clone(), csr })
                })
                .collect::<Result<Vec<_>, NodeError>>()?;
            let request = svid_api::BatchNewX509svidRequest { params };
            let resp = within(self.rpc_timeout, "BatchNewX509SVID", async {
                svid_client.batch_new_x509svid(request).await.map_err(NodeError::Refused)
            })
            .await?
            .into_inner();
            for ((entry, key), result) in batch.iter().zip(keys).zip(resp.results) {
                let ok = result.status.as_ref().is_some_and(|s| s.code == 0);
                match result.svid {
                    Some(svid) if ok => {
                        let (issued_at, expires_at) = rotation_lifetime(&svid.cert_chain, t, svid.expires_at);
                        let svid = X509Svid {
                            entry_id: entry.id.clone(),
                            spiffe_id: entry.spiffe_id.clone(),
                            chain: svid.cert_chain,
                            key,
                            issued_at,
                            expires_at,
                            revision: entry.revision,
                        };
                        svids.insert(entry.id.clone(), Arc::new(svid));
                    }
                    _ => {
                        tracing::warn!(entry = %entry.id, status = ?result.status, "failed to mint an SVID");
                        // Keep serving the old SVID while it is still valid.
                        if let Some(old) = previous.svids.get(&entry.id).filter(|s| s.expires_at > t) {
                            svids.insert(entry.id.clone(), old.clone());
                        }
                    }
                }
            }
        }
        if !plan.mint.is_empty() || !plan.evicted.is_empty() {
            let mut access = self.access.lock().expect("access lock");
            let generation = access.generation;
            for id in &plan.mint {
                access.last.entry(id.clone()).or_insert(generation);
            }
            for id in &plan.evicted {
                access.last.remove(id);
            }
            drop(access);
            tracing::debug!(
                entries = entries.len(),
                cached = svids.len(),
                minted = plan.mint.len(),
                evicted = plan.evicted.len(),
                subscribed = demanded.len(),
                limit = self.max_svids,
                "X509-SVID cache updated"
            );
        }
        let snapshot = Snapshot { trust_domain: self.trust_domain.clone(), entries, svids, bundles, ready: true };
        self.cache.publish(snapshot);
        Ok(())
    }

    /// SPIRE's `SyncUpdates`: the authorized entries, then our bundle (which the client trusts from
    /// now on) and every federated bundle an entry asks for; the connection is kept for minting.
    async fn fetch_updates(
        &self,
        known: &BTreeMap<String, AgentEntry>,
    ) -> Result<(Channel, BTreeMap<String, AgentEntry>, BundleSet), NodeError> {
        let channel = self.client.channel().await?;
        let entries = sync_entries(channel.clone(), known).await?;
        let own = fetch_bundle(&self.client, &self.trust_domain).await?;
        *self.client.bundles().write().expect("bundle lock") = BundleSet::from(own.clone());
        let mut bundles = BundleSet::from(own);
        let mut bundle_client = BundleClient::new(channel.clone());
        for td in federated_trust_domains(&entries, &self.trust_domain) {
            let req = GetFederatedBundleRequest { trust_domain: td.to_string(), output_mask: None };
            match bundle_client.get_federated_bundle(req).await {
                Ok(b) => bundles.insert(bundle_from_proto(td, b.get_ref())),
                Err(e) => federated_bundle_missing(td, e)?,
            }
        }
        Ok((channel, entries, bundles))
    }

    /// Syncs every `interval` (±10%), backing off as SPIRE's agent does while the server is
    /// unreachable ([`SyncBackoff`]); the cache keeps serving what it has meanwhile.
    pub async fn run(&self, interval: Duration, stop: tokio::sync::watch::Receiver<bool>) -> NodeError {
        let mut backoff = SyncBackoff::new(interval, u64::from(std::process::id()));
        loop {
            let delay = match self.sync_once(SystemTime::now()).await {
                Ok(()) => {
                    backoff.reset();
                    let delay = backoff.next_delay();
                    // An agent with no SVID yet checks back at least every 5 s, as SPIRE's.
                    if self.cache.snapshot().svids.is_empty() { delay.min(NO_SVID_SYNC_INTERVAL) } else { delay }
                }
                Err(e) if e.is_permission_denied() => return e,
                Err(e) => {
                    tracing::warn!(error = %e, "sync failed");
                    backoff.next_delay()
                }
            };
            // A new subscriber missing SVIDs brings the next sync forward to SVID_SYNC_INTERVAL.
            let mut deadline = tokio::time::Instant::now() + delay;
            let mut stop = stop.clone();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.cache.demand_changed() => {
                        deadline = deadline.min(tokio::time::Instant::now() + SVID_SYNC_INTERVAL);
                    }
                    _ = stop.wait_for(|s| *s) => return NodeError::Protocol("stopped".into()),
                }
            }
        }
    }
}

/// The foreign trust domains `entries` federate with. The own one is left out: its bundle is fetched
/// anyway, and the server refuses it as a federated bundle (InvalidArgument), which would fail
/// every sync of an agent one of whose entries names it.
fn federated_trust_domains<'a>(
    entries: &'a BTreeMap<String, AgentEntry>,
    own: &TrustDomain,
) -> BTreeSet<&'a TrustDomain> {
    entries.values().flat_map(|e| e.federates_with.iter()).filter(|td| *td != own).collect()
}

/// A GetFederatedBundle that failed, as SPIRE's agent takes it: a bundle the server does not have
/// (NotFound: no relationship, or not fetched yet) is left out of the snapshot; any other failure
/// fails the whole sync, so that workloads keep the federated bundles they have instead of losing
/// one to a passing error.
fn federated_bundle_missing(td: &TrustDomain, status: tonic::Status) -> Result<(), NodeError> {
    if status.code() == tonic::Code::NotFound {
        tracing::warn!(trust_domain = %td, error = %status.message(), "Federated bundle not found");
        return Ok(());
    }
    tracing::error!(trust_domain = %td, error = %status.message(), "Failed to fetch federated bundle");
    Err(NodeError::Refused(status))
}

/// The SPIFFE ID of an agent SVID's leaf.
pub fn svid_id(chain: &[Vec<u8>]) -> Option<SpiffeId> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(chain.first()?).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => SpiffeId::parse(u).ok(),
        _ => None,
    })
}

/// (issued, expires) of a chain's leaf, Unix seconds.
pub fn svid_validity(chain: &[Vec<u8>]) -> Option<(i64, i64)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(chain.first()?).ok()?;
    Some((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}

/// The lifetime a workload SVID's half-life is measured over: its leaf's notBefore..notAfter, as
/// SPIRE's agent reads it (servers backdate notBefore by 10 s, so counting from the mint time renewed
/// later than SPIRE does); the mint time `minted_at` and the response's `expires_at` if the leaf does
/// not parse.
fn rotation_lifetime(chain: &[Vec<u8>], minted_at: i64, expires_at: i64) -> (i64, i64) {
    svid_validity(chain).unwrap_or((minted_at, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::Selector;

    fn selectors(list: &[&str]) -> SelectorSet {
        list.iter().map(|s| s.split_once(':').unwrap()).map(|(t, v)| Selector::new(t, v).unwrap()).collect()
    }

    fn entry(id: &str, selector: &str, no_prefetch: bool) -> AgentEntry {
        AgentEntry {
            id: id.into(),
            spiffe_id: TrustDomain::parse("example.org").unwrap().id_with_path(&format!("/{id}")).unwrap(),
            selectors: selectors(&[selector]),
            federates_with: vec![],
            dns_names: vec![],
            revision: 1,
            hint: String::new(),
            created_at: 0,
            jwt_svid_ttl: 0,
            disable_x509_svid_prefetch: no_prefetch,
        }
    }

    #[test]
    fn federated_bundles_fetched_are_the_foreign_ones_entries_name() {
        let (own, foreign) = (TrustDomain::parse("example.org").unwrap(), TrustDomain::parse("td-b.test").unwrap());
        let mut a = entry("a", "unix:uid:1", false);
        a.federates_with = vec![foreign.clone(), own.clone()];
        let mut b = entry("b", "unix:uid:2", false);
        b.federates_with = vec![foreign.clone()];
        let both = entries(&[a, b, entry("c", "unix:uid:3", false)]);
        assert_eq!(federated_trust_domains(&both, &own).into_iter().collect::<Vec<_>>(), [&foreign]);
    }

    #[test]
    fn a_missing_federated_bundle_is_left_out_and_other_failures_fail_the_sync() {
        let td = TrustDomain::parse("td-b.test").unwrap();
        assert!(federated_bundle_missing(&td, tonic::Status::not_found("bundle not found")).is_ok());
        for status in [tonic::Status::unavailable("down"), tonic::Status::internal("datastore")] {
            let code = status.code();
            let err = federated_bundle_missing(&td, status).unwrap_err();
            assert!(matches!(&err, NodeError::Refused(s) if s.code() == code), "{err}");
            assert!(!err.is_permission_denied());
        }
    }

    fn entries(list: &[AgentEntry]) -> BTreeMap<String, AgentEntry> {
        list.iter().map(|e| (e.id.clone(), e.clone())).collect()
    }

    fn svid(id: &str, revision: i64, issued_at: i64, expires_at: i64) -> Arc<X509Svid> {
        Arc::new(X509Svid {
            entry_id: id.into(),
            spiffe_id: TrustDomain::parse("example.org").unwrap().id_with_path(&format!("/{id}")).unwrap(),
            chain: vec![id.as_bytes().to_vec()],
            key: PrivateKey::generate(KeyType::EcP256).unwrap(),
            issued_at,
            expires_at,
            revision,
        })
    }

    fn svids(ids: &[&str]) -> HashMap<String, Arc<X509Svid>> {
        ids.iter().map(|id| (id.to_string(), svid(id, 1, 0, 1000))).collect()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn names(ids: &BTreeSet<String>) -> Vec<&str> {
        ids.iter().map(String::as_str).collect()
    }

    const NOW: i64 = 100;

    #[test]
    fn under_the_limit_every_entry_is_minted() {
        let e = entries(&[entry("a", "unix:uid:1", false), entry("b", "unix:uid:2", false)]);
        let plan =
            plan_svids(&e, &HashMap::new(), &HashSet::new(), &HashMap::new(), 1000, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert_eq!(plan.mint, ["a", "b"]);
        assert!(plan.evicted.is_empty());
        // Current SVIDs are kept, not re-minted.
        let plan =
            plan_svids(&e, &svids(&["a", "b"]), &HashSet::new(), &HashMap::new(), 1000, NOW, RotationPolicy::default());
        assert!(plan.mint.is_empty());
        assert_eq!(names(&plan.cached), ["a", "b"]);
    }

    #[test]
    fn prefetch_stops_at_the_limit_in_entry_order() {
        let e = entries(&[
            entry("a", "unix:uid:1", false),
            entry("b", "unix:uid:1", false),
            entry("c", "unix:uid:2", false),
            entry("d", "unix:uid:2", false),
        ]);
        let plan = plan_svids(&e, &HashMap::new(), &HashSet::new(), &HashMap::new(), 2, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert_eq!(plan.mint, ["a", "b"]);
        // Already at the limit: nothing more is prefetched.
        let plan =
            plan_svids(&e, &svids(&["a", "b"]), &HashSet::new(), &HashMap::new(), 2, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert!(plan.mint.is_empty());
    }

    #[test]
    fn subscribers_get_their_svids_beyond_the_limit_and_extras_are_evicted_lru_first() {
        let e = entries(&[
            entry("a", "unix:uid:1", false),
            entry("b", "unix:uid:1", false),
            entry("c", "unix:uid:2", false),
            entry("d", "unix:uid:2", false),
            entry("e", "unix:uid:2", false),
        ]);
        let demanded = demanded_entries(&e, &[selectors(&["unix:uid:2", "unix:gid:2"])]);
        assert_eq!(demanded, set(&["c", "d", "e"]));
        // a and b were prefetched; the subscriber needs three: the soft limit is exceeded, the
        // unsubscribed SVIDs go.
        let access: HashMap<String, u64> = [("a".into(), 2), ("b".into(), 1)].into();
        let plan = plan_svids(&e, &svids(&["a", "b"]), &demanded, &access, 2, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["c", "d", "e"]);
        assert_eq!(plan.mint, ["c", "d", "e"]);
        assert_eq!(plan.evicted, ["b", "a"], "least recently used first");

        // One over the limit: only the least recently used unsubscribed SVID is evicted.
        let demanded = set(&["c"]);
        let access: HashMap<String, u64> = [("a".into(), 5), ("b".into(), 3), ("d".into(), 4)].into();
        let plan = plan_svids(&e, &svids(&["a", "b", "d"]), &demanded, &access, 3, NOW, RotationPolicy::default());
        assert_eq!(plan.evicted, ["b"]);
        assert_eq!(names(&plan.cached), ["a", "c", "d"]);
        assert_eq!(plan.mint, ["c"]);
    }

    #[test]
    fn subscribed_svids_are_never_evicted() {
        let e = entries(&[entry("a", "unix:uid:1", false), entry("b", "unix:uid:1", false)]);
        let plan =
            plan_svids(&e, &svids(&["a", "b"]), &set(&["a", "b"]), &HashMap::new(), 1, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert!(plan.evicted.is_empty());
        assert!(plan.mint.is_empty());
    }

    #[test]
    fn entries_without_prefetch_are_minted_only_on_demand() {
        let e = entries(&[entry("a", "unix:uid:1", true), entry("b", "unix:uid:1", false)]);
        let plan =
            plan_svids(&e, &HashMap::new(), &HashSet::new(), &HashMap::new(), 1000, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["b"]);
        assert_eq!(plan.mint, ["b"]);
        let plan =
            plan_svids(&e, &svids(&["b"]), &set(&["a", "b"]), &HashMap::new(), 1000, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert_eq!(plan.mint, ["a"]);
        // Once minted it stays (and is rotated) while there is room, like any cached SVID.
        let plan =
            plan_svids(&e, &svids(&["a", "b"]), &HashSet::new(), &HashMap::new(), 1000, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert!(plan.mint.is_empty());
    }

    #[test]
    fn outdated_and_half_expired_svids_are_reminted_and_gone_entries_dropped() {
        let e = entries(&[entry("a", "unix:uid:1", false), entry("b", "unix:uid:1", false)]);
        let mut current: HashMap<String, Arc<X509Svid>> = HashMap::new();
        current.insert("a".into(), svid("a", 0, 0, 1000)); // older revision
        current.insert("b".into(), svid("b", 1, 0, 150)); // past half its life at NOW
        current.insert("gone".into(), svid("gone", 1, 0, 1000));
        let plan = plan_svids(&e, &current, &HashSet::new(), &HashMap::new(), 1000, NOW, RotationPolicy::default());
        assert_eq!(names(&plan.cached), ["a", "b"]);
        assert_eq!(plan.mint, ["a", "b"]);
    }

    #[test]
    fn sync_backoff_is_spires() {
        let within = |d: Duration, base: f64| {
            let s = d.as_secs_f64();
            assert!((base * 0.9..=base * 1.1).contains(&s), "{s} not within 10% of {base}");
        };
        let mut b = SyncBackoff::new(Duration::from_secs(5), 42);
        within(b.next_delay(), 5.0);
        within(b.next_delay(), 7.5);
        within(b.next_delay(), 11.25);
        for _ in 0..20 {
            b.next_delay();
        }
        within(b.next_delay(), 240.0); // 48 × 5 s
        b.reset();
        within(b.next_delay(), 5.0);
        // The 8-minute cap for long intervals.
        let mut b = SyncBackoff::new(Duration::from_secs(60), 7);
        for _ in 0..20 {
            b.next_delay();
        }
        within(b.next_delay(), 480.0);
        // The jitter spreads delays.
        let mut b = SyncBackoff::new(Duration::from_secs(5), 1);
        let delays: HashSet<u128> = (0..10)
            .map(|_| {
                let d = b.next_delay().as_millis();
                b.reset();
                d
            })
            .collect();
        assert!(delays.len() > 5, "{delays:?}");
    }

    #[test]
    fn workload_svids_age_from_their_not_before() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 3);
        let cert = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let chain = vec![cert.der().to_vec()];
        // Minted a day after its (backdated) notBefore: the half-life still counts from notBefore.
        assert_eq!(rotation_lifetime(&chain, 1_893_542_400, 0), (1_893_456_000, 1_893_628_800));
        assert_eq!(rotation_lifetime(&[b"junk".to_vec()], 100, 200), (100, 200));
    }

    /// A server that accepts connections and never answers: the sync gives up, as SPIRE's after its
    /// RPC timeout, and lets a waiting rotation through.
    #[tokio::test]
    async fn a_silent_server_does_not_hold_the_rotation_lock() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                open.push(tcp);
            }
        });
        let td = TrustDomain::parse("example.org").unwrap();
        let client = ServerClient::new(addr, &td, Arc::new(std::sync::RwLock::new(BundleSet::new())), true);
        let mut syncer = Syncer::new(client.clone(), Cache::new(td.clone()), KeyType::EcP256, td, 0);
        syncer.rpc_timeout = Duration::from_secs(2);
        let sync = tokio::spawn(async move { syncer.sync_once(SystemTime::now()).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let early = tokio::time::timeout(Duration::from_millis(300), client.rotation_guard()).await;
        assert!(early.is_err(), "the sync holds the rotation lock while it waits for the server");
        let rotation = tokio::time::timeout(Duration::from_secs(10), client.rotation_guard()).await;
        assert!(rotation.is_ok(), "the rotation lock is still held");
        let e = sync.await.unwrap().unwrap_err();
        assert!(matches!(e, NodeError::Timeout { .. }), "{e}");
        assert!(!e.is_permission_denied(), "retried");
    }

    #[test]
    fn a_zero_limit_means_the_default() {
        let cache = Cache::new(TrustDomain::parse("example.org").unwrap());
        let client = ServerClient::new(
            "127.0.0.1:1".into(),
            &TrustDomain::parse("example.org").unwrap(),
            Arc::new(std::sync::RwLock::new(BundleSet::new())),
            true,
        );
        let s = Syncer::new(client, cache, KeyType::EcP256, TrustDomain::parse("example.org").unwrap(), 0);
        assert_eq!(s.max_svids, DEFAULT_X509_SVID_CACHE_MAX_SIZE);
    }
}
