//! `aws_iid`: the agent sends the EC2 instance identity document and AWS's signatures of it, read
//! from the instance metadata service; the server checks the signature and looks the instance up.
//!
//! As SPIRE's agent, it reads `instance-identity/document`, `instance-identity/signature` (RSA-1024,
//! for older servers) and `instance-identity/rsa2048` (PKCS#7) under `/latest/dynamic/`, through
//! the AWS SDK's IMDS client: IMDSv2, a session token from `PUT /latest/api/token` first. The
//! endpoint is `ec2_metadata_endpoint`, else the SDK's (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
//! `http://169.254.169.254`). The document is read at every attestation. No challenge follows.
//!
//! Configuration, as SPIRE's agent plugin takes it:
//! `NodeAttestor "aws_iid" { plugin_data { ec2_metadata_endpoint = "http://169.254.169.254" } }`.

use async_trait::async_trait;
use spire_attestation::aws_iid::AttestationData;
use spire_config::{ConfigError, PluginConfig};

use super::{NodeAttestor, NodeAttestorError};
use spire_cli::goerror::chain;

pub use spire_attestation::aws_iid::PLUGIN_NAME;

/// The paths SPIRE's agent reads, under `/latest/dynamic/`.
pub const DOCUMENT_PATH: &str = "/latest/dynamic/instance-identity/document";
/// The RSA-1024 signature.
pub const SIGNATURE_PATH: &str = "/latest/dynamic/instance-identity/signature";
/// The RSA-2048 PKCS#7 signature.
pub const RSA2048_PATH: &str = "/latest/dynamic/instance-identity/rsa2048";

/// The plugin's `plugin_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsIidConfig {
    /// `ec2_metadata_endpoint`: the IMDS base URL; `None` is the SDK's default.
    pub ec2_metadata_endpoint: Option<String>,
}

impl AwsIidConfig {
    /// Decodes the plugin's data; unknown keys are refused with their line, and so is an endpoint
    /// that is not a URI.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        spire_config::plugin_data::decode(plugin, |r| {
            let endpoint = r.non_empty_string("ec2_metadata_endpoint");
            if let Some((e, Err(err))) = endpoint.as_ref().map(|e| (e, aws_config::imds::Client::builder().endpoint(e)))
            {
                let message =
                    format!("{}: invalid ec2_metadata_endpoint {e:?}: {err}", r.key_path("ec2_metadata_endpoint"));
                let line = r.pos().line;
                r.diags().error(ConfigError::invalid(message, line));
            }
            Self { ec2_metadata_endpoint: endpoint }
        })
    }
}

/// Why the instance identity could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unable to read {path} from the instance metadata service: {reason}")]
pub struct ImdsReadError {
    /// The metadata path.
    pub path: &'static str,
    /// The SDK's error and its causes.
    pub reason: String,
}

/// Attests with the instance identity document.
#[derive(Debug, Clone)]
pub struct AwsIidAttestor {
    config: AwsIidConfig,
}

impl AwsIidAttestor {
    /// An attestor with `config`.
    pub fn new(config: AwsIidConfig) -> Self {
        Self { config }
    }

    /// The document and both signatures, as SPIRE's agent reads them.
    pub async fn read_identity(&self) -> Result<AttestationData, ImdsReadError> {
        let mut builder = aws_config::imds::Client::builder();
        if let Some(endpoint) = &self.config.ec2_metadata_endpoint {
            builder =
                builder.endpoint(endpoint).map_err(|e| ImdsReadError { path: DOCUMENT_PATH, reason: e.to_string() })?;
        }
        let client = builder.build();
        let get = |path: &'static str| {
            let client = client.clone();
            async move { client.get(path).await.map(String::from).map_err(|e| ImdsReadError { path, reason: chain(&e) }) }
        };
        Ok(AttestationData {
            document: get(DOCUMENT_PATH).await?,
            signature: get(SIGNATURE_PATH).await?,
            signature_rsa2048: get(RSA2048_PATH).await?,
        })
    }
}

#[async_trait]
impl NodeAttestor for AwsIidAttestor {
    fn name(&self) -> &str {
        PLUGIN_NAME
    }

    async fn payload(&self) -> Result<Vec<u8>, NodeAttestorError> {
        let data = self.read_identity().await.map_err(NodeAttestorError::plugin)?;
        Ok(data.to_payload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_testkit::aws_iid::{Identity, IidSigner, Imds, document};

    fn plugin(data: &str) -> PluginConfig {
        PluginConfig::built_in("NodeAttestor", PLUGIN_NAME, data).unwrap()
    }

    #[test]
    fn config() {
        assert_eq!(AwsIidConfig::from_plugin(&plugin("")).unwrap(), AwsIidConfig::default());
        let c = AwsIidConfig::from_plugin(&plugin(r#"ec2_metadata_endpoint = "http://127.0.0.1:1""#)).unwrap();
        assert_eq!(c.ec2_metadata_endpoint.as_deref(), Some("http://127.0.0.1:1"));
        let err = AwsIidConfig::from_plugin(&plugin(r#"metadata_endpoint = "x""#)).unwrap_err().to_string();
        assert!(err.contains("metadata_endpoint"), "{err}");
    }

    #[tokio::test]
    async fn reads_the_document_and_both_signatures_with_an_imdsv2_token() {
        let signer = IidSigner::generate();
        let doc = document("123456789012", "us-east-1", "i-0abc", "ami-1");
        let identity = Identity::signed(&signer, &doc);
        let imds = Imds::start(identity.clone()).await;
        let attestor = AwsIidAttestor::new(AwsIidConfig { ec2_metadata_endpoint: Some(imds.endpoint()) });
        let payload = attestor.payload().await.unwrap();
        let data = AttestationData::from_payload(&payload).unwrap();
        assert_eq!(data.document, identity.document);
        assert_eq!(data.signature, identity.signature);
        assert_eq!(data.signature_rsa2048, identity.rsa2048);
        let requests = imds.requests();
        assert_eq!(requests[0], "PUT /latest/api/token", "{requests:?}");
        assert!(requests.contains(&format!("GET {RSA2048_PATH}")), "{requests:?}");
    }

    #[tokio::test]
    async fn a_missing_path_is_an_error_naming_it() {
        let imds = Imds::start(Identity::default()).await;
        imds.set_identity(Identity { document: "{}".into(), ..Identity::default() });
        let attestor =
            AwsIidAttestor::new(AwsIidConfig { ec2_metadata_endpoint: Some(format!("{}/nowhere", imds.endpoint())) });
        let err = attestor.payload().await.unwrap_err().to_string();
        assert!(err.contains("unable to read /latest/dynamic/instance-identity/document"), "{err}");
    }
}
