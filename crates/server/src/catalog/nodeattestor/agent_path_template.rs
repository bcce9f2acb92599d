//! `agent_path_template`: the subset of Go's `text/template` SPIRE's node attestors name agents
//! with, once for every plugin that has the key.
//!
//! Text is copied; each `{{ ... }}` action is a field reference (`.PluginName`,
//! `.Subject.CommonName`) or `index .<Field> <key>` with a quoted string key (a map) or a number (a
//! list). Which fields and indexes exist is the plugin's ([`Fields`]); anything else is refused
//! when the configuration is read, where SPIRE would fail each attestation instead. Outside actions
//! `}}` is text, as in Go.

use std::fmt;
use std::marker::PhantomData;

/// What a plugin offers its templates, and the values of one attestation.
pub trait Fields {
    /// The field references, without the leading dot (`PluginName`, `Subject.CommonName`).
    const FIELDS: &'static [&'static str];
    /// The fields `index` applies to, with the kind of key each takes.
    const INDEXES: &'static [(&'static str, KeyKind)];
    /// The value of field `name` (one of [`Self::FIELDS`]).
    fn field(&self, name: &str) -> String;
    /// The value of `index .<name> <key>` (one of [`Self::INDEXES`]), or Go's execution error.
    fn index(&self, name: &str, key: &Key) -> Result<String, String>;
}

/// What `index` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A quoted string: a map's key.
    Str,
    /// A number: a list's position.
    Int,
}

/// An `index` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `"key"`.
    Str(String),
    /// `3`.
    Int(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
    Index(&'static str, Key),
}

/// A parsed template for the plugin whose data is `F`.
pub struct Template<F> {
    parts: Vec<Part>,
    fields: PhantomData<fn(&F)>,
}

impl<F: Fields> Template<F> {
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
            parts.push(parse_action::<F>(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts, fields: PhantomData })
    }

    /// The template's output for `data`, or Go's execution error.
    pub fn execute(&self, data: &F) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(name) => out.push_str(&data.field(name)),
                Part::Index(name, key) => out.push_str(&data.index(name, key)?),
            }
        }
        Ok(out)
    }
}

fn parse_action<F: Fields>(action: &str) -> Result<Part, String> {
    let unsupported = || format!("unsupported action {{{{ {action} }}}}");
    if let Some(name) = action.strip_prefix('.')
        && let Some(field) = F::FIELDS.iter().find(|f| **f == name)
    {
        return Ok(Part::Field(field));
    }
    let words: Vec<&str> = action.split_whitespace().collect();
    let ["index", target, key] = words.as_slice() else { return Err(unsupported()) };
    let Some((name, kind)) = F::INDEXES.iter().find(|(n, _)| target.strip_prefix('.') == Some(*n)) else {
        return Err(unsupported());
    };
    let key = match kind {
        KeyKind::Str if key.len() >= 2 && key.starts_with('"') && key.ends_with('"') => {
            Key::Str(key[1..key.len() - 1].to_owned())
        }
        KeyKind::Int => Key::Int(key.parse().map_err(|_| unsupported())?),
        KeyKind::Str => return Err(unsupported()),
    };
    Ok(Part::Index(name, key))
}

impl<F> Clone for Template<F> {
    fn clone(&self) -> Self {
        Self { parts: self.parts.clone(), fields: PhantomData }
    }
}

impl<F> PartialEq for Template<F> {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl<F> Eq for Template<F> {}

impl<F> fmt::Debug for Template<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template").field("parts", &self.parts).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Data;

    impl Fields for Data {
        const FIELDS: &'static [&'static str] = &["PluginName", "Subject.CommonName"];
        const INDEXES: &'static [(&'static str, KeyKind)] = &[("Map", KeyKind::Str), ("List", KeyKind::Int)];
        fn field(&self, name: &str) -> String {
            format!("<{name}>")
        }
        fn index(&self, name: &str, key: &Key) -> Result<String, String> {
            match key {
                Key::Str(k) => Ok(format!("{name}[{k}]")),
                Key::Int(i) if *i < 2 => Ok(format!("{name}[{i}]")),
                Key::Int(i) => Err(format!("error calling index: index out of range: {i}")),
            }
        }
    }

    fn run(text: &str) -> Result<String, String> {
        Template::<Data>::parse(text)?.execute(&Data)
    }

    #[test]
    fn fields_and_indexes() {
        assert_eq!(run("/{{ .PluginName}}/{{.Subject.CommonName }}").unwrap(), "/<PluginName>/<Subject.CommonName>");
        assert_eq!(run("/{{ index .Map \"dc\" }}/{{ index .List 1 }}x}}").unwrap(), "/Map[dc]/List[1]x}}");
        assert_eq!(run("/{{ index .List 5 }}").unwrap_err(), "error calling index: index out of range: 5");
    }

    #[test]
    fn unsupported_actions_are_refused() {
        assert_eq!(run("/{{ .Nope }}").unwrap_err(), "unsupported action {{ .Nope }}");
        assert_eq!(run("/{{ .PluginName ").unwrap_err(), "unclosed action");
        for text in ["{{ upper .PluginName }}", "{{ index .Map 1 }}", "{{ index .List \"a\" }}", "{{ index .Other 1 }}"]
        {
            assert!(run(text).is_err(), "{text}");
        }
    }
}
