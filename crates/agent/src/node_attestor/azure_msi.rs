//! `azure_msi`: the agent asks the Azure instance metadata service (IMDS, 169.254.169.254) for
//! the VM's managed-identity access token for `resource_id` and sends `{"token": "<JWT>"}`; the
//! server checks the token against the tenant's keys and resolves the VM in Azure Resource
//! Manager.
//!
//! Configuration, as SPIRE's agent plugin takes it: `resource_id` (default
//! `https://management.azure.com/`). SPIRE hard-codes IMDS's address; `test_only_imds_host`
//! (`host:port`), a key SPIRE lacks, points ours at a stand-in in tests.

use async_trait::async_trait;
use spire_attestation::azure_msi::{AttestationData, DEFAULT_RESOURCE_ID, IMDS_HOST, TokenResponse, token_path};
use spire_config::{ConfigError, PluginConfig};

use super::gcp_iit::http_get;
use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::azure_msi::PLUGIN_NAME;

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureMsiConfig {
    /// `resource_id`: the token's audience.
    pub resource_id: String,
    /// `test_only_imds_host`, else IMDS's address.
    pub imds_host: String,
}

impl AzureMsiConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| Self {
            resource_id: r.non_empty_string("resource_id").unwrap_or_else(|| DEFAULT_RESOURCE_ID.into()),
            imds_host: r.non_empty_string("test_only_imds_host").unwrap_or_else(|| IMDS_HOST.into()),
        })
    }
}

/// Why no token could be had (SPIRE's wording).
#[derive(Debug, thiserror::Error)]
#[error("unable to fetch token: {0}")]
pub struct AzureMsiError(String);

/// Attests with the managed identity's token.
#[derive(Debug)]
pub struct AzureMsiAttestor {
    config: AzureMsiConfig,
}

impl AzureMsiAttestor {
    /// The attestor for `config`.
    pub fn new(config: AzureMsiConfig) -> Self {
        Self { config }
    }
}

/// IMDS's token for `resource` from `host` (SPIRE's `azure.FetchMSIToken`).
pub async fn fetch_token(host: &str, resource: &str) -> Result<String, String> {
    let (status, body) = http_get(host, &token_path(resource), &[("Metadata", "true")]).await?;
    if status != 200 {
        let start = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
        return Err(format!("unexpected status code {status}: {start}"));
    }
    let answer = TokenResponse::from_json(&body).map_err(|e| format!("unable to decode response: {e}"))?;
    if answer.access_token.is_empty() {
        return Err("response missing access token".into());
    }
    Ok(answer.access_token)
}

#[async_trait]
impl NodeAttestor for AzureMsiAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let token = fetch_token(&self.config.imds_host, &self.config.resource_id)
            .await
            .map_err(|e| NodeAttestorError::plugin(AzureMsiError(e)))?;
        Ok(AttestationData { token }.to_payload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_testkit::cloud::{Received, Reply, StandIn};
    use std::sync::Arc;

    fn plugin(data: &str) -> PluginConfig {
        PluginConfig::built_in("NodeAttestor", PLUGIN_NAME, data).unwrap()
    }

    #[test]
    fn defaults_are_spires() {
        let c = AzureMsiConfig::from_plugin(&plugin("")).unwrap();
        assert_eq!(
            (c.resource_id.as_str(), c.imds_host.as_str()),
            ("https://management.azure.com/", "169.254.169.254")
        );
    }

    #[tokio::test]
    async fn asks_imds_as_spire_does() {
        let imds = StandIn::start(
            "127.0.0.1:0",
            Arc::new(|r: &Received| {
                if r.header("metadata") == Some("true") {
                    Reply::json(&serde_json::json!({"access_token": "a.b.c", "token_type": "Bearer"}))
                } else {
                    Reply::status(400, "Required metadata header not specified")
                }
            }),
        )
        .await;
        let config = AzureMsiConfig { resource_id: "api://spire".into(), imds_host: imds.addr.to_string() };
        assert_eq!(AzureMsiAttestor::new(config).payload().await.unwrap(), br#"{"token":"a.b.c"}"#);
        assert_eq!(
            imds.received()[0].path_and_query,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Fspire"
        );
        let empty = StandIn::start("127.0.0.1:0", Arc::new(|_: &Received| Reply::json(&serde_json::json!({})))).await;
        let config = AzureMsiConfig { resource_id: "r".into(), imds_host: empty.addr.to_string() };
        let err = AzureMsiAttestor::new(config).payload().await.unwrap_err();
        assert_eq!(err.to_string(), "unable to fetch token: response missing access token");
    }
}
