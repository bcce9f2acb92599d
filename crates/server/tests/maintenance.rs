//! The periodic clean-up against a real SQLite datastore: expired entries leave the store and the
//! index, expired join tokens go, live records stay.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_datastore::{DataStore, JoinToken, RegistrationEntry, SqlStore, SqliteOptions};
use spire_identity::{Selector, SpiffeId, TrustDomain};
use spire_server::api::{ServerContext, Settings};
use spire_server::ca::Ca;
use spire_server::maintenance::run_once;

#[tokio::test]
async fn prunes_expired_entries_and_tokens_only() {
    let dir = tempfile::tempdir().unwrap();
    let ds: Arc<dyn DataStore> = Arc::new(
        SqlStore::open(dir.path().join("ds.sqlite3").to_str().unwrap(), SqliteOptions::default()).await.unwrap(),
    );
    let td = TrustDomain::parse("example.org").unwrap();
    let ctx = ServerContext::new(td.clone(), ds.clone(), Arc::new(Ca::new(td, None)), Settings::default());
    let now = SystemTime::now();
    let t = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let agent = SpiffeId::parse("spiffe://example.org/spire/agent/a").unwrap();
    let mk = |path: &str, expires_at: i64| {
        let mut e = RegistrationEntry::new(
            SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap(),
            agent.clone(),
            [Selector::parse("unix:uid:1").unwrap()],
        );
        e.expires_at = expires_at;
        e
    };
    let expired = ds.create_entry(mk("/old", t - 10)).await.unwrap();
    let live = ds.create_entry(mk("/live", t + 3600)).await.unwrap();
    let forever = ds.create_entry(mk("/forever", 0)).await.unwrap();
    ctx.load_index().await.unwrap();
    ds.create_join_token(JoinToken { token: "old".into(), expires_at: t - 1 }).await.unwrap();
    ds.create_join_token(JoinToken { token: "new".into(), expires_at: t + 600 }).await.unwrap();

    let pruned = run_once(&ctx, now + Duration::from_secs(1)).await;
    assert_eq!((pruned.entries, pruned.join_tokens), (1, 1));
    assert!(ds.fetch_entry(&expired.id).await.unwrap().is_none());
    assert!(ds.fetch_entry(&live.id).await.unwrap().is_some() && ds.fetch_entry(&forever.id).await.unwrap().is_some());
    {
        let index = ctx.index.read().unwrap();
        assert!(index.get(&expired.id).is_none() && index.get(&live.id).is_some());
    }
    assert!(ds.fetch_join_token("old").await.unwrap().is_none());
    assert!(ds.fetch_join_token("new").await.unwrap().is_some());
}

/// Change events are kept for `experimental.prune_events_older_than`, then dropped.
#[tokio::test]
async fn prunes_events_after_the_configured_retention() {
    let dir = tempfile::tempdir().unwrap();
    let ds: Arc<dyn DataStore> = Arc::new(
        SqlStore::open(dir.path().join("ds.sqlite3").to_str().unwrap(), SqliteOptions::default()).await.unwrap(),
    );
    let td = TrustDomain::parse("example.org").unwrap();
    let settings = Settings { prune_events_older_than: Duration::from_secs(3600), ..Settings::default() };
    let ctx = ServerContext::new(td.clone(), ds.clone(), Arc::new(Ca::new(td, None)), settings);
    let entry = RegistrationEntry::new(
        SpiffeId::parse("spiffe://example.org/w").unwrap(),
        SpiffeId::parse("spiffe://example.org/spire/agent/a").unwrap(),
        [Selector::parse("unix:uid:1").unwrap()],
    );
    ds.create_entry(entry).await.unwrap();
    let now = SystemTime::now();
    assert_eq!(run_once(&ctx, now + Duration::from_secs(1800)).await.events, 0, "kept within the retention");
    assert_eq!(run_once(&ctx, now + Duration::from_secs(3700)).await.events, 1, "dropped after it");
    assert!(ds.list_entry_events(0, 0).await.unwrap().is_empty());
}
