//! The `plugin_data` of NodeAttestor `http_challenge`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   allowed_dns_patterns = ["p[0-9]\\.example\\.com"] # unset: any host name but localhost
//!   required_port = 80                                # unset: any port
//!   allow_non_root_ports = true                       # the default
//!   tofu = true                                       # the default
//! }
//! ```
//!
//! Any user of a node can listen on a port from 1024 up, so when such ports are allowed trust on
//! first use cannot be turned off (SPIRE refuses the configuration). SPIRE's documentation shows an
//! `agent_path_template` in a comment, but its plugin has no such key (agents are always
//! `/spire/agent/http_challenge/<hostname>`); like any key the plugin does not know, it is refused.

use regex::Regex;
use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

/// The decoded `plugin_data`.
#[derive(Debug, Clone)]
pub struct HttpChallengeConfig {
    /// `allowed_dns_patterns`: a host name must match one (anywhere in it, as Go's regexp
    /// finds); empty allows any.
    pub allowed_dns_patterns: Vec<Regex>,
    /// `required_port`: the only port agents may advertise.
    pub required_port: Option<i64>,
    /// `allow_non_root_ports`: whether ports from 1024 up may be advertised.
    pub allow_non_root_ports: bool,
    /// `tofu`: a host name attests once, until its agent is evicted; agents cannot re-attest.
    pub tofu: bool,
}

impl HttpChallengeConfig {
    /// Decodes the plugin's data.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn read(r: &mut Reader<'_, '_>) -> HttpChallengeConfig {
    let line = r.pos().line;
    let path = r.path().to_owned();
    let invalid = |r: &mut Reader<'_, '_>, message: String| {
        r.diags().error(ConfigError::invalid(format!("{path}: {message}"), line));
    };
    let mut allowed_dns_patterns = Vec::new();
    for pattern in r.string_list("allowed_dns_patterns").unwrap_or_default() {
        match Regex::new(&pattern) {
            Ok(re) => allowed_dns_patterns.push(re),
            Err(e) => invalid(r, format!("cannot compile allowed_dns_pattern: {pattern:?}, {e}")),
        }
    }
    let required_port = r.int::<i64>("required_port");
    let allow_non_root_ports_set = r.bool("allow_non_root_ports");
    let tofu = r.bool("tofu").unwrap_or(true);
    // SPIRE's three cases where any user of the node could answer the challenge.
    let must_use_tofu = match (required_port, allow_non_root_ports_set) {
        (Some(port), _) if port >= 1024 => true,
        (None, None) | (None, Some(true)) => true,
        _ => false,
    };
    if !tofu && must_use_tofu {
        invalid(r, "you can not turn off trust on first use (TOFU) when non-root ports are allowed".into());
    }
    HttpChallengeConfig {
        allowed_dns_patterns,
        required_port,
        allow_non_root_ports: allow_non_root_ports_set.unwrap_or(true),
        tofu,
    }
}

/// A NodeAttestor "http_challenge" block with `data` (HCL) as its `plugin_data`.
#[cfg(test)]
pub(crate) fn test_plugin(data: &str) -> PluginConfig {
    crate::catalog::nodeattestor::test_plugin(super::NAME, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data: &str) -> Result<HttpChallengeConfig, String> {
        HttpChallengeConfig::from_plugin(&test_plugin(data)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_allow_any_port_with_tofu() {
        let c = config("").unwrap();
        assert!(c.allowed_dns_patterns.is_empty());
        assert_eq!(c.required_port, None);
        assert!(c.allow_non_root_ports && c.tofu);
        let c = config("allowed_dns_patterns = [\"p[0-9]\\\\.example\\\\.com\"]\nrequired_port = 80\ntofu = false")
            .unwrap();
        assert_eq!(c.allowed_dns_patterns.len(), 1);
        assert!(c.allowed_dns_patterns[0].is_match("p1.example.com"));
        assert_eq!(c.required_port, Some(80));
        assert!(!c.tofu);
        let c = config("allow_non_root_ports = false\ntofu = false").unwrap();
        assert!(!c.allow_non_root_ports && !c.tofu);
    }

    #[test]
    fn tofu_stays_on_while_non_root_ports_are_allowed() {
        for data in [
            "tofu = false",
            "tofu = false\nrequired_port = 8080",
            "tofu = false\nallow_non_root_ports = true",
            "tofu = false\nallow_non_root_ports = false\nrequired_port = 1024",
        ] {
            let err = config(data).unwrap_err();
            assert!(
                err.contains("you can not turn off trust on first use (TOFU) when non-root ports are allowed"),
                "{data}: {err}"
            );
            assert!(err.contains("plugins.NodeAttestor.http_challenge.plugin_data"), "{err}");
        }
        // A root port required: SPIRE lets TOFU go even with allow_non_root_ports left true.
        config("tofu = false\nrequired_port = 80\nallow_non_root_ports = true").unwrap();
    }

    #[test]
    fn bad_patterns_and_unknown_keys_are_refused() {
        let err = config("allowed_dns_patterns = [\"(\"]").unwrap_err();
        assert!(err.contains("cannot compile allowed_dns_pattern: \"(\""), "{err}");
        for key in ["agent_path_template = \"/x\"", "dns_patterns = [\"x\"]"] {
            let err = config(key).unwrap_err();
            assert!(err.contains("unknown configuration key"), "{key}: {err}");
        }
    }
}
