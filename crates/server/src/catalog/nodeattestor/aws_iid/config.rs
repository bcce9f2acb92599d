//! The `plugin_data` of NodeAttestor `aws_iid`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   access_key_id = "..."                      # else $AWS_ACCESS_KEY_ID, else the SDK's default chain
//!   secret_access_key = "..."                  # else $AWS_SECRET_ACCESS_KEY
//!   assume_role = "spire-server-delegate"      # arn:<partition>:iam::<document's account>:role/<this>
//!   partition = "aws"                          # aws, aws-cn or aws-us-gov
//!   skip_block_device = false
//!   disable_instance_profile_selectors = false
//!   account_ids_for_local_validation = []      # accounts whose instances skip the block device check
//!   agent_path_template = "/{{ .PluginName }}/{{ .AccountID }}/{{ .Region }}/{{ .InstanceID }}"
//! }
//! ```
//!
//! `verify_organization` and `validate_eks_cluster_membership` (Organizations and EKS lookups) are
//! not implemented and are refused rather than ignored: a server that silently skipped them would
//! attest nodes the operator meant to keep out.
//!
//! Two keys are ours, for tests only, and say so in their names: `test_only_ca_certificates_path`,
//! a PEM file whose certificates replace AWS's for every region (so a stand-in metadata service can
//! sign documents), and `test_only_aws_endpoint_url`, where EC2, IAM and STS are called instead of
//! AWS (moto). The SDK's own `AWS_ENDPOINT_URL` works as well. Real deployments set neither.

use std::path::PathBuf;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::template::{self, Template};

/// The partitions SPIRE accepts.
pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// The decoded `plugin_data`.
#[derive(Debug, Clone)]
pub struct AwsIidConfig {
    /// Static credentials (`access_key_id`, `secret_access_key`, or their environment variables);
    /// `None` uses the SDK's default credential chain.
    pub credentials: Option<(String, String)>,
    /// `assume_role`: a role name in the document's account.
    pub assume_role: Option<String>,
    /// `partition`.
    pub partition: String,
    /// `skip_block_device`.
    pub skip_block_device: bool,
    /// `disable_instance_profile_selectors`.
    pub disable_instance_profile_selectors: bool,
    /// `account_ids_for_local_validation`.
    pub local_valid_account_ids: Vec<String>,
    /// `agent_path_template` as written (SPIRE looks for `.Tags` in it).
    pub agent_path_template_text: String,
    /// `agent_path_template`, parsed.
    pub agent_path_template: Template,
    /// `test_only_ca_certificates_path`.
    pub test_only_ca_certificates_path: Option<PathBuf>,
    /// `test_only_aws_endpoint_url`.
    pub test_only_aws_endpoint_url: Option<String>,
}

impl AwsIidConfig {
    /// Decodes the plugin's data, with the credentials' environment variables as SPIRE reads them.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).unwrap_or_default();
        Self::from_plugin_with_env(plugin, &env)
    }

    /// [`Self::from_plugin`] with the environment given (for tests).
    pub fn from_plugin_with_env(plugin: &PluginConfig, env: &dyn Fn(&str) -> String) -> Result<Self, ConfigError> {
        decode(plugin, |r| read(r, env))
    }

    /// Whether the agent path template uses the instance's tags (SPIRE's test: the text contains
    /// `.Tags`).
    pub fn template_uses_tags(&self) -> bool {
        self.agent_path_template_text.contains(".Tags")
    }
}

fn read(r: &mut Reader<'_, '_>, env: &dyn Fn(&str) -> String) -> AwsIidConfig {
    let line = r.pos().line;
    let path = r.path().to_owned();
    let invalid = |r: &mut Reader<'_, '_>, message: String| {
        r.diags().error(ConfigError::invalid(format!("{path}: {message}"), line));
    };
    let access_key_id = r.non_empty_string("access_key_id").unwrap_or_else(|| env("AWS_ACCESS_KEY_ID"));
    let secret_access_key = r.non_empty_string("secret_access_key").unwrap_or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    let credentials = match (access_key_id.is_empty(), secret_access_key.is_empty()) {
        (true, true) => None,
        (false, false) => Some((access_key_id, secret_access_key)),
        (false, true) => {
            invalid(r, "configuration missing secret access key, but has access key id".into());
            None
        }
        (true, false) => {
            invalid(r, "configuration missing access key id, but has secret access key".into());
            None
        }
    };
    let partition = r.non_empty_string("partition").unwrap_or_else(|| PARTITIONS[0].into());
    if !PARTITIONS.contains(&partition.as_str()) {
        let quoted = spire_cli::flags::go_quote(&partition);
        invalid(r, format!("invalid partition {quoted}, must be one of: [{}]", PARTITIONS.join(" ")));
    }
    let text = r.non_empty_string("agent_path_template").unwrap_or_else(|| template::DEFAULT.into());
    let agent_path_template = match Template::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            invalid(r, format!("failed to parse agent svid template: {}: {e}", spire_cli::flags::go_quote(&text)));
            Template::parse(template::DEFAULT).expect("the default parses")
        }
    };
    for unsupported in ["verify_organization", "validate_eks_cluster_membership"] {
        if r.take(unsupported).is_some() {
            invalid(r, format!("{unsupported} is not supported by this build (AWS Organizations and EKS lookups)"));
        }
    }
    AwsIidConfig {
        credentials,
        assume_role: r.non_empty_string("assume_role"),
        partition,
        skip_block_device: r.bool("skip_block_device").unwrap_or(false),
        disable_instance_profile_selectors: r.bool("disable_instance_profile_selectors").unwrap_or(false),
        local_valid_account_ids: r.string_list("account_ids_for_local_validation").unwrap_or_default(),
        agent_path_template_text: text,
        agent_path_template,
        test_only_ca_certificates_path: r.non_empty_string("test_only_ca_certificates_path").map(PathBuf::from),
        test_only_aws_endpoint_url: r.non_empty_string("test_only_aws_endpoint_url"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(data: &str, env: &[(&str, &str)]) -> Result<AwsIidConfig, String> {
        let plugin = crate::catalog::nodeattestor::test_plugin("aws_iid", data);
        let env = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).unwrap_or_default();
        AwsIidConfig::from_plugin_with_env(&plugin, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = decode("", &[]).unwrap();
        assert_eq!(c.credentials, None);
        assert_eq!(c.partition, "aws");
        assert!(!c.skip_block_device && !c.disable_instance_profile_selectors);
        assert_eq!(c.agent_path_template_text, template::DEFAULT);
        assert!(!c.template_uses_tags());
    }

    #[test]
    fn every_key() {
        let c = decode(
            r#"access_key_id = "AK"
secret_access_key = "SK"
assume_role = "delegate"
partition = "aws-cn"
skip_block_device = true
disable_instance_profile_selectors = true
account_ids_for_local_validation = ["111", "222"]
agent_path_template = "/{{ .PluginName }}/{{ index .Tags \"name\" }}"
test_only_ca_certificates_path = "/tmp/ca.pem"
test_only_aws_endpoint_url = "http://127.0.0.1:5000""#,
            &[],
        )
        .unwrap();
        assert_eq!(c.credentials, Some(("AK".into(), "SK".into())));
        assert_eq!(c.assume_role.as_deref(), Some("delegate"));
        assert_eq!(c.partition, "aws-cn");
        assert!(c.skip_block_device && c.disable_instance_profile_selectors);
        assert_eq!(c.local_valid_account_ids, ["111", "222"]);
        assert!(c.template_uses_tags());
        assert_eq!(c.test_only_ca_certificates_path, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(c.test_only_aws_endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn credentials_come_in_pairs_from_config_or_environment() {
        let c = decode("", &[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")]).unwrap();
        assert_eq!(c.credentials, Some(("A".into(), "S".into())));
        let err = decode(r#"access_key_id = "A""#, &[]).unwrap_err();
        assert!(err.contains("configuration missing secret access key, but has access key id"), "{err}");
        let err = decode("", &[("AWS_SECRET_ACCESS_KEY", "S")]).unwrap_err();
        assert!(err.contains("configuration missing access key id, but has secret access key"), "{err}");
    }

    #[test]
    fn refusals() {
        let err = decode(r#"partition = "mars""#, &[]).unwrap_err();
        assert!(err.contains(r#"invalid partition "mars", must be one of: [aws aws-cn aws-us-gov]"#), "{err}");
        let err = decode(r#"verify_organization = { management_account_id = "1" }"#, &[]).unwrap_err();
        assert!(err.contains("verify_organization is not supported"), "{err}");
        let err = decode(r#"agent_path_template = "/{{ .Nope }}""#, &[]).unwrap_err();
        assert!(err.contains("failed to parse agent svid template"), "{err}");
        let err = decode(r#"skip_block_devices = true"#, &[]).unwrap_err();
        assert!(err.contains("skip_block_devices"), "{err}");
    }
}
