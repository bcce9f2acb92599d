//! NodeAttestor `azure_msi`: an Azure VM proves which VM it is with the access token Azure's
//! instance metadata service issues to its managed identity, signed by Azure AD.
//!
//! The payload is `{"token": ...}` ([`spire_attestation::azure_msi`]). The server verifies the
//! token against Azure AD's keys ([`keys`], discovered from the issuer and cached for an hour), in
//! SPIRE's order: signature and `tid`/`sub`, the agent ID (by default
//! `spiffe://<td>/spire/agent/azure_msi/<tenant>/<principal>`), trust on first use (an attested
//! agent cannot attest again until evicted: the token can be replayed), the tenant among
//! `tenants`, the audience (the tenant's `resource_id`) and times with five minutes' leeway. The
//! [`resolver`] then finds the VM in Azure Resource Manager for the selectors `subscription-id`,
//! `vm-name`, `network-security-group`, `virtual-network` and `virtual-network-subnet`.
//!
//! [`verify`] holds the checks, [`config`] the `plugin_data`, [`error`] SPIRE's refusals.

pub mod config;
pub mod error;
pub mod keys;
pub mod resolver;
pub mod template;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use spire_identity::TrustDomain;
use tonic::Status;

pub use self::config::AzureMsiConfig;
pub use self::error::AttestError;
use self::keys::IssuerKeys;
use self::resolver::{ArmClient, Credential};
use self::template::Template;
use super::{AgentStore, AttestResult, Challenger, NodeAttestor, ensure_not_attested, plugin_status};

/// The attestation type and plugin name.
pub const NAME: &str = spire_attestation::azure_msi::PLUGIN_NAME;

/// Why the plugin could not be set up at server start (SPIRE's configuration errors).
#[derive(Debug, thiserror::Error)]
#[error("plugins.NodeAttestor.azure_msi.plugin_data: {0}")]
pub struct SetupError(String);

#[derive(Debug)]
struct Tenant {
    resource_id: String,
    client: ArmClient,
}

/// The `azure_msi` attestor.
#[derive(Debug)]
pub struct AzureMsiAttestor {
    trust_domain: TrustDomain,
    template: Template,
    tenants: BTreeMap<String, Tenant>,
    keys: IssuerKeys,
    agents: Arc<dyn AgentStore>,
}

impl AzureMsiAttestor {
    /// The attestor for a decoded `config`. A tenant without app credentials uses the server's own
    /// identity, whose subscription is read from IMDS now, as SPIRE does at configuration.
    pub async fn from_config(
        config: AzureMsiConfig,
        trust_domain: TrustDomain,
        agents: Arc<dyn AgentStore>,
    ) -> Result<Self, SetupError> {
        let mut tenants = BTreeMap::new();
        let scope = format!("{}.default", config.resource_manager);
        for (tenant_id, tenant) in config.tenants {
            let (subscription_id, credential) = match tenant.app {
                Some(app) => (
                    app.subscription_id,
                    Credential::ClientSecret {
                        token_url: format!("{}{tenant_id}/oauth2/v2.0/token", config.authority_host),
                        client_id: app.app_id,
                        client_secret: app.app_secret,
                        scope: scope.clone(),
                    },
                ),
                None => {
                    let metadata = resolver::fetch_instance_metadata(&config.imds_host).await.map_err(SetupError)?;
                    let credential = match (std::env::var("AZURE_CLIENT_ID"), std::env::var("AZURE_CLIENT_SECRET")) {
                        (Ok(client_id), Ok(client_secret)) => Credential::ClientSecret {
                            token_url: format!("{}{tenant_id}/oauth2/v2.0/token", config.authority_host),
                            client_id,
                            client_secret,
                            scope: scope.clone(),
                        },
                        _ => Credential::ManagedIdentity {
                            imds_host: config.imds_host.clone(),
                            resource: config.resource_manager.clone(),
                        },
                    };
                    (metadata.compute.subscription_id, credential)
                }
            };
            let client = ArmClient::new(config.resource_manager.clone(), subscription_id, credential);
            tenants.insert(tenant_id, Tenant { resource_id: tenant.resource_id, client });
        }
        Ok(Self {
            trust_domain,
            template: config.agent_path_template,
            tenants,
            keys: IssuerKeys::new(config.oidc_issuer),
            agents,
        })
    }

    /// Every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(&self, payload: &[u8]) -> Result<AttestResult, Status> {
        let token = verify::parse_payload(payload)?;
        let keys = self.keys.get().await.map_err(AttestError::Keys)?;
        let (_, claims, typed) = verify::verify_token(&token, &keys)?;
        let agent_id = verify::agent_id(&self.trust_domain, &self.template, &typed)?;
        ensure_not_attested(self.agents.as_ref(), &agent_id)
            .await
            .map_err(|s| plugin_status(NAME, s.code(), s.message()))?;
        let tenant = self.tenants.get(&typed.tid).ok_or_else(|| AttestError::Tenant(typed.tid.clone()))?;
        verify::validate_claims(&claims, &tenant.resource_id, SystemTime::now())?;
        let selector_values = resolve(&tenant.client, &typed.sub).await?;
        Ok(AttestResult { agent_id, selector_values, can_reattest: false })
    }
}

/// SPIRE's `resolve`: the selectors of the principal's VM, deduplicated and sorted.
async fn resolve(client: &ArmClient, principal: &str) -> Result<Vec<String>, AttestError> {
    let vm_id = client
        .virtual_machine_resource_id(principal)
        .await
        .map_err(|reason| AttestError::Resource { principal: principal.to_owned(), reason })?;
    let (vm_group, vm_name) = verify::parse_vm_id(&vm_id)?;
    let mut selectors = BTreeSet::from([
        format!("subscription-id:{}", client.subscription_id()),
        format!("vm-name:{vm_group}:{vm_name}"),
    ]);
    let vm = client
        .virtual_machine(&vm_group, &vm_name)
        .await
        .map_err(|reason| AttestError::VirtualMachine { name: format!("{vm_group}:{vm_name}"), reason })?;
    let interfaces = vm.properties.network_profile.and_then(|p| p.network_interfaces).unwrap_or_default();
    for interface in interfaces {
        let Some(id) = interface.id else { continue };
        let (group, name) = verify::parse_nic_id(&id)?;
        let nic = client
            .network_interface(&group, &name)
            .await
            .map_err(|reason| AttestError::NetworkInterface { name: format!("{group}:{name}"), reason })?;
        if let Some(nsg_id) = nic.properties.network_security_group.and_then(|n| n.id) {
            let (g, n) = verify::parse_nsg_id(&nsg_id)?;
            selectors.insert(format!("network-security-group:{g}:{n}"));
        }
        for ipc in nic.properties.ip_configurations.unwrap_or_default() {
            if let Some(subnet_id) = ipc.properties.and_then(|p| p.subnet).and_then(|s| s.id) {
                let (g, net, sub) = verify::parse_subnet_id(&subnet_id)?;
                selectors.insert(format!("virtual-network:{g}:{net}"));
                selectors.insert(format!("virtual-network-subnet:{g}:{net}:{sub}"));
            }
        }
    }
    Ok(selectors.into_iter().collect())
}

#[async_trait::async_trait]
impl NodeAttestor for AzureMsiAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], _challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        self.attest_payload(payload).await
    }
}

#[cfg(test)]
mod tests;
