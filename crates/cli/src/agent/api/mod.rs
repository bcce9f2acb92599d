//! The `spire-agent api` commands (SPIRE's `cmd/spire-agent/cli/api`).
//!
//! `fetch x509`, `fetch jwt` and `validate jwt` share SPIRE's adapter (`common.go`): the flags
//! `-timeout` (default 5s), `-socketPath` and `-instance` come first, flag errors are printed by Go's
//! flag package (message, usage) and then once more by the adapter, and every other error is printed
//! bare on stderr with exit code 1. Each RPC carries the `workload.spiffe.io: true` security header and
//! its own deadline of `-timeout`, as `prepareContext` gives it. `watch` is a separate command with its
//! own flag handling ([`watch`]).

pub(crate) mod fetch_jwt;
pub(crate) mod fetch_x509;
mod printer;
mod protojson;
mod svid;
pub(crate) mod validate_jwt;
pub(crate) mod watch;

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::settings::{DEFAULT_SOCKET_PATH, Settings, resolve_socket_path};
use super::vars::{VarFlags, VarKind, VarValues};
use super::{Cmd, dial};
use crate::error::go_status;
use crate::flags::{FlagError, FlagSet, Parsed};
use crate::gotime::GoDuration;
use crate::output::OutputFormat;

/// `commandTimeout` in SPIRE's `common.go`.
const DEFAULT_TIMEOUT: GoDuration = GoDuration(5_000_000_000);

/// The security header the Workload API requires on every call.
const SECURITY_HEADER: &str = "workload.spiffe.io";

/// Usage of the public socket flag in the api commands (`common.ConfigOS`).
pub(crate) const SOCKET_PATH_USAGE: &str = "Path to the SPIRE Agent API Unix domain socket";

/// Usage of `-instance`.
pub(crate) const INSTANCE_USAGE: &str =
    "Instance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).";

/// Why an api command failed: the text SPIRE prints, without the newline.
pub(crate) type CmdError = String;

/// The flags of an adapted command, as SPIRE's `adaptCommand` builds them.
fn flag_set(cmd: Cmd) -> (FlagSet, VarFlags) {
    let name = match cmd {
        Cmd::FetchX509 => "fetch x509",
        Cmd::FetchJwt => "fetch jwt",
        Cmd::ValidateJwt => "validate jwt",
        Cmd::Watch | Cmd::Healthcheck => unreachable!("not an adapted api command"),
    };
    let mut fs = FlagSet::new(name);
    let mut vars = VarFlags::default();
    // DurationFlag's zero value prints "0s", so Go shows the 5s default.
    vars.declare(&mut fs, "timeout", VarKind::Duration, "Time to wait for a response (default 5s)");
    fs.string("socketPath", DEFAULT_SOCKET_PATH, SOCKET_PATH_USAGE).string("instance", "", INSTANCE_USAGE);
    match cmd {
        Cmd::FetchX509 => fetch_x509::flags(&mut fs, &mut vars),
        Cmd::FetchJwt => fetch_jwt::flags(&mut fs, &mut vars),
        Cmd::ValidateJwt => validate_jwt::flags(&mut fs, &mut vars),
        Cmd::Watch | Cmd::Healthcheck => unreachable!("not an adapted api command"),
    }
    (fs, vars)
}

/// The usage block Go's flag package prints for `cmd`.
pub(crate) fn usage(cmd: Cmd) -> String {
    flag_set(cmd).0.usage()
}

/// Runs an adapted command.
pub(crate) async fn run(
    cmd: Cmd,
    args: &[String],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    settings: &Settings,
) -> i32 {
    let (fs, vars) = flag_set(cmd);
    let (flags, values) = match vars.parse(&fs, args) {
        Ok(parsed) => parsed,
        Err(FlagError::Invalid(message)) => {
            let _ = write!(stderr, "{message}\n{}{message}\n", fs.usage());
            return 1;
        }
        Err(FlagError::Help) => {
            let _ = writeln!(stderr, "{}flag: help requested", fs.usage());
            return 1;
        }
    };
    let socket = match resolve_socket_path(&flags.string("socketPath"), &flags.string("instance"), settings) {
        Ok(path) => path,
        Err(message) => {
            let _ = writeln!(stderr, "{message}");
            return 1;
        }
    };
    let timeout = values.duration("timeout", DEFAULT_TIMEOUT);
    let mut ctx = ApiCtx { stdout, flags: &flags, vars: &values, client: WorkloadClient::new(socket, timeout) };
    let result = match cmd {
        Cmd::FetchX509 => fetch_x509::run(&mut ctx).await,
        Cmd::FetchJwt => fetch_jwt::run(&mut ctx).await,
        Cmd::ValidateJwt => validate_jwt::run(&mut ctx).await,
        Cmd::Watch | Cmd::Healthcheck => unreachable!("not an adapted api command"),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(stderr, "{message}");
            1
        }
    }
}

/// What an adapted command runs with.
pub(crate) struct ApiCtx<'a> {
    pub(crate) stdout: &'a mut dyn Write,
    pub(crate) flags: &'a Parsed,
    pub(crate) vars: &'a VarValues,
    pub(crate) client: WorkloadClient,
}

impl ApiCtx<'_> {
    /// Writes to stdout.
    pub(crate) fn out(&mut self, text: &str) -> Result<(), CmdError> {
        self.stdout.write_all(text.as_bytes()).map_err(|e| crate::goerror::errno_text(&e))
    }

    /// The `-output` format.
    pub(crate) fn output(&self) -> OutputFormat {
        self.vars.output()
    }
}

/// A Workload API client as SPIRE's `workloadClient`: dialled on first use (grpc-go's clients are
/// lazy, so flag validation comes first), with the deadline each call gets.
pub(crate) struct WorkloadClient {
    socket: String,
    timeout: GoDuration,
    channel: Option<Channel>,
}

impl WorkloadClient {
    fn new(socket: String, timeout: GoDuration) -> Self {
        Self { socket, timeout, channel: None }
    }

    /// The gRPC client, connecting on first use.
    pub(crate) async fn api(&mut self) -> Result<SpiffeWorkloadApiClient<Channel>, Status> {
        let channel = match &self.channel {
            Some(channel) => channel.clone(),
            None => self.channel.insert(dial::connect(&self.socket).await?).clone(),
        };
        Ok(SpiffeWorkloadApiClient::new(channel))
    }

    /// The deadline of each call, if `-timeout` is positive.
    pub(crate) fn deadline(&self) -> Option<Duration> {
        u64::try_from(self.timeout.0).ok().filter(|&n| n > 0).map(Duration::from_nanos)
    }
}

/// A request carrying the `workload.spiffe.io: true` security header, as `prepareContext` adds it. The
/// call's deadline is enforced on this side by [`within`] and deliberately not sent as `grpc-timeout`:
/// a tonic server would race the client and answer `Cancelled: Timeout expired` where grpc-go's client
/// reports its own `DeadlineExceeded`.
pub(crate) fn with_header<T>(message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(SECURITY_HEADER, MetadataValue::from_static("true"));
    req
}

/// Runs one call (connection, RPC and, for streams, the first message) under `deadline`; running out of
/// time gives the status grpc-go gives when its context expires.
pub(crate) async fn within<T, E: From<CallError>>(
    deadline: Option<Duration>,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match deadline {
        Some(d) => tokio::time::timeout(d, call)
            .await
            .unwrap_or_else(|_| Err(CallError::Status(Status::deadline_exceeded("context deadline exceeded")).into())),
        None => call.await,
    }
}

/// How a call ended without a message: a gRPC status, or the end of a stream (Go's `io.EOF`).
#[derive(Debug)]
pub(crate) enum CallError {
    Status(Status),
    Eof,
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl CallError {
    /// The code grpc-go's `status.Code` gives (`Unknown` for `io.EOF`).
    pub(crate) fn code(&self) -> tonic::Code {
        match self {
            Self::Status(s) => s.code(),
            Self::Eof => tonic::Code::Unknown,
        }
    }
}

impl std::fmt::Display for CallError {
    /// `rpc error: code = ... desc = ...`, or `EOF`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => f.write_str(&go_status(s)),
            Self::Eof => f.write_str("EOF"),
        }
    }
}

/// The next message of a server stream, as Go's `Recv` gives it.
pub(crate) async fn recv<T>(stream: &mut tonic::Streaming<T>) -> Result<T, CallError> {
    stream.message().await?.ok_or(CallError::Eof)
}
