//! NodeAttestor `aws_iid`: EC2 instances prove which instance they are with the instance identity
//! document AWS signs, which the agent reads from the instance metadata service.
//!
//! The payload is `{"document", "signature", "rsa2048"}` ([`spire_attestation::aws_iid`]). The
//! server checks AWS's signature for the document's region ([`verify`]), looks the instance up in
//! EC2 in the document's account and region ([`resolver`]; an instance EC2 does not know, pending
//! or running, is refused), checks the root volume was not swapped (unless `skip_block_device` or
//! the account is in `account_ids_for_local_validation`), names the agent by
//! `agent_path_template` (default `spiffe://<td>/spire/agent/aws_iid/<account>/<region>/<instance>`),
//! refuses an agent ID already attested (the document is readable by anything on the instance and
//! never changes, so it is trust on first use: the operator evicts the agent before it attests
//! again), and resolves SPIRE's selectors. No challenge follows; agents renew with RenewAgent.
//!
//! [`config`] holds the `plugin_data`, [`error`] SPIRE's refusals, [`template`] the template fields.

pub mod config;
pub mod error;
pub mod resolver;
pub mod template;
pub mod verify;

use std::sync::Arc;

use spire_attestation::aws_iid::{AttestationData, PLUGIN_NAME};
use spire_config::ConfigError;
use spire_identity::{SpiffeId, TrustDomain};
use tonic::Status;

pub use self::config::AwsIidConfig;
pub use self::error::AttestError;
use self::resolver::{ClientCache, Session};
use self::template::{Template, TemplateData};
use self::verify::CaCertificates;
use super::{AgentStore, AttestResult, Challenger, NodeAttestor};

/// The attestation type and plugin name.
pub const NAME: &str = PLUGIN_NAME;

/// Why the plugin could not be set up at server start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The `plugin_data` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The test-only certificates could not be read.
    #[error("plugins.NodeAttestor.aws_iid.plugin_data.test_only_ca_certificates_path: {0}")]
    TestCertificates(String),
}

/// The `aws_iid` attestor.
#[derive(Debug)]
pub struct AwsIidAttestor {
    trust_domain: TrustDomain,
    config: AwsIidConfig,
    cas: CaCertificates,
    clients: ClientCache,
    store: Arc<dyn AgentStore>,
}

impl AwsIidAttestor {
    /// The attestor for a decoded configuration; reads the test-only certificates if set. AWS
    /// clients are made at the first attestation from each account and region.
    pub fn from_config(
        config: AwsIidConfig,
        trust_domain: TrustDomain,
        store: Arc<dyn AgentStore>,
    ) -> Result<Self, SetupError> {
        if let Some(url) = &config.test_only_aws_endpoint_url {
            tracing::warn!(url = %url, "aws_iid calls AWS's APIs at a test-only endpoint: never use this outside tests");
        }
        let cas = match &config.test_only_ca_certificates_path {
            None => CaCertificates::Aws,
            Some(path) => {
                tracing::warn!(
                    path = %path.display(),
                    "aws_iid trusts test-only certificates instead of AWS's: never use this outside tests"
                );
                CaCertificates::test_only(path).map_err(SetupError::TestCertificates)?
            }
        };
        let session = Session {
            credentials: config.credentials.clone(),
            assume_role: config.assume_role.clone(),
            partition: config.partition.clone(),
            endpoint_url: config.test_only_aws_endpoint_url.clone(),
        };
        Ok(Self { trust_domain, config, cas, clients: ClientCache::new(session), store })
    }

    /// Judges a payload: every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(&self, payload: &[u8]) -> Result<AttestResult, AttestError> {
        if payload.is_empty() {
            return Err(AttestError::MissingPayload);
        }
        let data = AttestationData::from_payload(payload).map_err(|e| AttestError::BadPayload(e.to_string()))?;
        let doc = verify::verify_document(&data, &self.cas)?;
        let trusted_account = self.config.local_valid_account_ids.contains(&doc.account_id);
        let clients = self.clients.get(&doc.region, &doc.account_id).await?;
        let described = clients.describe_instance(&doc.instance_id).await?;
        let check_block_device = !trusted_account && !self.config.skip_block_device;
        let mut tags = Default::default();
        if self.config.template_uses_tags() || check_block_device {
            let instance = resolver::first_instance(&described)?;
            tags = resolver::tags(instance);
            if check_block_device {
                resolver::check_block_device(instance).map_err(AttestError::BlockDevice)?;
            }
        }
        let agent_id = agent_id(
            &self.trust_domain,
            &self.config.agent_path_template,
            TemplateData {
                plugin_name: NAME.into(),
                account_id: doc.account_id.clone(),
                region: doc.region.clone(),
                instance_id: doc.instance_id.clone(),
                tags,
            },
        )?;
        match self.store.is_attested(&agent_id).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::error!(agent_id = %agent_id, "Attestation data has already been used to attest an agent");
                return Err(AttestError::AlreadyAttested);
            }
            Err(status) => return Err(AttestError::Store(status.message().to_owned())),
        }
        let selector_values =
            resolver::resolve_selectors(&described, &doc, &clients, self.config.disable_instance_profile_selectors)
                .await?;
        Ok(AttestResult { agent_id, selector_values, can_reattest: false })
    }
}

/// `spiffe://<td>/spire/agent<template output>`.
pub fn agent_id(trust_domain: &TrustDomain, template: &Template, data: TemplateData) -> Result<SpiffeId, AttestError> {
    let path = template.execute(&data).map_err(AttestError::AgentId)?;
    trust_domain.id_with_path(&format!("/spire/agent{path}")).map_err(|e| {
        AttestError::AgentId(format!("invalid agent path suffix {}: {e}", spire_cli::flags::go_quote(&path)))
    })
}

#[async_trait::async_trait]
impl NodeAttestor for AwsIidAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], _challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        Ok(self.attest_payload(payload).await?)
    }
}

#[cfg(test)]
mod tests;
