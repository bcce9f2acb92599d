//! NodeAttestor `http_challenge`: an agent proves it answers HTTP on the host name it claims.
//!
//! The payload names a host, an agent name and a port ([`spire_attestation::http_challenge`]).
//! The server checks them against its configuration ([`config`]), sends a random nonce, then
//! fetches `http://<hostname>:<port>/.well-known/spiffe/nodeattestor/http_challenge/<agentname>/challenge`
//! ([`fetch`]) and requires the nonce back. The agent is
//! `spiffe://<td>/spire/agent/http_challenge/<hostname>` with the selector `hostname:<hostname>`.
//!
//! Anything on the node that can listen on the port can answer, so by default (`tofu`) a host
//! name attests once: a second attestation of an agent ID already known is refused through the
//! [`AgentStore`] until the agent is evicted, and agents renew their SVIDs rather than re-attest.
//! With `tofu = false` (only allowed with root ports) agents re-attest.

pub mod config;
pub mod error;
pub mod fetch;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;
use spire_attestation::http_challenge::{AttestationData, Challenge, MAX_BODY, PLUGIN_NAME, challenge_path};
use spire_identity::{SpiffeId, TrustDomain};
use tonic::Status;

pub use self::config::HttpChallengeConfig;
pub use self::error::AttestError;
use super::{AgentStore, AttestResult, Challenger, NodeAttestor, ensure_not_attested, plugin_status};

/// The attestation type and plugin name.
pub const NAME: &str = PLUGIN_NAME;

/// SPIRE's agent name pattern, quirks kept: `A-z` also admits `[`, `\`, `]`, `^`, `_` and `` ` ``,
/// and a name is letters followed by exactly one letter, digit or dash.
static AGENT_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-zA-z]+[a-zA-Z0-9-]$").expect("the agent name pattern compiles"));

/// The longest agent name SPIRE accepts, in bytes.
const MAX_AGENT_NAME: usize = 32;

/// The `http_challenge` attestor.
#[derive(Debug)]
pub struct HttpChallengeAttestor {
    trust_domain: TrustDomain,
    config: HttpChallengeConfig,
    agents: Arc<dyn AgentStore>,
    fetch_timeout: Duration,
}

impl HttpChallengeAttestor {
    /// The attestor for a decoded `config`; `agents` answers the TOFU question.
    pub fn new(config: HttpChallengeConfig, trust_domain: TrustDomain, agents: Arc<dyn AgentStore>) -> Self {
        Self { trust_domain, config, agents, fetch_timeout: fetch::TIMEOUT }
    }

    /// The same attestor giving up on a fetch after `timeout` (for tests of silent agents).
    pub fn with_fetch_timeout(self, timeout: Duration) -> Self {
        Self { fetch_timeout: timeout, ..self }
    }

    /// Every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(
        &self,
        payload: &[u8],
        challenger: &mut dyn Challenger,
    ) -> Result<AttestResult, Status> {
        if payload.is_empty() {
            return Err(AttestError::MissingPayload.into());
        }
        let data = AttestationData::from_json(payload).map_err(|e| AttestError::BadPayload(e.to_string()))?;
        self.check_payload(&data)?;
        let challenge = Challenge::generate();
        // The answer carries nothing; the proof is the nonce served over HTTP.
        let _ = challenger.challenge(challenge.to_json()).await?;
        data.check_fetchable().map_err(|e| AttestError::Verification(e.into()))?;
        let body =
            fetch::get(&data.hostname, data.port, &challenge_path(&data.agentname), MAX_BODY, self.fetch_timeout)
                .await
                .map_err(AttestError::Verification)?;
        challenge.check_answer(&body).map_err(AttestError::Verification)?;
        let agent_id = agent_id(&self.trust_domain, &data.hostname)?;
        if self.config.tofu {
            ensure_not_attested(self.agents.as_ref(), &agent_id)
                .await
                .map_err(|s| plugin_status(NAME, s.code(), s.message()))?;
        }
        Ok(AttestResult {
            agent_id,
            selector_values: vec![format!("hostname:{}", data.hostname)],
            can_reattest: !self.config.tofu,
        })
    }

    /// The checks made before any challenge: port, agent name, host name.
    fn check_payload(&self, data: &AttestationData) -> Result<(), AttestError> {
        if self.config.required_port.is_some_and(|p| p != data.port) {
            return Err(AttestError::PortNotRequired(data.port));
        }
        if !self.config.allow_non_root_ports && data.port >= 1024 {
            return Err(AttestError::NonRootPort(data.port));
        }
        if !AGENT_NAME.is_match(&data.agentname) || data.agentname.len() > MAX_AGENT_NAME {
            return Err(AttestError::AgentName);
        }
        if data.hostname == "localhost" {
            return Err(AttestError::Localhost);
        }
        let patterns = &self.config.allowed_dns_patterns;
        if !patterns.is_empty() && !patterns.iter().any(|re| re.is_match(&data.hostname)) {
            return Err(AttestError::HostNotAllowed);
        }
        Ok(())
    }
}

/// `spiffe://<td>/spire/agent/http_challenge/<hostname>`.
pub fn agent_id(trust_domain: &TrustDomain, hostname: &str) -> Result<SpiffeId, AttestError> {
    let suffix = format!("/{NAME}/{hostname}");
    trust_domain.id_with_path(&format!("/spire/agent{suffix}")).map_err(|e| {
        AttestError::AgentId(format!("invalid agent path suffix {}: {e}", spire_cli::flags::go_quote(&suffix)))
    })
}

#[async_trait::async_trait]
impl NodeAttestor for HttpChallengeAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        self.attest_payload(payload, challenger).await
    }
}

#[cfg(test)]
mod tests;
