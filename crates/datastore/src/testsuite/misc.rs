//! Join tokens, federation relationships and the CA journal.

use std::sync::Arc;

use super::*;
use crate::{
    BundleEndpointProfile, CaJournal, DataStore, FederationRelationship, FederationRelationshipMask, JoinToken,
};

pub async fn join_token_lifecycle(store: Arc<dyn DataStore>) {
    let token = JoinToken { token: "secret-1".into(), expires_at: 1_000 };
    store.create_join_token(token.clone()).await.unwrap();
    assert_eq!(store.fetch_join_token("secret-1").await.unwrap(), Some(token.clone()));
    assert_eq!(store.fetch_join_token("secret-2").await.unwrap(), None);
    assert_err!(store.create_join_token(JoinToken { expires_at: 5, ..token.clone() }).await, AlreadyExists);
    assert_eq!(store.fetch_join_token("secret-1").await.unwrap(), Some(token));
    assert_err!(store.create_join_token(JoinToken { token: String::new(), expires_at: 5 }).await, InvalidArgument);
    assert!(store.delete_join_token("secret-1").await.unwrap());
    assert!(!store.delete_join_token("secret-1").await.unwrap());
    assert!(!store.delete_join_token("never-existed").await.unwrap());
    assert_eq!(store.fetch_join_token("secret-1").await.unwrap(), None);
}

pub async fn join_token_prune(store: Arc<dyn DataStore>) {
    for (token, expires_at) in [("a", 100), ("b", 200), ("c", 300)] {
        store.create_join_token(JoinToken { token: token.into(), expires_at }).await.unwrap();
    }
    assert_eq!(store.prune_join_tokens(100).await.unwrap(), 0);
    assert_eq!(store.prune_join_tokens(250).await.unwrap(), 2);
    assert_eq!(store.fetch_join_token("a").await.unwrap(), None);
    assert_eq!(store.fetch_join_token("c").await.unwrap().unwrap().expires_at, 300);
    assert_eq!(store.prune_join_tokens(250).await.unwrap(), 0);
}

pub async fn federation_relationship_lifecycle(store: Arc<dyn DataStore>) {
    let web = FederationRelationship {
        trust_domain: td("web.org"),
        bundle_endpoint_url: "https://web.org/bundle".into(),
        profile: BundleEndpointProfile::HttpsWeb,
    };
    let spiffe = FederationRelationship {
        trust_domain: td("spiffe.org"),
        bundle_endpoint_url: "https://spiffe.org:8443".into(),
        profile: BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id: id("spiffe://spiffe.org/bundle-server") },
    };
    assert_eq!(store.create_federation_relationship(web.clone()).await.unwrap(), web);
    assert_eq!(store.create_federation_relationship(spiffe.clone()).await.unwrap(), spiffe);
    assert_eq!(store.fetch_federation_relationship(&td("web.org")).await.unwrap(), Some(web.clone()));
    assert_eq!(store.fetch_federation_relationship(&td("spiffe.org")).await.unwrap(), Some(spiffe.clone()));
    assert_eq!(store.fetch_federation_relationship(&td("none.org")).await.unwrap(), None);
    assert_err!(store.create_federation_relationship(web.clone()).await, AlreadyExists);

    assert_eq!(
        store.list_federation_relationships(None).await.unwrap(),
        (vec![spiffe.clone(), web.clone()], String::new())
    );
    let (first, token) = store.list_federation_relationships(Some(&Pagination::first(1))).await.unwrap();
    assert_eq!(first, std::slice::from_ref(&spiffe));
    let (second, last) = store.list_federation_relationships(Some(&Pagination::first(1).next(token))).await.unwrap();
    assert_eq!((second, last), (vec![web.clone()], String::new()));
    assert_err!(store.list_federation_relationships(Some(&Pagination::first(0))).await, InvalidArgument);

    // Only the masked fields change.
    let change = FederationRelationship {
        bundle_endpoint_url: "https://web.org/v2".into(),
        profile: BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id: id("spiffe://web.org/server") },
        ..web.clone()
    };
    let url_only = FederationRelationshipMask { bundle_endpoint_url: true, ..Default::default() };
    let updated = store.update_federation_relationship(change.clone(), &url_only).await.unwrap();
    assert_eq!(updated, FederationRelationship { bundle_endpoint_url: "https://web.org/v2".into(), ..web.clone() });
    let updated = store.update_federation_relationship(change.clone(), &FederationRelationshipMask::ALL).await.unwrap();
    assert_eq!(updated, change);
    assert_eq!(store.fetch_federation_relationship(&td("web.org")).await.unwrap(), Some(change));
    let back = FederationRelationshipMask { profile: true, ..Default::default() };
    store.update_federation_relationship(web.clone(), &back).await.unwrap();
    assert_eq!(
        store.fetch_federation_relationship(&td("web.org")).await.unwrap().unwrap().profile,
        BundleEndpointProfile::HttpsWeb
    );
    let missing = FederationRelationship { trust_domain: td("none.org"), ..web };
    assert_err!(store.update_federation_relationship(missing, &FederationRelationshipMask::ALL).await, NotFound);

    store.delete_federation_relationship(&td("web.org")).await.unwrap();
    assert_eq!(store.fetch_federation_relationship(&td("web.org")).await.unwrap(), None);
    assert_err!(store.delete_federation_relationship(&td("web.org")).await, NotFound);
    assert_eq!(store.list_federation_relationships(None).await.unwrap().0, [spiffe]);
}

pub async fn ca_journal_lifecycle(store: Arc<dyn DataStore>) {
    assert_eq!(store.fetch_latest_ca_journal().await.unwrap(), None);
    let journal = |data: &[u8], x509: &str, jwt: &str, expires_at| CaJournal {
        id: 0,
        data: data.to_vec(),
        active_x509_authority_id: x509.into(),
        active_jwt_authority_id: jwt.into(),
        expires_at,
    };
    let first = store.set_ca_journal(journal(b"one", "x509-A", "jwt-A", 100)).await.unwrap();
    assert!(first.id > 0);
    let second = store.set_ca_journal(journal(b"two", "x509-B", "jwt-B", 200)).await.unwrap();
    assert!(second.id > first.id);
    let unknown_expiry = store.set_ca_journal(journal(b"three", "x509-C", "jwt-C", 0)).await.unwrap();
    assert_eq!(store.fetch_latest_ca_journal().await.unwrap(), Some(unknown_expiry.clone()));
    assert_eq!(store.fetch_ca_journal("x509-A").await.unwrap(), Some(first.clone()));
    assert_eq!(store.fetch_ca_journal("x509-none").await.unwrap(), None);

    // Overwrite by ID.
    let rewritten =
        CaJournal { data: b"one, later".to_vec(), active_x509_authority_id: "x509-B".into(), ..first.clone() };
    assert_eq!(store.set_ca_journal(rewritten.clone()).await.unwrap(), rewritten);
    assert_eq!(store.fetch_ca_journal("x509-A").await.unwrap(), None);
    // Two journals now name x509-B: the most recent one wins.
    assert_eq!(store.fetch_ca_journal("x509-B").await.unwrap(), Some(second.clone()));
    assert_err!(store.set_ca_journal(CaJournal { id: unknown_expiry.id + 100, ..first }).await, NotFound);

    assert_eq!(store.prune_ca_journals(100).await.unwrap(), 0);
    assert_eq!(store.prune_ca_journals(150).await.unwrap(), 1);
    assert_eq!(store.fetch_ca_journal("x509-B").await.unwrap(), Some(second));
    assert_eq!(store.prune_ca_journals(i64::MAX).await.unwrap(), 1);
    assert_eq!(store.fetch_latest_ca_journal().await.unwrap(), Some(unknown_expiry));
}
