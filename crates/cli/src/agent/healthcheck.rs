//! `spire-agent healthcheck`: `grpc.health.v1.Health/Check` on the agent's public socket.
//!
//! SPIRE's agent serves the health service next to the Workload API, so the check needs no admin
//! socket and no security header. Everything that goes wrong ends as `Agent is unhealthy: <why>` on
//! stderr; `-verbose` adds `Checking agent health...` on stdout and the RPC error itself. `-shallow` is
//! accepted and, as in SPIRE, changes nothing: the agent reports one overall status. Flag errors are
//! printed by Go's flag package only (message and usage), without a second copy.

use std::io::Write;

use spire_proto::grpc::health::v1::HealthCheckRequest;
use spire_proto::grpc::health::v1::health_check_response::ServingStatus;
use spire_proto::grpc::health::v1::health_client::HealthClient;

use super::api::INSTANCE_USAGE;
use super::dial;
use super::settings::{DEFAULT_SOCKET_PATH, Settings, resolve_socket_path};
use crate::error::go_status;
use crate::flags::{FlagError, FlagSet, go_quote};

pub(crate) const SYNOPSIS: &str = "Determines agent health status";

fn flag_set() -> FlagSet {
    let mut fs = FlagSet::new("health");
    fs.bool("shallow", false, "Perform a less stringent health check")
        .bool("verbose", false, "Print verbose information")
        .string("socketPath", DEFAULT_SOCKET_PATH, "Path to the SPIRE Agent API socket")
        .string("instance", "", INSTANCE_USAGE);
    fs
}

/// The usage block Go's flag package prints.
pub(crate) fn usage() -> String {
    flag_set().usage()
}

pub(crate) async fn run(args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write, settings: &Settings) -> i32 {
    let fs = flag_set();
    let flags = match fs.parse(args) {
        Ok(flags) => flags,
        Err(FlagError::Invalid(message)) => {
            let _ = write!(stderr, "{message}\n{}", fs.usage());
            return 1;
        }
        Err(FlagError::Help) => {
            let _ = stderr.write_all(fs.usage().as_bytes());
            return 1;
        }
    };
    let verbose = flags.bool("verbose");
    if verbose {
        let _ = stdout.write_all(b"Checking agent health...\n");
    }
    match check(&flags.string("socketPath"), &flags.string("instance"), verbose, stderr, settings).await {
        Ok(()) => match stdout.write_all(b"Agent is healthy.\n") {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(why) => {
            let _ = writeln!(stderr, "Agent is unhealthy: {why}");
            1
        }
    }
}

async fn check(
    socket_path: &str,
    instance: &str,
    verbose: bool,
    stderr: &mut dyn Write,
    settings: &Settings,
) -> Result<(), String> {
    let socket = resolve_socket_path(socket_path, instance, settings)?;
    let outcome = match dial::connect(&socket).await {
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map(|r| r.into_inner().status),
        Err(status) => Err(status),
    };
    let status = match outcome {
        Ok(status) => status,
        Err(e) => {
            if verbose {
                let _ = writeln!(stderr, "Failed to check health: {}", go_status(&e));
            }
            return Err("unable to determine health".to_owned());
        }
    };
    if status != ServingStatus::Serving as i32 {
        // Go's %q of the enum: its name, or its number for values the proto does not define.
        let name = ServingStatus::try_from(status).map_or_else(|_| status.to_string(), |s| s.as_str_name().to_owned());
        return Err(format!("agent returned status {}", go_quote(&name)));
    }
    Ok(())
}
