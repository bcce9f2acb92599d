//! The `plugin_data` of NodeAttestor `x509pop`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   ca_bundle_path = "/opt/spire/conf/server/agent-cacert.pem"   # or ca_bundle_paths = [...]
//!   agent_path_template = "/{{ .PluginName }}/{{ .Fingerprint }}" # the default
//!   mode = "external_pki"                                         # the default
//!   max_intermediates = 4                                         # the default
//!   max_rsa_key_size = 8192                                       # the default
//! }
//! ```
//!
//! `max_intermediates` and `max_rsa_key_size` are SPIRE v1.14's limits against resource exhaustion
//! (v1.13.3 has no such keys, so its configurations are unaffected; the limits apply to them too).
//!
//! In `mode = "spiffe"` the agents' certificates are X509-SVIDs of the server's own trust domain,
//! checked against the server's current bundle, and exchanged for agent IDs: `spiffe_prefix`
//! (default `/spire-exchange/`; SPIRE's docs call it `svid_prefix`, a key SPIRE ignores and we
//! refuse as unknown) is the path prefix an SVID must have, and the rest of its path is the
//! template's `.SVIDPathTrimmed`.

use std::path::PathBuf;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::template::{self, Template};

/// The decoded `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509PopConfig {
    /// `mode`.
    pub mode: Mode,
    /// The PEM files holding the trusted root CAs (`ca_bundle_path` or `ca_bundle_paths`); empty in
    /// `spiffe` mode.
    pub ca_bundle_paths: Vec<PathBuf>,
    /// `agent_path_template`, defaulted by mode.
    pub agent_path_template: Template,
    /// `max_intermediates`: more certificates after the leaf are refused before any is parsed.
    pub max_intermediates: usize,
    /// `max_rsa_key_size`: bits; a leaf or intermediate with a larger RSA key is refused.
    pub max_rsa_key_size: usize,
}

/// SPIRE's default `max_intermediates`.
pub const DEFAULT_MAX_INTERMEDIATES: usize = 4;
/// SPIRE's default `max_rsa_key_size`.
pub const DEFAULT_MAX_RSA_KEY_SIZE: usize = 8192;

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `external_pki`: the configured CA bundles.
    ExternalPki,
    /// `spiffe`: the server's own bundle; agents present X509-SVIDs whose path starts with
    /// `svid_prefix` (always ending in `/`).
    Spiffe {
        /// `spiffe_prefix`, with a trailing `/` added as SPIRE does.
        svid_prefix: String,
    },
}

impl X509PopConfig {
    /// Decodes the plugin's data; no file is read.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn read(r: &mut Reader<'_, '_>) -> X509PopConfig {
    let line = r.pos().line;
    let path = r.path().to_owned();
    let invalid = |r: &mut Reader<'_, '_>, message: String| {
        r.diags().error(ConfigError::invalid(format!("{path}: {message}"), line));
    };
    let mode_name = r.non_empty_string("mode").unwrap_or_else(|| "external_pki".into());
    if mode_name != "external_pki" && mode_name != "spiffe" {
        invalid(r, "mode can only be either spiffe or external_pki".into());
    }
    let mut svid_prefix = r.string("spiffe_prefix").unwrap_or_else(|| "/spire-exchange/".into());
    if !svid_prefix.ends_with('/') {
        svid_prefix.push('/');
    }
    let mode = if mode_name == "spiffe" { Mode::Spiffe { svid_prefix } } else { Mode::ExternalPki };
    let single = r.non_empty_string("ca_bundle_path");
    let many = r.string_list("ca_bundle_paths").unwrap_or_default();
    if matches!(mode, Mode::Spiffe { .. }) && (single.is_some() || !many.is_empty()) {
        invalid(r, "you can not use ca_bundle_path or ca_bundle_paths in spiffe mode".into());
    }
    let ca_bundle_paths: Vec<PathBuf> = match (single, many.is_empty()) {
        (Some(_), false) => {
            invalid(r, "only one of ca_bundle_path or ca_bundle_paths can be configured, not both".into());
            Vec::new()
        }
        (Some(p), true) => vec![PathBuf::from(p)],
        (None, false) => many.into_iter().map(PathBuf::from).collect(),
        (None, true) => {
            if mode == Mode::ExternalPki {
                invalid(r, "one of ca_bundle_path or ca_bundle_paths must be configured".into());
            }
            Vec::new()
        }
    };
    let default_template = match mode {
        Mode::ExternalPki => template::DEFAULT,
        Mode::Spiffe { .. } => template::DEFAULT_SVID,
    };
    let text = r.non_empty_string("agent_path_template").unwrap_or_else(|| default_template.into());
    let agent_path_template = match Template::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            invalid(r, format!("failed to parse agent svid template: {}: {e}", spire_cli::flags::go_quote(&text)));
            Template::parse(template::DEFAULT).expect("the default parses")
        }
    };
    let positive = |r: &mut Reader<'_, '_>, key: &str, default: usize| match r.int::<i64>(key) {
        None => default,
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(_) => {
            invalid(r, format!("{key} must be greater than 0"));
            default
        }
    };
    let max_intermediates = positive(r, "max_intermediates", DEFAULT_MAX_INTERMEDIATES);
    let max_rsa_key_size = positive(r, "max_rsa_key_size", DEFAULT_MAX_RSA_KEY_SIZE);
    X509PopConfig { mode, ca_bundle_paths, agent_path_template, max_intermediates, max_rsa_key_size }
}

/// A NodeAttestor "x509pop" block with `data` (HCL) as its `plugin_data`.
#[cfg(test)]
pub(crate) fn test_plugin(data: &str) -> PluginConfig {
    crate::catalog::nodeattestor::test_plugin("x509pop", data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data: &str) -> Result<X509PopConfig, String> {
        X509PopConfig::from_plugin(&test_plugin(data)).map_err(|e| e.to_string())
    }

    #[test]
    fn one_bundle_path_or_several() {
        let c = config(r#"ca_bundle_path = "/ca.pem""#).unwrap();
        assert_eq!(c.ca_bundle_paths, [PathBuf::from("/ca.pem")]);
        assert_eq!(c.agent_path_template, Template::parse(template::DEFAULT).unwrap());
        let c = config(
            "ca_bundle_paths = [\"/a.pem\", \"/b.pem\"]\nmode = \"external_pki\"\nspiffe_prefix = \"/x\"\nagent_path_template = \"/cn/{{ .Subject.CommonName }}\"",
        )
        .unwrap();
        assert_eq!(c.ca_bundle_paths.len(), 2);
        assert_eq!(c.mode, Mode::ExternalPki);
        assert_eq!((c.max_intermediates, c.max_rsa_key_size), (4, 8192));
        let c = config("ca_bundle_path = \"/a\"\nmax_intermediates = 1\nmax_rsa_key_size = \"4096\"").unwrap();
        assert_eq!((c.max_intermediates, c.max_rsa_key_size), (1, 4096));
    }

    #[test]
    fn spiffe_mode_needs_no_bundle_and_defaults_its_prefix_and_template() {
        let c = config(r#"mode = "spiffe""#).unwrap();
        assert_eq!(c.mode, Mode::Spiffe { svid_prefix: "/spire-exchange/".into() });
        assert!(c.ca_bundle_paths.is_empty());
        assert_eq!(c.agent_path_template, Template::parse(template::DEFAULT_SVID).unwrap());
        let c = config("mode = \"spiffe\"\nspiffe_prefix = \"/nodes\"").unwrap();
        assert_eq!(c.mode, Mode::Spiffe { svid_prefix: "/nodes/".into() });
        let c = config("mode = \"spiffe\"\nspiffe_prefix = \"\"").unwrap();
        assert_eq!(c.mode, Mode::Spiffe { svid_prefix: "/".into() });
    }

    #[test]
    fn spire_refusals() {
        for (data, expected) in [
            ("", "one of ca_bundle_path or ca_bundle_paths must be configured"),
            (
                "ca_bundle_path = \"/a\"\nca_bundle_paths = [\"/b\"]",
                "only one of ca_bundle_path or ca_bundle_paths can be configured, not both",
            ),
            ("ca_bundle_path = \"/a\"\nmode = \"other\"", "mode can only be either spiffe or external_pki"),
            (
                "mode = \"spiffe\"\nca_bundle_path = \"/a\"",
                "you can not use ca_bundle_path or ca_bundle_paths in spiffe mode",
            ),
            (
                "ca_bundle_path = \"/a\"\nagent_path_template = \"/{{ .X }}\"",
                "failed to parse agent svid template: \"/{{ .X }}\"",
            ),
            ("ca_bundle_path = \"/a\"\nsvid_prefix = \"/x\"", "unknown configuration key \"svid_prefix\""),
            ("ca_bundle_path = \"/a\"\nmax_intermediates = 0", "max_intermediates must be greater than 0"),
            ("ca_bundle_path = \"/a\"\nmax_rsa_key_size = -1", "max_rsa_key_size must be greater than 0"),
        ] {
            let err = config(data).unwrap_err();
            assert!(err.contains(expected), "{data:?}: {err}");
            assert!(err.contains("plugins.NodeAttestor.x509pop.plugin_data"), "{data:?}: {err}");
        }
    }
}
