//! What aws_iid's `agent_path_template` may name: `.PluginName`, `.AccountID`, `.Region`,
//! `.InstanceID`, `.TrustDomain` (always empty, as in SPIRE, which never sets it) and
//! `index .Tags "<key>"` (the template engine is
//! [`crate::catalog::nodeattestor::agent_path_template`]).

use std::collections::BTreeMap;

use crate::catalog::nodeattestor::agent_path_template::{Fields, Key, KeyKind};

/// A parsed aws_iid template.
pub type Template = crate::catalog::nodeattestor::agent_path_template::Template<TemplateData>;

/// SPIRE's default.
pub const DEFAULT: &str = "/{{ .PluginName }}/{{ .AccountID }}/{{ .Region }}/{{ .InstanceID }}";

/// What a template is executed with.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// `aws_iid`.
    pub plugin_name: String,
    /// The document's account.
    pub account_id: String,
    /// The document's region.
    pub region: String,
    /// The document's instance.
    pub instance_id: String,
    /// The instance's tags, when the template uses them or the block device check read the instance.
    pub tags: BTreeMap<String, String>,
}

impl Fields for TemplateData {
    const FIELDS: &'static [&'static str] = &["PluginName", "AccountID", "Region", "InstanceID", "TrustDomain"];
    const INDEXES: &'static [(&'static str, KeyKind)] = &[("Tags", KeyKind::Str)];

    fn field(&self, name: &str) -> String {
        match name {
            "PluginName" => self.plugin_name.clone(),
            "AccountID" => self.account_id.clone(),
            "Region" => self.region.clone(),
            "InstanceID" => self.instance_id.clone(),
            _ => String::new(),
        }
    }

    /// A missing tag is empty text, as Go's `index` of a map gives.
    fn index(&self, _: &str, key: &Key) -> Result<String, String> {
        let Key::Str(key) = key else { return Ok(String::new()) };
        Ok(self.tags.get(key).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_tags() {
        let data = TemplateData {
            plugin_name: "aws_iid".into(),
            account_id: "123".into(),
            region: "us-east-1".into(),
            instance_id: "i-1".into(),
            tags: [("name".to_owned(), "web".to_owned())].into(),
        };
        assert_eq!(Template::parse(DEFAULT).unwrap().execute(&data).unwrap(), "/aws_iid/123/us-east-1/i-1");
        let t = Template::parse("/{{ index .Tags \"name\" }}/{{ index .Tags \"none\" }}x").unwrap();
        assert_eq!(t.execute(&data).unwrap(), "/web/x");
    }
}
