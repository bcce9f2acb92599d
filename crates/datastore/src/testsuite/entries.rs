//! Entry CRUD: creation rules, round trips, masks, revisions, deletion, pruning.

use std::sync::Arc;

use super::*;
use crate::{DataStore, EntryMask};

/// An empty ID gets a UUIDv4; selectors and federated trust domains come back sorted and
/// de-duplicated; DNS names keep their order; the store owns created_at and the revision.
pub async fn entry_create_generates_id_and_normalizes(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["b.org", "a.org"]).await;
    let mut new = entry("web", "agent", &["unix:uid:1000", "k8s:ns:prod", "unix:uid:1000"]);
    new.federates_with = vec![td("b.org"), td("a.org"), td("b.org")];
    new.dns_names = vec!["z.example.org".into(), "a.example.org".into()];
    new.revision_number = 42;
    new.created_at = 5;
    let before = now();
    let created = store.create_entry(new).await.unwrap();
    let after = now();

    let uuid = uuid::Uuid::parse_str(&created.id).expect("generated ID is a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(created.selectors, sels(&["k8s:ns:prod", "unix:uid:1000"]));
    assert_eq!(created.federates_with, vec![td("a.org"), td("b.org")]);
    assert_eq!(created.dns_names, ["z.example.org", "a.example.org"]);
    assert_eq!(created.revision_number, 0);
    assert!((before..=after).contains(&created.created_at), "created_at {} not now", created.created_at);
    assert_eq!(store.fetch_entry(&created.id).await.unwrap(), Some(created.clone()));

    let other = store.create_entry(entry("web2", "agent", &["unix:uid:1"])).await.unwrap();
    assert_ne!(other.id, created.id);
}

pub async fn entry_create_keeps_given_id(store: Arc<dyn DataStore>) {
    let created = store.create_entry(entry_with_id("my-Entry_1.x", "web", "agent", &["unix:uid:1"])).await.unwrap();
    assert_eq!(created.id, "my-Entry_1.x");
    assert_eq!(store.fetch_entry("my-Entry_1.x").await.unwrap().unwrap().id, "my-Entry_1.x");
}

/// Every field survives the trip through the store.
pub async fn entry_all_fields_round_trip(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["fed.org"]).await;
    let mut full = entry_with_id("full", "web", "agent", &["unix:uid:1", "unix:gid:2"]);
    full.x509_svid_ttl = 3600;
    full.jwt_svid_ttl = 300;
    full.federates_with = vec![td("fed.org")];
    full.admin = true;
    full.downstream = true;
    full.expires_at = 4_000_000_000;
    full.dns_names = vec!["b.example.org".into(), "a.example.org".into(), "b.example.org".into()];
    full.store_svid = true;
    full.hint = "external".into();
    full.disable_x509_svid_prefetch = true;
    full.jwt_svid_include_jti = true;
    let created = store.create_entry(full.clone()).await.unwrap();
    full.created_at = created.created_at;
    assert_eq!(created, full);
    assert_eq!(store.fetch_entry("full").await.unwrap(), Some(full));
}

pub async fn entry_ids_are_validated(store: Arc<dyn DataStore>) {
    let longest = "a".repeat(255);
    store.create_entry(entry_with_id(&longest, "ok", "agent", &["unix:uid:1"])).await.unwrap();
    let too_long = "a".repeat(256);
    for (i, bad) in ["has space", "has/slash", "ünïcode", "colon:id", too_long.as_str()].into_iter().enumerate() {
        let message = assert_err!(
            store.create_entry(entry_with_id(bad, &format!("w{i}"), "agent", &["u:1"])).await,
            InvalidArgument
        );
        assert!(message.contains("entry ID"), "{message}");
    }
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 1);
}

pub async fn entry_content_is_validated(store: Arc<dyn DataStore>) {
    assert_err!(store.create_entry(entry("none", "agent", &[])).await, InvalidArgument);
    let mut negative = entry("neg", "agent", &["unix:uid:1"]);
    negative.x509_svid_ttl = -1;
    assert_err!(store.create_entry(negative).await, InvalidArgument);
    let mut negative = entry("neg", "agent", &["unix:uid:1"]);
    negative.jwt_svid_ttl = -1;
    assert_err!(store.create_entry(negative).await, InvalidArgument);
    let mut mixed = entry("store", "agent", &["unix:uid:1", "k8s:ns:a"]);
    mixed.store_svid = true;
    assert_err!(store.create_entry(mixed).await, InvalidArgument);
    let mut same_type = entry("store", "agent", &["aws:a:1", "aws:b:2"]);
    same_type.store_svid = true;
    store.create_entry(same_type).await.unwrap();
    let mut malformed = entry("bad", "agent", &["unix:uid:1"]);
    malformed.selectors.push(Selector { kind: "unix".into(), value: String::new() });
    assert_err!(store.create_entry(malformed).await, InvalidArgument);
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 1);
}

pub async fn entry_duplicate_id_is_refused(store: Arc<dyn DataStore>) {
    let first = store.create_entry(entry_with_id("dup", "a", "agent", &["unix:uid:1"])).await.unwrap();
    let message =
        assert_err!(store.create_entry(entry_with_id("dup", "b", "agent", &["unix:uid:2"])).await, AlreadyExists);
    assert!(message.contains("dup"), "{message}");
    assert_eq!(store.fetch_entry("dup").await.unwrap(), Some(first));
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 1);
}

/// Same parent, SPIFFE ID and selector set (in any order) is "similar"; changing any one of the
/// three makes a distinct entry.
pub async fn entry_similar_is_refused(store: Arc<dyn DataStore>) {
    store.create_entry(entry("web", "agent", &["unix:uid:1", "unix:gid:1"])).await.unwrap();
    let mut similar = entry("web", "agent", &["unix:gid:1", "unix:uid:1"]);
    similar.hint = "different hint".into();
    similar.x509_svid_ttl = 10;
    let message = assert_err!(store.create_entry(similar).await, AlreadyExists);
    assert_eq!(message, "similar entry already exists");
    store.create_entry(entry("web", "agent", &["unix:uid:1"])).await.unwrap();
    store.create_entry(entry("web", "agent", &["unix:uid:1", "unix:gid:1", "unix:user:x"])).await.unwrap();
    store.create_entry(entry("web", "other-agent", &["unix:uid:1", "unix:gid:1"])).await.unwrap();
    store.create_entry(entry("web2", "agent", &["unix:uid:1", "unix:gid:1"])).await.unwrap();
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 5);
}

/// An entry may only federate with trust domains that have a bundle; a refused create writes nothing.
pub async fn entry_federating_without_bundle_is_refused(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["known.org"]).await;
    let mut new = entry_with_id("fed", "web", "agent", &["unix:uid:1"]);
    new.federates_with = vec![td("known.org"), td("unknown.org")];
    let message = assert_err!(store.create_entry(new.clone()).await, FailedPrecondition);
    assert!(message.contains("unknown.org"), "{message}");
    assert_eq!(store.fetch_entry("fed").await.unwrap(), None);
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 0);
    create_bundles(&store, &["unknown.org"]).await;
    store.create_entry(new).await.unwrap();
}

pub async fn entry_fetch_missing_is_none(store: Arc<dyn DataStore>) {
    assert_eq!(store.fetch_entry("missing").await.unwrap(), None);
    assert_eq!(store.fetch_entry("").await.unwrap(), None);
}

pub async fn entry_fetch_entries_returns_found_ones(store: Arc<dyn DataStore>) {
    let a = store.create_entry(entry_with_id("a", "a", "agent", &["unix:uid:1"])).await.unwrap();
    let b = store.create_entry(entry_with_id("b", "b", "agent", &["unix:uid:2", "unix:gid:2"])).await.unwrap();
    store.create_entry(entry_with_id("c", "c", "agent", &["unix:uid:3"])).await.unwrap();
    let found = store.fetch_entries(&["b".into(), "missing".into(), "a".into(), "a".into()]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["a"], a);
    assert_eq!(found["b"], b);
    assert!(store.fetch_entries(&[]).await.unwrap().is_empty());
}

pub async fn entry_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["one.org", "two.org"]).await;
    let mut original = entry_with_id("e", "web", "agent", &["unix:uid:1"]);
    original.federates_with = vec![td("one.org")];
    original.dns_names = vec!["a.example.org".into()];
    original.hint = "old".into();
    let original = store.create_entry(original).await.unwrap();

    // Fields outside the mask are ignored even when they differ.
    let mut change = entry_with_id("e", "other", "other-agent", &["unix:uid:9", "unix:gid:9"]);
    change.hint = "new".into();
    change.dns_names = vec!["z.example.org".into(), "y.example.org".into()];
    change.federates_with = vec![td("two.org"), td("one.org")];
    change.admin = true;
    change.x509_svid_ttl = 77;
    let mask = EntryMask { selectors: true, hint: true, dns_names: true, federates_with: true, ..EntryMask::default() };
    let updated = store.update_entry(change.clone(), &mask).await.unwrap();
    let expected = RegistrationEntry {
        selectors: sels(&["unix:gid:9", "unix:uid:9"]),
        hint: "new".into(),
        dns_names: vec!["z.example.org".into(), "y.example.org".into()],
        federates_with: vec![td("one.org"), td("two.org")],
        revision_number: 1,
        ..original.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(store.fetch_entry("e").await.unwrap(), Some(expected.clone()));

    // The full mask takes everything but the ID, revision and creation time.
    let mut all = change;
    all.revision_number = 100;
    all.created_at = 1;
    all.expires_at = 4_000_000_000;
    all.jwt_svid_ttl = 5;
    all.store_svid = true;
    all.disable_x509_svid_prefetch = true;
    all.jwt_svid_include_jti = true;
    all.downstream = true;
    all.federates_with = vec![];
    let updated = store.update_entry(all.clone(), &EntryMask::ALL).await.unwrap();
    let mut expected_all = all;
    expected_all.revision_number = 2;
    expected_all.created_at = original.created_at;
    expected_all.normalize();
    assert_eq!(updated, expected_all);
    assert_eq!(store.fetch_entry("e").await.unwrap(), Some(expected_all));
}

pub async fn entry_update_bumps_revision_every_time(store: Arc<dyn DataStore>) {
    let created = store.create_entry(entry("web", "agent", &["unix:uid:1"])).await.unwrap();
    for revision in 1..=3 {
        let updated = store.update_entry(created.clone(), &EntryMask::default()).await.unwrap();
        assert_eq!(updated.revision_number, revision);
    }
    assert_eq!(store.fetch_entry(&created.id).await.unwrap().unwrap().revision_number, 3);
}

pub async fn entry_update_missing_is_not_found(store: Arc<dyn DataStore>) {
    let message =
        assert_err!(store.update_entry(entry_with_id("nope", "w", "agent", &["u:1"]), &EntryMask::ALL).await, NotFound);
    assert!(message.contains("nope"), "{message}");
    assert_err!(
        store.update_entry(entry_with_id("bad id", "w", "agent", &["u:1"]), &EntryMask::ALL).await,
        InvalidArgument
    );
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 0);
}

/// An update refused for any reason leaves the stored entry exactly as it was: row, selectors, DNS
/// names, federated trust domains and revision.
pub async fn entry_update_refused_leaves_entry_intact(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["fed.org"]).await;
    store.create_entry(entry_with_id("a", "web", "agent", &["unix:uid:1"])).await.unwrap();
    let mut b = entry_with_id("b", "web", "agent", &["unix:uid:2"]);
    b.dns_names = vec!["b.example.org".into()];
    b.federates_with = vec![td("fed.org")];
    let b = store.create_entry(b).await.unwrap();

    // Would become similar to "a".
    let mut similar = b.clone();
    similar.selectors = sels(&["unix:uid:1"]);
    similar.dns_names = vec!["changed.example.org".into()];
    similar.hint = "changed".into();
    assert_eq!(
        assert_err!(store.update_entry(similar, &EntryMask::ALL).await, AlreadyExists),
        "similar entry already exists"
    );
    // Would federate with a trust domain without a bundle.
    let mut unknown = b.clone();
    unknown.federates_with = vec![td("unknown.org")];
    unknown.selectors = sels(&["unix:uid:3"]);
    assert_err!(store.update_entry(unknown, &EntryMask::ALL).await, FailedPrecondition);
    // Would have no selectors.
    let mut empty = b.clone();
    empty.selectors.clear();
    assert_err!(
        store.update_entry(empty, &EntryMask { selectors: true, ..EntryMask::default() }).await,
        InvalidArgument
    );

    assert_eq!(store.fetch_entry("b").await.unwrap(), Some(b));
}

pub async fn entry_delete_returns_entry_and_frees_it(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["fed.org"]).await;
    let mut new = entry_with_id("gone", "web", "agent", &["unix:uid:1", "unix:gid:1"]);
    new.dns_names = vec!["web.example.org".into()];
    new.federates_with = vec![td("fed.org")];
    let created = store.create_entry(new.clone()).await.unwrap();
    assert_eq!(store.delete_entry("gone").await.unwrap(), created);
    assert_eq!(store.fetch_entry("gone").await.unwrap(), None);
    assert_err!(store.delete_entry("gone").await, NotFound);
    // The ID and the (parent, SPIFFE ID, selectors) triple are free again.
    let again = store.create_entry(new).await.unwrap();
    assert_eq!(again.selectors, created.selectors);
    assert_eq!(again.federates_with, vec![td("fed.org")]);
}

/// Entries with `expires_at` before the cutoff go; entries that never expire stay.
pub async fn entry_prune_removes_only_expired(store: Arc<dyn DataStore>) {
    for (name, expires_at) in [("never", 0), ("early", 100), ("mid", 200), ("late", 300)] {
        let mut e = entry_with_id(name, name, "agent", &["unix:uid:1"]);
        e.expires_at = expires_at;
        store.create_entry(e).await.unwrap();
    }
    assert_eq!(store.prune_entries(100).await.unwrap(), 0);
    assert_eq!(store.prune_entries(101).await.unwrap(), 1);
    assert_eq!(store.prune_entries(250).await.unwrap(), 1);
    assert_eq!(store.prune_entries(250).await.unwrap(), 0);
    assert_eq!(ids_of(&list_all(&store, &EntryFilter::default()).await), ["late", "never"]);
    assert_eq!(store.prune_entries(i64::MAX).await.unwrap(), 1);
    assert_eq!(ids_of(&list_all(&store, &EntryFilter::default()).await), ["never"]);
}
