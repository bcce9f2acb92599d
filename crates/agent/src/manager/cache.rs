//! The agent's view of its identities: the entries it is authorized for, the SVIDs it minted for them,
//! and the bundles. Published as immutable snapshots through a watch channel, so every Workload API
//! stream learns of rotations, entry changes and bundle changes without polling.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use spire_identity::{Bundle, BundleSet, PrivateKey, SelectorSet, SpiffeId, TrustDomain};
use tokio::sync::watch;

use crate::rotation::{Jitter, RotationPolicy};

/// A registration entry as the agent uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEntry {
    /// Entry ID.
    pub id: String,
    /// The identity.
    pub spiffe_id: SpiffeId,
    /// Selectors a workload must show (all of them).
    pub selectors: SelectorSet,
    /// Trust domains whose bundles the workload also receives.
    pub federates_with: Vec<TrustDomain>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// Bumped by the server on every change; an SVID of an older revision is re-minted.
    pub revision: i64,
    /// Workload hint.
    pub hint: String,
    /// Creation time, for de-duplication by hint (oldest wins).
    pub created_at: i64,
    /// JWT-SVID TTL (0 = server default).
    pub jwt_svid_ttl: i32,
    /// `disable_x509_svid_prefetch`: the X509-SVID is minted only when a subscriber needs it.
    pub disable_x509_svid_prefetch: bool,
}

/// An X509-SVID minted for an entry.
#[derive(Debug, Clone)]
pub struct X509Svid {
    /// The entry it was minted for.
    pub entry_id: String,
    /// Its identity.
    pub spiffe_id: SpiffeId,
    /// Leaf first.
    pub chain: Vec<Vec<u8>>,
    /// Its key, generated on the agent.
    pub key: PrivateKey,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The entry revision it was minted for.
    pub revision: i64,
}

impl X509Svid {
    /// Whether it should be replaced at `now` (see [`RotationPolicy`]).
    pub fn needs_rotation(&self, now: i64, policy: RotationPolicy) -> bool {
        policy.due(self.issued_at, self.expires_at, now, Jitter::NONE)
    }
}

/// One consistent state of the cache.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The agent's trust domain.
    pub trust_domain: TrustDomain,
    /// Authorized entries by ID.
    pub entries: BTreeMap<String, AgentEntry>,
    /// SVIDs by entry ID.
    pub svids: HashMap<String, Arc<X509Svid>>,
    /// The own bundle and federated ones.
    pub bundles: BundleSet,
    /// Whether the agent has synced at least once (before that, callers are told to retry).
    pub ready: bool,
}

/// What one workload is entitled to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The entry.
    pub entry: AgentEntry,
    /// Its SVID.
    pub svid: Arc<X509Svid>,
}

impl PartialEq for X509Svid {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain
    }
}

impl Snapshot {
    /// An empty, not-yet-synced snapshot.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self { trust_domain, entries: BTreeMap::new(), svids: HashMap::new(), bundles: BundleSet::new(), ready: false }
    }

    /// The own trust domain's bundle.
    pub fn own_bundle(&self) -> Option<&Bundle> {
        self.bundles.get(&self.trust_domain)
    }

    /// The entries a workload showing `selectors` is entitled to: every entry whose selectors are all
    /// among them, sorted by entry ID, de-duplicated by hint (the oldest entry wins).
    pub fn entries_for(&self, selectors: &SelectorSet) -> Vec<&AgentEntry> {
        let mut matched: Vec<&AgentEntry> = self.entries.values().filter(|e| e.selectors.entitles(selectors)).collect();
        let mut oldest_by_hint: HashMap<&str, (i64, &str)> = HashMap::new();
        for e in &matched {
            if e.hint.is_empty() {
                continue;
            }
            let slot = oldest_by_hint.entry(&e.hint).or_insert((e.created_at, &e.id));
            if (e.created_at, e.id.as_str()) < *slot {
                *slot = (e.created_at, &e.id);
            }
        }
        if !oldest_by_hint.is_empty() {
            matched.retain(|e| e.hint.is_empty() || oldest_by_hint[e.hint.as_str()].1 == e.id);
        }
        matched
    }

    /// The X509 identities of a workload showing `selectors`: [`Snapshot::entries_for`] that have an SVID.
    pub fn identities_for(&self, selectors: &SelectorSet) -> Vec<Identity> {
        self.entries_for(selectors)
            .into_iter()
            .filter_map(|e| self.svids.get(&e.id).map(|s| Identity { entry: e.clone(), svid: s.clone() }))
            .collect()
    }

    /// Whether a workload showing `selectors` must wait before it is answered: the agent has not synced
    /// yet, or an entry it is entitled to has no SVID yet (SPIRE's subscribers wait for all of them).
    pub fn must_wait_for(&self, selectors: &SelectorSet) -> bool {
        !self.ready || self.missing_svids_for(selectors)
    }
}

#[derive(Default)]
struct Subscribers {
    next_id: u64,
    /// The selectors of each registered workload stream.
    by_id: HashMap<u64, SelectorSet>,
}

/// Who is subscribed, and the wake-up of the sync loop when a new subscriber misses SVIDs.
#[derive(Default)]
struct Demand {
    subscribers: Mutex<Subscribers>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Demand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.subscribers.lock().map(|s| s.by_id.len()).unwrap_or(0);
        f.debug_struct("Demand").field("subscribers", &n).finish_non_exhaustive()
    }
}

/// Keeps a subscriber registered with [`Cache::register_subscriber`]; unregisters it when dropped.
#[derive(Debug)]
#[must_use = "the subscriber is unregistered when the guard is dropped"]
pub struct SubscriberGuard {
    demand: Arc<Demand>,
    id: u64,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.demand.subscribers.lock() {
            s.by_id.remove(&self.id);
        }
    }
}

/// The shared cache: writers publish snapshots, readers subscribe.
#[derive(Debug, Clone)]
pub struct Cache {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
    demand: Arc<Demand>,
}

impl Cache {
    /// An empty cache.
    pub fn new(trust_domain: TrustDomain) -> Self {
        let (tx, _) = watch::channel(Arc::new(Snapshot::new(trust_domain)));
        Self { tx: Arc::new(tx), demand: Arc::default() }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    /// Publishes a new snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        self.tx.send_replace(Arc::new(snapshot));
    }

    /// Registers an active subscriber (a workload stream) with these selectors until the guard is
    /// dropped. The X509-SVIDs of the entries it matches are minted whatever `x509_svid_cache_max_size`
    /// says and never evicted while it is registered; if some are missing, the sync loop is woken to
    /// mint them at the next SVID sync (after [`super::sync::SVID_SYNC_INTERVAL`]).
    pub fn register_subscriber(&self, selectors: SelectorSet) -> SubscriberGuard {
        let id = self.add(selectors);
        SubscriberGuard { demand: self.demand.clone(), id }
    }

    fn add(&self, selectors: SelectorSet) -> u64 {
        let missing = self.snapshot().missing_svids_for(&selectors);
        let mut s = self.demand.subscribers.lock().expect("subscribers lock");
        let id = s.next_id;
        s.next_id += 1;
        s.by_id.insert(id, selectors);
        drop(s);
        if missing {
            self.demand.wake.notify_one();
        }
        id
    }

    /// The selectors of every registered subscriber.
    pub fn subscribed_selectors(&self) -> Vec<SelectorSet> {
        self.demand.subscribers.lock().expect("subscribers lock").by_id.values().cloned().collect()
    }

    /// Resolves when a subscriber registered that misses SVIDs.
    pub async fn demand_changed(&self) {
        self.demand.wake.notified().await;
    }
}

impl Snapshot {
    /// Whether an entry matching `selectors` has no SVID yet.
    pub fn missing_svids_for(&self, selectors: &SelectorSet) -> bool {
        self.entries.values().any(|e| e.selectors.entitles(selectors) && !self.svids.contains_key(&e.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_identity::Selector;

    fn selectors(list: &[&str]) -> SelectorSet {
        list.iter().map(|s| s.split_once(':').unwrap()).map(|(t, v)| Selector::new(t, v).unwrap()).collect()
    }

    fn cache_with_entry() -> Cache {
        let td = TrustDomain::parse("example.org").unwrap();
        let cache = Cache::new(td.clone());
        let mut snapshot = Snapshot::new(td.clone());
        let e = AgentEntry {
            id: "a".into(),
            spiffe_id: td.id_with_path("/a").unwrap(),
            selectors: selectors(&["unix:uid:1"]),
            federates_with: vec![],
            dns_names: vec![],
            revision: 1,
            hint: String::new(),
            created_at: 0,
            jwt_svid_ttl: 0,
            disable_x509_svid_prefetch: true,
        };
        snapshot.entries.insert(e.id.clone(), e);
        cache.publish(snapshot);
        cache
    }

    #[test]
    fn a_guard_keeps_a_subscriber_registered_until_dropped() {
        let cache = cache_with_entry();
        assert!(cache.subscribed_selectors().is_empty());
        let guard = cache.register_subscriber(selectors(&["unix:uid:1"]));
        let other = cache.register_subscriber(selectors(&["unix:uid:2"]));
        assert_eq!(cache.subscribed_selectors().len(), 2);
        drop(guard);
        assert_eq!(cache.subscribed_selectors(), vec![selectors(&["unix:uid:2"])]);
        drop(other);
        assert!(cache.subscribed_selectors().is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_missing_svids_wakes_the_sync_loop() {
        let cache = cache_with_entry();
        // Matches nothing: no wake-up.
        let _g = cache.register_subscriber(selectors(&["unix:uid:9"]));
        let woke = tokio::time::timeout(std::time::Duration::from_millis(50), cache.demand_changed()).await;
        assert!(woke.is_err());
        // Matches an entry without an SVID.
        let _g = cache.register_subscriber(selectors(&["unix:uid:1"]));
        tokio::time::timeout(std::time::Duration::from_secs(1), cache.demand_changed()).await.unwrap();
    }
}
