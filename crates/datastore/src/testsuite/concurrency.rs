//! Concurrent writers: nothing acknowledged is lost, nothing refused is half-written, single-use
//! things are used once.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::{DataStore, DataStoreError, EntryMask, JoinToken};

const TASKS: usize = 8;

/// Of 16 tasks deleting one join token at once, exactly one learns it existed.
pub async fn concurrent_join_token_deletes_succeed_once(store: Arc<dyn DataStore>) {
    for round in 0..4 {
        let token = format!("token-{round}");
        store.create_join_token(JoinToken { token: token.clone(), expires_at: 1 }).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (store, token, barrier) = (store.clone(), token.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.delete_join_token(&token).await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

/// Eight tasks create, update and delete their own entries at once; the store ends in exactly the
/// state their acknowledged writes describe, with one event per write.
pub async fn concurrent_entry_writes_end_in_acknowledged_state(store: Arc<dyn DataStore>) {
    let start_event = store.latest_entry_event_id().await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut expected = BTreeMap::new();
                let mut writes = 0;
                for i in 0..6 {
                    let id = format!("t{t}-e{i}");
                    let e =
                        entry_with_id(&id, &format!("t{t}/e{i}"), "agent", &[&format!("task:{t}"), &format!("n:{i}")]);
                    let created = store.create_entry(e).await.unwrap();
                    expected.insert(id, (created.revision_number, created.hint));
                    writes += 1;
                }
                for i in [0, 2, 4] {
                    let id = format!("t{t}-e{i}");
                    for round in 0..2 {
                        let mut e = store.fetch_entry(&id).await.unwrap().unwrap();
                        e.hint = format!("t{t}-r{round}");
                        let updated =
                            store.update_entry(e, &EntryMask { hint: true, ..EntryMask::default() }).await.unwrap();
                        expected.insert(id.clone(), (updated.revision_number, updated.hint));
                        writes += 1;
                    }
                }
                for i in [1, 5] {
                    let id = format!("t{t}-e{i}");
                    store.delete_entry(&id).await.unwrap();
                    expected.remove(&id);
                    writes += 1;
                }
                (expected, writes)
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    let mut writes = 0;
    for task in tasks {
        let (mine, count) = task.await.unwrap();
        expected.extend(mine);
        writes += count;
    }

    let stored: BTreeMap<String, (i64, String)> = list_all(&store, &EntryFilter::default())
        .await
        .into_iter()
        .map(|e| (e.id, (e.revision_number, e.hint)))
        .collect();
    assert_eq!(stored, expected);
    assert_eq!(stored.len(), TASKS * 4);
    assert!(stored.values().filter(|(revision, _)| *revision == 2).count() == TASKS * 3);
    assert_eq!(store.list_entry_events(start_event, 0).await.unwrap().len(), writes);
}

/// Read-modify-write updates of one entry from many tasks serialize: every bump counts.
pub async fn concurrent_updates_of_one_entry_lose_nothing(store: Arc<dyn DataStore>) {
    let shared = store.create_entry(entry_with_id("shared", "shared", "agent", &["unix:uid:1"])).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier, shared) = (store.clone(), barrier.clone(), shared.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for round in 0..5 {
                    let mut e = shared.clone();
                    e.hint = format!("{t}-{round}");
                    store.update_entry(e, &EntryMask { hint: true, ..EntryMask::default() }).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.fetch_entry("shared").await.unwrap().unwrap().revision_number, (TASKS * 5) as i64);
}

/// Tasks racing to create the same (parent, SPIFFE ID, selectors) under different IDs: one wins, the
/// rest get AlreadyExists, and exactly one entry exists.
pub async fn concurrent_similar_creates_admit_one(store: Arc<dyn DataStore>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .create_entry(entry_with_id(&format!("racer-{t}"), "web", "agent", &["unix:uid:1", "unix:gid:1"]))
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(entry) => created.push(entry.id),
            Err(DataStoreError::AlreadyExists(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(ids_of(&list_all(&store, &EntryFilter::default()).await), created);
}

/// Concurrent appends of different authorities to one bundle all land, each bumping the sequence
/// number once.
pub async fn concurrent_bundle_appends_lose_nothing(store: Arc<dyn DataStore>) {
    let base = StoredBundle { jwt_authorities: vec![jwt_key("shared", 0)], ..StoredBundle::new(td("example.org")) };
    store.create_bundle(base.clone()).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier, mut bundle) = (store.clone(), barrier.clone(), base.clone());
            bundle.jwt_authorities.push(jwt_key(&format!("task-{t}"), 0));
            tokio::spawn(async move {
                barrier.wait().await;
                store.append_bundle(bundle).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stored = store.fetch_bundle(&td("example.org")).await.unwrap().unwrap();
    assert_eq!(stored.jwt_authorities.len(), TASKS + 1);
    assert_eq!(stored.sequence_number, TASKS as u64);
}
