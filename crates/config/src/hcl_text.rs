//! Plugin data written back as HCL text: what an external plugin's `Configure` receives
//! (`hcl_configuration`), since spire-plugin-sdk plugins parse their data with an HCL parser.
//!
//! The body is written without enclosing braces (`key = value` lines): HCL v1 would read a text
//! starting with `{` as JSON. Blocks become `key { ... }`, a key repeated in one object stays
//! repeated, numbers keep their source text.

use std::fmt::Write;

use crate::value::{Kind, Value};

/// `value` (an object) as an HCL body; any other value as `value = <value>`.
pub fn body(value: &Value) -> String {
    let mut out = String::new();
    match &value.kind {
        Kind::Object(entries) => {
            for entry in entries {
                write_entry(&mut out, &entry.key, &entry.value, 0);
            }
        }
        _ => write_entry(&mut out, "value", value, 0),
    }
    out
}

fn write_entry(out: &mut String, key: &str, value: &Value, depth: usize) {
    indent(out, depth);
    out.push_str(&quote_key(key));
    if let Kind::Object(entries) = &value.kind {
        out.push_str(" {\n");
        for entry in entries {
            write_entry(out, &entry.key, &entry.value, depth + 1);
        }
        indent(out, depth);
        out.push_str("}\n");
    } else {
        out.push_str(" = ");
        write_value(out, value, depth);
        out.push('\n');
    }
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match &value.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Number(n) => out.push_str(n),
        Kind::String(s) => out.push_str(&quote(s)),
        Kind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, depth);
            }
            out.push(']');
        }
        Kind::Object(entries) => {
            out.push_str("{\n");
            for entry in entries {
                write_entry(out, &entry.key, &entry.value, depth + 1);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// A bare key when HCL allows one, else a quoted one.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if bare { key.to_owned() } else { quote(key) }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> (String, Value, Value) {
        let value = crate::parse_str(text, false).expect("parses");
        let hcl = body(&value);
        let again = crate::parse_str(&hcl, false).unwrap_or_else(|e| panic!("{hcl}\n does not parse: {e}"));
        (hcl, value, again)
    }

    #[test]
    fn data_survives_the_round_trip() {
        let (hcl, value, again) = roundtrip(
            r#"node_name = "n1"
               port = 0x1f
               ratio = 1.5
               on = true
               names = ["a", "b\"c", "d\\e"]
               nested { inner = "x\ny" }
               repeated { a = 1 }
               repeated { a = 2 }
               "odd key" = "v"
               tmpl = "${x}"
            "#,
        );
        assert_eq!(value.to_json(), again.to_json(), "{hcl}");
        assert!(hcl.starts_with("node_name = \"n1\"\n"), "{hcl}");
        assert!(hcl.contains("port = 0x1f\n"), "{hcl}");
        assert!(hcl.contains("nested {\n  inner = \"x\\ny\"\n}\n"), "{hcl}");
    }

    #[test]
    fn the_body_never_starts_with_a_brace() {
        let (hcl, ..) = roundtrip("{\"a\": {\"b\": [1, 2]}}");
        assert!(hcl.starts_with("a {"), "{hcl}");
    }
}
