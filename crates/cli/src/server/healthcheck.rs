//! `spire-server healthcheck`: `grpc.health.v1.Health/Check` on the private socket.

use spire_proto::grpc::health::v1::HealthCheckRequest;
use spire_proto::grpc::health::v1::health_check_response::ServingStatus;
use spire_proto::grpc::health::v1::health_client::HealthClient;

use super::ctx::Ctx;
use crate::error::{CliError, go_status};
use crate::flags::{FlagSet, Parsed, go_quote};

pub(crate) const SYNOPSIS: &str = "Determines server health status";

pub(crate) fn flags(fs: &mut FlagSet) {
    fs.bool("shallow", false, "Perform a less stringent health check").bool(
        "verbose",
        false,
        "Print verbose information",
    );
}

/// The server's overall health is asked for; `-shallow` makes no difference to what the server reports
/// over this socket (SPIRE checks the same service either way).
pub(crate) async fn run(ctx: &mut Ctx<'_>, f: &Parsed) -> Result<(), CliError> {
    let verbose = f.bool("verbose");
    if verbose {
        ctx.out("Checking server health...\n")?;
    }
    let outcome = match ctx.channel().await {
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| go_status(&s)),
        Err(e) => Err(e.to_string()),
    };
    let status = match outcome {
        Ok(status) => status,
        Err(why) => {
            if verbose {
                ctx.err(&format!("Failed to check health: {why}\n"))?;
            }
            return Err(CliError::msg("server is unhealthy: unable to determine health"));
        }
    };
    if status != ServingStatus::Serving as i32 {
        let name = ServingStatus::try_from(status).map(|s| s.as_str_name().to_owned()).unwrap_or(status.to_string());
        return Err(CliError::msg(format!("server is unhealthy: server returned status {}", go_quote(&name))));
    }
    ctx.out("Server is healthy.\n")
}
