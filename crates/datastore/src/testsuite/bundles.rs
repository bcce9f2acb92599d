//! Bundles: CRUD, masks, append, delete modes, pruning.

use std::sync::Arc;

use super::*;
use crate::{BundleMask, DataStore, DeleteMode, EntryMask, X509Authority};

fn bundle(name: &str, x509: &[Vec<u8>], jwt: &[JwtKey], sequence_number: u64) -> StoredBundle {
    StoredBundle {
        trust_domain: td(name),
        x509_authorities: x509.iter().map(|der| X509Authority { der: der.clone(), tainted: false }).collect(),
        jwt_authorities: jwt.to_vec(),
        refresh_hint: 0,
        sequence_number,
    }
}

pub async fn bundle_create_fetch_and_duplicate(store: Arc<dyn DataStore>) {
    let mut full = bundle("example.org", &[vec![1, 2, 3], vec![4, 5]], &[jwt_key("k1", 100)], 3);
    full.x509_authorities[1].tainted = true;
    full.jwt_authorities[0].tainted = true;
    full.refresh_hint = 300;
    assert_eq!(store.create_bundle(full.clone()).await.unwrap(), full);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(full.clone()));
    assert_eq!(store.fetch_bundle(&td("other.org")).await.unwrap(), None);
    let message = assert_err!(store.create_bundle(bundle("example.org", &[], &[], 0)).await, AlreadyExists);
    assert!(message.contains("example.org"), "{message}");
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(full));
}

pub async fn bundle_list_count_and_pagination(store: Arc<dyn DataStore>) {
    assert_eq!(store.count_bundles().await.unwrap(), 0);
    assert_eq!(store.list_bundles(Some(&Pagination::first(2))).await.unwrap(), (vec![], String::new()));
    let names = ["a.org", "b.org", "c.org", "d.org", "e.org"];
    for name in names.iter().rev() {
        store.create_bundle(bundle(name, &[name.as_bytes().to_vec()], &[], 1)).await.unwrap();
    }
    assert_eq!(store.count_bundles().await.unwrap(), 5);
    let (all, token) = store.list_bundles(None).await.unwrap();
    assert_eq!(token, "");
    assert_eq!(all.iter().map(|b| b.trust_domain.to_string()).collect::<Vec<_>>(), names);
    assert_eq!(all[2], bundle("c.org", &[b"c.org".to_vec()], &[], 1));
    for (page_size, pages) in [(1, 5), (2, 3), (5, 1), (9, 1)] {
        let mut pagination = Pagination::first(page_size);
        let mut seen = Vec::new();
        let mut walked = 0;
        loop {
            let (bundles, token) = store.list_bundles(Some(&pagination)).await.unwrap();
            walked += 1;
            seen.extend(bundles.into_iter().map(|b| b.trust_domain.to_string()));
            if token.is_empty() {
                break;
            }
            pagination = pagination.next(token);
        }
        assert_eq!((seen.as_slice(), walked), (names.map(String::from).as_slice(), pages), "page size {page_size}");
    }
    assert_err!(store.list_bundles(Some(&Pagination::first(0))).await, InvalidArgument);
}

pub async fn bundle_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    let original = bundle("example.org", &[vec![1]], &[jwt_key("k1", 100)], 1);
    store.create_bundle(original.clone()).await.unwrap();
    let mut change = bundle("example.org", &[vec![2]], &[jwt_key("k2", 200)], 7);
    change.refresh_hint = 60;

    let updated =
        store.update_bundle(change.clone(), &BundleMask { refresh_hint: true, ..BundleMask::default() }).await.unwrap();
    let expected = StoredBundle { refresh_hint: 60, ..original.clone() };
    assert_eq!(updated, expected);
    let updated = store
        .update_bundle(change.clone(), &BundleMask { x509_authorities: true, ..BundleMask::default() })
        .await
        .unwrap();
    let expected = StoredBundle { x509_authorities: change.x509_authorities.clone(), ..expected };
    assert_eq!(updated, expected);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(expected));
    assert_eq!(store.update_bundle(change.clone(), &BundleMask::ALL).await.unwrap(), change);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(change));
    assert_err!(store.update_bundle(bundle("missing.org", &[], &[], 0), &BundleMask::ALL).await, NotFound);
    assert_eq!(store.fetch_bundle(&td("missing.org")).await.unwrap(), None);
}

pub async fn bundle_set_creates_or_replaces(store: Arc<dyn DataStore>) {
    let first = bundle("example.org", &[vec![1]], &[jwt_key("k1", 1)], 1);
    assert_eq!(store.set_bundle(first.clone()).await.unwrap(), first);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(first));
    let second = bundle("example.org", &[vec![2]], &[], 9);
    assert_eq!(store.set_bundle(second.clone()).await.unwrap(), second);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(second));
    assert_eq!(store.count_bundles().await.unwrap(), 1);
}

pub async fn bundle_append_merges_without_duplicates(store: Arc<dyn DataStore>) {
    // Absent: created as given.
    let first = bundle("example.org", &[vec![1]], &[jwt_key("k1", 10)], 4);
    assert_eq!(store.append_bundle(first.clone()).await.unwrap(), first);
    // Nothing new: unchanged, sequence number kept, stored taint flags kept.
    let mut tainted = first.clone();
    tainted.x509_authorities[0].tainted = true;
    store.set_bundle(tainted.clone()).await.unwrap();
    assert_eq!(store.append_bundle(first.clone()).await.unwrap(), tainted);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(tainted.clone()));
    // New authorities are added once, bumping the sequence number once.
    let more = bundle("example.org", &[vec![1], vec![2]], &[jwt_key("k1", 10), jwt_key("k2", 20)], 0);
    let merged = store.append_bundle(more.clone()).await.unwrap();
    let expected = StoredBundle {
        x509_authorities: vec![tainted.x509_authorities[0].clone(), X509Authority { der: vec![2], tainted: false }],
        jwt_authorities: vec![jwt_key("k1", 10), jwt_key("k2", 20)],
        sequence_number: 5,
        ..tainted
    };
    assert_eq!(merged, expected);
    assert_eq!(store.append_bundle(more).await.unwrap(), expected);
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(expected));
}

pub async fn bundle_delete_restrict_refuses_and_changes_nothing(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["fed.org", "lonely.org"]).await;
    let mut e = entry_with_id("e", "web", "agent", &["unix:uid:1"]);
    e.federates_with = vec![td("fed.org")];
    let e = store.create_entry(e).await.unwrap();
    let message = assert_err!(store.delete_bundle(&td("fed.org"), DeleteMode::Restrict).await, FailedPrecondition);
    assert!(message.contains("1 registration entries"), "{message}");
    assert!(store.fetch_bundle(&td("fed.org")).await.unwrap().is_some());
    assert_eq!(store.fetch_entry("e").await.unwrap(), Some(e));
    // Nothing federates with this one: RESTRICT deletes it.
    store.delete_bundle(&td("lonely.org"), DeleteMode::Restrict).await.unwrap();
    assert_eq!(store.fetch_bundle(&td("lonely.org")).await.unwrap(), None);
    assert_err!(store.delete_bundle(&td("lonely.org"), DeleteMode::Delete).await, NotFound);
}

pub async fn bundle_delete_modes_handle_federated_entries(store: Arc<dyn DataStore>) {
    let setup = async || {
        create_bundles(&store, &["fed.org", "other.org"]).await;
        let mut one = entry_with_id("one", "one", "agent", &["unix:uid:1"]);
        one.federates_with = vec![td("fed.org")];
        let mut both = entry_with_id("both", "both", "agent", &["unix:uid:1"]);
        both.federates_with = vec![td("fed.org"), td("other.org")];
        let plain = entry_with_id("plain", "plain", "agent", &["unix:uid:1"]);
        for e in [one, both, plain] {
            store.create_entry(e).await.unwrap();
        }
        store.latest_entry_event_id().await.unwrap()
    };
    let events_since = async |after: i64| -> Vec<String> {
        store.list_entry_events(after, 0).await.unwrap().into_iter().map(|e| e.entry_id).collect()
    };

    // DISSOCIATE: the entries stay, without the trust domain, at a new revision.
    let mark = setup().await;
    store.delete_bundle(&td("fed.org"), DeleteMode::Dissociate).await.unwrap();
    assert_eq!(store.fetch_bundle(&td("fed.org")).await.unwrap(), None);
    let one = store.fetch_entry("one").await.unwrap().unwrap();
    let both = store.fetch_entry("both").await.unwrap().unwrap();
    assert_eq!((one.federates_with, one.revision_number), (vec![], 1));
    assert_eq!((both.federates_with, both.revision_number), (vec![td("other.org")], 1));
    assert_eq!(store.fetch_entry("plain").await.unwrap().unwrap().revision_number, 0);
    assert_eq!(events_since(mark).await, ["both", "one"]);

    // Clean up, then DELETE: the federating entries go with the bundle.
    for id in ["one", "both", "plain"] {
        store.delete_entry(id).await.unwrap();
    }
    store.delete_bundle(&td("other.org"), DeleteMode::Restrict).await.unwrap();
    let mark = setup().await;
    store.delete_bundle(&td("fed.org"), DeleteMode::Delete).await.unwrap();
    assert_eq!(store.fetch_bundle(&td("fed.org")).await.unwrap(), None);
    assert_eq!(ids_of(&list_all(&store, &EntryFilter::default()).await), ["plain"]);
    assert_eq!(events_since(mark).await, ["both", "one"]);
    // The other bundle lost its federating entry and can now go in RESTRICT mode.
    store.delete_bundle(&td("other.org"), DeleteMode::Restrict).await.unwrap();
    // An entry may federate with a re-created bundle again.
    create_bundles(&store, &["fed.org"]).await;
    let mut plain = store.fetch_entry("plain").await.unwrap().unwrap();
    plain.federates_with = vec![td("fed.org")];
    store.update_entry(plain, &EntryMask { federates_with: true, ..EntryMask::default() }).await.unwrap();
}

pub async fn bundle_prune_drops_expired_authorities(store: Arc<dyn DataStore>) {
    let base = 1_700_000_000;
    let (old, new) = (ca_cert("example.org", base + 1000), ca_cert("example.org", base + 2000));
    let original = bundle(
        "example.org",
        &[old, new.clone()],
        &[jwt_key("old", base + 1000), jwt_key("new", base + 2000), jwt_key("forever", 0)],
        5,
    );
    store.create_bundle(original.clone()).await.unwrap();
    // Expiring exactly at the cutoff is not "before" it.
    assert!(!store.prune_bundle(&td("example.org"), base + 1000).await.unwrap());
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(original));
    assert!(store.prune_bundle(&td("example.org"), base + 1500).await.unwrap());
    let pruned = store.fetch_bundle(&td("example.org")).await.unwrap().unwrap();
    assert_eq!(pruned, bundle("example.org", &[new], &[jwt_key("new", base + 2000), jwt_key("forever", 0)], 6));
    assert!(!store.prune_bundle(&td("example.org"), base + 1500).await.unwrap());
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap().unwrap().sequence_number, 6);
    assert_err!(store.prune_bundle(&td("missing.org"), base).await, NotFound);

    // An authority that is not a certificate cannot be judged: refuse rather than guess.
    store.create_bundle(bundle("garbage.org", &[vec![1, 2, 3]], &[], 0)).await.unwrap();
    assert_err!(store.prune_bundle(&td("garbage.org"), base).await, Internal);

    // A bundle without X.509 authorities may lose its JWT keys.
    store.create_bundle(bundle("jwt.org", &[], &[jwt_key("old", 10)], 0)).await.unwrap();
    assert!(store.prune_bundle(&td("jwt.org"), 20).await.unwrap());
    assert!(store.fetch_bundle(&td("jwt.org")).await.unwrap().unwrap().jwt_authorities.is_empty());
}

/// Pruning never leaves a bundle without X.509 authorities; it changes nothing instead.
pub async fn bundle_prune_keeps_the_last_x509_authority(store: Arc<dyn DataStore>) {
    let base = 1_700_000_000;
    let original = bundle(
        "example.org",
        &[ca_cert("example.org", base + 1000), ca_cert("example.org", base + 2000)],
        &[jwt_key("old", base)],
        1,
    );
    store.create_bundle(original.clone()).await.unwrap();
    let message = assert_err!(store.prune_bundle(&td("example.org"), base + 3000).await, FailedPrecondition);
    assert!(message.contains("example.org"), "{message}");
    assert_eq!(store.fetch_bundle(&td("example.org")).await.unwrap(), Some(original));
}
