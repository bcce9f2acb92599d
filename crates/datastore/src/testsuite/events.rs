//! Change events: one per entry or node write, in order, none for refused writes.

use std::sync::Arc;

use super::*;
use crate::{AttestedNode, DataStore, DeleteMode, EntryMask, JoinToken, NodeMask};

pub async fn entry_events_follow_every_write(store: Arc<dyn DataStore>) {
    assert_eq!(store.latest_entry_event_id().await.unwrap(), 0);
    assert!(store.list_entry_events(0, 0).await.unwrap().is_empty());
    let a = store.create_entry(entry_with_id("a", "a", "agent", &["unix:uid:1"])).await.unwrap();
    store.create_entry(entry_with_id("b", "b", "agent", &["unix:uid:1"])).await.unwrap();
    let mut c = entry_with_id("c", "c", "agent", &["unix:uid:1"]);
    c.expires_at = 10;
    store.create_entry(c).await.unwrap();
    store.update_entry(a, &EntryMask::default()).await.unwrap();
    store.delete_entry("b").await.unwrap();
    store.prune_entries(100).await.unwrap();
    // Join tokens, bundles and nodes are not entries.
    store.create_join_token(JoinToken { token: "t".into(), expires_at: 1 }).await.unwrap();
    create_bundles(&store, &["fed.org"]).await;

    let events = store.list_entry_events(0, 0).await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.entry_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "a", "b", "c"]);
    assert!(events.windows(2).all(|w| w[0].event_id < w[1].event_id), "{events:?}");
    assert_eq!(store.latest_entry_event_id().await.unwrap(), events[5].event_id);
    assert_eq!(store.list_entry_events(events[2].event_id, 0).await.unwrap(), events[3..]);
    assert_eq!(store.list_entry_events(events[2].event_id, 2).await.unwrap(), events[3..5]);
    assert_eq!(store.list_entry_events(0, 1).await.unwrap(), events[..1]);
    assert!(store.list_entry_events(events[5].event_id, 0).await.unwrap().is_empty());
    assert_eq!(store.latest_node_event_id().await.unwrap(), 0);
}

/// A write refused for any reason appends no event.
pub async fn failed_writes_leave_no_events(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["fed.org"]).await;
    let mut a = entry_with_id("a", "a", "agent", &["unix:uid:1"]);
    a.federates_with = vec![td("fed.org")];
    let a = store.create_entry(a).await.unwrap();
    store.create_entry(entry_with_id("b", "b", "agent", &["unix:uid:1"])).await.unwrap();
    store.create_attested_node(AttestedNode::new(id("spiffe://example.org/agent"), "join_token")).await.unwrap();
    let (entry_events, node_events) =
        (store.latest_entry_event_id().await.unwrap(), store.latest_node_event_id().await.unwrap());

    assert_err!(store.create_entry(entry_with_id("a", "x", "agent", &["unix:uid:9"])).await, AlreadyExists);
    assert_err!(store.create_entry(entry_with_id("z", "a", "agent", &["unix:uid:1"])).await, AlreadyExists);
    let mut unknown = entry_with_id("u", "u", "agent", &["unix:uid:1"]);
    unknown.federates_with = vec![td("unknown.org")];
    assert_err!(store.create_entry(unknown).await, FailedPrecondition);
    assert_err!(store.update_entry(entry_with_id("nope", "n", "agent", &["u:1"]), &EntryMask::ALL).await, NotFound);
    let mut similar = a.clone();
    similar.id = "b".into();
    assert_err!(store.update_entry(similar, &EntryMask::ALL).await, AlreadyExists);
    assert_err!(store.delete_entry("nope").await, NotFound);
    assert_err!(store.delete_bundle(&td("fed.org"), DeleteMode::Restrict).await, FailedPrecondition);
    assert_err!(
        store.create_attested_node(AttestedNode::new(id("spiffe://example.org/agent"), "x")).await,
        AlreadyExists
    );
    let missing = AttestedNode::new(id("spiffe://example.org/missing"), "x");
    assert_err!(store.update_attested_node(missing, &NodeMask::ALL).await, NotFound);
    assert_err!(store.delete_attested_node(&id("spiffe://example.org/missing")).await, NotFound);

    assert_eq!(store.latest_entry_event_id().await.unwrap(), entry_events);
    assert_eq!(store.latest_node_event_id().await.unwrap(), node_events);
}

pub async fn node_events_follow_every_write(store: Arc<dyn DataStore>) {
    let agent = id("spiffe://example.org/spire/agent/x");
    let other = id("spiffe://example.org/spire/agent/y");
    store.create_attested_node(AttestedNode::new(agent.clone(), "join_token")).await.unwrap();
    let mut update = AttestedNode::new(agent.clone(), "join_token");
    update.cert_serial_number = "42".into();
    store.update_attested_node(update, &NodeMask::ALL).await.unwrap();
    store.set_node_selectors(&other, sels(&["a:1"])).await.unwrap();
    store.delete_attested_node(&agent).await.unwrap();
    // Entries are not nodes.
    store.create_entry(entry("web", "agent", &["unix:uid:1"])).await.unwrap();

    let events = store.list_node_events(0, 0).await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.spiffe_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            agent.to_string().as_str(),
            agent.to_string().as_str(),
            other.to_string().as_str(),
            agent.to_string().as_str()
        ]
    );
    assert!(events.windows(2).all(|w| w[0].event_id < w[1].event_id), "{events:?}");
    assert_eq!(store.latest_node_event_id().await.unwrap(), events[3].event_id);
    assert_eq!(store.list_node_events(events[1].event_id, 1).await.unwrap(), events[2..3]);
}

pub async fn events_prune_and_ids_are_never_reused(store: Arc<dyn DataStore>) {
    store.create_entry(entry_with_id("a", "a", "agent", &["unix:uid:1"])).await.unwrap();
    store.create_entry(entry_with_id("b", "b", "agent", &["unix:uid:1"])).await.unwrap();
    store.set_node_selectors(&id("spiffe://example.org/agent"), sels(&["a:1"])).await.unwrap();
    let last_entry_event = store.latest_entry_event_id().await.unwrap();
    let last_node_event = store.latest_node_event_id().await.unwrap();

    assert_eq!(store.prune_events(0).await.unwrap(), 0);
    assert_eq!(store.list_entry_events(0, 0).await.unwrap().len(), 2);
    assert_eq!(store.prune_events(now() + 60).await.unwrap(), 3);
    assert!(store.list_entry_events(0, 0).await.unwrap().is_empty());
    assert!(store.list_node_events(0, 0).await.unwrap().is_empty());

    store.delete_entry("a").await.unwrap();
    store.set_node_selectors(&id("spiffe://example.org/agent"), vec![]).await.unwrap();
    let entry_events = store.list_entry_events(0, 0).await.unwrap();
    let node_events = store.list_node_events(0, 0).await.unwrap();
    assert_eq!(entry_events.len(), 1);
    assert!(entry_events[0].event_id > last_entry_event, "event ID reused after pruning");
    assert!(node_events[0].event_id > last_node_event, "event ID reused after pruning");
}
