//! NodeAttestor `gcp_iit`: a Compute Engine instance proves which instance it is with the identity
//! token its metadata server issues (audience `spire-gcp-node-attestor`, `format=full`), signed by
//! Google.
//!
//! The payload is the token ([`spire_attestation::gcp_iit`]). The server verifies it against
//! Google's certificates ([`keys`], cached until their `Expires`), requires the audience and a
//! current token, and the project in `projectid_allow_list`. The agent is named by
//! `agent_path_template`, by default `spiffe://<td>/spire/agent/gcp_iit/<project>/<instance id>`.
//! The token can be replayed by whoever saw it, so, as in SPIRE, an instance attests once
//! (trust on first use, [`AgentStore`]) and cannot re-attest; the operator evicts it to let it
//! attest again. Selectors are `project-id`, `zone` and `instance-name`; with
//! `use_instance_metadata` the instance is read from the Compute API ([`compute`]) for `tag`, `sa`,
//! `label` and `metadata` selectors.
//!
//! [`verify`] holds the checks, [`config`] the `plugin_data`, [`error`] SPIRE's refusals.

pub mod compute;
pub mod config;
pub mod error;
pub mod keys;
pub mod template;
pub mod verify;

use std::sync::Arc;
use std::time::SystemTime;

use spire_identity::TrustDomain;
use tonic::Status;

pub use self::config::GcpIitConfig;
pub use self::error::AttestError;
use self::keys::GoogleKeys;
use super::{AgentStore, AttestResult, Challenger, NodeAttestor, ensure_not_attested, plugin_status};

/// The attestation type and plugin name.
pub const NAME: &str = spire_attestation::gcp_iit::PLUGIN_NAME;

/// The `gcp_iit` attestor.
#[derive(Debug)]
pub struct GcpIitAttestor {
    trust_domain: TrustDomain,
    config: GcpIitConfig,
    keys: GoogleKeys,
    agents: Arc<dyn AgentStore>,
}

impl GcpIitAttestor {
    /// The attestor for a decoded `config`; nothing is fetched until the first attestation.
    pub fn new(config: GcpIitConfig, trust_domain: TrustDomain, agents: Arc<dyn AgentStore>) -> Self {
        let keys = GoogleKeys::new(config.certs_url.clone());
        Self { trust_domain, config, keys, agents }
    }

    /// Every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(&self, payload: &[u8]) -> Result<AttestResult, Status> {
        let keys = self.keys.get().await.map_err(AttestError::Keys)?;
        let ce = verify::identity(payload, &keys, SystemTime::now())?;
        if !self.config.project_id_allow_list.contains(&ce.project_id) {
            return Err(AttestError::Project(ce.project_id).into());
        }
        let agent_id = verify::agent_id(&self.trust_domain, &self.config.agent_path_template, &ce)?;
        ensure_not_attested(self.agents.as_ref(), &agent_id)
            .await
            .map_err(|s| plugin_status(NAME, s.code(), s.message()))?;
        let instance = if self.config.use_instance_metadata {
            let fetched = compute::fetch_instance(
                &self.config.compute_endpoint,
                self.config.service_account_file.as_deref(),
                &ce.project_id,
                &ce.zone,
                &ce.instance_name,
            )
            .await
            .map_err(AttestError::InstanceMetadata)?;
            Some(fetched)
        } else {
            None
        };
        let selector_values = verify::selectors(&ce, instance.as_ref(), &self.config)?;
        Ok(AttestResult { agent_id, selector_values, can_reattest: false })
    }
}

#[async_trait::async_trait]
impl NodeAttestor for GcpIitAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], _challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        self.attest_payload(payload).await
    }
}

#[cfg(test)]
mod tests;
