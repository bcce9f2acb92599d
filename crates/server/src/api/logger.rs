//! `spire.api.server.logger.v1.Logger` on the private socket: change the log level of a running
//! server without a restart.

use std::sync::{Arc, Mutex};

use spire_proto::spire::api::server::logger::v1::logger_server::Logger;
use spire_proto::spire::api::server::logger::v1::{GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest};
use spire_proto::spire::api::types::{LogLevel, Logger as LoggerState};
use tonic::{Request, Response, Status};

/// Applies a level to the process's logger (the tracing filter reload handle, in the binary).
pub use spire_cli::logging::LevelSetter;

/// The logger service.
#[derive(Clone)]
pub struct LoggerService {
    launch: LogLevel,
    current: Arc<Mutex<LogLevel>>,
    set: LevelSetter,
}

impl std::fmt::Debug for LoggerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggerService").field("launch", &self.launch).finish_non_exhaustive()
    }
}

impl LoggerService {
    /// A service for a process started at `launch` level.
    pub fn new(launch: LogLevel, set: LevelSetter) -> Self {
        Self { launch, current: Arc::new(Mutex::new(launch)), set }
    }

    fn state(&self) -> LoggerState {
        LoggerState {
            current_level: *self.current.lock().expect("level lock") as i32,
            launch_level: self.launch as i32,
        }
    }

    fn apply(&self, level: LogLevel) -> Result<Response<LoggerState>, Status> {
        (self.set)(level).map_err(Status::internal)?;
        *self.current.lock().expect("level lock") = level;
        Ok(Response::new(self.state()))
    }
}

#[tonic::async_trait]
impl Logger for LoggerService {
    async fn get_logger(&self, _: Request<GetLoggerRequest>) -> Result<Response<LoggerState>, Status> {
        Ok(Response::new(self.state()))
    }

    async fn set_log_level(&self, request: Request<SetLogLevelRequest>) -> Result<Response<LoggerState>, Status> {
        let level = LogLevel::try_from(request.get_ref().new_level)
            .ok()
            .filter(|l| *l != LogLevel::Unspecified)
            .ok_or_else(|| Status::invalid_argument("newLevel value cannot be LogLevel_UNSPECIFIED"))?;
        self.apply(level)
    }

    async fn reset_log_level(&self, _: Request<ResetLogLevelRequest>) -> Result<Response<LoggerState>, Status> {
        self.apply(self.launch)
    }
}
