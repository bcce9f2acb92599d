//! NodeAttestor `k8s_psat`: agents running as pods prove who they are with a projected
//! service-account token, which the server has the cluster's API server check (TokenReview).
//!
//! The payload is `{"cluster": ..., "token": ...}` ([`spire_attestation::k8s_psat`]). The server
//! asks that cluster's API server to review the token for the configured audiences, requires an
//! allowed service account and a token bound to one pod, reads that pod (it must still be the pod
//! the token was issued to) and its node, and names the agent after the node:
//! `spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node UID>`. No challenge follows; agents renew by
//! attesting again with a fresh token.
//!
//! [`review`] holds the decisions as pure functions, [`client`] the three API calls, [`config`]
//! the `plugin_data`, [`error`] SPIRE's refusals.

pub mod client;
pub mod config;
pub mod error;
pub mod review;

use std::collections::BTreeMap;
use std::sync::Arc;

use spire_attestation::k8s_psat::{AttestationData, PLUGIN_NAME};
use spire_config::{ConfigError, PluginConfig};
use spire_identity::{SpiffeId, TrustDomain};
use tonic::Status;

pub use self::client::{ClusterApi, ConnectError, KubeClusterApi};
pub use self::config::{ClusterConfig, K8sPsatConfig};
pub use self::error::AttestError;
use super::{AttestResult, Challenger, NodeAttestor};

/// The attestation type and plugin name.
pub const NAME: &str = PLUGIN_NAME;

/// Why the plugin could not be set up at server start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The `plugin_data` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A cluster's API server client could not be created.
    #[error("plugins.NodeAttestor.k8s_psat.plugin_data.clusters[{cluster:?}]: {source}")]
    Connect {
        /// The cluster.
        cluster: String,
        /// Why.
        source: ConnectError,
    },
}

/// `spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node UID>`.
pub fn agent_id(trust_domain: &TrustDomain, cluster: &str, node_uid: &str) -> Result<SpiffeId, String> {
    trust_domain.id_with_path(&format!("/spire/agent/{NAME}/{cluster}/{node_uid}")).map_err(|e| e.to_string())
}

/// A configured cluster: its policy and its API server.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// What the configuration allows.
    pub config: ClusterConfig,
    /// Where its tokens, pods and nodes are checked.
    pub api: Arc<dyn ClusterApi>,
}

/// The `k8s_psat` attestor.
#[derive(Debug)]
pub struct K8sPsatAttestor {
    trust_domain: TrustDomain,
    clusters: BTreeMap<String, Cluster>,
}

impl K8sPsatAttestor {
    /// The attestor `plugin` configures: [`K8sPsatConfig::from_plugin`], then [`Self::from_config`].
    pub async fn from_plugin(plugin: &PluginConfig, trust_domain: TrustDomain) -> Result<Self, SetupError> {
        let config = K8sPsatConfig::from_plugin(plugin, &trust_domain)?;
        Self::from_config(config, trust_domain).await
    }

    /// The attestor for a decoded `config`, with one kube-rs client per cluster (created now,
    /// connecting on first use; a kubeconfig file is read now). Separate from the decoding so that
    /// `validate` can check the `plugin_data` without building clients. Needs a Tokio runtime.
    pub async fn from_config(config: K8sPsatConfig, trust_domain: TrustDomain) -> Result<Self, SetupError> {
        if config.clusters.is_empty() {
            // SPIRE accepts this too, with the same note.
            tracing::warn!("No clusters configured, PSAT attestation is effectively disabled");
        }
        let mut clusters = BTreeMap::new();
        for (name, cluster) in config.clusters {
            let api = KubeClusterApi::connect(cluster.kube_config_file.as_deref())
                .await
                .map_err(|source| SetupError::Connect { cluster: name.clone(), source })?;
            clusters.insert(name, Cluster { config: cluster, api: Arc::new(api) });
        }
        Ok(Self::new(trust_domain, clusters))
    }

    /// An attestor over clusters already set up (tests give their own [`ClusterApi`]).
    pub fn new(trust_domain: TrustDomain, clusters: BTreeMap<String, Cluster>) -> Self {
        Self { trust_domain, clusters }
    }

    /// The configured cluster names.
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
    }

    /// Judges a payload: every step of SPIRE's plugin, in its order.
    pub async fn attest_payload(&self, payload: &[u8]) -> Result<AttestResult, AttestError> {
        let data = parse_payload(payload)?;
        let cluster =
            self.clusters.get(&data.cluster).ok_or_else(|| AttestError::UnknownCluster(data.cluster.clone()))?;
        let api = cluster.api.as_ref();
        let status = api.review_token(&data.token, &cluster.config.audience).await.map_err(AttestError::TokenReview)?;
        review::check_review(&status, &cluster.config.audience)?;
        let token = review::identify(&status, &cluster.config.service_account_allow_list)?;
        let pod = api.get_pod(&token.namespace, &token.pod_name).await.map_err(AttestError::GetPod)?;
        let node_name = review::check_pod(&pod, &data.cluster, &token)?;
        let node = api.get_node(&node_name).await.map_err(AttestError::GetNode)?;
        review::attest_result(&self.trust_domain, &data.cluster, &cluster.config, &token, &pod, &node)
    }
}

/// The payload, with SPIRE's refusals for what is missing.
fn parse_payload(payload: &[u8]) -> Result<AttestationData, AttestError> {
    if payload.is_empty() {
        return Err(AttestError::MissingPayload);
    }
    let data = AttestationData::from_payload(payload).map_err(|e| {
        // SPIRE's message names the JSON error itself, under its own prefix.
        let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
        AttestError::BadPayload(cause)
    })?;
    if data.cluster.is_empty() {
        return Err(AttestError::MissingCluster);
    }
    if data.token.is_empty() {
        return Err(AttestError::MissingToken);
    }
    Ok(data)
}

#[async_trait::async_trait]
impl NodeAttestor for K8sPsatAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, payload: &[u8], _challenger: &mut dyn Challenger) -> Result<AttestResult, Status> {
        Ok(self.attest_payload(payload).await?)
    }
}

#[cfg(test)]
mod tests;
