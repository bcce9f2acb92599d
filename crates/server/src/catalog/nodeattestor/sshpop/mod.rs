//! NodeAttestor `sshpop`: agents provisioned with an SSH host certificate out of band prove they
//! hold its host key.
//!
//! The payload is the certificate ([`spire_attestation::sshpop`]). The server checks it as SPIRE
//! does with Go's `ssh.CertChecker`: a host certificate, signed by one of the configured CAs, for
//! its first principal, valid now; with `canonical_domain` set the first principal must end with
//! it. Then it challenges the agent with a 32-byte nonce; the agent signs
//! `SHA256(nonce || its own nonce)` with the host key. The agent is named by
//! [`config::SshPopConfig::agent_path_template`], by default
//! `spiffe://<td>/spire/agent/sshpop/<fingerprint>` (unpadded URL-safe base64 of the SHA-256 of
//! the certificate). Like SPIRE's, the plugin gives no selectors; agents renew by attesting again.
//!
//! [`verify`] holds the steps, [`template`] the agent path template, [`config`] the
//! `plugin_data`, [`error`] SPIRE's refusals.

pub mod config;
pub mod error;
pub mod template;
pub mod verify;

use std::path::Path;
use std::time::SystemTime;

use spire_attestation::sshpop::{Authorities, PLUGIN_NAME};
use spire_config::{ConfigError, PluginConfig};
use spire_identity::TrustDomain;
use tonic::Status;

pub use self::config::SshPopConfig;
pub use self::error::AttestError;
use self::template::Template;
use super::{AttestResult, Challenger, NodeAttestor};

/// The attestation type and plugin name.
pub const NAME: &str = PLUGIN_NAME;

/// Why the plugin could not be set up at server start (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The `plugin_data` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `cert_authorities_path` could not be read or holds nothing.
    #[error("plugins.NodeAttestor.sshpop.plugin_data: failed to get cert authorities from file: {0}")]
    File(String),
    /// A CA line does not parse, or there is none.
    #[error("plugins.NodeAttestor.sshpop.plugin_data: failed to create cert checker: {0}")]
    Authorities(#[from] spire_attestation::sshpop::AuthorityError),
}

/// The `sshpop` attestor.
#[derive(Debug)]
pub struct SshPopAttestor {
    trust_domain: TrustDomain,
    authorities: Authorities,
    canonical_domain: Option<String>,
    template: Template,
}

impl SshPopAttestor {
    /// The attestor `plugin` configures.
    pub fn from_plugin(plugin: &PluginConfig, trust_domain: TrustDomain) -> Result<Self, SetupError> {
        Self::from_config(SshPopConfig::from_plugin(plugin)?, trust_domain)
    }

    /// The attestor for a decoded `config`; `cert_authorities_path` is read now.
    pub fn from_config(config: SshPopConfig, trust_domain: TrustDomain) -> Result<Self, SetupError> {
        let mut lines = config.cert_authorities.unwrap_or_default();
        if let Some(path) = &config.cert_authorities_path {
            lines.extend(read_lines(path)?);
        }
        let authorities = Authorities::parse(lines.iter().map(String::as_str))?;
        Ok(Self::new(trust_domain, authorities, config.canonical_domain, config.agent_path_template))
    }

    /// An attestor trusting `authorities`.
    pub fn new(
        trust_domain: TrustDomain,
        authorities: Authorities,
        canonical_domain: Option<String>,
        template: Template,
    ) -> Self {
        Self { trust_domain, authorities, canonical_domain, template }
    }

    /// Every step of SPIRE's handshake, in its order.
    pub async fn attest_payload(
        &self,
        payload: &[u8],
        challenger: &mut dyn Challenger,
    ) -> Result<AttestResult, Status> {
        if payload.is_empty() {
            return Err(AttestError::MissingPayload.into());
        }
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verified =
            verify::verify_attestation_data(payload, &self.authorities, self.canonical_domain.as_deref(), now)?;
        let challenge = verify::issue_challenge()?;
        let answer = challenger.challenge(challenge.to_json()).await?;
        verify::verify_response(&verified.cert, &challenge, &answer)?;
        let agent_id = verify::agent_id(&self.trust_domain, &self.template, &verified)?;
        Ok(AttestResult { agent_id, selector_values: Vec::new(), can_reattest: true })
    }
}

/// The non-empty lines of the CA file, as SPIRE splits it (a blank or comment line is then
/// refused as not a key, as SPIRE refuses it).
fn read_lines(path: &Path) -> Result<Vec<String>, SetupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SetupError::File(format!("open {}: {}", path.display(), spire_cli::goerror::errno_text(&e))))?;
    let lines: Vec<String> = text.split('\n').filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if lines.is_empty() {
        return Err(SetupError::File(format!("no data found in file: {:?}", path.display().to_string())));
    }
    Ok(lines)
}

#[async_trait::async_trait]
impl NodeAttestor for SshPopAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        self.attest_payload(payload, challenger).await
    }
}

#[cfg(test)]
mod tests;
