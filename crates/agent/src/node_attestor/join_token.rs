//! `join_token`: the payload is the token itself, as `spire-server token generate` printed it.
//!
//! The token comes from `join_token`, `join_token_file`, `-joinToken` or `-joinTokenFile`; a
//! `NodeAttestor "join_token"` block without any of them builds an attestor without a token, which
//! is fine for an agent that resumes with a stored SVID and an error only when it must attest.

use async_trait::async_trait;

use super::{NodeAttestor, NodeAttestorError};

/// The attestation type and plugin name.
pub const PLUGIN_NAME: &str = "join_token";

/// Why the join token attestor cannot attest.
#[derive(Debug, thiserror::Error)]
pub enum JoinTokenError {
    /// No token was configured. Join tokens are single use, so an agent that lost its SVID needs
    /// a new one from the operator.
    #[error("the agent has no valid SVID and no join token to attest with")]
    NoToken,
}

/// Attests with a join token.
#[derive(Clone)]
pub struct JoinTokenAttestor {
    token: Option<String>,
}

impl JoinTokenAttestor {
    /// An attestor for `token`; `None` when none is configured.
    pub fn new(token: Option<String>) -> Self {
        Self { token: token.filter(|t| !t.is_empty()) }
    }
}

/// The token is a credential: it stays out of logs.
impl std::fmt::Debug for JoinTokenAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokenAttestor").field("has_token", &self.token.is_some()).finish()
    }
}

#[async_trait]
impl NodeAttestor for JoinTokenAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let token = self.token.as_ref().ok_or_else(|| NodeAttestorError::plugin(JoinTokenError::NoToken))?;
        Ok(token.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_payload_is_the_token() {
        let a = JoinTokenAttestor::new(Some("6c5b2d9e".into()));
        assert_eq!(a.name(), "join_token");
        assert_eq!(a.payload().await.unwrap(), b"6c5b2d9e");
        assert!(!format!("{a:?}").contains("6c5b2d9e"), "the token is not logged");
    }

    #[tokio::test]
    async fn without_a_token_it_says_so() {
        for token in [None, Some(String::new())] {
            let err = JoinTokenAttestor::new(token).payload().await.unwrap_err();
            assert_eq!(err.to_string(), "the agent has no valid SVID and no join token to attest with");
        }
    }

    #[tokio::test]
    async fn challenges_are_refused() {
        let err = JoinTokenAttestor::new(Some("t".into())).challenge(b"c").await.unwrap_err();
        assert!(matches!(err, NodeAttestorError::UnexpectedChallenge));
    }
}
