//! Attested nodes: CRUD, masks, selectors, filters and pagination.

use std::sync::Arc;

use spire_identity::MatchMode;

use super::*;
use crate::{AttestedNode, DataStore, NodeFilter, NodeMask};

fn agent(name: &str) -> SpiffeId {
    id(&format!("spiffe://example.org/spire/agent/{name}"))
}

fn node(name: &str, kind: &str, serial: &str, not_after: i64, can_reattest: bool, selectors: &[&str]) -> AttestedNode {
    AttestedNode {
        cert_serial_number: serial.into(),
        cert_not_after: not_after,
        can_reattest,
        selectors: sels(selectors),
        ..AttestedNode::new(agent(name), kind)
    }
}

fn names(nodes: &[AttestedNode]) -> Vec<String> {
    nodes.iter().map(|n| n.spiffe_id.path().rsplit('/').next().unwrap().to_owned()).collect()
}

pub async fn node_create_and_fetch_round_trip(store: Arc<dyn DataStore>) {
    let mut full = node("n1", "x509pop", "1234", 1_000, true, &["x509pop:subject:cn:a", "x509pop:ca:fingerprint:1"]);
    full.new_cert_serial_number = "5678".into();
    full.new_cert_not_after = 2_000;
    full.agent_version = "1.2.3".into();
    full.selectors.push(sel("x509pop:ca:fingerprint:1"));
    let created = store.create_attested_node(full.clone()).await.unwrap();
    full.selectors = sels(&["x509pop:ca:fingerprint:1", "x509pop:subject:cn:a"]);
    assert_eq!(created, full);
    assert_eq!(store.fetch_attested_node(&agent("n1")).await.unwrap(), Some(full.clone()));
    assert_eq!(store.get_node_selectors(&agent("n1")).await.unwrap(), full.selectors);
    assert!(!full.is_banned());
    assert_eq!(store.fetch_attested_node(&agent("missing")).await.unwrap(), None);
    let banned = store.create_attested_node(node("n2", "join_token", "", 0, false, &[])).await.unwrap();
    assert!(banned.is_banned());
    assert_eq!(store.count_attested_nodes(&NodeFilter::default()).await.unwrap(), 2);
}

pub async fn node_duplicate_is_refused(store: Arc<dyn DataStore>) {
    let first = store.create_attested_node(node("n1", "join_token", "1", 10, false, &["a:1"])).await.unwrap();
    let message =
        assert_err!(store.create_attested_node(node("n1", "x509pop", "2", 20, true, &["b:2"])).await, AlreadyExists);
    assert!(message.contains("spiffe://example.org/spire/agent/n1"), "{message}");
    assert_eq!(store.fetch_attested_node(&agent("n1")).await.unwrap(), Some(first));
}

pub async fn node_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    let original = store.create_attested_node(node("n1", "join_token", "1", 10, false, &["a:1"])).await.unwrap();
    let mut change = node("n1", "other-type", "2", 20, true, &["b:2", "c:3"]);
    change.new_cert_serial_number = "3".into();
    change.new_cert_not_after = 30;
    change.agent_version = "9.9".into();

    let mask = NodeMask { new_cert_serial_number: true, new_cert_not_after: true, ..NodeMask::default() };
    let updated = store.update_attested_node(change.clone(), &mask).await.unwrap();
    let expected = AttestedNode { new_cert_serial_number: "3".into(), new_cert_not_after: 30, ..original.clone() };
    assert_eq!(updated, expected);
    assert_eq!(store.fetch_attested_node(&agent("n1")).await.unwrap(), Some(expected));

    let updated = store.update_attested_node(change.clone(), &NodeMask::ALL).await.unwrap();
    // The attestation type is not updatable.
    let expected = AttestedNode { attestation_data_type: "join_token".into(), ..change.clone() };
    assert_eq!(updated, expected);
    assert_eq!(store.fetch_attested_node(&agent("n1")).await.unwrap(), Some(expected.clone()));
    assert_eq!(store.get_node_selectors(&agent("n1")).await.unwrap(), sels(&["b:2", "c:3"]));

    // Banning is clearing the serial number.
    let ban = AttestedNode::new(agent("n1"), "");
    let banned = store
        .update_attested_node(
            ban,
            &NodeMask { cert_serial_number: true, new_cert_serial_number: true, ..NodeMask::default() },
        )
        .await
        .unwrap();
    assert!(banned.is_banned());
    assert_eq!(banned.cert_not_after, 20);

    assert_err!(store.update_attested_node(node("missing", "x", "1", 1, false, &[]), &NodeMask::ALL).await, NotFound);
}

pub async fn node_delete_returns_node_and_selectors(store: Arc<dyn DataStore>) {
    let created = store.create_attested_node(node("n1", "join_token", "1", 10, false, &["a:1", "b:2"])).await.unwrap();
    assert_eq!(store.delete_attested_node(&agent("n1")).await.unwrap(), created);
    assert_eq!(store.fetch_attested_node(&agent("n1")).await.unwrap(), None);
    assert!(store.get_node_selectors(&agent("n1")).await.unwrap().is_empty());
    let message = assert_err!(store.delete_attested_node(&agent("n1")).await, NotFound);
    assert!(message.contains("n1"), "{message}");
    // The ID may attest again.
    store.create_attested_node(node("n1", "join_token", "2", 20, false, &[])).await.unwrap();
}

pub async fn node_selectors_set_get_and_list(store: Arc<dyn DataStore>) {
    // Selectors may be set for a node that is not (yet) attested.
    store.set_node_selectors(&agent("early"), sels(&["b:2", "a:1", "b:2"])).await.unwrap();
    assert_eq!(store.get_node_selectors(&agent("early")).await.unwrap(), sels(&["a:1", "b:2"]));
    assert!(store.get_node_selectors(&agent("nobody")).await.unwrap().is_empty());
    store.set_node_selectors(&agent("early"), sels(&["c:3"])).await.unwrap();
    assert_eq!(store.get_node_selectors(&agent("early")).await.unwrap(), sels(&["c:3"]));
    store.set_node_selectors(&agent("early"), vec![]).await.unwrap();
    assert!(store.get_node_selectors(&agent("early")).await.unwrap().is_empty());
    let bad = vec![Selector { kind: String::new(), value: "x".into() }];
    assert_err!(store.set_node_selectors(&agent("early"), bad).await, InvalidArgument);

    store.create_attested_node(node("valid", "join_token", "1", 1_000, false, &["a:1"])).await.unwrap();
    store.create_attested_node(node("expired", "join_token", "2", 100, false, &["b:2", "a:1"])).await.unwrap();
    store.set_node_selectors(&agent("unattested"), sels(&["c:3"])).await.unwrap();
    // A node's selectors may also be replaced after attestation.
    store.set_node_selectors(&agent("valid"), sels(&["a:1", "d:4"])).await.unwrap();
    assert_eq!(store.fetch_attested_node(&agent("valid")).await.unwrap().unwrap().selectors, sels(&["a:1", "d:4"]));

    let all = store.list_node_selectors(None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[&agent("expired")], sels(&["a:1", "b:2"]));
    assert_eq!(all[&agent("unattested")], sels(&["c:3"]));
    let valid = store.list_node_selectors(Some(500)).await.unwrap();
    assert_eq!(valid.keys().cloned().collect::<Vec<_>>(), [agent("valid")]);
    assert_eq!(valid[&agent("valid")], sels(&["a:1", "d:4"]));
}

pub async fn nodes_filter_all_fields_and_modes(store: Arc<dyn DataStore>) {
    let fixtures = [
        node("n1", "join_token", "1", 100, false, &["a:1"]),
        node("n2", "x509pop", "", 200, true, &["a:1", "b:2"]),
        node("n3", "x509pop", "3", 300, true, &["b:2"]),
        node("n4", "join_token", "4", 400, false, &[]),
        node("n5", "x509pop", "5", 500, false, &["a:1", "b:2", "c:3"]),
    ];
    for n in &fixtures {
        store.create_attested_node(n.clone()).await.unwrap();
    }
    let check = async |filter: NodeFilter, expected: &[&str]| {
        let (nodes, token) = store.list_attested_nodes(&filter, None).await.unwrap();
        assert_eq!(names(&nodes), expected, "{filter:?}");
        assert_eq!(token, "");
        assert_eq!(store.count_attested_nodes(&filter).await.unwrap(), expected.len() as u64, "{filter:?}");
    };
    check(NodeFilter::default(), &["n1", "n2", "n3", "n4", "n5"]).await;
    check(NodeFilter { by_attestation_type: Some("join_token".into()), ..Default::default() }, &["n1", "n4"]).await;
    check(NodeFilter { by_attestation_type: Some("aws_iid".into()), ..Default::default() }, &[]).await;
    check(NodeFilter { by_banned: Some(true), ..Default::default() }, &["n2"]).await;
    check(NodeFilter { by_banned: Some(false), ..Default::default() }, &["n1", "n3", "n4", "n5"]).await;
    check(NodeFilter { by_expires_before: Some(300), ..Default::default() }, &["n1", "n2"]).await;
    check(NodeFilter { by_can_reattest: Some(true), ..Default::default() }, &["n2", "n3"]).await;
    check(NodeFilter { by_can_reattest: Some(false), ..Default::default() }, &["n1", "n4", "n5"]).await;

    let modes = [MatchMode::Exact, MatchMode::Subset, MatchMode::Superset, MatchMode::Any];
    let filters: [&[&str]; 5] = [&["a:1"], &["a:1", "b:2"], &["b:2", "c:3"], &["a:1", "b:2", "c:3", "d:4"], &["z:9"]];
    for filter_set in filters {
        for mode in modes {
            // A node without selectors matches no selector filter.
            let expected: Vec<String> = fixtures
                .iter()
                .filter(|n| !n.selectors.is_empty())
                .filter(|n| n.selectors.iter().cloned().collect::<SelectorSet>().matches(&set(filter_set), mode))
                .map(|n| names(std::slice::from_ref(n)).remove(0))
                .collect();
            let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
            check(NodeFilter { by_selectors: Some((set(filter_set), mode)), ..Default::default() }, &expected).await;
        }
    }
    check(
        NodeFilter { by_selectors: Some((set(&["a:1", "b:2"]), MatchMode::Subset)), ..Default::default() },
        &["n1", "n2", "n3"],
    )
    .await;

    let combined = NodeFilter {
        by_attestation_type: Some("x509pop".into()),
        by_selectors: Some((set(&["b:2"]), MatchMode::Superset)),
        by_banned: Some(false),
        ..Default::default()
    };
    check(combined.clone(), &["n3", "n5"]).await;
    check(NodeFilter { by_expires_before: Some(400), ..combined.clone() }, &["n3"]).await;
    check(NodeFilter { by_can_reattest: Some(false), ..combined }, &["n5"]).await;
    let empty = NodeFilter { by_selectors: Some((set(&[]), MatchMode::Any)), ..Default::default() };
    assert_err!(store.list_attested_nodes(&empty, None).await, InvalidArgument);
    assert_err!(store.count_attested_nodes(&empty).await, InvalidArgument);
}

pub async fn nodes_pagination_walks_every_page_size(store: Arc<dyn DataStore>) {
    let all = ["n1", "n2", "n3", "n4", "n5"];
    for name in all {
        store.create_attested_node(node(name, "join_token", name, 0, name == "n2", &["a:1"])).await.unwrap();
    }
    for (page_size, pages) in [(1, 5), (2, 3), (5, 1), (100, 1)] {
        let mut pagination = Pagination::first(page_size);
        let mut seen = Vec::new();
        let mut walked = 0;
        loop {
            let (nodes, token) = store.list_attested_nodes(&NodeFilter::default(), Some(&pagination)).await.unwrap();
            walked += 1;
            assert!(nodes.len() <= page_size as usize);
            seen.extend(names(&nodes));
            if token.is_empty() {
                break;
            }
            pagination = pagination.next(token);
        }
        assert_eq!(seen, all, "page size {page_size}");
        assert_eq!(walked, pages, "page size {page_size}");
    }
    let filter = NodeFilter { by_can_reattest: Some(false), ..Default::default() };
    let (first, token) = store.list_attested_nodes(&filter, Some(&Pagination::first(3))).await.unwrap();
    assert_eq!(names(&first), ["n1", "n3", "n4"]);
    let (second, token) = store.list_attested_nodes(&filter, Some(&Pagination::first(3).next(token))).await.unwrap();
    assert_eq!((names(&second), token), (vec!["n5".to_owned()], String::new()));
    let nobody = NodeFilter { by_attestation_type: Some("none".into()), ..Default::default() };
    assert_eq!(store.list_attested_nodes(&nobody, Some(&Pagination::first(2))).await.unwrap(), (vec![], String::new()));
    assert_err!(store.list_attested_nodes(&filter, Some(&Pagination::first(0))).await, InvalidArgument);
    assert_err!(store.list_attested_nodes(&filter, Some(&Pagination::first(1).next("?"))).await, InvalidArgument);
}
