//! The agent's view of its identities: the entries it is authorized for, the SVIDs it minted for them,
//! and the bundles. Published as immutable snapshots through a watch channel, so every Workload API
//! stream learns of rotations, entry changes and bundle changes without polling.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use spire_identity::{Bundle, BundleSet, PrivateKey, SelectorSet, SpiffeId, TrustDomain};
use tokio::sync::watch;

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
    /// Whether it should be replaced at `now`: half its life is gone.
    pub fn needs_rotation(&self, now: i64) -> bool {
        now >= self.issued_at + (self.expires_at - self.issued_at) / 2
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

    /// The identities of a workload showing `selectors`: every entry whose selectors are all among
    /// them and that has an SVID, sorted by entry ID, de-duplicated by hint (the oldest entry wins).
    pub fn identities_for(&self, selectors: &SelectorSet) -> Vec<Identity> {
        let mut matched: Vec<Identity> = self
            .entries
            .values()
            .filter(|e| e.selectors.entitles(selectors))
            .filter_map(|e| self.svids.get(&e.id).map(|s| Identity { entry: e.clone(), svid: s.clone() }))
            .collect();
        let mut oldest_by_hint: HashMap<&str, (i64, &str)> = HashMap::new();
        for i in &matched {
            if i.entry.hint.is_empty() {
                continue;
            }
            let slot = oldest_by_hint.entry(&i.entry.hint).or_insert((i.entry.created_at, &i.entry.id));
            if (i.entry.created_at, i.entry.id.as_str()) < *slot {
                *slot = (i.entry.created_at, &i.entry.id);
            }
        }
        let keep: std::collections::HashSet<String> = matched
            .iter()
            .filter(|i| i.entry.hint.is_empty() || oldest_by_hint[i.entry.hint.as_str()].1 == i.entry.id)
            .map(|i| i.entry.id.clone())
            .collect();
        matched.retain(|i| keep.contains(&i.entry.id));
        matched
    }
}

/// The shared cache: writers publish snapshots, readers subscribe.
#[derive(Debug, Clone)]
pub struct Cache {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Cache {
    /// An empty cache.
    pub fn new(trust_domain: TrustDomain) -> Self {
        let (tx, _) = watch::channel(Arc::new(Snapshot::new(trust_domain)));
        Self { tx: Arc::new(tx) }
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
}
