//! `grpc.health.v1.Health` on the private socket, for `spire-server healthcheck` and orchestrators.
//! The server reports SERVING once its CA signs, which is when it can do its job.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use spire_proto::grpc::health::v1::health_check_response::ServingStatus;
use spire_proto::grpc::health::v1::health_server::Health;
use spire_proto::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::ServerContext;

/// The health service.
#[derive(Debug, Clone)]
pub struct HealthService {
    ctx: Arc<ServerContext>,
}

impl HealthService {
    /// A service over `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        Self { ctx }
    }

    fn status(&self) -> ServingStatus {
        if self.ctx.ca.active().is_ok() { ServingStatus::Serving } else { ServingStatus::NotServing }
    }
}

/// Services whose health can be asked for by name ("" is the server as a whole).
const KNOWN: &[&str] = &[
    "",
    "spire.api.server.entry.v1.Entry",
    "spire.api.server.agent.v1.Agent",
    "spire.api.server.bundle.v1.Bundle",
    "spire.api.server.svid.v1.SVID",
    "spire.api.server.trustdomain.v1.TrustDomain",
];

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        if !KNOWN.contains(&request.get_ref().service.as_str()) {
            return Err(Status::not_found("unknown service"));
        }
        Ok(Response::new(HealthCheckResponse { status: self.status() as i32 }))
    }

    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        let status = self.status() as i32;
        let statuses: HashMap<String, HealthCheckResponse> =
            KNOWN.iter().map(|s| ((*s).to_owned(), HealthCheckResponse { status })).collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let known = KNOWN.contains(&request.get_ref().service.as_str());
        let this = self.clone();
        let stream =
            async_stream_like(move || if known { this.status() as i32 } else { ServingStatus::ServiceUnknown as i32 });
        Ok(Response::new(stream))
    }
}

/// Sends the status now and again whenever it changes (polled every second).
fn async_stream_like(status: impl Fn() -> i32 + Send + 'static) -> WatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let now = status();
            if last != Some(now) {
                if tx.send(Ok(HealthCheckResponse { status: now })).await.is_err() {
                    return;
                }
                last = Some(now);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
