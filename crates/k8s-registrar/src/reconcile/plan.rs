//! Desired versus actual entries: what to create, update and delete for one object, and which objects
//! a full resync finds out of step. Pure, so that the rules are tested without a server.

use std::collections::{BTreeMap, BTreeSet};

use spire_proto::spire::api::types::Entry;

use crate::spire_api::same_registration;

/// The Kubernetes object an entry stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// A Node, by name.
    Node(String),
    /// A Pod, by namespace and name.
    Pod {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl Key {
    /// The controller the key belongs to, as metrics name it.
    pub(crate) fn controller(&self) -> &'static str {
        match self {
            Self::Node(_) => "node",
            Self::Pod { .. } => "pod",
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Node(name) => write!(f, "node {name}"),
            Self::Pod { namespace, name } => write!(f, "pod {namespace}/{name}"),
        }
    }
}

/// What an object should have in SPIRE.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Desired {
    /// This entry (without an ID).
    Entry(Box<Entry>),
    /// No entry: the object is gone, being deleted, not scheduled, or has no ID.
    Nothing,
    /// The object's entry cannot be written (invalid ID): existing entries are left as they are, as
    /// SPIRE leaves them, rather than deleted over what may be a typo in a label.
    Invalid(String),
}

/// The writes that bring one object's entries in step.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Plan {
    /// An entry to create.
    pub(crate) create: Option<Entry>,
    /// An entry to replace in place (with the ID of the existing one).
    pub(crate) update: Option<Entry>,
    /// Entries to delete: extra duplicates, or all when nothing is desired.
    pub(crate) delete: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.create.is_none() && self.update.is_none() && self.delete.is_empty()
    }
}

/// Whether `actual` is `desired` ([`same_registration`]). SPIRE v1.3.6 compares only the IDs and
/// DNS names; comparing selectors and the federation too lets a hand edit or an annotation change
/// reach the entry.
pub(crate) fn matches(desired: &Entry, actual: &Entry) -> bool {
    same_registration(desired, actual)
}

/// SPIRE's base controller's rule for one object: nothing desired deletes every entry; otherwise
/// keep an entry that matches (deleting the others), or update the one with the smallest ID in place
/// (deleting the others), or create one when there is none.
pub(crate) fn plan(desired: &Desired, actual: &[Entry]) -> Plan {
    let all_ids = || actual.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let entry = match desired {
        Desired::Invalid(_) => return Plan::default(),
        Desired::Nothing => return Plan { delete: all_ids(), ..Plan::default() },
        Desired::Entry(entry) => entry,
    };
    if actual.is_empty() {
        return Plan { create: Some((**entry).clone()), ..Plan::default() };
    }
    let (keep, update) = match actual.iter().find(|a| matches(entry, a)) {
        Some(found) => (found.id.clone(), None),
        None => {
            let smallest = actual.iter().map(|e| e.id.as_str()).min().unwrap_or_default().to_owned();
            (smallest.clone(), Some(Entry { id: smallest, ..(**entry).clone() }))
        }
    };
    let delete = actual.iter().filter(|e| e.id != keep).map(|e| e.id.clone()).collect();
    Plan { create: None, update, delete }
}

/// The objects a full resync must reconcile: those whose owned entries (`actual`, grouped by the
/// object their selectors name) do not match what they should have (`desired`, every object the
/// caches know; an object missing from `desired` desires nothing).
pub(crate) fn out_of_step(desired: &BTreeMap<Key, Desired>, actual: BTreeMap<Key, Vec<Entry>>) -> Vec<Key> {
    let mut keys: BTreeSet<&Key> = desired.keys().collect();
    keys.extend(actual.keys());
    keys.into_iter()
        .filter(|key| {
            let want = desired.get(*key).unwrap_or(&Desired::Nothing);
            !plan(want, actual.get(*key).map(Vec::as_slice).unwrap_or_default()).is_empty()
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use spire_proto::spire::api::types::Spiffeid;

    use super::*;
    use crate::workload_id::{namespace_selector, pod_name_selector};

    fn entry(id: &str, spiffe: &str) -> Entry {
        Entry {
            id: id.into(),
            spiffe_id: Some(Spiffeid { trust_domain: "example.org".into(), path: spiffe.into() }),
            parent_id: Some(Spiffeid { trust_domain: "example.org".into(), path: "/r/c/node/n1".into() }),
            selectors: vec![namespace_selector("a"), pod_name_selector("p")],
            ..Default::default()
        }
    }

    fn desired(spiffe: &str) -> Desired {
        Desired::Entry(Box::new(entry("", spiffe)))
    }

    #[test]
    fn creates_when_missing() {
        let p = plan(&desired("/x"), &[]);
        assert_eq!(p.create, Some(entry("", "/x")));
        assert!(p.update.is_none() && p.delete.is_empty());
    }

    #[test]
    fn keeps_a_match_and_deletes_duplicates() {
        let p = plan(&desired("/x"), &[entry("b", "/y"), entry("c", "/x"), entry("a", "/x")]);
        assert!(p.create.is_none() && p.update.is_none());
        assert_eq!(p.delete, vec!["b".to_owned(), "a".to_owned()]);
        assert!(plan(&desired("/x"), &[entry("a", "/x")]).is_empty());
    }

    #[test]
    fn updates_the_smallest_id_in_place() {
        let p = plan(&desired("/x"), &[entry("c", "/y"), entry("b", "/z")]);
        assert_eq!(p.update, Some(entry("b", "/x")));
        assert_eq!(p.delete, vec!["c".to_owned()]);
    }

    #[test]
    fn nothing_desired_deletes_all_and_invalid_touches_nothing() {
        let actual = [entry("a", "/x"), entry("b", "/x")];
        assert_eq!(plan(&Desired::Nothing, &actual).delete, vec!["a".to_owned(), "b".to_owned()]);
        assert!(plan(&Desired::Nothing, &[]).is_empty());
        assert!(plan(&Desired::Invalid("bad".into()), &actual).is_empty());
    }

    #[test]
    fn dns_names_in_order_federation_as_a_set() {
        let mut want = entry("", "/x");
        want.dns_names = vec!["a".into(), "b".into()];
        want.federates_with = vec!["t1".into(), "t2".into()];
        let mut got = entry("1", "/x");
        got.dns_names = vec!["a".into(), "b".into()];
        got.federates_with = vec!["t2".into(), "spiffe://t1".into()];
        assert!(matches(&want, &got));
        // The first DNS name is the certificate's common name: order is a difference.
        got.dns_names = vec!["b".into(), "a".into()];
        assert!(!matches(&want, &got));
        got.dns_names = vec!["a".into(), "b".into()];
        got.federates_with.clear();
        assert!(!matches(&want, &got));
        got.federates_with = vec!["t1".into(), "t2".into()];
        got.dns_names.pop();
        assert!(!matches(&want, &got));
        // TTLs and the like are the operator's, not compared.
        got.dns_names = vec!["a".into(), "b".into()];
        got.x509_svid_ttl = 60;
        assert!(matches(&want, &got));
    }

    #[test]
    fn resync_finds_missing_changed_duplicated_and_orphaned() {
        let pod = |n: &str| Key::Pod { namespace: "a".into(), name: n.into() };
        let mut want = BTreeMap::new();
        want.insert(pod("ok"), desired("/ok"));
        want.insert(pod("missing"), desired("/missing"));
        want.insert(pod("changed"), desired("/changed"));
        want.insert(pod("dup"), desired("/dup"));
        want.insert(pod("unscheduled"), Desired::Nothing);
        want.insert(pod("bad"), Desired::Invalid("x".into()));
        let mut actual = BTreeMap::new();
        actual.insert(pod("ok"), vec![entry("1", "/ok")]);
        actual.insert(pod("changed"), vec![entry("2", "/by-hand")]);
        actual.insert(pod("dup"), vec![entry("3", "/dup"), entry("4", "/dup")]);
        actual.insert(pod("gone"), vec![entry("5", "/gone")]);
        actual.insert(pod("bad"), vec![entry("6", "/old")]);
        let stale = out_of_step(&want, actual);
        assert_eq!(stale, vec![pod("changed"), pod("dup"), pod("gone"), pod("missing")]);
    }
}
