//! What azure_msi's `agent_path_template` may name: `.PluginName`, `.TenantID`, `.PrincipalID`
//! (SPIRE's `azure.agentPathTemplateData`).

use crate::catalog::nodeattestor::agent_path_template::{Fields, Key, KeyKind};

/// A parsed azure_msi template.
pub type Template = crate::catalog::nodeattestor::agent_path_template::Template<TemplateData>;

/// SPIRE's default.
pub const DEFAULT: &str = spire_attestation::azure_msi::DEFAULT_AGENT_PATH_TEMPLATE;

/// What a template is executed with.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// The token's `tid`.
    pub tenant_id: String,
    /// The token's `sub`.
    pub principal_id: String,
}

impl Fields for TemplateData {
    const FIELDS: &'static [&'static str] = &["PluginName", "TenantID", "PrincipalID"];
    const INDEXES: &'static [(&'static str, KeyKind)] = &[];

    fn field(&self, name: &str) -> String {
        match name {
            "PluginName" => spire_attestation::azure_msi::PLUGIN_NAME.to_owned(),
            "TenantID" => self.tenant_id.clone(),
            _ => self.principal_id.clone(),
        }
    }

    fn index(&self, _: &str, _: &Key) -> Result<String, String> {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default() {
        let d = TemplateData { tenant_id: "t".into(), principal_id: "p".into() };
        assert_eq!(Template::parse(DEFAULT).unwrap().execute(&d).unwrap(), "/azure_msi/t/p");
    }
}
