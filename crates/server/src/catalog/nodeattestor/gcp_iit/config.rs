//! The `plugin_data` of NodeAttestor `gcp_iit`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   projectid_allow_list = ["my-project"]                                  # required
//!   agent_path_template = "/{{ .PluginName }}/{{ .ProjectID }}/{{ .InstanceID }}" # the default
//!   use_instance_metadata = false          # Compute Engine instances.get for tag/sa/label/metadata
//!   allowed_label_keys = []                # labels that become selectors
//!   allowed_metadata_keys = []             # metadata items that become selectors
//!   max_metadata_value_size = 128          # the default
//!   service_account_file = ""              # credentials for instances.get (else the defaults)
//! }
//! ```
//!
//! Two keys SPIRE lacks exist for tests only and say so: `test_only_certs_url` replaces Google's
//! certificate endpoint (`https://www.googleapis.com/oauth2/v1/certs`) and
//! `test_only_compute_endpoint` replaces `https://compute.googleapis.com/compute/v1/`.

use std::collections::BTreeSet;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::template::{self, Template};

/// Google's signing certificates, as SPIRE fetches them.
pub const GOOGLE_CERTS_URL: &str = "https://www.googleapis.com/oauth2/v1/certs";

/// The Compute Engine API's base.
pub const COMPUTE_ENDPOINT: &str = "https://compute.googleapis.com/compute/v1/";

/// SPIRE's default `max_metadata_value_size`.
pub const DEFAULT_MAX_METADATA_VALUE_SIZE: usize = 128;

/// The decoded `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpIitConfig {
    /// `projectid_allow_list`: the projects whose instances may attest.
    pub project_id_allow_list: Vec<String>,
    /// `agent_path_template`.
    pub agent_path_template: Template,
    /// `use_instance_metadata`.
    pub use_instance_metadata: bool,
    /// `allowed_label_keys`.
    pub allowed_label_keys: BTreeSet<String>,
    /// `allowed_metadata_keys`.
    pub allowed_metadata_keys: BTreeSet<String>,
    /// `max_metadata_value_size` (bytes).
    pub max_metadata_value_size: usize,
    /// `service_account_file`.
    pub service_account_file: Option<String>,
    /// `test_only_certs_url`, else Google's.
    pub certs_url: String,
    /// `test_only_compute_endpoint`, else Google's (ends in `/`).
    pub compute_endpoint: String,
}

impl GcpIitConfig {
    /// Decodes the plugin's data; no file is read.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn read(r: &mut Reader<'_, '_>) -> GcpIitConfig {
    let line = r.pos().line;
    let path = r.path().to_owned();
    let invalid = |r: &mut Reader<'_, '_>, message: String| {
        r.diags().error(ConfigError::invalid(format!("{path}: {message}"), line));
    };
    let project_id_allow_list = r.string_list("projectid_allow_list").unwrap_or_default();
    if project_id_allow_list.is_empty() {
        invalid(r, "projectid_allow_list is required".into());
    }
    let text = r.non_empty_string("agent_path_template").unwrap_or_else(|| template::DEFAULT.into());
    let agent_path_template = Template::parse(&text).unwrap_or_else(|_| {
        invalid(r, format!("failed to parse agent path template: {}", spire_cli::flags::go_quote(&text)));
        Template::parse(template::DEFAULT).expect("the default parses")
    });
    let use_instance_metadata = r.bool("use_instance_metadata").unwrap_or(false);
    let allowed_label_keys = r.string_list("allowed_label_keys").unwrap_or_default().into_iter().collect();
    let allowed_metadata_keys = r.string_list("allowed_metadata_keys").unwrap_or_default().into_iter().collect();
    let max_metadata_value_size = match r.int::<i64>("max_metadata_value_size") {
        None | Some(0) => DEFAULT_MAX_METADATA_VALUE_SIZE,
        // A negative limit refuses every value, as Go's `len(value) > max` does.
        Some(n) => usize::try_from(n).unwrap_or(0),
    };
    let service_account_file = r.non_empty_string("service_account_file");
    let certs_url = r.non_empty_string("test_only_certs_url").unwrap_or_else(|| GOOGLE_CERTS_URL.into());
    let mut compute_endpoint =
        r.non_empty_string("test_only_compute_endpoint").unwrap_or_else(|| COMPUTE_ENDPOINT.into());
    if !compute_endpoint.ends_with('/') {
        compute_endpoint.push('/');
    }
    GcpIitConfig {
        project_id_allow_list,
        agent_path_template,
        use_instance_metadata,
        allowed_label_keys,
        allowed_metadata_keys,
        max_metadata_value_size,
        service_account_file,
        certs_url,
        compute_endpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data: &str) -> Result<GcpIitConfig, String> {
        GcpIitConfig::from_plugin(&crate::catalog::nodeattestor::test_plugin("gcp_iit", data))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_spires() {
        let c = config(r#"projectid_allow_list = ["p"]"#).unwrap();
        assert_eq!(c.project_id_allow_list, ["p"]);
        assert_eq!(c.agent_path_template, Template::parse(template::DEFAULT).unwrap());
        assert!(!c.use_instance_metadata);
        assert_eq!(c.max_metadata_value_size, 128);
        assert_eq!(c.certs_url, GOOGLE_CERTS_URL);
        assert_eq!(c.compute_endpoint, COMPUTE_ENDPOINT);
        let c = config(
            "projectid_allow_list = [\"p\"]\nuse_instance_metadata = true\nallowed_label_keys = [\"a\"]\nallowed_metadata_keys = [\"m\"]\nmax_metadata_value_size = 5\nservice_account_file = \"/sa.json\"\ntest_only_compute_endpoint = \"http://127.0.0.1:1\"",
        )
        .unwrap();
        assert!(c.use_instance_metadata);
        assert_eq!((c.max_metadata_value_size, c.service_account_file.as_deref()), (5, Some("/sa.json")));
        assert!(c.allowed_label_keys.contains("a") && c.allowed_metadata_keys.contains("m"));
        assert_eq!(c.compute_endpoint, "http://127.0.0.1:1/");
    }

    #[test]
    fn spire_refusals() {
        for (data, expected) in [
            ("", "projectid_allow_list is required"),
            ("projectid_allow_list = []", "projectid_allow_list is required"),
            (
                "projectid_allow_list = [\"p\"]\nagent_path_template = \"/{{ .Nope }}\"",
                "failed to parse agent path template: \"/{{ .Nope }}\"",
            ),
            ("projectid_allow_list = [\"p\"]\nunknown = 1", "unknown configuration key \"unknown\""),
        ] {
            let err = config(data).unwrap_err();
            assert!(err.contains(expected), "{data:?}: {err}");
        }
    }
}
