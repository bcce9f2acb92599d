//! The `plugin_data` of NodeAttestor `sshpop`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   cert_authorities = ["ssh-ed25519 AAAA..."]          # and/or
//!   cert_authorities_path = "/opt/spire/conf/server/ssh_cas.pub"
//!   canonical_domain = "example.org"                    # optional
//!   agent_path_template = "/{{ .PluginName}}/{{ .Fingerprint }}"  # the default
//! }
//! ```
//!
//! The trusted CAs are the union of both keys' lines (`authorized_keys` format). The inline ones
//! are parsed here, with their line; the file is read when the plugin is set up.

use std::path::PathBuf;

use spire_attestation::sshpop::Authorities;
use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::template::{self, Template};

/// The decoded `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPopConfig {
    /// `cert_authorities`: `authorized_keys` lines; `None` if the key is absent.
    pub cert_authorities: Option<Vec<String>>,
    /// `cert_authorities_path`: a file of such lines.
    pub cert_authorities_path: Option<PathBuf>,
    /// `canonical_domain`: the suffix stripped from the first principal to make `.Hostname`, and
    /// required on it.
    pub canonical_domain: Option<String>,
    /// `agent_path_template`.
    pub agent_path_template: Template,
}

impl SshPopConfig {
    /// Decodes the plugin's data; no file is read.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn read(r: &mut Reader<'_, '_>) -> SshPopConfig {
    let section_line = r.pos().line;
    let path = r.path().to_owned();
    let invalid = |r: &mut Reader<'_, '_>, message: String, line: usize| {
        r.diags().error(ConfigError::invalid(format!("{path}: {message}"), line));
    };
    let cas_line = r.peek("cert_authorities").map_or(section_line, |v| v.pos.line);
    let cert_authorities = r.string_list("cert_authorities");
    let cert_authorities_path = r.non_empty_string("cert_authorities_path").map(PathBuf::from);
    if cert_authorities.is_none() && cert_authorities_path.is_none() {
        invalid(
            r,
            "missing required config value for \"cert_authorities\" or \"cert_authorities_path\"".into(),
            section_line,
        );
    }
    // Inline keys are checked now; SPIRE checks them with the file's, and an empty list alone is
    // refused as no authority at all.
    if let Some(lines) = &cert_authorities
        && (!lines.is_empty() || cert_authorities_path.is_none())
        && let Err(e) = Authorities::parse(lines.iter().map(String::as_str))
    {
        invalid(r, format!("failed to create cert checker: {e}"), cas_line);
    }
    let canonical_domain = r.non_empty_string("canonical_domain");
    let template_line = r.peek("agent_path_template").map_or(section_line, |v| v.pos.line);
    let text = r.non_empty_string("agent_path_template").unwrap_or_else(|| template::DEFAULT.into());
    let agent_path_template = match Template::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            let message = format!("failed to parse agent svid template: {}: {e}", spire_cli::flags::go_quote(&text));
            invalid(r, message, template_line);
            Template::parse(template::DEFAULT).expect("the default parses")
        }
    };
    SshPopConfig { cert_authorities, cert_authorities_path, canonical_domain, agent_path_template }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEAWPAsKJ/qMYUIBeH7BLMRCE/bkUvMHX+7OZhANk45S";

    fn config(data: &str) -> Result<SshPopConfig, String> {
        SshPopConfig::from_plugin(&crate::catalog::nodeattestor::test_plugin("sshpop", data)).map_err(|e| e.to_string())
    }

    #[test]
    fn inline_keys_a_file_or_both() {
        let c = config(&format!("cert_authorities = [\"{CA}\"]")).unwrap();
        assert_eq!(c.cert_authorities.unwrap().len(), 1);
        assert_eq!(c.agent_path_template, Template::parse(template::DEFAULT).unwrap());
        let c = config(
            "cert_authorities_path = \"/cas.pub\"\ncanonical_domain = \"example.org\"\nagent_path_template = \"/{{ .Hostname }}\"",
        )
        .unwrap();
        assert_eq!(c.cert_authorities_path, Some(PathBuf::from("/cas.pub")));
        assert_eq!(c.canonical_domain.as_deref(), Some("example.org"));
        assert!(config(&format!("cert_authorities = [\"{CA}\"]\ncert_authorities_path = \"/x\"")).is_ok());
        // An empty inline list is fine beside a file.
        assert!(config("cert_authorities = []\ncert_authorities_path = \"/x\"").is_ok());
    }

    #[test]
    fn spire_refusals_with_their_line() {
        for (data, expected, line) in [
            ("", "missing required config value for \"cert_authorities\" or \"cert_authorities_path\"", None),
            (
                "cert_authorities = []",
                "failed to create cert checker: must provide at least one cert authority",
                Some(1),
            ),
            (
                "canonical_domain = \"x\"\ncert_authorities = [\"ssh-ed25519 AAAA\"]",
                "failed to create cert checker: failed to parse public key \"ssh-ed25519 AAAA\"",
                Some(2),
            ),
            (
                "cert_authorities_path = \"/a\"\n\nagent_path_template = \"/{{ .X }}\"",
                "failed to parse agent svid template: \"/{{ .X }}\"",
                Some(3),
            ),
            (
                "cert_authorities_path = \"/a\"\nca_bundle_path = \"/x\"",
                "unknown configuration key \"ca_bundle_path\"",
                Some(2),
            ),
        ] {
            let err = config(data).unwrap_err();
            assert!(err.contains(expected), "{data:?}: {err}");
            assert!(err.contains("plugins.NodeAttestor.sshpop.plugin_data"), "{data:?}: {err}");
            if let Some(line) = line {
                assert!(err.contains(&format!("line {line}")), "{data:?}: {err}");
            }
        }
    }
}
