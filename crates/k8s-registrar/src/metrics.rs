//! The Prometheus listener of the reconcile and crd modes (`metrics_addr` / `metrics_bind_addr`;
//! `0` disables it), with controller-runtime's reconcile metrics, which SPIRE's registrar exported
//! through its manager: `controller_runtime_reconcile_total{controller,result}`,
//! `controller_runtime_reconcile_errors_total{controller}` and
//! `controller_runtime_reconcile_time_seconds{controller}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::https::{self, ListenError, error};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

/// The registrar's metrics, shared by its controllers.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    total: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    time: Family<ControllerLabels, Histogram>,
}

/// How one reconciliation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Failed; retried with backoff.
    Error,
    /// Done for now, to be looked at again.
    Requeue,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let total = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ControllerLabels, Counter>::default();
        let time = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            time.clone(),
        );
        Self { registry: Arc::new(Mutex::new(registry)), total, errors, time }
    }
}

impl Metrics {
    /// Records one reconciliation of `controller`.
    pub fn reconciled(&self, controller: &str, outcome: Outcome, took: Duration) {
        let result = match outcome {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Requeue => "requeue",
        };
        self.total.get_or_create(&ResultLabels { controller: controller.into(), result: result.into() }).inc();
        let labels = ControllerLabels { controller: controller.into() };
        if outcome == Outcome::Error {
            self.errors.get_or_create(&labels).inc();
        }
        self.time.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics registry");
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoding to a String");
        text
    }

    /// Serves `GET /metrics` on `addr` (Go syntax) until the listener fails; `"0"` serves nothing.
    pub async fn serve(self, addr: &str) -> Result<(), ListenError> {
        if addr == "0" {
            std::future::pending::<()>().await;
        }
        let listener = https::bind(addr).await?;
        tracing::info!(addr, "Serving metrics");
        https::serve(listener, None, move |request| {
            let metrics = self.clone();
            async move {
                if request.path != "/metrics" {
                    return error(StatusCode::NOT_FOUND, "404 page not found");
                }
                if request.method != Method::GET {
                    return error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                }
                (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.encode().into_bytes())
            }
        })
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciliations_are_counted_by_controller_and_result() {
        let m = Metrics::default();
        m.reconciled("pod", Outcome::Success, Duration::from_millis(3));
        m.reconciled("pod", Outcome::Error, Duration::from_millis(3));
        let text = m.encode();
        assert!(text.contains(r#"controller_runtime_reconcile_total{controller="pod",result="success"} 1"#), "{text}");
        assert!(text.contains(r#"controller_runtime_reconcile_errors_total{controller="pod"} 1"#), "{text}");
        assert!(text.contains("controller_runtime_reconcile_time_seconds_count"), "{text}");
    }
}
