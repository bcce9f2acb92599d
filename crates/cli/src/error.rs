//! The errors a command reports as `Error: <message>`, worded as SPIRE's Go code words them.

use std::io;

use tonic::{Code, Status};

use crate::goerror::errno_text;

/// Why a command failed. `Display` is the text after `Error: `.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A validation or usage problem, already worded.
    #[error("{0}")]
    Message(String),
    /// An RPC failed: `rpc error: code = NotFound desc = ...`, optionally behind a context prefix.
    #[error("{}{}", .context, go_status(.status))]
    Rpc {
        /// Text SPIRE puts before the status (`error fetching entries: `), possibly empty.
        context: String,
        /// The status the server (or transport) returned.
        status: Box<Status>,
    },
    /// The API socket could not be dialled (grpc-go's wording).
    #[error("connection error: desc = \"transport: error while dialing: dial unix {path}: connect: {reason}\"")]
    Dial {
        /// The socket path as given.
        path: String,
        /// The system error, as Go prints it (`no such file or directory`).
        reason: String,
    },
    /// The connection was made but the HTTP/2 handshake failed.
    #[error("connection error: desc = \"transport: {0}\"")]
    Transport(String),
    /// Writing output failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl CliError {
    /// An error with a ready message.
    pub(crate) fn msg(text: impl Into<String>) -> Self {
        Self::Message(text.into())
    }

    /// Wraps a message in a context prefix (`failed to list agents: ...`), as Go's `%w` does.
    pub(crate) fn context(self, prefix: &str) -> Self {
        match self {
            Self::Rpc { context, status } => Self::Rpc { context: format!("{prefix}: {context}"), status },
            Self::Dial { .. } | Self::Transport(_) => self,
            other => Self::Message(format!("{prefix}: {other}")),
        }
    }
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        Self::Rpc { context: String::new(), status: Box::new(status) }
    }
}

/// grpc-go's `status.Error` text: `rpc error: code = <Name> desc = <message>`.
pub(crate) fn go_status(status: &Status) -> String {
    format!("rpc error: code = {} desc = {}", go_code_name(status.code() as i32), status.message())
}

/// grpc-go's `codes.Code.String()`, also used for the integer codes in batch results.
pub(crate) fn go_code_name(code: i32) -> String {
    let name = match Code::from_i32(code) {
        Code::Ok if code == 0 => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown if code == 2 => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
        _ => return format!("Code({code})"),
    };
    name.to_owned()
}

/// Go's `*fs.PathError` text: `open /x: no such file or directory`.
pub(crate) fn go_path_error(op: &str, path: &str, err: &io::Error) -> CliError {
    CliError::msg(format!("{op} {path}: {}", errno_text(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_matches_grpc_go() {
        let err = CliError::from(Status::internal("internal server error"));
        assert_eq!(err.to_string(), "rpc error: code = Internal desc = internal server error");
        let err = CliError::from(Status::not_found("entry not found")).context("error fetching entry ID x");
        assert_eq!(err.to_string(), "error fetching entry ID x: rpc error: code = NotFound desc = entry not found");
        assert_eq!(go_code_name(6), "AlreadyExists");
        assert_eq!(go_code_name(1), "Canceled");
        assert_eq!(go_code_name(0), "OK");
        assert_eq!(go_code_name(42), "Code(42)");
    }

    #[test]
    fn dial_error_matches_spire() {
        let err = CliError::Dial { path: "/does-not-exist.sock".into(), reason: "no such file or directory".into() };
        assert_eq!(
            err.to_string(),
            "connection error: desc = \"transport: error while dialing: dial unix /does-not-exist.sock: connect: no such file or directory\""
        );
    }

    #[test]
    fn path_errors_like_go() {
        let err = io::Error::from_raw_os_error(2);
        assert_eq!(go_path_error("open", "/x", &err).to_string(), "open /x: no such file or directory");
    }
}
