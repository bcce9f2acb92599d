//! `grpc.health.v1.Health` on the Workload API socket, for `spire-agent healthcheck`: SERVING once the
//! agent has synced with its server at least once.

use std::collections::HashMap;
use std::pin::Pin;

use spire_proto::grpc::health::v1::health_check_response::ServingStatus;
use spire_proto::grpc::health::v1::health_server::Health;
use spire_proto::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::manager::Cache;

/// The agent's health service.
#[derive(Debug, Clone)]
pub struct AgentHealth {
    cache: Cache,
}

impl AgentHealth {
    /// Health derived from the cache's state.
    pub fn new(cache: Cache) -> Self {
        Self { cache }
    }

    fn status(&self) -> i32 {
        let s = if self.cache.snapshot().ready { ServingStatus::Serving } else { ServingStatus::NotServing };
        s as i32
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for AgentHealth {
    async fn check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse { status: self.status() }))
    }

    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        let statuses = HashMap::from([(String::new(), HealthCheckResponse { status: self.status() })]);
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let status = self.status();
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(HealthCheckResponse { status })))))
    }
}
