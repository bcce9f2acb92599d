//! What gcp_iit's `agent_path_template` may name: the identity token's Compute Engine facts
//! (`.ProjectID`, `.ProjectNumber`, `.Zone`, `.InstanceID`, `.InstanceName`,
//! `.InstanceCreationTimestamp`) and `.PluginName`, as SPIRE's `gcp.agentPathTemplateData`.

use spire_attestation::gcp_iit::{ComputeEngine, PLUGIN_NAME};

use crate::catalog::nodeattestor::agent_path_template::{Fields, Key, KeyKind};

/// A parsed gcp_iit template.
pub type Template = crate::catalog::nodeattestor::agent_path_template::Template<ComputeEngine>;

/// SPIRE's default.
pub const DEFAULT: &str = spire_attestation::gcp_iit::DEFAULT_AGENT_PATH_TEMPLATE;

impl Fields for ComputeEngine {
    const FIELDS: &'static [&'static str] = &[
        "PluginName",
        "ProjectID",
        "ProjectNumber",
        "Zone",
        "InstanceID",
        "InstanceName",
        "InstanceCreationTimestamp",
        "ComputeEngine.ProjectID",
        "ComputeEngine.ProjectNumber",
        "ComputeEngine.Zone",
        "ComputeEngine.InstanceID",
        "ComputeEngine.InstanceName",
        "ComputeEngine.InstanceCreationTimestamp",
    ];
    const INDEXES: &'static [(&'static str, KeyKind)] = &[];

    fn field(&self, name: &str) -> String {
        match name.trim_start_matches("ComputeEngine.") {
            "PluginName" => PLUGIN_NAME.to_owned(),
            "ProjectID" => self.project_id.clone(),
            "ProjectNumber" => self.project_number.to_string(),
            "Zone" => self.zone.clone(),
            "InstanceID" => self.instance_id.clone(),
            "InstanceName" => self.instance_name.clone(),
            _ => self.instance_creation_timestamp.to_string(),
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
    fn the_default_and_other_fields() {
        let ce = ComputeEngine {
            project_id: "proj".into(),
            project_number: 12,
            zone: "z".into(),
            instance_id: "99".into(),
            instance_name: "vm".into(),
            instance_creation_timestamp: 7,
        };
        assert_eq!(Template::parse(DEFAULT).unwrap().execute(&ce).unwrap(), "/gcp_iit/proj/99");
        let t = Template::parse(
            "/{{ .Zone }}/{{ .InstanceName }}/{{ .ProjectNumber }}/{{ .ComputeEngine.InstanceCreationTimestamp }}",
        )
        .unwrap();
        assert_eq!(t.execute(&ce).unwrap(), "/z/vm/12/7");
    }
}
