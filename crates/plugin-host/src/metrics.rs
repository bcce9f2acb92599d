//! The `Metrics` host service: what plugins emit through SPIRE's telemetry (counters, gauges,
//! samples, timings), kept by name and labels until the daemon exports metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use spire_proto::spire::hostservice::common::metrics::v1 as metricsv1;
use tonic::{Request, Response, Status};

/// A metric's identity: its key parts joined with `.` and its labels, `name=value`, sorted.
pub type MetricKey = (String, Vec<(String, String)>);

/// Totals per metric, shared by every plugin of a daemon.
#[derive(Debug, Clone, Default)]
pub struct PluginMetrics {
    inner: Arc<Mutex<BTreeMap<MetricKey, Recorded>>>,
}

/// What was recorded for one metric.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// The sum of counter increments.
    pub counter: f64,
    /// The last gauge value.
    pub gauge: Option<f64>,
    /// How many samples or timings were added.
    pub samples: u64,
}

impl PluginMetrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The metric `key` (parts joined with `.`) with `labels`, if recorded.
    pub fn get(&self, key: &str, labels: &[(&str, &str)]) -> Option<Recorded> {
        let mut labels: Vec<(String, String)> =
            labels.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        labels.sort();
        self.inner.lock().expect("not poisoned").get(&(key.to_owned(), labels)).cloned()
    }

    /// Every metric recorded.
    pub fn snapshot(&self) -> BTreeMap<MetricKey, Recorded> {
        self.inner.lock().expect("not poisoned").clone()
    }

    /// The gRPC service to offer plugins.
    pub fn service(&self) -> metricsv1::metrics_server::MetricsServer<Self> {
        metricsv1::metrics_server::MetricsServer::new(self.clone())
    }

    fn record(
        &self,
        key: &[String],
        labels: &[metricsv1::Label],
        update: impl FnOnce(&mut Recorded),
    ) -> Result<(), Status> {
        if key.is_empty() || key.iter().any(String::is_empty) {
            return Err(Status::invalid_argument("metric key must have non-empty parts"));
        }
        let mut labels: Vec<(String, String)> = labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
        labels.sort();
        let mut map = self.inner.lock().expect("not poisoned");
        update(map.entry((key.join("."), labels)).or_default());
        Ok(())
    }
}

#[tonic::async_trait]
impl metricsv1::metrics_server::Metrics for PluginMetrics {
    async fn set_gauge(&self, request: Request<metricsv1::SetGaugeRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.record(&r.key, &r.labels, |m| m.gauge = Some(f64::from(r.val)))?;
        Ok(Response::new(()))
    }

    async fn emit_key(&self, request: Request<metricsv1::EmitKeyRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.record(&r.key, &[], |m| m.gauge = Some(f64::from(r.val)))?;
        Ok(Response::new(()))
    }

    async fn incr_counter(&self, request: Request<metricsv1::IncrCounterRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.record(&r.key, &r.labels, |m| m.counter += f64::from(r.val))?;
        Ok(Response::new(()))
    }

    async fn add_sample(&self, request: Request<metricsv1::AddSampleRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.record(&r.key, &r.labels, |m| m.samples += 1)?;
        Ok(Response::new(()))
    }

    async fn measure_since(&self, request: Request<metricsv1::MeasureSinceRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.record(&r.key, &r.labels, |m| m.samples += 1)?;
        Ok(Response::new(()))
    }
}
