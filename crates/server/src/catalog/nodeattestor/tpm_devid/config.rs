//! The `plugin_data` of NodeAttestor `tpm_devid`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   devid_ca_path       = "/opt/spire/conf/server/devid-cacert.pem"        # DevID roots
//!   endorsement_ca_path = "/opt/spire/conf/server/endorsement-cacert.pem"  # TPM manufacturer roots
//! }
//! ```

use std::path::PathBuf;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

/// The decoded `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmDevIdConfig {
    /// `devid_ca_path`: PEM roots the DevID certificates must chain to.
    pub devid_ca_path: PathBuf,
    /// `endorsement_ca_path`: PEM roots the endorsement certificates must chain to.
    pub endorsement_ca_path: PathBuf,
}

impl TpmDevIdConfig {
    /// Decodes the plugin's data; no file is read.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn read(r: &mut Reader<'_, '_>) -> TpmDevIdConfig {
    let line = r.pos().line;
    let path = r.path().to_owned();
    let required = |r: &mut Reader<'_, '_>, key: &str| {
        let value = r.non_empty_string(key);
        if value.is_none() {
            r.diags().error(ConfigError::invalid(format!("{path}: {key} is required"), line));
        }
        PathBuf::from(value.unwrap_or_default())
    };
    let devid_ca_path = required(r, "devid_ca_path");
    let endorsement_ca_path = required(r, "endorsement_ca_path");
    TpmDevIdConfig { devid_ca_path, endorsement_ca_path }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data: &str) -> Result<TpmDevIdConfig, String> {
        let plugin = crate::catalog::nodeattestor::test_plugin("tpm_devid", data);
        TpmDevIdConfig::from_plugin(&plugin).map_err(|e| e.to_string())
    }

    #[test]
    fn both_paths() {
        let c = config("devid_ca_path = \"/d.pem\"\nendorsement_ca_path = \"/e.pem\"").unwrap();
        assert_eq!(c.devid_ca_path, PathBuf::from("/d.pem"));
        assert_eq!(c.endorsement_ca_path, PathBuf::from("/e.pem"));
    }

    #[test]
    fn spire_refusals() {
        for (data, expected) in [
            ("endorsement_ca_path = \"/e\"", "devid_ca_path is required"),
            ("devid_ca_path = \"/d\"", "endorsement_ca_path is required"),
            ("devid_ca_path = \"/d\"\nendorsement_ca_path = \"/e\"\nx = 1", "unknown configuration key \"x\""),
        ] {
            let err = config(data).unwrap_err();
            assert!(err.contains(expected), "{data:?}: {err}");
            assert!(err.contains("plugins.NodeAttestor.tpm_devid.plugin_data"), "{data:?}: {err}");
        }
    }
}
