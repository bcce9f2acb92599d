//! The parsed configuration tree, with the source position of every key and value.
//!
//! Both the HCL and the JSON parser produce this tree, so that decoding, unknown-key detection and
//! error messages work the same for both formats. Keys keep their order and repetitions: HCL allows
//! a block type to appear many times (`NodeAttestor "a" {}` then `NodeAttestor "b" {}`), and the
//! decoder, not the parser, decides what a repetition means.

use std::fmt;

/// A 1-based line and column in the configuration text (after `-expandEnv` expansion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

/// One value of the tree and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// What the value is.
    pub kind: Kind,
    /// Where it starts in the text.
    pub pos: Pos,
}

/// The shapes a configuration value can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// JSON `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, kept as written (`8081`, `1.5`, `0x1f`): HCL v1 decodes a number into a string
    /// field as its source text, so we must not normalise it.
    Number(String),
    /// A string, with escapes resolved. `${...}` sequences are kept verbatim, as HCL v1 does.
    String(String),
    /// A list `[...]`.
    List(Vec<Value>),
    /// A block body or object `{...}`.
    Object(Vec<Entry>),
}

/// A `key = value` or `key { ... }` item of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as written (labels of a block become nested single-key objects).
    pub key: String,
    /// Where the key is.
    pub key_pos: Pos,
    /// The value.
    pub value: Value,
}

impl Value {
    /// An empty object at `pos`.
    pub fn empty_object(pos: Pos) -> Self {
        Self { kind: Kind::Object(Vec::new()), pos }
    }

    /// The entries if this is an object.
    pub fn as_object(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Object(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The entries with `key` (ASCII case-insensitive, as HCL v1 matches field names), in order.
    pub fn get_all<'a, 'k>(&'a self, key: &'k str) -> impl Iterator<Item = &'a Entry> + use<'a, 'k> {
        self.as_object().unwrap_or(&[]).iter().filter(move |e| e.key.eq_ignore_ascii_case(key))
    }

    /// The last entry with `key`: a repeated key overrides the earlier ones, as in HCL v1.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_all(key).last().map(|e| &e.value)
    }

    /// A short description for error messages: strings quoted, numbers as written, others by shape.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".to_owned(),
            Kind::Bool(b) => b.to_string(),
            Kind::Number(n) => n.clone(),
            Kind::String(s) => format!("{s:?}"),
            Kind::List(_) => "a list".to_owned(),
            Kind::Object(_) => "a block".to_owned(),
        }
    }

    /// The value as JSON, the form plugins receive their `plugin_data` in.
    ///
    /// A key repeated in one object (two `foo {}` blocks) becomes a JSON array of its values. A
    /// number JSON cannot hold (`0x1f`) is passed as its text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Number(n) => match serde_json::from_str::<serde_json::Number>(n) {
                Ok(num) => J::Number(num),
                Err(_) => J::String(n.clone()),
            },
            Kind::String(s) => J::String(s.clone()),
            Kind::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Kind::Object(entries) => {
                let mut grouped: Vec<(&str, Vec<J>)> = Vec::new();
                for entry in entries {
                    let value = entry.value.to_json();
                    match grouped.iter_mut().find(|(k, _)| *k == entry.key) {
                        Some((_, values)) => values.push(value),
                        None => grouped.push((&entry.key, vec![value])),
                    }
                }
                let map = grouped
                    .into_iter()
                    .map(|(k, mut values)| {
                        let v = if values.len() == 1 { values.remove(0) } else { J::Array(values) };
                        (k.to_owned(), v)
                    })
                    .collect();
                J::Object(map)
            }
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Maps byte offsets of a text to line and column.
#[derive(Debug)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let end = offset.min(self.text.len());
        let column = self.text.get(start..end).map_or(end - start, |s| s.chars().count()) + 1;
        Pos { line, column }
    }
}
