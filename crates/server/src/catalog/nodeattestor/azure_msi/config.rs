//! The `plugin_data` of NodeAttestor `azure_msi`, with SPIRE v1.13.3's keys:
//!
//! ```hcl
//! plugin_data {
//!   tenants = {
//!     "<tenant id>" = {
//!       resource_id = "https://management.azure.com/"  # the default: the token's audience
//!       # credentials for the resolver; all three or none (then the server's own identity)
//!       subscription_id = "..."
//!       app_id = "..."
//!       app_secret = "..."
//!     }
//!   }
//!   agent_path_template = "/{{ .PluginName }}/{{ .TenantID }}/{{ .PrincipalID }}" # the default
//! }
//! ```
//!
//! Keys SPIRE lacks exist for tests only and say so: `test_only_oidc_issuer` replaces
//! `https://login.microsoftonline.com/common/` (where the signing keys are discovered),
//! `test_only_authority_host` replaces `https://login.microsoftonline.com/` (where app credentials
//! get tokens), `test_only_resource_manager_endpoint` replaces `https://management.azure.com/`, and
//! `test_only_imds_host` replaces `169.254.169.254` (the server's own managed identity).

use std::collections::BTreeMap;

use spire_config::plugin_data::decode;
use spire_config::{ConfigError, PluginConfig, Reader};

use super::template::{self, Template};

/// Where SPIRE discovers Azure AD's signing keys.
pub const OIDC_ISSUER: &str = "https://login.microsoftonline.com/common/";
/// Azure AD's token authority.
pub const AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// Azure Resource Manager.
pub const RESOURCE_MANAGER: &str = "https://management.azure.com/";

/// One tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// `resource_id`: the audience its tokens must have.
    pub resource_id: String,
    /// App credentials for the resolver, or `None` for the server's own identity.
    pub app: Option<AppCredentials>,
}

/// `subscription_id`, `app_id`, `app_secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The subscription the resolver looks in.
    pub subscription_id: String,
    /// The app (client) ID.
    pub app_id: String,
    /// The app's secret.
    pub app_secret: String,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("subscription_id", &self.subscription_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// The decoded `plugin_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureMsiConfig {
    /// `tenants`, by tenant ID.
    pub tenants: BTreeMap<String, TenantConfig>,
    /// `agent_path_template`.
    pub agent_path_template: Template,
    /// `test_only_oidc_issuer`, else Azure AD's.
    pub oidc_issuer: String,
    /// `test_only_authority_host`, else Azure AD's (ends in `/`).
    pub authority_host: String,
    /// `test_only_resource_manager_endpoint`, else ARM's (ends in `/`).
    pub resource_manager: String,
    /// `test_only_imds_host`, else IMDS's address.
    pub imds_host: String,
}

impl AzureMsiConfig {
    /// Decodes the plugin's data; nothing is fetched.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, read)
    }
}

fn slash(mut s: String) -> String {
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

fn read(r: &mut Reader<'_, '_>) -> AzureMsiConfig {
    let line = r.pos().line;
    let path = r.path().to_owned();
    let invalid = |r: &mut Reader<'_, '_>, message: String| {
        r.diags().error(ConfigError::invalid(format!("{path}: {message}"), line));
    };
    let mut tenants = BTreeMap::new();
    let mut problems = Vec::new();
    if let Some(mut section) = r.object("tenants") {
        for entry in section.take_entries() {
            let tenant_path = format!("{}[{:?}]", section.path(), entry.key);
            let Some(mut t) = Reader::new(tenant_path, &entry.value, section.diags()) else { continue };
            let resource_id = t
                .non_empty_string("resource_id")
                .unwrap_or_else(|| spire_attestation::azure_msi::DEFAULT_RESOURCE_ID.into());
            let subscription_id = t.string("subscription_id").unwrap_or_default();
            let app_id = t.string("app_id").unwrap_or_default();
            let app_secret = t.string("app_secret").unwrap_or_default();
            t.finish();
            let quoted = spire_cli::flags::go_quote(&entry.key);
            let app = if subscription_id.is_empty() && app_id.is_empty() && app_secret.is_empty() {
                None
            } else {
                for (value, what) in
                    [(&subscription_id, "subscription id"), (&app_id, "app id"), (&app_secret, "app secret")]
                {
                    if value.is_empty() {
                        problems.push(format!("misconfigured tenant {quoted}: missing {what}"));
                    }
                }
                Some(AppCredentials { subscription_id, app_id, app_secret })
            };
            tenants.insert(entry.key.clone(), TenantConfig { resource_id, app });
        }
        section.finish();
    }
    if tenants.is_empty() {
        invalid(r, "configuration must have at least one tenant".into());
    }
    for p in problems {
        invalid(r, p);
    }
    let text = r.non_empty_string("agent_path_template").unwrap_or_else(|| template::DEFAULT.into());
    let agent_path_template = Template::parse(&text).unwrap_or_else(|_| {
        invalid(r, format!("failed to parse agent path template: {}", spire_cli::flags::go_quote(&text)));
        Template::parse(template::DEFAULT).expect("the default parses")
    });
    AzureMsiConfig {
        tenants,
        agent_path_template,
        oidc_issuer: r.non_empty_string("test_only_oidc_issuer").unwrap_or_else(|| OIDC_ISSUER.into()),
        authority_host: slash(r.non_empty_string("test_only_authority_host").unwrap_or_else(|| AUTHORITY_HOST.into())),
        resource_manager: slash(
            r.non_empty_string("test_only_resource_manager_endpoint").unwrap_or_else(|| RESOURCE_MANAGER.into()),
        ),
        imds_host: r
            .non_empty_string("test_only_imds_host")
            .unwrap_or_else(|| spire_attestation::azure_msi::IMDS_HOST.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data: &str) -> Result<AzureMsiConfig, String> {
        AzureMsiConfig::from_plugin(&crate::catalog::nodeattestor::test_plugin("azure_msi", data))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tenants_and_defaults() {
        let c = config(
            "tenants = {\n\"t1\" = {}\n\"t2\" = { resource_id = \"api://x\" subscription_id = \"s\" app_id = \"a\" app_secret = \"p\" }\n}",
        )
        .unwrap();
        assert_eq!(c.tenants["t1"], TenantConfig { resource_id: "https://management.azure.com/".into(), app: None });
        assert_eq!(c.tenants["t2"].resource_id, "api://x");
        assert_eq!(c.tenants["t2"].app.as_ref().unwrap().app_id, "a");
        assert_eq!(c.agent_path_template, Template::parse(template::DEFAULT).unwrap());
        assert_eq!((c.oidc_issuer.as_str(), c.imds_host.as_str()), (OIDC_ISSUER, "169.254.169.254"));
    }

    #[test]
    fn spire_refusals() {
        for (data, expected) in [
            ("", "configuration must have at least one tenant"),
            ("tenants = {\n\"t\" = { app_id = \"a\" }\n}", "misconfigured tenant \"t\": missing subscription id"),
            ("tenants = {\n\"t\" = { app_id = \"a\" }\n}", "misconfigured tenant \"t\": missing app secret"),
            (
                "tenants = {\n\"t\" = {}\n}\nagent_path_template = \"/{{ .X }}\"",
                "failed to parse agent path template: \"/{{ .X }}\"",
            ),
        ] {
            let err = config(data).unwrap_err();
            assert!(err.contains(expected), "{data:?}: {err}");
        }
    }
}
