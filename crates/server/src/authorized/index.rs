//! The in-memory index behind GetAuthorizedEntries/SyncAuthorizedEntries and the SVID APIs' checks.
//!
//! It is updated entry by entry as writes happen (and, for writes made by other servers, from the
//! events table), never rebuilt per request, so that answering an agent costs time proportional to
//! what that agent may see, not to the size of the registry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use spire_datastore::RegistrationEntry;
use spire_identity::{Selector, SpiffeId, TrustDomain};

/// Registration entries indexed for authorization.
#[derive(Debug)]
pub struct EntryIndex {
    trust_domain: TrustDomain,
    server_id: SpiffeId,
    entries: HashMap<String, Arc<RegistrationEntry>>,
    /// Entry IDs by parent ID (only entries whose parent and SPIFFE ID are in the trust domain).
    children: HashMap<SpiffeId, HashSet<String>>,
    /// Node alias entry IDs (parent = the server) by each of their selectors.
    aliases: HashMap<Selector, HashSet<String>>,
}

impl EntryIndex {
    /// An empty index for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        let server_id = trust_domain.id_with_path("/spire/server").expect("valid path");
        Self { trust_domain, server_id, entries: HashMap::new(), children: HashMap::new(), aliases: HashMap::new() }
    }

    /// Number of indexed entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every indexed entry.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<RegistrationEntry>> {
        self.entries.values()
    }

    /// The entry `id`, if indexed.
    pub fn get(&self, id: &str) -> Option<&Arc<RegistrationEntry>> {
        self.entries.get(id)
    }

    fn is_alias(&self, entry: &RegistrationEntry) -> bool {
        entry.parent_id == self.server_id
    }

    /// Adds or replaces an entry.
    pub fn upsert(&mut self, entry: RegistrationEntry) {
        self.remove(&entry.id);
        // Entries outside the trust domain can never be authorized to an agent of it.
        if !entry.spiffe_id.is_member_of(&self.trust_domain) || !entry.parent_id.is_member_of(&self.trust_domain) {
            return;
        }
        if self.is_alias(&entry) {
            for s in &entry.selectors {
                self.aliases.entry(s.clone()).or_default().insert(entry.id.clone());
            }
        } else {
            self.children.entry(entry.parent_id.clone()).or_default().insert(entry.id.clone());
        }
        self.entries.insert(entry.id.clone(), Arc::new(entry));
    }

    /// Removes an entry; returns whether it was indexed.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(old) = self.entries.remove(id) else { return false };
        if self.is_alias(&old) {
            for s in &old.selectors {
                if let Some(set) = self.aliases.get_mut(s) {
                    set.remove(id);
                    if set.is_empty() {
                        self.aliases.remove(s);
                    }
                }
            }
        } else if let Some(set) = self.children.get_mut(&old.parent_id) {
            set.remove(id);
            if set.is_empty() {
                self.children.remove(&old.parent_id);
            }
        }
        true
    }

    /// The entries an agent may receive: descendants of the agent's ID and of every node alias whose
    /// selectors are all among the agent's node selectors. A `seen` set on parent IDs keeps cycles and
    /// shared subtrees from repeating work.
    pub fn authorized_entries(&self, agent_id: &SpiffeId, node_selectors: &[Selector]) -> Vec<Arc<RegistrationEntry>> {
        let mut roots: Vec<&SpiffeId> = vec![agent_id];
        let mut alias_seen: HashSet<&str> = HashSet::new();
        for selector in node_selectors {
            for id in self.aliases.get(selector).into_iter().flatten() {
                if !alias_seen.insert(id) {
                    continue;
                }
                let alias = &self.entries[id];
                if alias.selectors.iter().all(|s| node_selectors.contains(s)) {
                    roots.push(&alias.spiffe_id);
                }
            }
        }
        let mut out = Vec::new();
        let mut seen: HashSet<&SpiffeId> = HashSet::new();
        while let Some(parent) = roots.pop() {
            if !seen.insert(parent) {
                continue;
            }
            for id in self.children.get(parent).into_iter().flatten() {
                let entry = &self.entries[id];
                out.push(entry.clone());
                roots.push(&entry.spiffe_id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    fn entry(eid: &str, spiffe: &str, parent: &str, selectors: &[&str]) -> RegistrationEntry {
        let mut e =
            RegistrationEntry::new(id(spiffe), id(parent), selectors.iter().map(|s| Selector::parse(s).unwrap()));
        e.id = eid.into();
        e
    }

    fn ids(v: Vec<Arc<RegistrationEntry>>) -> Vec<String> {
        let mut ids: Vec<String> = v.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids
    }

    fn index() -> EntryIndex {
        let mut ix = EntryIndex::new(TrustDomain::parse("example.org").unwrap());
        let agent = "spiffe://example.org/spire/agent/join_token/t1";
        ix.upsert(entry("direct", "spiffe://example.org/web", agent, &["unix:uid:1"]));
        ix.upsert(entry("nested", "spiffe://example.org/web/child", "spiffe://example.org/web", &["unix:uid:2"]));
        ix.upsert(entry(
            "alias",
            "spiffe://example.org/cluster",
            "spiffe://example.org/spire/server",
            &["k8s_psat:cluster:a"],
        ));
        ix.upsert(entry("via-alias", "spiffe://example.org/db", "spiffe://example.org/cluster", &["unix:uid:3"]));
        ix.upsert(entry(
            "other-agent",
            "spiffe://example.org/x",
            "spiffe://example.org/spire/agent/join_token/t2",
            &["unix:uid:4"],
        ));
        ix.upsert(entry("foreign", "spiffe://other.org/y", agent, &["unix:uid:5"]));
        ix
    }

    #[test]
    fn descendants_and_aliases() {
        let ix = index();
        let agent = id("spiffe://example.org/spire/agent/join_token/t1");
        assert_eq!(ids(ix.authorized_entries(&agent, &[])), ["direct", "nested"]);
        let sel = [Selector::parse("k8s_psat:cluster:a").unwrap()];
        assert_eq!(ids(ix.authorized_entries(&agent, &sel)), ["direct", "nested", "via-alias"]);
        let other = id("spiffe://example.org/spire/agent/join_token/t2");
        assert_eq!(ids(ix.authorized_entries(&other, &[])), ["other-agent"]);
    }

    #[test]
    fn alias_needs_all_its_selectors() {
        let mut ix = index();
        ix.upsert(entry(
            "alias",
            "spiffe://example.org/cluster",
            "spiffe://example.org/spire/server",
            &["k8s_psat:cluster:a", "k8s_psat:node:n1"],
        ));
        let agent = id("spiffe://example.org/spire/agent/x");
        assert!(ix.authorized_entries(&agent, &[Selector::parse("k8s_psat:cluster:a").unwrap()]).is_empty());
        let both = [Selector::parse("k8s_psat:cluster:a").unwrap(), Selector::parse("k8s_psat:node:n1").unwrap()];
        assert_eq!(ids(ix.authorized_entries(&agent, &both)), ["via-alias"]);
    }

    #[test]
    fn cycles_terminate_and_removal_unlinks() {
        let mut ix = index();
        ix.upsert(entry(
            "loop",
            "spiffe://example.org/spire/agent/join_token/t1",
            "spiffe://example.org/web/child",
            &["a:b"],
        ));
        let agent = id("spiffe://example.org/spire/agent/join_token/t1");
        assert_eq!(ids(ix.authorized_entries(&agent, &[])), ["direct", "loop", "nested"]);
        assert!(ix.remove("direct"));
        assert!(!ix.remove("direct"));
        assert!(ix.authorized_entries(&agent, &[]).is_empty());
        // Moving an entry to another parent moves it in the index.
        ix.upsert(entry(
            "nested",
            "spiffe://example.org/web/child",
            "spiffe://example.org/spire/agent/join_token/t1",
            &["unix:uid:2"],
        ));
        assert_eq!(ids(ix.authorized_entries(&agent, &[])), ["loop", "nested"]);
    }
}
