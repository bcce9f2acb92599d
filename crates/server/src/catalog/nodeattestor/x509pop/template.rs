//! What x509pop's `agent_path_template` may name: `.PluginName`, `.Fingerprint`, `.TrustDomain`,
//! `.SerialNumberHex`, `.SVIDPathTrimmed`, `.Subject.CommonName`, `.Subject.SerialNumber`,
//! `.Issuer.CommonName` and `index .URISanSelectors "<key>"` (the template engine is
//! [`crate::catalog::nodeattestor::agent_path_template`]).

use std::collections::BTreeMap;

use crate::catalog::nodeattestor::agent_path_template::{Fields, Key, KeyKind};

/// A parsed x509pop template.
pub type Template = crate::catalog::nodeattestor::agent_path_template::Template<TemplateData>;

/// SPIRE's default in `external_pki` mode.
pub const DEFAULT: &str = "/{{ .PluginName }}/{{ .Fingerprint }}";

/// SPIRE's default in `spiffe` mode.
pub const DEFAULT_SVID: &str = "/{{ .PluginName }}/{{ .SVIDPathTrimmed }}";

/// What a template is executed with.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// `x509pop`.
    pub plugin_name: String,
    /// The leaf's SHA-1 fingerprint.
    pub fingerprint: String,
    /// The server's trust domain name.
    pub trust_domain: String,
    /// The leaf's serial number, as in the `serialnumber` selector.
    pub serial_number_hex: String,
    /// Empty in `external_pki` mode.
    pub svid_path_trimmed: String,
    /// The leaf's subject CN.
    pub subject_common_name: String,
    /// The leaf's subject serialNumber attribute.
    pub subject_serial_number: String,
    /// The leaf's issuer CN.
    pub issuer_common_name: String,
    /// The leaf's `x509pop://<td>/<key>/<value>` URI SANs.
    pub uri_san_selectors: BTreeMap<String, String>,
}

impl Fields for TemplateData {
    const FIELDS: &'static [&'static str] = &[
        "PluginName",
        "Fingerprint",
        "TrustDomain",
        "SerialNumberHex",
        "SVIDPathTrimmed",
        "Subject.CommonName",
        "Subject.SerialNumber",
        "Issuer.CommonName",
    ];
    const INDEXES: &'static [(&'static str, KeyKind)] = &[("URISanSelectors", KeyKind::Str)];

    fn field(&self, name: &str) -> String {
        match name {
            "PluginName" => &self.plugin_name,
            "Fingerprint" => &self.fingerprint,
            "TrustDomain" => &self.trust_domain,
            "SerialNumberHex" => &self.serial_number_hex,
            "SVIDPathTrimmed" => &self.svid_path_trimmed,
            "Subject.CommonName" => &self.subject_common_name,
            "Subject.SerialNumber" => &self.subject_serial_number,
            _ => &self.issuer_common_name,
        }
        .clone()
    }

    /// A missing key is empty text, as Go's `index` of a map gives.
    fn index(&self, _: &str, key: &Key) -> Result<String, String> {
        let Key::Str(key) = key else { return Ok(String::new()) };
        Ok(self.uri_san_selectors.get(key).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        TemplateData {
            plugin_name: "x509pop".into(),
            fingerprint: "abcd".into(),
            trust_domain: "example.org".into(),
            serial_number_hex: "0a".into(),
            subject_common_name: "node-1".into(),
            uri_san_selectors: [("datacenter".to_owned(), "eu".to_owned())].into(),
            ..TemplateData::default()
        }
    }

    #[test]
    fn the_default_and_spire_documented_forms() {
        assert_eq!(Template::parse(DEFAULT).unwrap().execute(&data()).unwrap(), "/x509pop/abcd");
        let t = Template::parse("/cn/{{ .Subject.CommonName }}").unwrap();
        assert_eq!(t.execute(&data()).unwrap(), "/cn/node-1");
        let t = Template::parse("/{{.TrustDomain}}/{{ .SerialNumberHex }}/{{ index .URISanSelectors \"datacenter\" }}")
            .unwrap();
        assert_eq!(t.execute(&data()).unwrap(), "/example.org/0a/eu");
        let t = Template::parse("/{{ index .URISanSelectors \"none\" }}x").unwrap();
        assert_eq!(t.execute(&data()).unwrap(), "/x");
    }

    #[test]
    fn unsupported_actions_are_refused() {
        assert_eq!(Template::parse("/{{ .Nope }}").unwrap_err(), "unsupported action {{ .Nope }}");
        assert!(Template::parse("/{{ .PluginName ").is_err());
        assert!(Template::parse("/{{ upper .PluginName }}").is_err());
    }
}
