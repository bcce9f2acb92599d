//! JSON configuration files (SPIRE, through HCL v1, accepts a file whose first non-blank character
//! is `{` as JSON). serde_json cannot tell us where a key is, so this is a small positioned parser;
//! the exact decoding of string and number lexemes is left to serde_json.

use crate::error::ConfigError;
use crate::value::{Entry, Kind, LineIndex, Value};

/// Parses a JSON document whose top level is an object.
pub(crate) fn parse(src: &str) -> Result<Value, ConfigError> {
    let index = LineIndex::new(src);
    let mut p = Parser { src, i: 0, index: &index, depth: 0 };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err(p.error("a JSON configuration must be an object"));
    }
    let value = p.value()?;
    p.skip_ws();
    if p.i < src.len() {
        return Err(p.error("unexpected text after the JSON object"));
    }
    Ok(value)
}

/// Deep enough for any configuration, shallow enough that hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    src: &'a str,
    i: usize,
    index: &'a LineIndex<'a>,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        self.error_at(self.i, message)
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> ConfigError {
        let pos = self.index.pos(at);
        ConfigError::Syntax { line: pos.line, column: pos.column, message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), ConfigError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.found())))
        }
    }

    fn found(&self) -> String {
        match self.src[self.i..].chars().next() {
            None => "end of file".to_owned(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn value(&mut self) -> Result<Value, ConfigError> {
        self.skip_ws();
        let start = self.i;
        let pos = self.index.pos(start);
        let kind = match self.peek() {
            Some(b'{') => self.nested(Self::object)?,
            Some(b'[') => self.nested(Self::list)?,
            Some(b'"') => Kind::String(self.string()?),
            Some(b't') if self.src[self.i..].starts_with("true") => {
                self.i += 4;
                Kind::Bool(true)
            }
            Some(b'f') if self.src[self.i..].starts_with("false") => {
                self.i += 5;
                Kind::Bool(false)
            }
            Some(b'n') if self.src[self.i..].starts_with("null") => {
                self.i += 4;
                Kind::Null
            }
            Some(b'-' | b'0'..=b'9') => Kind::Number(self.number()?),
            _ => return Err(self.error(format!("expected a JSON value, found {}", self.found()))),
        };
        Ok(Value { kind, pos })
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Kind, ConfigError>) -> Result<Kind, ConfigError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("JSON nested too deeply"));
        }
        let kind = f(self);
        self.depth -= 1;
        kind
    }

    fn object(&mut self) -> Result<Kind, ConfigError> {
        self.i += 1; // '{'
        let mut entries = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Kind::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error(format!("expected a quoted key, found {}", self.found())));
            }
            let key_pos = self.index.pos(self.i);
            let key = self.string()?;
            self.expect(b':', "':' after the key")?;
            let value = self.value()?;
            entries.push(Entry { key, key_pos, value });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Kind::Object(entries));
                }
                _ => return Err(self.error(format!("expected ',' or '}}' in object, found {}", self.found()))),
            }
        }
    }

    fn list(&mut self) -> Result<Kind, ConfigError> {
        self.i += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Kind::List(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Kind::List(items));
                }
                _ => return Err(self.error(format!("expected ',' or ']' in list, found {}", self.found()))),
            }
        }
    }

    /// A string lexeme, decoded by serde_json.
    fn string(&mut self) -> Result<String, ConfigError> {
        let start = self.i;
        let bytes = self.src.as_bytes();
        let mut j = start + 1;
        loop {
            match bytes.get(j) {
                None | Some(b'\n') => return Err(self.error_at(start, "string not terminated")),
                Some(b'\\') => j += 2,
                Some(b'"') => break,
                Some(_) => j += 1,
            }
        }
        self.i = j + 1;
        serde_json::from_str(&self.src[start..=j]).map_err(|e| self.error_at(start, format!("invalid string: {e}")))
    }

    /// A number lexeme, checked by serde_json and kept as written.
    fn number(&mut self) -> Result<String, ConfigError> {
        let start = self.i;
        let len = self.src[start..]
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(self.src.len() - start);
        self.i = start + len;
        let text = &self.src[start..self.i];
        serde_json::from_str::<serde_json::Number>(text)
            .map_err(|_| self.error_at(start, format!("invalid number {text:?}")))?;
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Pos;

    #[test]
    fn parses_with_positions() {
        let src = "{\n  \"server\": {\n    \"bind_port\": 8081,\n    \"name\": \"caf\\u00e9\\n\",\n    \"ok\": true, \"none\": null,\n    \"list\": [1, -2.5e3, \"x\", [], {}]\n  }\n}\n";
        let v = parse(src).unwrap();
        let server = v.get("server").unwrap();
        let port = server.get_all("bind_port").next().unwrap();
        assert_eq!(port.key_pos, Pos { line: 3, column: 5 });
        assert_eq!(port.value.kind, Kind::Number("8081".to_owned()));
        assert_eq!(server.get("name").unwrap().as_str(), Some("café\n"));
        assert_eq!(server.get("none").unwrap().kind, Kind::Null);
        assert_eq!(
            v.to_json(),
            serde_json::json!({"server": {"bind_port": 8081, "name": "café\n", "ok": true, "none": null, "list": [1, -2.5e3, "x", [], {}]}})
        );
    }

    #[test]
    fn errors_have_positions() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(
            err("{\n  \"a\": 1,\n}"),
            "unable to parse configuration: line 3, column 1: expected a quoted key, found '}'"
        );
        assert_eq!(
            err("{\"a\" 1}"),
            "unable to parse configuration: line 1, column 6: expected ':' after the key, found '1'"
        );
        assert_eq!(err("{\"a\": 01x}"), "unable to parse configuration: line 1, column 7: invalid number \"01\"");
        assert_eq!(
            err("{\"a\": tru}"),
            "unable to parse configuration: line 1, column 7: expected a JSON value, found 't'"
        );
        assert_eq!(err("{\"a\": \"x}"), "unable to parse configuration: line 1, column 7: string not terminated");
        assert_eq!(
            err("{} x"),
            "unable to parse configuration: line 1, column 4: unexpected text after the JSON object"
        );
        assert!(err("{\"a\": \"\\q\"}").contains("invalid string"));
        assert!(err(&format!("{{\"a\": {}{}}}", "[".repeat(200), "]".repeat(200))).contains("nested too deeply"));
    }
}
