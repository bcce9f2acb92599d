//! The plugin's logs, forwarded into ours.
//!
//! A go-plugin plugin logs with hclog as JSON lines on its stderr
//! (`{"@level":"info","@message":"...","@timestamp":"...","key":"value"}`); each becomes one of our
//! log events at the same level, tagged with the plugin's type and name, its extra fields kept. A
//! line that is not hclog JSON (a panic, output of a library) is logged as it is, at debug level
//! as go-plugin does, or at error level once the plugin failed to start, since it then usually
//! says why.

use serde_json::{Map, Value};

/// A plugin log line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// hclog's level (`trace`, `debug`, `info`, `warn`, `error`), lower case; `None` for raw text.
    pub level: Option<String>,
    /// The message.
    pub message: String,
    /// Extra fields as `key=value`, space separated, sorted by key.
    pub fields: String,
}

/// Decodes one stderr line.
pub fn parse(line: &str) -> Line {
    let raw = || Line { level: None, message: line.trim_end().to_owned(), fields: String::new() };
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(line) else {
        return raw();
    };
    let Some(Value::String(message)) = map.remove("@message") else {
        return raw();
    };
    let level = match map.remove("@level") {
        Some(Value::String(level)) => level.to_ascii_lowercase(),
        _ => "info".to_owned(),
    };
    map.remove("@timestamp");
    Line { level: Some(level), message, fields: fields(map) }
}

fn fields(map: Map<String, Value>) -> String {
    let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) if s.is_empty() || s.contains(char::is_whitespace) || s.contains('"') => {
                format!("{k}={s:?}")
            }
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Logs `line` for the plugin `name` of type `plugin_type`. The plugin's own fields follow its
/// message as `key=value` (tracing's fields are fixed at compile time), as logfmt writes them.
pub fn emit(plugin_type: &str, name: &str, line: &Line) {
    let message =
        if line.fields.is_empty() { line.message.clone() } else { format!("{} {}", line.message, line.fields) };
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(target: "spire_plugin", $level, plugin_type = %plugin_type, plugin_name = %name, external = true, "{message}")
        };
    }
    match line.level.as_deref() {
        Some("trace") => event!(tracing::Level::TRACE),
        Some("debug") | None => event!(tracing::Level::DEBUG),
        Some("warn" | "warning") => event!(tracing::Level::WARN),
        Some("error") => event!(tracing::Level::ERROR),
        Some(_) => event!(tracing::Level::INFO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hclog_json_lines_keep_level_message_and_fields() {
        let line = parse(
            r#"{"@level":"info","@message":"Configured","@module":"challenge","@timestamp":"2026-12-04T10:00:00.000000Z","node":"n1","n":2}"#,
        );
        assert_eq!(line.level.as_deref(), Some("info"));
        assert_eq!(line.message, "Configured");
        assert_eq!(line.fields, r#"@module=challenge n=2 node=n1"#);
    }

    #[test]
    fn other_lines_are_kept_as_text() {
        let line = parse("panic: boom\n");
        assert_eq!(line, Line { level: None, message: "panic: boom".into(), fields: String::new() });
        assert_eq!(parse(r#"{"no":"message"}"#).level, None);
    }
}
