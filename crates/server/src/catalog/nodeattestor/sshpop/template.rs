//! What sshpop's `agent_path_template` may name. SPIRE executes the template over the certificate
//! (Go's `ssh.Certificate`, embedded) plus `PluginName`, `Fingerprint` and `Hostname`; supported
//! here: `.PluginName`, `.Fingerprint`, `.Hostname`, `.KeyId`, `.Serial`, `.CertType`,
//! `.ValidAfter`, `.ValidBefore` and `index .ValidPrincipals <n>` (SPIRE's documented example), with
//! the engine of [`crate::catalog::nodeattestor::agent_path_template`].

use crate::catalog::nodeattestor::agent_path_template::{Fields, Key, KeyKind};

/// A parsed sshpop template.
pub type Template = crate::catalog::nodeattestor::agent_path_template::Template<TemplateData>;

/// SPIRE's default.
pub const DEFAULT: &str = "/{{ .PluginName}}/{{ .Fingerprint }}";

/// What a template is executed with.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// `sshpop`.
    pub plugin_name: String,
    /// The certificate's fingerprint.
    pub fingerprint: String,
    /// The first principal, less the canonical domain.
    pub hostname: String,
    /// The certificate's key ID.
    pub key_id: String,
    /// Its serial number.
    pub serial: u64,
    /// 1 user, 2 host.
    pub cert_type: u32,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// The principals.
    pub valid_principals: Vec<String>,
}

impl Fields for TemplateData {
    const FIELDS: &'static [&'static str] =
        &["PluginName", "Fingerprint", "Hostname", "KeyId", "Serial", "CertType", "ValidAfter", "ValidBefore"];
    const INDEXES: &'static [(&'static str, KeyKind)] = &[("ValidPrincipals", KeyKind::Int)];

    fn field(&self, name: &str) -> String {
        match name {
            "PluginName" => self.plugin_name.clone(),
            "Fingerprint" => self.fingerprint.clone(),
            "Hostname" => self.hostname.clone(),
            "KeyId" => self.key_id.clone(),
            "Serial" => self.serial.to_string(),
            "CertType" => self.cert_type.to_string(),
            "ValidAfter" => self.valid_after.to_string(),
            _ => self.valid_before.to_string(),
        }
    }

    /// Go's `index` of a list: out of range is an execution error.
    fn index(&self, _: &str, key: &Key) -> Result<String, String> {
        let Key::Int(i) = key else { return Err("error calling index: cannot index slice with a string".into()) };
        self.valid_principals.get(*i).cloned().ok_or_else(|| format!("error calling index: index out of range: {i}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        TemplateData {
            plugin_name: "sshpop".into(),
            fingerprint: "abc_-".into(),
            hostname: "node-1".into(),
            key_id: "id".into(),
            serial: 7,
            cert_type: 2,
            valid_principals: vec!["node-1.example.org".into()],
            ..TemplateData::default()
        }
    }

    #[test]
    fn the_default_and_documented_forms() {
        assert_eq!(Template::parse(DEFAULT).unwrap().execute(&data()).unwrap(), "/sshpop/abc_-");
        let t = Template::parse("static/{{ index .ValidPrincipals 0 }}").unwrap();
        assert_eq!(t.execute(&data()).unwrap(), "static/node-1.example.org");
        let t = Template::parse("/{{ .Hostname }}/{{.KeyId}}/{{ .Serial }}").unwrap();
        assert_eq!(t.execute(&data()).unwrap(), "/node-1/id/7");
        let t = Template::parse("/{{ index .ValidPrincipals 3 }}").unwrap();
        assert_eq!(t.execute(&data()).unwrap_err(), "error calling index: index out of range: 3");
    }

    #[test]
    fn unsupported_actions_are_refused() {
        assert_eq!(Template::parse("/{{ .Nope }}").unwrap_err(), "unsupported action {{ .Nope }}");
        assert!(Template::parse("/{{ .PluginName ").is_err());
        assert!(Template::parse("/{{ index .ValidPrincipals x }}").is_err());
    }
}
