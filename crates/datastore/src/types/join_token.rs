//! Join tokens: single-use secrets an agent presents to attest with the `join_token` attestor.

/// A join token and when it stops being accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The secret itself.
    pub token: String,
    /// Unix seconds after which the token is refused and pruned.
    pub expires_at: i64,
}
