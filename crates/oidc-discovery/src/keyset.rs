//! The key set last fetched from the source, shared by the poller (writer) and the HTTP handlers
//! (readers). It records when the keys last changed (the JWKS's `Last-Modified`) and when a poll
//! last succeeded (the health checks' input), as SPIRE's sources do.

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use spire_identity::jwk::Jwk;

#[derive(Debug, Default)]
struct State {
    keys: Option<(Arc<Vec<Jwk>>, SystemTime)>,
    last_poll: Option<Instant>,
}

/// The shared key set.
#[derive(Debug, Default)]
pub struct KeySet {
    state: RwLock<State>,
}

impl KeySet {
    /// An empty set: nothing fetched yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys and when they last changed; `None` before the first successful poll.
    pub fn fetch(&self) -> Option<(Arc<Vec<Jwk>>, SystemTime)> {
        self.state.read().expect("key set lock").keys.clone()
    }

    /// When a poll last succeeded.
    pub fn last_successful_poll(&self) -> Option<Instant> {
        self.state.read().expect("key set lock").last_poll
    }

    /// Records a successful poll; the modification time moves only if the keys changed.
    pub fn update(&self, keys: Vec<Jwk>) {
        let mut state = self.state.write().expect("key set lock");
        let changed = state.keys.as_ref().is_none_or(|(current, _)| **current != keys);
        if changed {
            state.keys = Some((Arc::new(keys), SystemTime::now()));
        }
        state.last_poll = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modification_time_moves_only_on_change() {
        let set = KeySet::new();
        assert!(set.fetch().is_none() && set.last_successful_poll().is_none());
        let k = Jwk { kty: "EC".into(), kid: Some("a".into()), ..Jwk::default() };
        set.update(vec![k.clone()]);
        let (_, first) = set.fetch().unwrap();
        let polled = set.last_successful_poll().unwrap();
        set.update(vec![k.clone()]);
        assert_eq!(set.fetch().unwrap().1, first);
        assert!(set.last_successful_poll().unwrap() >= polled);
        set.update(vec![]);
        assert!(set.fetch().unwrap().0.is_empty());
    }
}
