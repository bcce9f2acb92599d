//! A work queue of objects to reconcile, in the manner of client-go's: a key is queued at most once,
//! never handed to two workers at once (a key added while being worked on is queued again when the
//! worker is done), and failed keys come back after a per-key exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The first retry delay; doubled on each failure of the same key.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest retry delay: a SPIRE server back from an outage is written to within this.
const MAX_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    dirty: HashSet<K>,
    failures: HashMap<K, u32>,
}

/// Keys waiting to be reconciled.
#[derive(Debug)]
pub(crate) struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// An empty queue.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it is queued already.
    pub(crate) fn add(&self, key: K) {
        let mut state = self.lock();
        if state.queued.contains(&key) {
            return;
        }
        if state.active.contains(&key) {
            state.dirty.insert(key);
            return;
        }
        state.queued.insert(key.clone());
        state.queue.push_back(key);
        drop(state);
        self.ready.notify_one();
    }

    /// The next key, once there is one; the caller must call [`WorkQueue::done`] with it.
    pub(crate) async fn next(&self) -> K {
        loop {
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    if !state.queue.is_empty() {
                        // Another worker may be waiting: pass the wake-up on.
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Ends work on `key`: on success its backoff is reset, on failure it is queued again after its
    /// backoff; either way, if it was added meanwhile, it is queued again now.
    pub(crate) fn done(self: &Arc<Self>, key: K, ok: bool) {
        let mut state = self.lock();
        state.active.remove(&key);
        let again = state.dirty.remove(&key);
        let delay = if ok {
            state.failures.remove(&key);
            None
        } else {
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = backoff(*failures);
            *failures = failures.saturating_add(1);
            Some(delay)
        };
        drop(state);
        if again {
            self.add(key);
        } else if let Some(delay) = delay {
            let queue = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                queue.add(key);
            });
        }
    }

    /// How many keys wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

/// The delay before the retry that follows `failures` earlier failures.
fn backoff(failures: u32) -> Duration {
    FIRST_RETRY.saturating_mul(2u32.saturating_pow(failures.min(16))).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_queued_once_and_not_worked_twice() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.next().await;
        assert_eq!(a, "a");
        q.add("a"); // changed while being worked on
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "b");
        q.done("b", true);
        q.done(a, true);
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test]
    async fn failures_come_back_after_a_growing_backoff() {
        let q = WorkQueue::new();
        q.add("a");
        let key = q.next().await;
        q.done(key, false);
        assert_eq!(q.len(), 0);
        let start = std::time::Instant::now();
        let key = q.next().await;
        assert!(start.elapsed() >= FIRST_RETRY);
        q.done(key, false);
        let start = std::time::Instant::now();
        let key = q.next().await;
        assert!(start.elapsed() >= FIRST_RETRY * 2);
        q.done(key, true);
        assert_eq!(backoff(0), FIRST_RETRY);
        assert_eq!(backoff(30), MAX_RETRY);
    }
}
