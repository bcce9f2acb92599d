//! The one error type of the crate. Its variants line up with the gRPC codes the server's API layer
//! answers with, so that layer maps them one to one instead of guessing from message text.

/// Why a store operation failed; the message names the record and says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataStoreError {
    /// The record named does not exist (gRPC `NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// A record with the same key, or a registration entry that is "similar" (same parent, SPIFFE ID
    /// and selectors), already exists (gRPC `ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// The request itself is malformed: bad entry ID, empty selector list, unparsable page token
    /// (gRPC `INVALID_ARGUMENT`).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is well-formed but the stored state forbids it, e.g. deleting a bundle that entries
    /// still federate with in RESTRICT mode (gRPC `FAILED_PRECONDITION`).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database gave up on the transaction because of a concurrent one (serialization failure,
    /// deadlock); retrying the call is safe (gRPC `ABORTED`).
    #[error("{0}")]
    Aborted(String),
    /// The database could not be reached or stayed locked past the busy timeout (gRPC `UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: corrupt rows, I/O failures, bugs (gRPC `INTERNAL`).
    #[error("{0}")]
    Internal(String),
}

impl DataStoreError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }
}

/// sqlx reports every backend's failures through one type; the mapping lives here so that the SQLite,
/// PostgreSQL and MySQL backends classify them the same way.
impl From<sqlx::Error> for DataStoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                match db.kind() {
                    ErrorKind::UniqueViolation => {
                        return Self::AlreadyExists(format!("record already exists: {}", db.message()));
                    }
                    ErrorKind::ForeignKeyViolation => {
                        return Self::FailedPrecondition(format!(
                            "the change would leave a dangling reference: {}",
                            db.message()
                        ));
                    }
                    _ => {}
                }
                match code.as_str() {
                    // SQLite: SQLITE_BUSY and its extended codes; the busy timeout has already elapsed.
                    "5" | "261" | "517" | "773" | "6" | "262" => Self::Unavailable(format!(
                        "the database stayed locked past the busy timeout ({}); another process holds a \
                         write transaction: retry, or raise the busy timeout",
                        db.message()
                    )),
                    // PostgreSQL: the server is shutting down or restarting, or the connection broke.
                    c if c.starts_with("57P0") || c.starts_with("08") => {
                        Self::Unavailable(format!("database unavailable: {}", db.message()))
                    }
                    // PostgreSQL serialization failure / deadlock; MySQL deadlock / lock wait timeout.
                    "40001" | "40P01" | "1213" | "1205" => {
                        Self::Aborted(format!("transaction aborted by a concurrent one, retry: {}", db.message()))
                    }
                    _ => Self::Internal(format!("database error: {}", db.message())),
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(format!("database unavailable: {err}"))
            }
            _ => Self::Internal(format!("database error: {err}")),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for DataStoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            // The database could not be reached or refused a statement: classified like any other.
            sqlx::migrate::MigrateError::Execute(e) => match Self::from(e) {
                Self::Internal(m) => Self::Internal(format!("schema migration failed: {m}")),
                other => other,
            },
            err => Self::Internal(format!("schema migration failed: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_unavailable() {
        assert!(matches!(DataStoreError::from(sqlx::Error::PoolTimedOut), DataStoreError::Unavailable(_)));
        assert!(matches!(DataStoreError::from(sqlx::Error::RowNotFound), DataStoreError::Internal(_)));
    }
}
