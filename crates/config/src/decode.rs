//! Typed reading of a configuration object, with HCL v1's value coercions and the unknown-key check.
//!
//! A [`Reader`] wraps one section (`server`, `health_checks`, a plugin's `plugin_data`...). Each
//! getter takes a key, converts its value the way SPIRE's HCL v1 decoder would (`8081` and `"8081"`
//! are both an integer, `"true"` is a boolean, a number is a string), and records a precise error
//! instead of stopping, so that one run reports every mistake. [`Reader::finish`] then reports the
//! keys nobody asked for: with their full path and line, since that is almost always a typo.

use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::{ConfigError, Diagnostics};
use crate::value::{Entry, Kind, Pos, Value};

/// What [`Reader::finish`] does with keys nobody read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeys {
    /// Each one is an error (SPIRE's behaviour for most sections).
    Refuse,
    /// Each one is a warning: for the sections where SPIRE itself does not check (`experimental`,
    /// `federation`, the top of `telemetry`), so that files SPIRE accepts still load.
    Warn,
}

/// Reads the keys of one object, recording errors in a shared [`Diagnostics`].
#[derive(Debug)]
pub struct Reader<'a, 'd> {
    path: String,
    pos: Pos,
    entries: Vec<&'a Entry>,
    used: Vec<bool>,
    unknown: UnknownKeys,
    diags: &'d mut Diagnostics,
}

impl<'a, 'd> Reader<'a, 'd> {
    /// A reader over `value`, named `path` in messages (`""` for the top level).
    ///
    /// The value may be an object, a list of objects (JSON's way of writing repeated blocks, merged
    /// like repeated HCL blocks) or `null` (empty). Anything else is recorded as an error and gives
    /// `None`.
    pub fn new(path: impl Into<String>, value: &'a Value, diags: &'d mut Diagnostics) -> Option<Self> {
        let path = path.into();
        match object_entries(value) {
            Some(entries) => Some(Self::from_entries(path, value.pos, entries, diags)),
            None => {
                diags.error(wrong_type(&path, value, "a block"));
                None
            }
        }
    }

    fn from_entries(path: String, pos: Pos, entries: Vec<&'a Entry>, diags: &'d mut Diagnostics) -> Self {
        let used = vec![false; entries.len()];
        Self { path, pos, entries, used, unknown: UnknownKeys::Refuse, diags }
    }

    /// Sets what [`Reader::finish`] does with unread keys (default: refuse).
    pub fn unknown_keys(mut self, policy: UnknownKeys) -> Self {
        self.unknown = policy;
        self
    }

    /// The dotted path of this section.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the section starts.
    pub fn pos(&self) -> Pos {
        self.pos
    }

    /// The shared collector, for errors the caller finds itself.
    pub fn diags(&mut self) -> &mut Diagnostics {
        self.diags
    }

    /// The dotted path of `key` in this section.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// The value `take` would return, without marking the key as read.
    pub fn peek(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.eq_ignore_ascii_case(key))
            .map(|e| &e.value)
            .filter(|v| v.kind != Kind::Null)
    }

    /// Every entry with `key` (case-insensitive, as HCL v1 matches), in order, marked as read.
    pub fn take_all(&mut self, key: &str) -> Vec<&'a Entry> {
        let mut found = Vec::new();
        for (entry, used) in self.entries.iter().zip(self.used.iter_mut()) {
            if entry.key.eq_ignore_ascii_case(key) {
                *used = true;
                found.push(*entry);
            }
        }
        found
    }

    /// Every entry of the section, marked as read (for maps keyed by name, like `federates_with`).
    pub fn take_entries(&mut self) -> Vec<&'a Entry> {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries.clone()
    }

    /// The value of `key`. If the key is repeated the last one wins, as in HCL v1, with a warning.
    /// `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<&'a Value> {
        let all = self.take_all(key);
        if all.len() > 1 {
            let lines: Vec<String> = all.iter().map(|e| e.key_pos.line.to_string()).collect();
            let warning = format!(
                "{} is set more than once (lines {}); the last one is used",
                self.key_path(key),
                lines.join(", ")
            );
            self.diags.warn(warning);
        }
        all.last().map(|e| &e.value).filter(|v| v.kind != Kind::Null)
    }

    fn convert<T>(&mut self, key: &str, f: impl FnOnce(&Value, &str) -> Result<T, ConfigError>) -> Option<T> {
        let value = self.take(key)?;
        let path = self.key_path(key);
        f(value, &path).map_err(|e| self.diags.error(e)).ok()
    }

    /// A non-empty string with where it is written, for checks done after reading.
    pub fn string_at(&mut self, key: &str) -> Option<(String, Pos)> {
        let value = self.take(key)?;
        let pos = value.pos;
        let path = self.key_path(key);
        to_string(value, &path).map_err(|e| self.diags.error(e)).ok().filter(|s| !s.is_empty()).map(|s| (s, pos))
    }

    /// Marks the entries nobody read as read and returns them: for sections that keep keys they
    /// do not know (SPIRE's `experimental`) instead of refusing them.
    pub fn take_unused(&mut self) -> Vec<&'a Entry> {
        let mut out = Vec::new();
        for (entry, used) in self.entries.iter().zip(self.used.iter_mut()) {
            if !*used {
                *used = true;
                out.push(*entry);
            }
        }
        out
    }

    /// A string; numbers and booleans are taken as written, as HCL v1 does.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.convert(key, to_string)
    }

    /// A string, `None` if absent or empty: SPIRE treats an empty string as unset.
    pub fn non_empty_string(&mut self, key: &str) -> Option<String> {
        self.string(key).filter(|s| !s.is_empty())
    }

    /// A boolean: `true`/`false`, or the string or number `"true"`, `"false"`, `1`, `0`.
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        self.convert(key, to_bool)
    }

    /// An integer in `T`'s range, written as a number or a string (Go `ParseInt` base 0 syntax:
    /// `8081`, `"8081"`, `0x1f`, `1_000`).
    pub fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Option<T> {
        self.convert(key, |v, path| {
            let n = to_int(v, path)?;
            T::try_from(n).map_err(|_| ConfigError::invalid(format!("{path}: {n} is out of range"), v.pos.line))
        })
    }

    /// A Go duration string (`"1h30m"`); empty means unset.
    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        self.convert(key, |v, path| {
            let text = to_string(v, path)?;
            if text.is_empty() {
                return Ok(None);
            }
            parse_duration(&text)
                .map(Some)
                .map_err(|e| ConfigError::invalid(format!("could not parse {path} {text:?}: {e}"), v.pos.line))
        })
        .flatten()
    }

    /// A list of strings.
    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.convert(key, to_string_list)
    }

    /// The block `key` as a reader; repeated blocks are merged, as HCL v1 decodes them into one
    /// struct. `None` if absent (or not a block, which is recorded as an error).
    pub fn object(&mut self, key: &str) -> Option<Reader<'a, '_>> {
        let found = self.take_all(key);
        let path = self.key_path(key);
        let mut entries = Vec::new();
        let mut pos = None;
        for entry in found {
            match object_entries(&entry.value) {
                Some(list) => {
                    pos.get_or_insert(entry.value.pos);
                    entries.extend(list);
                }
                None => self.diags.error(wrong_type(&path, &entry.value, "a block")),
            }
        }
        let pos = pos?;
        Some(Reader::from_entries(path, pos, entries, self.diags))
    }

    /// Reports the keys that were not read (as errors or warnings, per [`Reader::unknown_keys`]).
    pub fn finish(self) {
        for (entry, used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let error = ConfigError::UnknownKey {
                key: entry.key.clone(),
                section: self.path.clone(),
                line: entry.key_pos.line,
            };
            match self.unknown {
                UnknownKeys::Refuse => self.diags.error(error),
                UnknownKeys::Warn => self.diags.warn(format!("{error}: ignored")),
            }
        }
    }
}

/// The entries of an object, of a list of objects, or none for `null`.
fn object_entries(value: &Value) -> Option<Vec<&Entry>> {
    match &value.kind {
        Kind::Object(entries) => Some(entries.iter().collect()),
        Kind::Null => Some(Vec::new()),
        Kind::List(items) => {
            let mut all = Vec::new();
            for item in items {
                match &item.kind {
                    Kind::Object(entries) => all.extend(entries.iter()),
                    _ => return None,
                }
            }
            Some(all)
        }
        _ => None,
    }
}

/// The error for a value of the wrong shape.
pub fn wrong_type(path: &str, value: &Value, expected: &'static str) -> ConfigError {
    ConfigError::WrongType { path: path.to_owned(), line: value.pos.line, expected, found: value.describe() }
}

/// HCL v1's string decoding: strings, and numbers and booleans as written.
pub fn to_string(value: &Value, path: &str) -> Result<String, ConfigError> {
    match &value.kind {
        Kind::String(s) | Kind::Number(s) => Ok(s.clone()),
        Kind::Bool(b) => Ok(b.to_string()),
        _ => Err(wrong_type(path, value, "a string")),
    }
}

/// HCL v1's boolean decoding: `true`/`false`, or `"1"`, `"true"`, `"0"`, `"false"` in any case.
pub fn to_bool(value: &Value, path: &str) -> Result<bool, ConfigError> {
    match &value.kind {
        Kind::Bool(b) => Ok(*b),
        Kind::String(s) | Kind::Number(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(wrong_type(path, value, "a boolean")),
        },
        _ => Err(wrong_type(path, value, "a boolean")),
    }
}

/// HCL v1's integer decoding: a number or a string, parsed like Go's `strconv.ParseInt(s, 0, 64)`.
pub fn to_int(value: &Value, path: &str) -> Result<i64, ConfigError> {
    match &value.kind {
        Kind::String(s) | Kind::Number(s) => parse_go_int(s).ok_or_else(|| wrong_type(path, value, "an integer")),
        _ => Err(wrong_type(path, value, "an integer")),
    }
}

/// A list whose items are strings (or numbers and booleans, as written).
pub fn to_string_list(value: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
    match &value.kind {
        Kind::List(items) => {
            items.iter().enumerate().map(|(i, item)| to_string(item, &format!("{path}[{i}]"))).collect()
        }
        _ => Err(wrong_type(path, value, "a list of strings")),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b` or leading-`0` octal prefix,
/// underscores between digits.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.contains('_') {
        // Underscores only between digits, or right after a base prefix.
        let bad_edges = digits.ends_with('_') || (digits.starts_with('_') && !prefixed) || digits.contains("__");
        if bad_edges {
            return None;
        }
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() || cleaned.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&cleaned, radix).ok()?;
    if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcl;

    #[test]
    fn go_ints() {
        for (s, want) in [
            ("8081", Some(8081)),
            ("+7", Some(7)),
            ("-12", Some(-12)),
            ("0", Some(0)),
            ("0x1F", Some(31)),
            ("0o17", Some(15)),
            ("017", Some(15)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("0x_1f", Some(31)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("", None),
            ("abc", None),
            ("1.5", None),
            ("08", None),
            (" 1", None),
            ("1_", None),
            ("_1", None),
            ("1__0", None),
            ("--1", None),
            ("0x", None),
        ] {
            assert_eq!(parse_go_int(s), want, "{s:?}");
        }
    }

    #[test]
    fn coercions_and_errors() {
        let doc = hcl::parse(
            "s {\n a = 8081\n b = \"8081\"\n c = \"abc\"\n d = \"TRUE\"\n e = 0\n f = [\"x\", 2]\n g = \"1h\"\n h = \"1y\"\n i = 70000\n j = { k = 1 }\n l = \"\"\n}\n",
        )
        .unwrap();
        let mut diags = Diagnostics::new();
        let mut r = Reader::new("s", doc.get("s").unwrap(), &mut diags).unwrap();
        assert_eq!(r.int::<u16>("a"), Some(8081));
        assert_eq!(r.int::<u16>("b"), Some(8081));
        assert_eq!(r.int::<u16>("c"), None);
        assert_eq!(r.bool("d"), Some(true));
        assert_eq!(r.bool("e"), Some(false));
        assert_eq!(r.string_list("f"), Some(vec!["x".to_owned(), "2".to_owned()]));
        assert_eq!(r.duration("g"), Some(Duration::from_secs(3600)));
        assert_eq!(r.duration("h"), None);
        assert_eq!(r.int::<u16>("i"), None);
        assert_eq!(r.string("j"), None);
        assert_eq!(r.duration("l"), None);
        assert_eq!(r.string("missing"), None);
        r.finish();
        let err = diags.into_error().unwrap().to_string();
        assert_eq!(
            err,
            "4 configuration errors:\n  - invalid value for s.c at line 4: expected an integer, got \"abc\"\n  \
             - could not parse s.h \"1y\": time: unknown unit \"y\" in duration \"1y\" (line 9)\n  \
             - s.i: 70000 is out of range (line 10)\n  \
             - invalid value for s.j at line 11: expected a string, got a block"
        );
    }

    #[test]
    fn unknown_keys_and_repeats() {
        let doc =
            hcl::parse("s {\n  known = 1\n  typo = 2\n  inner { x = 1 }\n  inner { y = 2 }\n  known = 3\n}\n").unwrap();
        let mut diags = Diagnostics::new();
        let mut r = Reader::new("s", doc.get("s").unwrap(), &mut diags).unwrap();
        assert_eq!(r.int::<i64>("KNOWN"), Some(3));
        let mut inner = r.object("inner").unwrap();
        assert_eq!(inner.int::<i64>("x"), Some(1));
        inner.finish();
        r.finish();
        assert_eq!(diags.warnings(), ["s.KNOWN is set more than once (lines 2, 6); the last one is used"]);
        let err = diags.into_error().unwrap().to_string();
        assert_eq!(
            err,
            "2 configuration errors:\n  - unknown configuration key \"typo\" at line 3 (in s)\n  \
             - unknown configuration key \"y\" at line 5 (in s.inner)"
        );
    }

    #[test]
    fn warn_policy() {
        let doc = hcl::parse("s { odd = 1 }").unwrap();
        let mut diags = Diagnostics::new();
        Reader::new("s", doc.get("s").unwrap(), &mut diags).unwrap().unknown_keys(UnknownKeys::Warn).finish();
        assert!(!diags.has_errors());
        assert_eq!(diags.warnings(), ["unknown configuration key \"odd\" at line 1 (in s): ignored"]);
    }
}
