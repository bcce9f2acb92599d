//! `agent_path_template`: the subset of Go's `text/template` an sshpop agent path needs.
//!
//! SPIRE executes the template over the certificate (Go's `ssh.Certificate`, embedded) plus
//! `PluginName`, `Fingerprint` and `Hostname`. Supported actions: `.PluginName`, `.Fingerprint`,
//! `.Hostname`, `.KeyId`, `.Serial`, `.CertType`, `.ValidAfter`, `.ValidBefore` and
//! `index .ValidPrincipals <n>` (SPIRE's documented example). Anything else is refused when the
//! configuration is read.

/// SPIRE's default.
pub const DEFAULT: &str = "/{{ .PluginName}}/{{ .Fingerprint }}";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    Principal(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    PluginName,
    Fingerprint,
    Hostname,
    KeyId,
    Serial,
    CertType,
    ValidAfter,
    ValidBefore,
}

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
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The template's output for `data`, or Go's execution error.
    pub fn execute(&self, data: &TemplateData) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Principal(i) => out.push_str(
                    data.valid_principals
                        .get(*i)
                        .ok_or_else(|| format!("error calling index: index out of range: {i}"))?,
                ),
                Part::Field(f) => out.push_str(&match f {
                    Field::PluginName => data.plugin_name.clone(),
                    Field::Fingerprint => data.fingerprint.clone(),
                    Field::Hostname => data.hostname.clone(),
                    Field::KeyId => data.key_id.clone(),
                    Field::Serial => data.serial.to_string(),
                    Field::CertType => data.cert_type.to_string(),
                    Field::ValidAfter => data.valid_after.to_string(),
                    Field::ValidBefore => data.valid_before.to_string(),
                }),
            }
        }
        Ok(out)
    }
}

fn parse_action(action: &str) -> Result<Part, String> {
    let field = match action {
        ".PluginName" => Field::PluginName,
        ".Fingerprint" => Field::Fingerprint,
        ".Hostname" => Field::Hostname,
        ".KeyId" => Field::KeyId,
        ".Serial" => Field::Serial,
        ".CertType" => Field::CertType,
        ".ValidAfter" => Field::ValidAfter,
        ".ValidBefore" => Field::ValidBefore,
        other => {
            let words: Vec<&str> = other.split_whitespace().collect();
            if let ["index", ".ValidPrincipals", n] = words.as_slice()
                && let Ok(i) = n.parse::<usize>()
            {
                return Ok(Part::Principal(i));
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
