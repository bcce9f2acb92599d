//! The pod list, fetched once for many attestations.
//!
//! As in SPIRE, a fetched list is reused for half the poll retry interval (250 ms by default), and
//! callers that need a list while one is being fetched wait for that fetch instead of starting
//! their own (SPIRE's `singleflight`). So a burst of Workload API calls from a node's pods costs one
//! kubelet request, and a caller polling for a container that is not there yet sees a list at most
//! half an interval old on each attempt. The fetch runs as a task of its own, so that it completes
//! and fills the cache even if the callers waiting for it go away. The answer (up to 256 MiB of
//! JSON) is parsed on Tokio's blocking pool, so that a large list does not hold up the async worker
//! serving other Workload API calls meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hyper::body::Bytes;
use tokio::time::Instant;

use super::kubelet::{KubeletClient, KubeletError};
use super::selectors::Pods;

/// Why no pod list could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The kubelet could not be asked, or refused.
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    /// Its answer is not a pod list.
    #[error("unable to parse kubelet response: {0}")]
    Parse(String),
    /// The fetching task died (it panicked, or the runtime is shutting down).
    #[error("pod list fetch aborted: {0}")]
    Aborted(String),
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Pods>, FetchError>>>;

#[derive(Default)]
struct State {
    list: Option<(Instant, Arc<Pods>)>,
    in_flight: Option<Fetch>,
}

/// The cached pod list of one plugin.
pub struct PodListCache {
    cache_for: Duration,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for PodListCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodListCache").field("cache_for", &self.cache_for).finish_non_exhaustive()
    }
}

impl PodListCache {
    /// A cache keeping each list for `cache_for`.
    pub fn new(cache_for: Duration) -> Self {
        Self { cache_for, state: Arc::default() }
    }

    /// A list at most `cache_for` old: the cached one, the one being fetched, or a new one from
    /// `client`.
    pub async fn get(&self, client: impl FnOnce() -> Arc<KubeletClient>) -> Result<Arc<Pods>, FetchError> {
        let fetch = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((valid_until, pods)) = &state.list
                && Instant::now() < *valid_until
            {
                return Ok(pods.clone());
            }
            match &state.in_flight {
                Some(fetch) => fetch.clone(),
                None => {
                    let fetch = self.start(client());
                    state.in_flight = Some(fetch.clone());
                    fetch
                }
            }
        };
        fetch.await
    }

    fn start(&self, client: Arc<KubeletClient>) -> Fetch {
        let (state, cache_for) = (self.state.clone(), self.cache_for);
        let task = tokio::spawn(async move {
            let result = match client.get_pod_list().await {
                Ok(body) => parse(body).await,
                Err(e) => Err(e.into()),
            };
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.in_flight = None;
            if let Ok(pods) = &result {
                state.list = Some((Instant::now() + cache_for, pods.clone()));
            }
            result
        });
        let state = self.state.clone();
        async move {
            task.await.unwrap_or_else(|e| {
                // The task did not get to clear its entry: do it, so the next caller starts afresh.
                state.lock().unwrap_or_else(|e| e.into_inner()).in_flight = None;
                Err(FetchError::Aborted(e.to_string()))
            })
        }
        .boxed()
        .shared()
    }
}

/// The pod list in `body`, parsed on the blocking pool (a big list takes a while).
async fn parse(body: Bytes) -> Result<Arc<Pods>, FetchError> {
    let parsed = tokio::task::spawn_blocking(move || Pods::parse(&body))
        .await
        .map_err(|e| FetchError::Aborted(e.to_string()))?;
    parsed.map(Arc::new).map_err(|e| FetchError::Parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_are_parsed_on_the_blocking_pool() {
        let body = Bytes::from_static(br#"{"items":[{"metadata":{"uid":"u1","name":"p","namespace":"n"}}]}"#);
        assert_eq!(parse(body).await.unwrap().len(), 1);
        let err = parse(Bytes::from_static(b"{")).await.unwrap_err();
        assert!(matches!(&err, FetchError::Parse(_)), "{err:?}");
        assert!(err.to_string().starts_with("unable to parse kubelet response: "), "{err}");
    }
}
