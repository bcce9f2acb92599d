//! Keeps the authorized-entry index in step with writes made by other servers sharing the database,
//! from the entry events table (SPIRE's events-based cache): each poll reads the events after the
//! last one accounted for, re-reads the entries they name, and applies them to the index. No
//! periodic full reload, so propagation costs one poll interval whatever the registry's size.
//!
//! On PostgreSQL and MySQL, event IDs are handed out when a transaction writes its event but become
//! visible when it commits, so a lower ID can appear after a higher one. A missing ID below the
//! highest one seen is a gap: it is looked for again at every poll until it shows up or
//! the event timeout passes (SPIRE's `event_timeout`, 15 minutes by default: a rolled-back transaction
//! leaves a gap that never fills).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use spire_datastore::{DataStore, DataStoreError};

use super::EntryIndex;

/// How often the events table is read at most (`cache_reload_interval` can make it more often): an
/// indexed read of the few newest rows, cheap enough to keep propagation well within a sync interval.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a missing event ID is waited for by default (SPIRE's `event_timeout`).
pub const GAP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Events read per query.
const BATCH: u32 = 1000;

/// Where the follower stands in the entry events table.
#[derive(Debug)]
pub struct EventCursor {
    /// Every event ID up to here is applied or given up on.
    resolved: i64,
    /// IDs above `resolved` already applied.
    applied: BTreeSet<i64>,
    /// IDs above `resolved` not seen yet while a higher one was, with when that was first noticed.
    gaps: BTreeMap<i64, Instant>,
    /// How long a gap is waited for.
    gap_timeout: Duration,
}

impl EventCursor {
    /// A cursor after event `last_id` (read before the index was loaded, so nothing is missed).
    pub fn after(last_id: i64) -> Self {
        Self { resolved: last_id, applied: BTreeSet::new(), gaps: BTreeMap::new(), gap_timeout: GAP_TIMEOUT }
    }

    /// Waits `timeout` for a missing event ID instead of [`GAP_TIMEOUT`].
    pub fn with_gap_timeout(mut self, timeout: Duration) -> Self {
        self.gap_timeout = timeout;
        self
    }

    /// The ID events are read after.
    pub fn position(&self) -> i64 {
        self.resolved
    }

    /// Takes in the event IDs just read (all above [`EventCursor::position`]); returns those not
    /// applied before, then moves past what is resolved, giving up gaps older than the gap timeout.
    pub fn take(&mut self, ids: impl IntoIterator<Item = i64>, now: Instant) -> Vec<i64> {
        let mut new = Vec::new();
        for id in ids {
            if id > self.resolved && self.applied.insert(id) {
                self.gaps.remove(&id);
                new.push(id);
            }
        }
        if let Some(&highest) = self.applied.last() {
            for id in self.resolved + 1..highest {
                if !self.applied.contains(&id) {
                    self.gaps.entry(id).or_insert(now);
                }
            }
        }
        loop {
            let next = self.resolved + 1;
            if self.applied.remove(&next) {
                self.resolved = next;
            } else if self.gaps.get(&next).is_some_and(|since| now.duration_since(*since) >= self.gap_timeout) {
                tracing::debug!(event_id = next, "entry event never appeared (a rolled-back write); skipping it");
                self.gaps.remove(&next);
                self.resolved = next;
            } else {
                break;
            }
        }
        new
    }

    /// Missing IDs still waited for.
    pub fn gaps(&self) -> usize {
        self.gaps.len()
    }
}

/// Reads the events after `cursor` and applies the entries they name to `index`; returns how many
/// entries were applied.
pub async fn poll_once(
    ds: &dyn DataStore,
    index: &RwLock<EntryIndex>,
    cursor: &mut EventCursor,
    now: Instant,
) -> Result<usize, DataStoreError> {
    let mut changed = BTreeSet::new();
    let mut after = cursor.position();
    loop {
        let events = ds.list_entry_events(after, BATCH).await?;
        let Some(last) = events.last() else { break };
        after = last.event_id;
        let full = events.len() == BATCH as usize;
        let new = cursor.take(events.iter().map(|e| e.event_id), now);
        let new: BTreeSet<i64> = new.into_iter().collect();
        changed.extend(events.into_iter().filter(|e| new.contains(&e.event_id)).map(|e| e.entry_id));
        if !full {
            break;
        }
    }
    if changed.is_empty() {
        // Gaps still age out with nothing new to read.
        cursor.take([], now);
        return Ok(0);
    }
    let ids: Vec<String> = changed.into_iter().collect();
    let mut current = ds.fetch_entries(&ids).await?;
    let mut index = index.write().expect("index lock");
    for id in &ids {
        match current.remove(id) {
            // Never replace what this server's own later write put there with an older revision
            // read before it.
            Some(entry) => {
                if index.get(id).is_none_or(|known| known.revision_number <= entry.revision_number) {
                    index.upsert(entry);
                }
            }
            None => {
                index.remove(id);
            }
        }
    }
    Ok(ids.len())
}

/// Polls every `interval` until the task is dropped; failures are logged and retried.
pub fn spawn(
    ds: Arc<dyn DataStore>,
    index: Arc<RwLock<EntryIndex>>,
    mut cursor: EventCursor,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match poll_once(ds.as_ref(), &index, &mut cursor, Instant::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(entries = n, gaps = cursor.gaps(), "applied entry changes from events"),
                Err(e) => tracing::warn!(error = %e, "failed to read entry events; retrying"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_ids_advance_the_cursor() {
        let mut c = EventCursor::after(10);
        let now = Instant::now();
        assert_eq!(c.take([11, 12, 13], now), [11, 12, 13]);
        assert_eq!(c.position(), 13);
        assert_eq!(c.gaps(), 0);
    }

    #[test]
    fn a_late_commit_fills_its_gap_and_is_applied_once() {
        let mut c = EventCursor::after(0);
        let now = Instant::now();
        // 2 is not committed yet when 1 and 3 are read.
        assert_eq!(c.take([1, 3], now), [1, 3]);
        assert_eq!((c.position(), c.gaps()), (1, 1));
        // Next poll reads after 1: 3 again (not re-applied), and 2 now.
        assert_eq!(c.take([2, 3], now), [2]);
        assert_eq!((c.position(), c.gaps()), (3, 0));
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_after_the_timeout() {
        const GAP: Duration = Duration::from_secs(60);
        let mut c = EventCursor::after(0).with_gap_timeout(GAP);
        let start = Instant::now();
        c.take([1, 3, 4], start);
        assert_eq!(c.position(), 1);
        c.take([3, 4], start + GAP / 2);
        assert_eq!(c.position(), 1);
        c.take([3, 4], start + GAP);
        assert_eq!((c.position(), c.gaps()), (4, 0));
    }
}
