//! Connecting to the agent's public socket, with failures worded as grpc-go reports them.
//!
//! SPIRE's agent CLI creates its gRPC client lazily, so a missing or refusing socket surfaces as the
//! status of the first RPC: `rpc error: code = Unavailable desc = connection error: desc = "transport:
//! Error while dialing: dial unix /path: connect: no such file or directory"` (grpc-go capitalises
//! "Error" there). The commands turn that status into text the same way as any server status, so
//! SPIRE's context prefixes (`failed to receive JWT bundles: ...`) apply to it as they do in Go.

use tonic::Status;
use tonic::transport::Channel;

use crate::client::connect_unix;
use crate::error::CliError;

/// A channel to the gRPC server on the Unix socket at `path` (absolute), or the status grpc-go would
/// fail the first RPC with.
pub(crate) async fn connect(path: &str) -> Result<Channel, Status> {
    connect_unix(path).await.map_err(|e| match e {
        CliError::Dial { path, reason } => Status::unavailable(format!(
            "connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: {reason}\""
        )),
        CliError::Transport(why) => Status::unavailable(format!("connection error: desc = \"transport: {why}\"")),
        other => Status::unavailable(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::go_status;

    #[tokio::test]
    async fn missing_socket_reads_like_grpc_go() {
        let status = connect("/does-not-exist/api.sock").await.unwrap_err();
        assert_eq!(
            go_status(&status),
            "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /does-not-exist/api.sock: connect: no such file or directory\""
        );
    }
}
