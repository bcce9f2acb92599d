//! `k8s_psat`: the agent sends its cluster name and a projected service-account token; the server
//! reviews the token with that cluster's API server and names the agent after its node.
//!
//! The kubelet rotates the projected token in place, so the file is read at every attestation
//! (first attestation and each re-attestation), never cached. No challenge follows the payload.
//!
//! Configuration, as SPIRE's agent plugin takes it:
//! `NodeAttestor "k8s_psat" { plugin_data { cluster = "prod" token_path = "/path" } }`, `cluster`
//! required, `token_path` defaulting to [`DEFAULT_TOKEN_PATH`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use spire_attestation::k8s_psat::AttestationData;
use spire_config::{ConfigError, PluginConfig};

use super::{NodeAttestor, NodeAttestorError};

pub use spire_attestation::k8s_psat::PLUGIN_NAME;

/// Where Kubernetes projects the agent's token in SPIRE's deployment examples.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/tokens/spire-agent";

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sPsatConfig {
    /// `cluster` (required): the name the server's `clusters` block knows this cluster by.
    pub cluster: String,
    /// `token_path`: the projected service-account token file.
    pub token_path: PathBuf,
}

impl K8sPsatConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| {
            let cluster = r.non_empty_string("cluster");
            if cluster.is_none() {
                // SPIRE's wording, after the section it is about.
                let message = format!("{}: missing required cluster block", r.path());
                let line = r.pos().line;
                r.diags().error(ConfigError::invalid(message, line));
            }
            let token_path = r.non_empty_string("token_path").unwrap_or_else(|| DEFAULT_TOKEN_PATH.into());
            Self { cluster: cluster.unwrap_or_default(), token_path: PathBuf::from(token_path) }
        })
    }
}

/// Why the token could not be read. Both messages are SPIRE's (`unable to load token from ...`).
#[derive(Debug, thiserror::Error)]
pub enum K8sPsatError {
    /// The file could not be read.
    #[error("unable to load token from {}: {source}", path.display())]
    Read {
        /// The token file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no token.
    #[error("unable to load token from {}: {:?} is empty", path.display(), path.display().to_string())]
    Empty {
        /// The token file.
        path: PathBuf,
    },
}

/// Attests with a projected service-account token.
#[derive(Debug, Clone)]
pub struct K8sPsatAttestor {
    config: K8sPsatConfig,
}

impl K8sPsatAttestor {
    /// An attestor with `config`.
    pub fn new(config: K8sPsatConfig) -> Self {
        Self { config }
    }
}

/// Reads the token at `path`. Surrounding whitespace is dropped: a JWT never contains any, so this
/// only forgives a trailing newline in a file written by hand (SPIRE sends the bytes as they are,
/// and the server's TokenReview would then depend on the API server's leniency).
pub async fn read_token(path: &Path) -> Result<String, K8sPsatError> {
    let text =
        tokio::fs::read_to_string(path).await.map_err(|source| K8sPsatError::Read { path: path.to_owned(), source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(K8sPsatError::Empty { path: path.to_owned() });
    }
    Ok(token.to_owned())
}

#[async_trait]
impl NodeAttestor for K8sPsatAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let token = read_token(&self.config.token_path).await.map_err(NodeAttestorError::plugin)?;
        Ok(AttestationData { cluster: self.config.cluster.clone(), token }.to_payload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_config::agent_conf;
    use spire_config::AgentConfig;

    /// The NodeAttestor block of a complete agent configuration with `plugin_data`.
    fn config(plugin_data: &str) -> Result<K8sPsatConfig, String> {
        let plugins = format!(
            "    NodeAttestor \"k8s_psat\" {{\n        plugin_data {{\n{plugin_data}\n        }}\n    }}\n    KeyManager \"memory\" {{}}\n    WorkloadAttestor \"unix\" {{}}"
        );
        let text = agent_conf("", &plugins);
        let agent = AgentConfig::from_str(&text, false).map_err(|e| e.to_string())?;
        K8sPsatConfig::from_plugin(agent.node_attestor().expect("a NodeAttestor")).map_err(|e| e.to_string())
    }

    #[test]
    fn config_defaults_the_token_path() {
        let c = config(r#"cluster = "prod""#).unwrap();
        assert_eq!(c, K8sPsatConfig { cluster: "prod".into(), token_path: DEFAULT_TOKEN_PATH.into() });
        let c = config("cluster = \"prod\"\ntoken_path = \"/run/psat\"").unwrap();
        assert_eq!(c.token_path, PathBuf::from("/run/psat"));
    }

    #[test]
    fn config_requires_the_cluster() {
        for data in ["", r#"cluster = """#, r#"token_path = "/t""#] {
            let err = config(data).unwrap_err();
            assert!(
                err.starts_with("plugins.NodeAttestor.k8s_psat.plugin_data: missing required cluster block (line "),
                "{data:?}: {err}"
            );
        }
    }

    #[test]
    fn config_refuses_unknown_keys() {
        let err = config("cluster = \"prod\"\nclusterr = \"x\"").unwrap_err();
        assert!(err.contains("unknown configuration key \"clusterr\""), "{err}");
        assert!(err.contains("plugins.NodeAttestor.k8s_psat.plugin_data"), "{err}");
    }

    fn attestor(token_path: PathBuf) -> K8sPsatAttestor {
        K8sPsatAttestor::new(K8sPsatConfig { cluster: "prod".into(), token_path })
    }

    #[tokio::test]
    async fn the_payload_is_the_cluster_and_the_current_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spire-agent");
        std::fs::write(&path, "aaa.bbb.ccc\n").unwrap();
        let a = attestor(path.clone());
        assert_eq!(a.name(), "k8s_psat");
        let payload = a.payload().await.unwrap();
        assert_eq!(
            AttestationData::from_payload(&payload).unwrap(),
            AttestationData { cluster: "prod".into(), token: "aaa.bbb.ccc".into() }
        );
        // The kubelet rotated the token: the next attestation sends the new one.
        std::fs::write(&path, "  ddd.eee.fff ").unwrap();
        let payload = a.payload().await.unwrap();
        assert_eq!(AttestationData::from_payload(&payload).unwrap().token, "ddd.eee.fff");
    }

    #[tokio::test]
    async fn token_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = attestor(missing.clone()).payload().await.unwrap_err().to_string();
        assert!(err.starts_with(&format!("unable to load token from {}: ", missing.display())), "{err}");
        assert!(err.contains("No such file"), "{err}");

        let blank = dir.path().join("blank");
        std::fs::write(&blank, " \n").unwrap();
        let err = attestor(blank.clone()).payload().await.unwrap_err().to_string();
        let shown = blank.display().to_string();
        assert_eq!(err, format!("unable to load token from {shown}: {shown:?} is empty"));
    }

    #[tokio::test]
    async fn challenges_are_refused() {
        let err = attestor(PathBuf::from("/nonexistent")).challenge(b"c").await.unwrap_err();
        assert!(matches!(err, NodeAttestorError::UnexpectedChallenge));
    }
}
