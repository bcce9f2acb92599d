//! Node attestation plugins: what the agent proves about its node to get its first SVID.
//!
//! A plugin produces the attestation payload the server's plugin of the same name checks, and
//! answers the challenges that server plugin may send back. Driving the `AttestAgent` stream (the
//! CSR, the rounds, the result) is [`crate::node::attest`]'s job, the same for every plugin, so a new
//! attestor (x509pop, tpm_devid) is one module here and one arm in `cli_run::node_attestor`. The wire
//! formats shared with the server live in the `spire-attestation` crate.
//!
//! - [`http_challenge`]: a host name, proven by serving the server's nonce over HTTP on it.
//! - [`join_token`]: the token issued by `spire-server token generate`; single use, not re-attestable.
//! - [`k8s_psat`]: the cluster name and a projected service-account token read from a file.
//! - [`x509pop`]: a certificate chain, and proof of possession of the leaf's key.
//! - [`sshpop`]: an SSH host certificate, and proof of possession of the host key.
//! - [`tpm_devid`]: a TPM-resident DevID key, its certificate, and proof that the key lives in a TPM
//!   with a trusted endorsement certificate.

pub mod aws_iid;
pub mod azure_msi;
pub mod gcp_iit;
pub mod http_challenge;
pub mod join_token;
pub mod k8s_psat;
pub mod sshpop;
pub mod tpm_devid;
pub mod x509pop;

use std::fmt;

use async_trait::async_trait;

pub use aws_iid::{AwsIidAttestor, AwsIidConfig};
pub use azure_msi::{AzureMsiAttestor, AzureMsiConfig};
pub use gcp_iit::{GcpIitAttestor, GcpIitConfig};
pub use http_challenge::{HttpChallengeAttestor, HttpChallengeConfig};
pub use join_token::JoinTokenAttestor;
pub use k8s_psat::{K8sPsatAttestor, K8sPsatConfig};
pub use sshpop::{SshPopAttestor, SshPopConfig};
pub use tpm_devid::{TpmDevIdAttestor, TpmDevIdConfig};
pub use x509pop::{X509PopAttestor, X509PopConfig};

/// The agent half of a node attestor.
///
/// Attestation may run again while the agent runs (re-attestation, when the server says the
/// agent's attestation is re-attestable), so implementations read what may change (a rotated token
/// file) at each call rather than once at start.
#[async_trait]
pub trait NodeAttestor: Send + Sync + fmt::Debug {
    /// The plugin name, sent as the attestation data type (`join_token`, `k8s_psat`).
    fn name(&self) -> &str;

    /// The attestation payload for this attempt.
    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError>;

    /// The response to a server challenge. Plugins whose server half never challenges keep the
    /// default, which refuses with SPIRE's wording.
    async fn challenge(&self, _challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        Err(NodeAttestorError::UnexpectedChallenge)
    }

    /// Begins one attestation attempt, which gives the payload and answers the server's challenges.
    ///
    /// The built-in plugins keep the default, which calls [`NodeAttestor::payload`] and
    /// [`NodeAttestor::challenge`]. A plugin whose rounds share state the attempt must own (an
    /// external plugin's `AidAttestation` stream, SPIRE's agent plugin protocol) overrides it; the
    /// attempt ends when it is dropped.
    async fn begin(&self) -> Result<Box<dyn Attempt + '_>, NodeAttestorError> {
        Ok(Box::new(Stateless(self)))
    }
}

/// One attestation attempt ([`NodeAttestor::begin`]): the payload first, then one answer per
/// server challenge, in order.
#[async_trait]
pub trait Attempt: Send {
    /// The attestation payload.
    async fn payload(&mut self) -> Result<Vec<u8>, NodeAttestorError>;

    /// The response to the server's next challenge.
    async fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError>;
}

/// The attempt of a plugin whose [`NodeAttestor::payload`] and [`NodeAttestor::challenge`] hold
/// what a round needs.
struct Stateless<'a, A: ?Sized>(&'a A);

#[async_trait]
impl<A: NodeAttestor + ?Sized> Attempt for Stateless<'_, A> {
    async fn payload(&mut self) -> Result<Vec<u8>, NodeAttestorError> {
        self.0.payload().await
    }

    async fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, NodeAttestorError> {
        self.0.challenge(challenge).await
    }
}

/// Why a node attestor could not produce a payload or a challenge response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeAttestorError {
    /// The plugin failed; the message is the plugin's own.
    #[error(transparent)]
    Plugin(Box<dyn std::error::Error + Send + Sync>),
    /// The server challenged a plugin that has nothing to answer with.
    #[error("server issued unexpected challenge")]
    UnexpectedChallenge,
    /// An external plugin failed: its status, already prefixed `nodeattestor(<name>): ` as SPIRE's
    /// facade prefixes it, so that the whole error reads as SPIRE's does.
    #[error("{}", spire_plugin_host::go_status(.0))]
    Status(tonic::Status),
}

impl NodeAttestorError {
    /// A plugin failure from a plugin's own error type.
    pub fn plugin(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Plugin(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Silent;

    #[async_trait]
    impl NodeAttestor for Silent {
        fn name(&self) -> &str {
            "silent"
        }
        async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
            Ok(b"p".to_vec())
        }
    }

    #[tokio::test]
    async fn plugins_refuse_challenges_by_default() {
        let err = Silent.challenge(b"nonce").await.unwrap_err();
        assert!(matches!(err, NodeAttestorError::UnexpectedChallenge));
        assert_eq!(err.to_string(), "server issued unexpected challenge");
    }
}
