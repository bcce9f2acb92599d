//! The health checks listener: `ready_path` and `live_path`, judged by how recently the source was
//! polled successfully, with SPIRE's threshold (five poll intervals, at least three minutes, as
//! SPIRE computes it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, Request, Response, StatusCode};

use crate::config::HealthChecks;
use crate::handler::{Body, status_only, text_error};
use crate::keyset::KeySet;

const THRESHOLD_MULTIPLIER: u32 = 5;
const THRESHOLD_MIN: Duration = Duration::from_secs(180);

/// The health handler.
#[derive(Debug)]
pub struct Health {
    keys: Arc<KeySet>,
    threshold: Duration,
    started: Instant,
    ready_path: String,
    live_path: String,
}

/// How long after the last successful poll the provider still counts as healthy. SPIRE compares
/// five intervals to the minimum but then keeps one interval when that is larger; we do the same.
pub fn threshold(poll_interval: Duration) -> Duration {
    if poll_interval * THRESHOLD_MULTIPLIER < THRESHOLD_MIN { THRESHOLD_MIN } else { poll_interval }
}

impl Health {
    /// A handler over `keys`, which the source polls every `poll_interval`.
    pub fn new(keys: Arc<KeySet>, config: &HealthChecks, poll_interval: Duration) -> Self {
        Self {
            keys,
            threshold: threshold(poll_interval),
            started: Instant::now(),
            ready_path: config.ready_path.clone(),
            live_path: config.live_path.clone(),
        }
    }

    /// Answers one request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        let path = crate::urlpath::unescape(req.uri().path()).unwrap_or_default();
        let ready = path == self.ready_path;
        if !ready && path != self.live_path {
            return text_error(StatusCode::NOT_FOUND, "404 page not found");
        }
        if req.method() != Method::GET {
            return text_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let fresh = self.keys.last_successful_poll().map(|t| t.elapsed() < self.threshold);
        let ok = match (ready, fresh) {
            (_, Some(fresh)) => fresh,
            (true, None) => false,
            // Not polled yet: alive during the first threshold after start.
            (false, None) => self.started.elapsed() < self.threshold,
        };
        status_only(if ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(h: &Health, path: &str) -> StatusCode {
        h.handle(&Request::get(path).body(()).unwrap()).status()
    }

    #[test]
    fn threshold_as_spire() {
        assert_eq!(threshold(Duration::from_secs(10)), THRESHOLD_MIN);
        assert_eq!(threshold(Duration::from_secs(40)), Duration::from_secs(40));
    }

    #[test]
    fn ready_after_first_poll_live_from_start() {
        let keys = Arc::new(KeySet::new());
        let config = HealthChecks { bind_port: 8008, ready_path: "/ready".into(), live_path: "/live".into() };
        let h = Health::new(keys.clone(), &config, Duration::from_secs(10));
        assert_eq!(get(&h, "/ready"), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(get(&h, "/live"), StatusCode::OK);
        keys.update(vec![]);
        assert_eq!(get(&h, "/ready"), StatusCode::OK);
        assert_eq!(get(&h, "/other"), StatusCode::NOT_FOUND);
        let post = h.handle(&Request::post("/ready").body(()).unwrap()).status();
        assert_eq!(post, StatusCode::METHOD_NOT_ALLOWED);
    }
}
