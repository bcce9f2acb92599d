//! A parser for HCL v1, the configuration language of SPIRE (`github.com/hashicorp/hcl`, not HCL2).
//!
//! HCL2 parsers (hcl-rs, hcl-edit) refuse forms that SPIRE accepts and that real configs use all
//! the time: one-line nested blocks (`NodeAttestor "join_token" { plugin_data {} }`), several
//! attributes on one line (`plugin_data { database_type = "sqlite3" connection_string = "x" }`),
//! commas between block items, `${...}` left literally in strings. So we parse v1 ourselves. The
//! grammar is small:
//!
//! ```text
//! body  := item* ; items optionally separated by ',' (or ';', which we also accept)
//! item  := key+ ( '=' value | '{' body '}' ) ; several keys only before '{' (block labels)
//! key   := identifier | "string"
//! value := "string" | heredoc | number | true | false | '{' body '}' | '[' (value ','?)* ']'
//! ```
//!
//! with `#`, `//` and `/* */` comments. `a "b" "c" { ... }` means `a { b { c { ... } } }`.

use crate::error::ConfigError;
use crate::value::{Entry, Kind, LineIndex, Pos, Value};

/// Parses HCL v1 text into an object value.
pub(crate) fn parse(src: &str) -> Result<Value, ConfigError> {
    let index = LineIndex::new(src);
    let mut parser = Parser { lexer: Lexer { src, i: 0, index: &index }, peeked: None };
    let entries = parser.body(None)?;
    Ok(Value { kind: Kind::Object(entries), pos: Pos { line: 1, column: 1 } })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Heredoc(String),
    Number(String),
    Bool(bool),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Assign,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Heredoc(_) => "heredoc string".to_owned(),
            Tok::Number(n) => format!("number {n}"),
            Tok::Bool(b) => format!("{b}"),
            Tok::LBrace => "'{'".to_owned(),
            Tok::RBrace => "'}'".to_owned(),
            Tok::LBrack => "'['".to_owned(),
            Tok::RBrack => "']'".to_owned(),
            Tok::Assign => "'='".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Eof => "end of file".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    pos: Pos,
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    index: &'a LineIndex<'a>,
}

impl Lexer<'_> {
    fn error(&self, at: usize, message: impl Into<String>) -> ConfigError {
        let pos = self.index.pos(at);
        ConfigError::Syntax { line: pos.line, column: pos.column, message: message.into() }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.i..].chars().next()
    }

    fn rest(&self) -> &str {
        &self.src[self.i..]
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), ConfigError> {
        loop {
            let rest = self.rest();
            if let Some(c) = rest.chars().next()
                && c.is_whitespace()
            {
                self.i += c.len_utf8();
            } else if rest.starts_with('#') || rest.starts_with("//") {
                self.i += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(comment) = rest.strip_prefix("/*") {
                let end = comment.find("*/").ok_or_else(|| self.error(self.i, "comment not terminated"))?;
                self.i += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    fn next(&mut self) -> Result<Token, ConfigError> {
        self.skip_trivia()?;
        let start = self.i;
        let pos = self.index.pos(start);
        let Some(c) = self.peek_char() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let punct = match c {
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '[' => Some(Tok::LBrack),
            ']' => Some(Tok::RBrack),
            '=' => Some(Tok::Assign),
            ',' | ';' => Some(Tok::Comma),
            _ => None,
        };
        let tok = if let Some(tok) = punct {
            self.i += 1;
            tok
        } else if c == '"' {
            self.string()?
        } else if self.rest().starts_with("<<") {
            self.heredoc()?
        } else if c.is_ascii_digit() || (c == '-' && self.rest()[1..].starts_with(|d: char| d.is_ascii_digit())) {
            self.number()
        } else if c == '_' || c.is_alphabetic() {
            let len =
                self.rest().find(|ch: char| !(ch.is_alphanumeric() || "_-.".contains(ch))).unwrap_or(self.rest().len());
            let word = self.rest()[..len].to_owned();
            self.i += len;
            match word.as_str() {
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                _ => Tok::Ident(word),
            }
        } else {
            return Err(self.error(start, format!("illegal character {c:?}")));
        };
        Ok(Token { tok, pos })
    }

    fn number(&mut self) -> Tok {
        let bytes = self.src.as_bytes();
        let start = self.i;
        let mut i = self.i;
        if bytes[i] == b'-' {
            i += 1;
        }
        let digits = |i: &mut usize, hex: bool| {
            while *i < bytes.len() && (bytes[*i].is_ascii_digit() || (hex && bytes[*i].is_ascii_hexdigit())) {
                *i += 1;
            }
        };
        if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
            i += 2;
            digits(&mut i, true);
        } else {
            digits(&mut i, false);
            if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
                digits(&mut i, false);
            }
            if matches!(bytes.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(bytes.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    i = j;
                    digits(&mut i, false);
                }
            }
        }
        self.i = i;
        Tok::Number(self.src[start..i].to_owned())
    }

    /// A double-quoted string. As in HCL v1, a quote or newline inside `${...}` does not end it.
    fn string(&mut self) -> Result<Tok, ConfigError> {
        let start = self.i;
        let body_start = start + 1;
        let mut braces = 0usize;
        let mut chars = self.src[body_start..].char_indices();
        let end = loop {
            let Some((off, c)) = chars.next() else {
                return Err(self.error(start, "literal not terminated"));
            };
            match c {
                '\\' => {
                    chars.next();
                }
                '$' if self.src[body_start + off..].starts_with("${") => {
                    chars.next();
                    braces += 1;
                }
                '{' if braces > 0 => braces += 1,
                '}' if braces > 0 => braces -= 1,
                '"' if braces == 0 => break body_start + off,
                '\n' if braces == 0 => return Err(self.error(start, "literal not terminated")),
                _ => {}
            }
        };
        self.i = end + 1;
        unquote(&self.src[body_start..end]).map(Tok::Str).map_err(|m| self.error(start, m))
    }

    fn heredoc(&mut self) -> Result<Tok, ConfigError> {
        let start = self.i;
        let rest = &self.src[start + 2..];
        let indented = rest.starts_with('-');
        let rest = if indented { &rest[1..] } else { rest };
        let anchor_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let anchor = &rest[..anchor_len];
        let after_anchor = &rest[anchor_len..];
        if anchor.is_empty() || !(after_anchor.starts_with('\n') || after_anchor.starts_with("\r\n")) {
            return Err(self.error(start, "heredoc must be '<<' or '<<-' then an identifier and a newline"));
        }
        let body_start = self.src.len() - after_anchor.len() + after_anchor.find('\n').unwrap_or(0) + 1;
        let mut line_start = body_start;
        loop {
            if line_start >= self.src.len() {
                return Err(self.error(start, format!("heredoc not terminated: no line {anchor:?} found")));
            }
            let line_end = self.src[line_start..].find('\n').map_or(self.src.len(), |n| line_start + n);
            let line = self.src[line_start..line_end].trim_end_matches('\r');
            let candidate = if indented { line.trim_start() } else { line };
            if candidate == anchor {
                let content = &self.src[body_start..line_start];
                let indent = &line[..line.len() - line.trim_start().len()];
                self.i = line_end;
                return Ok(Tok::Heredoc(if indented { unindent(content, indent) } else { content.to_owned() }));
            }
            line_start = line_end + 1;
        }
    }
}

/// `<<-` heredocs lose the closing anchor's indentation from every line, when every line has it.
fn unindent(content: &str, indent: &str) -> String {
    let lines: Vec<&str> = content.split_inclusive('\n').collect();
    if indent.is_empty() || !lines.iter().all(|l| l.starts_with(indent) || l.trim().is_empty()) {
        return content.to_owned();
    }
    lines.iter().map(|l| l.strip_prefix(indent).unwrap_or(l.trim_start_matches([' ', '\t']))).collect()
}

/// Resolves the escapes of a string body (Go's, as HCL v1 uses `strconv.UnquoteChar`), copying
/// `${...}` sequences verbatim.
fn unquote(body: &str) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("${") {
            let mut depth = 0usize;
            let mut len = 0;
            for (i, ch) in rest.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && i > 1 {
                    len = i + 1;
                    break;
                }
            }
            if len == 0 {
                return Err("unterminated \"${\" in string".to_owned());
            }
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if c != '\\' {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let esc = rest[1..].chars().next().ok_or("string ends in a lone backslash")?;
        rest = &rest[1 + esc.len_utf8()..];
        let simple = match esc {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            continue;
        }
        let (digits, radix) = match esc {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(format!("invalid escape sequence \"\\{esc}\"")),
        };
        let (text, tail) = if radix == 8 {
            let text = rest.get(..2).ok_or("invalid octal escape")?;
            (format!("{esc}{text}"), &rest[2..])
        } else {
            let text = rest.get(..digits).ok_or_else(|| format!("invalid escape sequence \"\\{esc}\""))?;
            (text.to_owned(), &rest[digits..])
        };
        let code =
            u32::from_str_radix(&text, radix).map_err(|_| format!("invalid escape sequence \"\\{esc}{text}\""))?;
        if esc == 'x' || radix == 8 {
            // A byte value: HCL v1 output is a Go string, so only ASCII round-trips into ours.
            let byte = u8::try_from(code).map_err(|_| format!("octal escape \"\\{text}\" is above 255"))?;
            if !byte.is_ascii() {
                return Err(format!("escape of non-ASCII byte 0x{byte:02x} is not supported; write the character"));
            }
            out.push(char::from(byte));
        } else {
            out.push(char::from_u32(code).ok_or_else(|| format!("escape \"\\{esc}{text}\" is not a character"))?);
        }
        rest = tail;
    }
    Ok(out)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Token, ConfigError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn peek(&mut self) -> Result<&Tok, ConfigError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        Ok(&self.peeked.as_ref().expect("just filled").tok)
    }

    fn error(pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax { line: pos.line, column: pos.column, message: message.into() }
    }

    /// Items up to end of file (`open` is `None`) or up to and including the `}` closing the
    /// block opened at `open`.
    fn body(&mut self, open: Option<Pos>) -> Result<Vec<Entry>, ConfigError> {
        let mut entries = Vec::new();
        loop {
            let token = self.next()?;
            match (&token.tok, open) {
                (Tok::Comma, _) => continue,
                (Tok::Eof, None) | (Tok::RBrace, Some(_)) => return Ok(entries),
                (Tok::Eof, Some(open)) => {
                    return Err(Self::error(
                        token.pos,
                        format!("unexpected end of file: the block opened at line {} is not closed", open.line),
                    ));
                }
                (Tok::Ident(_) | Tok::Str(_), _) => entries.push(self.item(token)?),
                (other, _) => {
                    return Err(Self::error(token.pos, format!("expected a key, found {}", other.describe())));
                }
            }
        }
    }

    fn item(&mut self, first: Token) -> Result<Entry, ConfigError> {
        let mut keys = vec![first];
        loop {
            let token = self.next()?;
            match token.tok {
                Tok::Ident(_) | Tok::Str(_) => keys.push(token),
                Tok::Assign if keys.len() == 1 => {
                    let value = self.value()?;
                    return Ok(nest(keys, value));
                }
                Tok::Assign => {
                    return Err(Self::error(
                        token.pos,
                        "expected '{' after block labels, found '=' (only a block can have labels)",
                    ));
                }
                Tok::LBrace => {
                    let body = self.body(Some(token.pos))?;
                    return Ok(nest(keys, Value { kind: Kind::Object(body), pos: token.pos }));
                }
                other => {
                    let key = key_text(&keys[keys.len() - 1].tok);
                    return Err(Self::error(
                        token.pos,
                        format!("expected '=' or '{{' after key {key:?}, found {}", other.describe()),
                    ));
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, ConfigError> {
        let token = self.next()?;
        let kind = match token.tok {
            Tok::Str(s) | Tok::Heredoc(s) => Kind::String(s),
            Tok::Number(n) => Kind::Number(n),
            Tok::Bool(b) => Kind::Bool(b),
            Tok::LBrace => Kind::Object(self.body(Some(token.pos))?),
            Tok::LBrack => Kind::List(self.list()?),
            Tok::Ident(word) => {
                return Err(Self::error(
                    token.pos,
                    format!("expected a value, found identifier {word:?} (quote strings)"),
                ));
            }
            other => return Err(Self::error(token.pos, format!("expected a value, found {}", other.describe()))),
        };
        Ok(Value { kind, pos: token.pos })
    }

    fn list(&mut self) -> Result<Vec<Value>, ConfigError> {
        let mut items = Vec::new();
        loop {
            if *self.peek()? == Tok::RBrack {
                self.next()?;
                return Ok(items);
            }
            items.push(self.value()?);
            let token = self.next()?;
            match token.tok {
                Tok::Comma => {}
                Tok::RBrack => return Ok(items),
                other => {
                    return Err(Self::error(
                        token.pos,
                        format!("expected ',' or ']' in list, found {}", other.describe()),
                    ));
                }
            }
        }
    }
}

fn key_text(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) | Tok::Str(s) => s.clone(),
        _ => String::new(),
    }
}

/// Builds `k1 { k2 { ... { value } } }` from the keys of an item.
fn nest(keys: Vec<Token>, value: Value) -> Entry {
    let mut value = value;
    let mut keys = keys;
    while keys.len() > 1 {
        let last = keys.pop().expect("more than one key");
        let pos = last.pos;
        value = Value { kind: Kind::Object(vec![Entry { key: key_text(&last.tok), key_pos: pos, value }]), pos };
    }
    let first = keys.pop().expect("at least one key");
    Entry { key: key_text(&first.tok), key_pos: first.pos, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> Value {
        parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"))
    }

    fn syntax_error(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    #[test]
    fn spire_one_liners_that_hcl2_refuses() {
        let v = parse_ok(
            r#"plugins {
    NodeAttestor "join_token" { plugin_data {} }
    DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "/x/db" } }
    KeyManager "memory" { plugin_data = {} }
    X "y" { a = 1, b = 2; c = 3 }
}"#,
        );
        let json = v.to_json();
        assert_eq!(
            json,
            serde_json::json!({"plugins": {
                "NodeAttestor": {"join_token": {"plugin_data": {}}},
                "DataStore": {"sql": {"plugin_data": {"database_type": "sqlite3", "connection_string": "/x/db"}}},
                "KeyManager": {"memory": {"plugin_data": {}}},
                "X": {"y": {"a": 1, "b": 2, "c": 3}},
            }})
        );
    }

    #[test]
    fn values_and_positions() {
        let v = parse_ok(
            "# comment\nserver {\n  bind_port = \"8081\" // trailing\n  /* block\n comment */ n = -12\n  f = 1.5e3\n  h = 0x1F\n  ok = true\n  list = [\"a\", \"b\",]\n  empty = []\n  nested = [{ a = 1 }, [2]]\n}\n",
        );
        let server = v.get("server").unwrap();
        assert_eq!(server.pos, Pos { line: 2, column: 8 });
        let port = server.get_all("bind_port").next().unwrap();
        assert_eq!(port.key_pos, Pos { line: 3, column: 3 });
        assert_eq!(port.value.kind, Kind::String("8081".to_owned()));
        assert_eq!(server.get("n").unwrap().kind, Kind::Number("-12".to_owned()));
        assert_eq!(server.get("n").unwrap().pos.line, 5);
        assert_eq!(server.get("f").unwrap().kind, Kind::Number("1.5e3".to_owned()));
        assert_eq!(server.get("h").unwrap().kind, Kind::Number("0x1F".to_owned()));
        assert_eq!(server.get("ok").unwrap().kind, Kind::Bool(true));
        assert_eq!(server.get("list").unwrap().to_json(), serde_json::json!(["a", "b"]));
        assert_eq!(server.get("empty").unwrap().to_json(), serde_json::json!([]));
        assert_eq!(server.get("nested").unwrap().to_json(), serde_json::json!([{"a": 1}, [2]]));
    }

    #[test]
    fn labels_nest_and_repeat() {
        let v = parse_ok("a \"b\" c { x = 1 }\na \"d\" { y = 2 }\n\"quoted\" = \"k\"");
        assert_eq!(v.to_json(), serde_json::json!({"a": [{"b": {"c": {"x": 1}}}, {"d": {"y": 2}}], "quoted": "k"}));
        let first = v.get_all("a").next().unwrap();
        let b = first.value.get_all("b").next().unwrap();
        assert_eq!(b.key_pos, Pos { line: 1, column: 3 });
    }

    #[test]
    fn strings_keep_interpolation_and_resolve_escapes() {
        let v = parse_ok(
            r#"a = "${FOO} and ${ lookup("x", "{y}") }"
b = "tab\there \"q\" \\ \u00e9 \x41 \101 \U0001F600"
c = "$notinterp $"
d = "ünïcödé""#,
        );
        assert_eq!(v.get("a").unwrap().as_str(), Some(r#"${FOO} and ${ lookup("x", "{y}") }"#));
        assert_eq!(v.get("b").unwrap().as_str(), Some("tab\there \"q\" \\ \u{e9} A A \u{1F600}"));
        assert_eq!(v.get("c").unwrap().as_str(), Some("$notinterp $"));
        assert_eq!(v.get("d").unwrap().as_str(), Some("ünïcödé"));
    }

    #[test]
    fn heredocs() {
        let v = parse_ok("a = <<EOF\nline 1\n  line 2\nEOF\nb = <<-EOT\n    x\n      y\n    EOT\nc = 1\n");
        assert_eq!(v.get("a").unwrap().as_str(), Some("line 1\n  line 2\n"));
        assert_eq!(v.get("b").unwrap().as_str(), Some("x\n  y\n"));
        assert_eq!(v.get("c").unwrap().kind, Kind::Number("1".to_owned()));
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        assert_eq!(
            syntax_error("server {\n  a = \"x\n}\n"),
            "unable to parse configuration: line 2, column 7: literal not terminated"
        );
        assert_eq!(
            syntax_error("server {\n  a = 1\n"),
            "unable to parse configuration: line 3, column 1: unexpected end of file: the block opened at line 1 is not closed"
        );
        assert_eq!(
            syntax_error("a = b\n"),
            "unable to parse configuration: line 1, column 5: expected a value, found identifier \"b\" (quote strings)"
        );
        assert_eq!(
            syntax_error("a b = 1\n"),
            "unable to parse configuration: line 1, column 5: expected '{' after block labels, found '=' (only a block can have labels)"
        );
        assert_eq!(
            syntax_error("a\n}"),
            "unable to parse configuration: line 2, column 1: expected '=' or '{' after key \"a\", found '}'"
        );
        assert_eq!(syntax_error("}"), "unable to parse configuration: line 1, column 1: expected a key, found '}'");
        assert_eq!(
            syntax_error("a = [1 2]"),
            "unable to parse configuration: line 1, column 8: expected ',' or ']' in list, found number 2"
        );
        assert_eq!(syntax_error("/* x"), "unable to parse configuration: line 1, column 1: comment not terminated");
        assert_eq!(
            syntax_error("a = \"\\q\""),
            "unable to parse configuration: line 1, column 5: invalid escape sequence \"\\q\""
        );
        assert_eq!(syntax_error("a = @"), "unable to parse configuration: line 1, column 5: illegal character '@'");
        assert!(syntax_error("a = <<EOF\nx\n").contains("heredoc not terminated"));
    }
}
