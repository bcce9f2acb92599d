//! `agent_path_template`: the subset of Go's `text/template` SPIRE's x509pop templates use.
//!
//! Text is copied; each `{{ ... }}` action is one field reference: `.PluginName`, `.Fingerprint`,
//! `.TrustDomain`, `.SerialNumberHex`, `.SVIDPathTrimmed`, `.Subject.CommonName`,
//! `.Subject.SerialNumber`, `.Issuer.CommonName`, or `index .URISanSelectors "<key>"`. Anything
//! else is refused when the configuration is read (SPIRE would fail each attestation instead).

use std::collections::BTreeMap;

/// SPIRE's default in `external_pki` mode.
pub const DEFAULT: &str = "/{{ .PluginName }}/{{ .Fingerprint }}";

/// SPIRE's default in `spiffe` mode.
pub const DEFAULT_SVID: &str = "/{{ .PluginName }}/{{ .SVIDPathTrimmed }}";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    SanSelector(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    PluginName,
    Fingerprint,
    TrustDomain,
    SerialNumberHex,
    SvidPathTrimmed,
    SubjectCommonName,
    SubjectSerialNumber,
    IssuerCommonName,
}

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

impl Template {
    /// Parses `text`; the error says which action is not supported.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| "unclosed action".to_owned())?;
            parts.push(parse_action(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err("unexpected \"}}\"".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The template's output for `data`.
    pub fn execute(&self, data: &TemplateData) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::SanSelector(key) => {
                    out.push_str(data.uri_san_selectors.get(key).map(String::as_str).unwrap_or_default());
                }
                Part::Field(f) => out.push_str(match f {
                    Field::PluginName => &data.plugin_name,
                    Field::Fingerprint => &data.fingerprint,
                    Field::TrustDomain => &data.trust_domain,
                    Field::SerialNumberHex => &data.serial_number_hex,
                    Field::SvidPathTrimmed => &data.svid_path_trimmed,
                    Field::SubjectCommonName => &data.subject_common_name,
                    Field::SubjectSerialNumber => &data.subject_serial_number,
                    Field::IssuerCommonName => &data.issuer_common_name,
                }),
            }
        }
        out
    }
}

fn parse_action(action: &str) -> Result<Part, String> {
    let field = match action {
        ".PluginName" => Field::PluginName,
        ".Fingerprint" => Field::Fingerprint,
        ".TrustDomain" => Field::TrustDomain,
        ".SerialNumberHex" => Field::SerialNumberHex,
        ".SVIDPathTrimmed" => Field::SvidPathTrimmed,
        ".Subject.CommonName" => Field::SubjectCommonName,
        ".Subject.SerialNumber" => Field::SubjectSerialNumber,
        ".Issuer.CommonName" => Field::IssuerCommonName,
        other => {
            let words: Vec<&str> = other.split_whitespace().collect();
            if let ["index", ".URISanSelectors", key] = words.as_slice()
                && key.len() >= 2
                && key.starts_with('"')
                && key.ends_with('"')
            {
                return Ok(Part::SanSelector(key[1..key.len() - 1].to_owned()));
            }
            return Err(format!("unsupported action {{{{ {other} }}}}"));
        }
    };
    Ok(Part::Field(field))
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
        assert_eq!(Template::parse(DEFAULT).unwrap().execute(&data()), "/x509pop/abcd");
        let t = Template::parse("/cn/{{ .Subject.CommonName }}").unwrap();
        assert_eq!(t.execute(&data()), "/cn/node-1");
        let t = Template::parse("/{{.TrustDomain}}/{{ .SerialNumberHex }}/{{ index .URISanSelectors \"datacenter\" }}")
            .unwrap();
        assert_eq!(t.execute(&data()), "/example.org/0a/eu");
        let t = Template::parse("/{{ index .URISanSelectors \"none\" }}x").unwrap();
        assert_eq!(t.execute(&data()), "/x");
    }

    #[test]
    fn unsupported_actions_are_refused() {
        assert_eq!(Template::parse("/{{ .Nope }}").unwrap_err(), "unsupported action {{ .Nope }}");
        assert!(Template::parse("/{{ .PluginName ").is_err());
        assert!(Template::parse("/{{ upper .PluginName }}").is_err());
        assert!(Template::parse("/a}}").is_err());
    }
}
