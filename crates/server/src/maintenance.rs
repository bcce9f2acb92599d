//! Periodic clean-up, as SPIRE does it: expired registration entries and join tokens go, bundle
//! authorities expired for more than a day are dropped, old CA journals and change events are pruned.
//! Expired entries are deleted one by one through the store so that the index and the events table see
//! each deletion.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::api::ServerContext;
use crate::ca::signer::unix;

/// How often the clean-up runs (SPIRE prunes expired entries every 5 minutes).
pub const INTERVAL: Duration = Duration::from_secs(300);
/// Bundle authorities are kept this long past their expiry.
pub const BUNDLE_GRACE: i64 = 24 * 3600;
/// CA journals are kept this long after their last authority expired.
pub const JOURNAL_GRACE: i64 = 14 * 24 * 3600;
/// Change events older than this are dropped by default (SPIRE's `prune_events_older_than`).
pub const EVENT_RETENTION: i64 = 12 * 3600;

/// What one pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Expired registration entries.
    pub entries: u64,
    /// Expired join tokens.
    pub join_tokens: u64,
    /// Whether the own bundle lost expired authorities.
    pub bundle_changed: bool,
    /// CA journals.
    pub journals: u64,
    /// Change events.
    pub events: u64,
}

/// One clean-up pass at `now`. A failing step is logged and the others still run.
pub async fn run_once(ctx: &ServerContext, now: SystemTime) -> Pruned {
    let t = unix(now);
    let ds = &ctx.ds;
    let mut pruned = Pruned::default();
    let expired: Vec<String> = {
        let index = ctx.index.read().expect("index lock");
        index.iter().filter(|e| e.expires_at != 0 && e.expires_at < t).map(|e| e.id.clone()).collect()
    };
    for id in expired {
        match ds.delete_entry(&id).await {
            Ok(_) => pruned.entries += 1,
            Err(spire_datastore::DataStoreError::NotFound(_)) => {}
            Err(e) => tracing::warn!(error = %e, entry = %id, "failed to prune an expired entry"),
        }
        ctx.index.write().expect("index lock").remove(&id);
    }
    // Entries outside the trust domain are not indexed; the store prunes them.
    match ds.prune_entries(t).await {
        Ok(n) => pruned.entries += n,
        Err(e) => tracing::warn!(error = %e, "failed to prune expired entries"),
    }
    match ds.prune_join_tokens(t).await {
        Ok(n) => pruned.join_tokens = n,
        Err(e) => tracing::warn!(error = %e, "failed to prune join tokens"),
    }
    match ds.prune_bundle(&ctx.trust_domain, t - BUNDLE_GRACE).await {
        Ok(changed) => pruned.bundle_changed = changed,
        // Pruning never removes the last X.509 authority; that refusal is not a failure here.
        Err(spire_datastore::DataStoreError::FailedPrecondition(_)) => {}
        Err(e) => tracing::warn!(error = %e, "failed to prune the bundle"),
    }
    match ds.prune_ca_journals(t - JOURNAL_GRACE).await {
        Ok(n) => pruned.journals = n,
        Err(e) => tracing::warn!(error = %e, "failed to prune CA journals"),
    }
    let retention = i64::try_from(ctx.settings.prune_events_older_than.as_secs()).unwrap_or(i64::MAX);
    match ds.prune_events(t.saturating_sub(retention)).await {
        Ok(n) => pruned.events = n,
        Err(e) => tracing::warn!(error = %e, "failed to prune events"),
    }
    if pruned != Pruned::default() {
        tracing::info!(?pruned, "pruned expired records");
    }
    pruned
}

/// Runs [`run_once`] every [`INTERVAL`].
pub fn spawn(ctx: Arc<ServerContext>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(INTERVAL);
        loop {
            ticker.tick().await;
            run_once(&ctx, SystemTime::now()).await;
        }
    })
}
