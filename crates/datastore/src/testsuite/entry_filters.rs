//! Entry listing: filters with every match mode (checked against the identity crate's set semantics),
//! combinations, pagination.

use std::collections::BTreeSet;
use std::sync::Arc;

use spire_identity::MatchMode;

use super::*;
use crate::DataStore;

const MODES: [MatchMode; 4] = [MatchMode::Exact, MatchMode::Subset, MatchMode::Superset, MatchMode::Any];

/// Asserts that list (unpaginated and in pages of 2) and count agree with `expected`.
async fn assert_filter(store: &Arc<dyn DataStore>, filter: &EntryFilter, expected: &[&str]) {
    let listed = ids_of(&list_all(store, filter).await);
    assert_eq!(listed, expected, "filter {filter:?}");
    assert_eq!(store.count_entries(filter).await.unwrap(), expected.len() as u64, "count of {filter:?}");
    assert_eq!(walk_entries(store, filter, 2).await.0, expected, "pages of {filter:?}");
}

pub async fn entries_list_everything_in_id_order(store: Arc<dyn DataStore>) {
    for name in ["c", "a", "B", "b-2", "b"] {
        store.create_entry(entry_with_id(name, name, "agent", &["unix:uid:1"])).await.unwrap();
    }
    let all = list_all(&store, &EntryFilter::default()).await;
    // Byte order: uppercase before lowercase, shorter prefix first.
    assert_eq!(ids_of(&all), ["B", "a", "b", "b-2", "c"]);
    assert_eq!(store.count_entries(&EntryFilter::default()).await.unwrap(), 5);
}

pub async fn entries_filter_by_simple_fields(store: Arc<dyn DataStore>) {
    let fixtures = [
        ("e1", "web", "agent-a", "", false),
        ("e2", "web", "agent-b", "blue", false),
        ("e3", "db", "agent-a", "blue", true),
        ("e4", "db", "agent-b", "", true),
        ("e5", "web", "agent-a", "green", true),
    ];
    for (entry_id, name, parent, hint, downstream) in fixtures {
        let mut e = entry_with_id(entry_id, name, parent, &[&format!("unix:uid:{entry_id}")]);
        e.hint = hint.into();
        e.downstream = downstream;
        store.create_entry(e).await.unwrap();
    }
    let by_spiffe = EntryFilter { by_spiffe_id: Some(id("spiffe://example.org/web")), ..EntryFilter::default() };
    assert_filter(&store, &by_spiffe, &["e1", "e2", "e5"]).await;
    let by_parent = EntryFilter { by_parent_id: Some(id("spiffe://example.org/agent-b")), ..EntryFilter::default() };
    assert_filter(&store, &by_parent, &["e2", "e4"]).await;
    let by_hint = EntryFilter { by_hint: Some("blue".into()), ..EntryFilter::default() };
    assert_filter(&store, &by_hint, &["e2", "e3"]).await;
    let by_empty_hint = EntryFilter { by_hint: Some(String::new()), ..EntryFilter::default() };
    assert_filter(&store, &by_empty_hint, &["e1", "e4"]).await;
    let downstream = EntryFilter { by_downstream: Some(true), ..EntryFilter::default() };
    assert_filter(&store, &downstream, &["e3", "e4", "e5"]).await;
    let not_downstream = EntryFilter { by_downstream: Some(false), ..EntryFilter::default() };
    assert_filter(&store, &not_downstream, &["e1", "e2"]).await;
    let nobody = EntryFilter { by_spiffe_id: Some(id("spiffe://example.org/nobody")), ..EntryFilter::default() };
    assert_filter(&store, &nobody, &[]).await;
    let other_td = EntryFilter { by_spiffe_id: Some(id("spiffe://other.org/web")), ..EntryFilter::default() };
    assert_filter(&store, &other_td, &[]).await;
}

/// Every mode against every filter set, compared with `SelectorSet::matches`, plus the classic cases
/// spelled out.
pub async fn entries_filter_by_selectors_all_modes(store: Arc<dyn DataStore>) {
    let fixtures: [(&str, &[&str]); 6] = [
        ("e1", &["a:1"]),
        ("e2", &["a:1", "b:2"]),
        ("e3", &["a:1", "b:2", "c:3"]),
        ("e4", &["b:2"]),
        ("e5", &["c:3", "d:4"]),
        ("e6", &["a:1:x"]),
    ];
    for (entry_id, selectors) in fixtures {
        store.create_entry(entry_with_id(entry_id, entry_id, "agent", selectors)).await.unwrap();
    }
    let filters: [&[&str]; 8] = [
        &["a:1"],
        &["a:1", "b:2"],
        &["b:2", "c:3"],
        &["a:1", "b:2", "c:3"],
        &["c:3", "d:4", "a:1", "b:2"],
        &["d:4"],
        &["z:9"],
        &["a:1", "z:9"],
    ];
    for filter_set in filters {
        for mode in MODES {
            let expected: Vec<&str> =
                fixtures.iter().filter(|(_, s)| set(s).matches(&set(filter_set), mode)).map(|(id, _)| *id).collect();
            let filter = EntryFilter { by_selectors: Some((set(filter_set), mode)), ..EntryFilter::default() };
            assert_filter(&store, &filter, &expected).await;
        }
    }
    let by = |texts: &[&str], mode| EntryFilter { by_selectors: Some((set(texts), mode)), ..EntryFilter::default() };
    assert_filter(&store, &by(&["a:1"], MatchMode::Superset), &["e1", "e2", "e3"]).await;
    assert_filter(&store, &by(&["a:1", "b:2"], MatchMode::Exact), &["e2"]).await;
    assert_filter(&store, &by(&["a:1", "b:2"], MatchMode::Subset), &["e1", "e2", "e4"]).await;
    assert_filter(&store, &by(&["a:1", "z:9"], MatchMode::Any), &["e1", "e2", "e3"]).await;
}

/// Federates-with filters use the selector semantics over trust domains; an entry that federates
/// with nothing matches none of them.
pub async fn entries_filter_by_federates_with_all_modes(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["td1.org", "td2.org", "td3.org", "td4.org"]).await;
    let fixtures: [(&str, &[&str]); 6] = [
        ("f0", &[]),
        ("f1", &["td1.org"]),
        ("f2", &["td1.org", "td2.org"]),
        ("f3", &["td2.org", "td3.org"]),
        ("f4", &["td1.org", "td2.org", "td3.org"]),
        ("f5", &["td4.org"]),
    ];
    for (entry_id, tds) in fixtures {
        let mut e = entry_with_id(entry_id, entry_id, "agent", &["unix:uid:1"]);
        e.federates_with = tds.iter().map(|t| td(t)).collect();
        store.create_entry(e).await.unwrap();
    }
    let model = |entry: &[&str], filter: &[&str], mode: MatchMode| {
        let entry: BTreeSet<&str> = entry.iter().copied().collect();
        let filter: BTreeSet<&str> = filter.iter().copied().collect();
        !entry.is_empty()
            && match mode {
                MatchMode::Exact => entry == filter,
                MatchMode::Subset => entry.is_subset(&filter),
                MatchMode::Superset => entry.is_superset(&filter),
                MatchMode::Any => !entry.is_disjoint(&filter),
            }
    };
    let filters: [&[&str]; 6] = [
        &["td1.org"],
        &["td1.org", "td2.org"],
        &["td2.org", "td3.org", "td1.org"],
        &["td3.org", "td4.org"],
        &["td1.org", "td1.org"],
        &["nobody.org"],
    ];
    for filter_tds in filters {
        for mode in MODES {
            let expected: Vec<&str> =
                fixtures.iter().filter(|(_, tds)| model(tds, filter_tds, mode)).map(|(id, _)| *id).collect();
            let filter = EntryFilter {
                by_federates_with: Some((filter_tds.iter().map(|t| td(t)).collect(), mode)),
                ..EntryFilter::default()
            };
            assert_filter(&store, &filter, &expected).await;
        }
    }
    let by = |tds: &[&str], mode| EntryFilter {
        by_federates_with: Some((tds.iter().map(|t| td(t)).collect(), mode)),
        ..EntryFilter::default()
    };
    assert_filter(&store, &by(&["td1.org", "td2.org"], MatchMode::Subset), &["f1", "f2"]).await;
    assert_filter(&store, &by(&["td1.org", "td2.org"], MatchMode::Exact), &["f2"]).await;
    assert_filter(&store, &by(&["td1.org"], MatchMode::Superset), &["f1", "f2", "f4"]).await;
    assert_filter(&store, &by(&["td3.org", "td4.org"], MatchMode::Any), &["f3", "f4", "f5"]).await;
}

/// All given filters must hold at once.
pub async fn entries_filter_combinations(store: Arc<dyn DataStore>) {
    create_bundles(&store, &["fed.org"]).await;
    /// ID, name, parent, selectors, hint, federates with fed.org.
    type Fixture<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a str, bool);
    let fixtures: [Fixture<'_>; 6] = [
        ("c1", "web", "agent-a", &["k8s:ns:prod", "k8s:sa:web"], "blue", true),
        ("c2", "web", "agent-b", &["k8s:ns:prod", "k8s:sa:web"], "blue", false),
        ("c3", "web", "agent-a", &["k8s:ns:dev", "k8s:sa:web"], "blue", true),
        ("c4", "db", "agent-a", &["k8s:ns:prod", "k8s:sa:db"], "", true),
        ("c5", "web", "agent-a", &["k8s:ns:prod"], "blue", false),
        ("c6", "web", "agent-a", &["k8s:ns:prod", "k8s:sa:web", "k8s:pod:x"], "red", true),
    ];
    for (entry_id, name, parent, selectors, hint, federated) in fixtures {
        let mut e = entry_with_id(entry_id, name, parent, selectors);
        e.hint = hint.into();
        if federated {
            e.federates_with = vec![td("fed.org")];
        }
        store.create_entry(e).await.unwrap();
    }
    let filter = EntryFilter {
        by_parent_id: Some(id("spiffe://example.org/agent-a")),
        by_selectors: Some((set(&["k8s:ns:prod"]), MatchMode::Superset)),
        ..EntryFilter::default()
    };
    assert_filter(&store, &filter, &["c1", "c4", "c5", "c6"]).await;
    let filter =
        EntryFilter { by_hint: Some("blue".into()), by_spiffe_id: Some(id("spiffe://example.org/web")), ..filter };
    assert_filter(&store, &filter, &["c1", "c5"]).await;
    let filter = EntryFilter { by_federates_with: Some((vec![td("fed.org")], MatchMode::Exact)), ..filter };
    assert_filter(&store, &filter, &["c1"]).await;
    let filter = EntryFilter {
        by_selectors: Some((set(&["k8s:ns:prod", "k8s:sa:web", "k8s:ns:dev"]), MatchMode::Subset)),
        by_parent_id: Some(id("spiffe://example.org/agent-a")),
        by_federates_with: Some((vec![td("fed.org")], MatchMode::Any)),
        ..EntryFilter::default()
    };
    assert_filter(&store, &filter, &["c1", "c3"]).await;
    let filter = EntryFilter { by_downstream: Some(true), ..filter };
    assert_filter(&store, &filter, &[]).await;
}

pub async fn entries_filter_refuses_empty_sets(store: Arc<dyn DataStore>) {
    store.create_entry(entry("web", "agent", &["unix:uid:1"])).await.unwrap();
    let empty_selectors = EntryFilter { by_selectors: Some((set(&[]), MatchMode::Any)), ..EntryFilter::default() };
    assert_err!(store.list_entries(&empty_selectors, None).await, InvalidArgument);
    assert_err!(store.count_entries(&empty_selectors).await, InvalidArgument);
    let empty_tds = EntryFilter { by_federates_with: Some((vec![], MatchMode::Exact)), ..EntryFilter::default() };
    assert_err!(store.list_entries(&empty_tds, None).await, InvalidArgument);
    assert_err!(store.count_entries(&empty_tds).await, InvalidArgument);
}

pub async fn entries_pagination_walks_every_page_size(store: Arc<dyn DataStore>) {
    let names = ["e1", "e2", "e3", "e4", "e5"];
    for name in names {
        store.create_entry(entry_with_id(name, name, "agent", &["unix:uid:1", &format!("n:{name}")])).await.unwrap();
    }
    for (page_size, pages) in [(1, 5), (2, 3), (3, 2), (4, 2), (5, 1), (6, 1), (1000, 1)] {
        let (ids, walked) = walk_entries(&store, &EntryFilter::default(), page_size).await;
        assert_eq!(ids, names, "page size {page_size}");
        assert_eq!(walked, pages, "pages of size {page_size}");
    }
    let filter =
        EntryFilter { by_selectors: Some((set(&["n:e2", "n:e4", "n:e5"]), MatchMode::Any)), ..Default::default() };
    assert_eq!(walk_entries(&store, &filter, 1).await, (vec!["e2".into(), "e4".into(), "e5".into()], 3));
    assert_eq!(walk_entries(&store, &filter, 2).await.1, 2);
}

pub async fn entries_pagination_of_empty_results(store: Arc<dyn DataStore>) {
    assert_eq!(
        store.list_entries(&EntryFilter::default(), Some(&Pagination::first(1))).await.unwrap(),
        (vec![], String::new())
    );
    store.create_entry(entry("web", "agent", &["unix:uid:1"])).await.unwrap();
    let nobody = EntryFilter { by_hint: Some("none".into()), ..EntryFilter::default() };
    assert_eq!(store.list_entries(&nobody, Some(&Pagination::first(10))).await.unwrap(), (vec![], String::new()));
}

pub async fn entries_pagination_refuses_bad_requests(store: Arc<dyn DataStore>) {
    store.create_entry(entry("web", "agent", &["unix:uid:1"])).await.unwrap();
    assert_err!(store.list_entries(&EntryFilter::default(), Some(&Pagination::first(0))).await, InvalidArgument);
    let garbage = Pagination { page_size: 1, token: "not a token!".into() };
    assert_err!(store.list_entries(&EntryFilter::default(), Some(&garbage)).await, InvalidArgument);
}

/// Entries created behind the cursor while a walk is under way are not returned twice and do not push
/// others out; the records that existed throughout are all seen exactly once.
pub async fn entries_pagination_survives_concurrent_inserts(store: Arc<dyn DataStore>) {
    for name in ["b", "d", "f", "h"] {
        store.create_entry(entry_with_id(name, name, "agent", &["unix:uid:1"])).await.unwrap();
    }
    let mut pagination = Pagination::first(2);
    let mut seen = Vec::new();
    let mut inserted = ["a", "c", "e", "g"].into_iter();
    loop {
        let (entries, token) = store.list_entries(&EntryFilter::default(), Some(&pagination)).await.unwrap();
        seen.extend(ids_of(&entries));
        if let Some(name) = inserted.next() {
            store.create_entry(entry_with_id(name, name, "agent", &["unix:uid:1"])).await.unwrap();
        }
        if token.is_empty() {
            break;
        }
        pagination = pagination.next(token);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates in {seen:?}");
    for name in ["b", "d", "f", "h"] {
        assert!(seen.iter().any(|s| s == name), "{name} missing from {seen:?}");
    }
}
