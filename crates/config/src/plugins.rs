//! The `plugins { <Type> "<name>" { ... } }` block, shared by the server and the agent.
//!
//! Each plugin's own settings live in `plugin_data` (a block, an `= {}` attribute, or a file named
//! by `plugin_data_file`). That data is opaque here: it is kept as a positioned [`Value`] and
//! handed to the plugin, which decodes it with a [`Reader`] (see [`crate::plugin_data`]) so that
//! its unknown keys are reported with the same path-and-line messages as the rest of the file.

use std::path::{Path, PathBuf};

use crate::decode::Reader;
use crate::error::{ConfigError, Diagnostics};
use crate::value::{Entry, Kind, Pos, Value};

/// One plugin declaration: `NodeAttestor "join_token" { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The plugin type (`NodeAttestor`).
    pub plugin_type: String,
    /// The plugin name (`join_token`).
    pub name: String,
    /// Where the name is written, for messages about the plugin as a whole.
    pub pos: Pos,
    /// `plugin_cmd`: the executable of an external plugin; `None` for a built-in.
    pub plugin_cmd: Option<String>,
    /// `plugin_args`: arguments for the external plugin.
    pub plugin_args: Vec<String>,
    /// `plugin_checksum`: hex SHA-256 the external executable must match.
    pub plugin_checksum: Option<String>,
    /// `enabled` (default true): a disabled plugin is skipped entirely.
    pub enabled: bool,
    /// `plugin_data`, as written.
    pub plugin_data: Option<Value>,
    /// `plugin_data_file`: a file holding the plugin data (reread on reconfiguration).
    pub plugin_data_file: Option<PathBuf>,
}

impl PluginConfig {
    /// A built-in `<plugin_type> "<name>"` block whose `plugin_data` is the HCL (or JSON) `data`:
    /// how plugins are configured outside a whole file (their tests, tools).
    pub fn built_in(plugin_type: &str, name: &str, data: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            plugin_type: plugin_type.to_owned(),
            name: name.to_owned(),
            pos: Pos { line: 1, column: 1 },
            plugin_cmd: None,
            plugin_args: Vec::new(),
            plugin_checksum: None,
            enabled: true,
            plugin_data: Some(crate::parse_str(data, false)?),
            plugin_data_file: None,
        })
    }

    /// Whether the plugin runs as an external process rather than built in.
    pub fn is_external(&self) -> bool {
        self.plugin_cmd.is_some()
    }

    /// `plugins.<Type>.<name>`, the prefix of this plugin's keys in messages.
    pub fn path(&self) -> String {
        format!("plugins.{}.{}", self.plugin_type, self.name)
    }

    /// The plugin data: `plugin_data`, or the parsed content of `plugin_data_file` (HCL or JSON,
    /// read now), or an empty object when neither is set.
    pub fn data(&self) -> Result<Value, ConfigError> {
        if let Some(path) = &self.plugin_data_file {
            return read_data_file(path);
        }
        Ok(self.plugin_data.clone().unwrap_or_else(|| Value::empty_object(self.pos)))
    }

    /// The plugin data as the text an external plugin's `Configure` receives: the content of
    /// `plugin_data_file` as it is (read now, so that a reconfiguration sees edits), `plugin_data`
    /// written back as HCL, or the empty string when neither is set (as SPIRE).
    pub fn data_text(&self) -> Result<String, ConfigError> {
        if let Some(path) = &self.plugin_data_file {
            return crate::load::read_text(path);
        }
        Ok(self.plugin_data.as_ref().map(crate::hcl_text::body).unwrap_or_default())
    }

    /// [`PluginConfig::data`] as JSON, for plugins that take their configuration that way.
    pub fn data_json(&self) -> Result<serde_json::Value, ConfigError> {
        self.data().map(|v| v.to_json())
    }
}

fn read_data_file(path: &Path) -> Result<Value, ConfigError> {
    let text = crate::load::read_text(path)?;
    if text.trim().is_empty() {
        return Ok(Value::empty_object(Pos { line: 1, column: 1 }));
    }
    crate::load::parse_str(&text, false)
}

/// How many enabled plugins of a type a binary accepts (SPIRE's catalog constraints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// Exactly one (server and agent KeyManager, agent NodeAttestor).
    ExactlyOne,
    /// None or one (UpstreamAuthority).
    MaybeOne,
    /// One or more (agent WorkloadAttestor).
    AtLeastOne,
    /// Any number.
    ZeroOrMore,
}

impl Cardinality {
    /// SPIRE's message when `count` does not fit.
    pub fn check(self, count: usize) -> Result<(), String> {
        match (self, count) {
            (Self::ExactlyOne, 1) | (Self::MaybeOne, 0 | 1) | (Self::ZeroOrMore, _) => Ok(()),
            (Self::AtLeastOne, n) if n >= 1 => Ok(()),
            (Self::ExactlyOne, n) => Err(format!("expected exactly 1 but got {n}")),
            (Self::AtLeastOne, n) => Err(format!("expected at least 1 but got {n}")),
            (Self::MaybeOne, n) => Err(format!("expected at most 1 but got {n}")),
        }
    }
}

/// All plugin declarations of a `plugins` block, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plugins {
    list: Vec<PluginConfig>,
}

impl Plugins {
    /// Every declaration, enabled or not, in file order.
    pub fn all(&self) -> &[PluginConfig] {
        &self.list
    }

    /// The declarations of one type, enabled or not.
    pub fn of_type<'s>(&'s self, plugin_type: &'s str) -> impl Iterator<Item = &'s PluginConfig> + 's {
        self.list.iter().filter(move |p| p.plugin_type == plugin_type)
    }

    /// The enabled declarations of one type.
    pub fn enabled<'s>(&'s self, plugin_type: &'s str) -> impl Iterator<Item = &'s PluginConfig> + 's {
        self.of_type(plugin_type).filter(|p| p.enabled)
    }

    /// The declaration of `plugin_type` named `name`.
    pub fn get(&self, plugin_type: &str, name: &str) -> Option<&PluginConfig> {
        self.list.iter().find(|p| p.plugin_type == plugin_type && p.name == name)
    }

    /// The plugin types declared, in order of first appearance.
    pub fn types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for p in &self.list {
            if !types.contains(&p.plugin_type.as_str()) {
                types.push(&p.plugin_type);
            }
        }
        types
    }

    /// Reads a `plugins` block. `known` lists the plugin types the binary has; another type is
    /// refused with its line. Cardinality is checked separately ([`Plugins::check_cardinality`]).
    pub fn read(r: Reader<'_, '_>, known: &[&str]) -> Self {
        let mut r = r;
        let mut list: Vec<PluginConfig> = Vec::new();
        for type_entry in r.take_entries() {
            let plugin_type = type_entry.key.as_str();
            if !known.contains(&plugin_type) {
                r.diags().error(ConfigError::invalid(
                    format!("unsupported plugin type {plugin_type:?}: expected one of {}", known.join(", ")),
                    type_entry.key_pos.line,
                ));
                continue;
            }
            for name_entry in named_entries(type_entry, r.diags()) {
                let Some(plugin) = read_plugin(plugin_type, name_entry, r.diags()) else { continue };
                if let Some(first) = list.iter().find(|p| p.plugin_type == plugin.plugin_type && p.name == plugin.name)
                {
                    let message = format!(
                        "plugin {} {:?} is already declared at line {}",
                        plugin.plugin_type, plugin.name, first.pos.line
                    );
                    r.diags().error(ConfigError::invalid(message, plugin.pos.line));
                    continue;
                }
                list.push(plugin);
            }
        }
        Plugins { list }
    }

    /// Records an error for each type whose number of enabled plugins does not fit.
    pub fn check_cardinality(&self, rules: &[(&str, Cardinality)], diags: &mut Diagnostics) {
        for (plugin_type, rule) in rules {
            let enabled: Vec<&PluginConfig> = self.enabled(plugin_type).collect();
            if let Err(why) = rule.check(enabled.len()) {
                let lines: Vec<String> = enabled.iter().map(|p| p.pos.line.to_string()).collect();
                let at = if lines.is_empty() { String::new() } else { format!(" (lines {})", lines.join(", ")) };
                diags.error(ConfigError::invalid(format!("plugin type {plugin_type:?}: {why}{at}"), None));
            }
        }
    }
}

/// The `<name> { ... }` entries under a type: `Type "a" {}` gives one per declaration, while JSON
/// may write `"Type": {"a": {...}, "b": {...}}` or `"Type": [{"a": {...}}, {"b": {...}}]`.
fn named_entries<'a>(type_entry: &'a Entry, diags: &mut Diagnostics) -> Vec<&'a Entry> {
    let missing_name = |diags: &mut Diagnostics, line| {
        diags.error(ConfigError::invalid(
            format!("plugin {0} has no name: write {0} \"<name>\" {{ ... }}", type_entry.key),
            line,
        ));
    };
    let objects: Vec<&Value> = match &type_entry.value.kind {
        Kind::Object(_) => vec![&type_entry.value],
        Kind::List(items) if items.iter().all(|v| matches!(v.kind, Kind::Object(_))) => items.iter().collect(),
        _ => {
            missing_name(diags, type_entry.key_pos.line);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for object in objects {
        for entry in object.as_object().unwrap_or(&[]) {
            if PLUGIN_KEYS.contains(&entry.key.as_str()) || !matches!(entry.value.kind, Kind::Object(_) | Kind::Null) {
                missing_name(diags, entry.key_pos.line);
            } else {
                out.push(entry);
            }
        }
    }
    out
}

const PLUGIN_KEYS: &[&str] =
    &["plugin_cmd", "plugin_args", "plugin_checksum", "plugin_data", "plugin_data_file", "enabled"];

fn read_plugin(plugin_type: &str, entry: &Entry, diags: &mut Diagnostics) -> Option<PluginConfig> {
    let path = format!("plugins.{plugin_type}.{}", entry.key);
    let mut r = Reader::new(path, &entry.value, diags)?;
    let plugin_data = r.take("plugin_data").cloned();
    if let Some(data) = &plugin_data
        && !matches!(data.kind, Kind::Object(_))
    {
        let error = crate::decode::wrong_type(&r.key_path("plugin_data"), data, "a block");
        r.diags().error(error);
    }
    let plugin = PluginConfig {
        plugin_type: plugin_type.to_owned(),
        name: entry.key.clone(),
        pos: entry.key_pos,
        plugin_cmd: r.non_empty_string("plugin_cmd"),
        plugin_args: r.string_list("plugin_args").unwrap_or_default(),
        plugin_checksum: r.non_empty_string("plugin_checksum"),
        enabled: r.bool("enabled").unwrap_or(true),
        plugin_data_file: r.non_empty_string("plugin_data_file").map(PathBuf::from),
        plugin_data,
    };
    if plugin.plugin_data.is_some() && plugin.plugin_data_file.is_some() {
        let message = format!("{}: only one of plugin_data or plugin_data_file may be set", plugin.path());
        r.diags().error(ConfigError::invalid(message, plugin.pos.line));
    }
    r.finish();
    Some(plugin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse_str;

    fn read(text: &str) -> Result<Plugins, ConfigError> {
        let doc = parse_str(text, false)?;
        let mut diags = Diagnostics::new();
        let r = Reader::new("plugins", doc.get("plugins").unwrap(), &mut diags).unwrap();
        let plugins = Plugins::read(r, &["KeyManager", "NodeAttestor", "DataStore"]);
        diags.finish(plugins).map(|(p, _)| p)
    }

    #[test]
    fn block_and_attribute_forms() {
        let p = read(
            r#"plugins {
  KeyManager "disk" {
    plugin_data { keys_path = "/k.json" }
  }
  NodeAttestor "join_token" { plugin_data = {} }
  NodeAttestor "x509pop" {
    plugin_cmd = "/bin/x" plugin_args = ["-v"] plugin_checksum = "ab12" enabled = "false"
  }
}"#,
        )
        .unwrap();
        assert_eq!(p.types(), ["KeyManager", "NodeAttestor"]);
        let disk = p.get("KeyManager", "disk").unwrap();
        assert_eq!(disk.pos.line, 2);
        assert_eq!(disk.data_json().unwrap(), serde_json::json!({"keys_path": "/k.json"}));
        assert!(!disk.is_external());
        assert_eq!(p.enabled("NodeAttestor").count(), 1);
        let x = p.get("NodeAttestor", "x509pop").unwrap();
        assert_eq!((x.plugin_cmd.as_deref(), x.enabled), (Some("/bin/x"), false));
        assert_eq!(x.plugin_args, ["-v"]);
        assert_eq!(x.data_json().unwrap(), serde_json::json!({}));
    }

    #[test]
    fn json_forms() {
        let p = read(
            r#"{"plugins": {
  "KeyManager": {"memory": {}},
  "NodeAttestor": [{"a": {"plugin_data": {"x": 1}}}, {"b": null}]
}}"#,
        )
        .unwrap();
        assert_eq!(p.all().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["memory", "a", "b"]);
    }

    #[test]
    fn plugin_data_file_is_read_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.hcl");
        std::fs::write(&file, "keys_path = \"/k\"\n").unwrap();
        let text =
            format!("plugins {{ KeyManager \"disk\" {{ plugin_data_file = {:?} }} }}", file.display().to_string());
        let p = read(&text).unwrap();
        assert_eq!(p.all()[0].data_json().unwrap(), serde_json::json!({"keys_path": "/k"}));
    }

    #[test]
    fn mistakes() {
        let err = read(
            "plugins {\n  KeyManagr \"disk\" {}\n  KeyManager \"disk\" {\n    plugin_dat { }\n  }\n  KeyManager \"disk\" {}\n  NodeAttestor { plugin_data {} }\n}\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "4 configuration errors:\n  \
             - unsupported plugin type \"KeyManagr\": expected one of KeyManager, NodeAttestor, DataStore (line 2)\n  \
             - unknown configuration key \"plugin_dat\" at line 4 (in plugins.KeyManager.disk)\n  \
             - plugin KeyManager \"disk\" is already declared at line 3 (line 6)\n  \
             - plugin NodeAttestor has no name: write NodeAttestor \"<name>\" { ... } (line 7)"
        );
        let err = read("plugins {\n KeyManager \"a\" {\n plugin_data = \"x\"\n plugin_data_file = \"/f\"\n }\n}")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 configuration errors:\n  \
             - plugins.KeyManager.a: only one of plugin_data or plugin_data_file may be set (line 2)\n  \
             - invalid value for plugins.KeyManager.a.plugin_data at line 3: expected a block, got \"x\""
        );
    }

    #[test]
    fn cardinality() {
        assert_eq!(Cardinality::ExactlyOne.check(2), Err("expected exactly 1 but got 2".to_owned()));
        assert_eq!(Cardinality::ExactlyOne.check(0), Err("expected exactly 1 but got 0".to_owned()));
        assert_eq!(Cardinality::MaybeOne.check(2), Err("expected at most 1 but got 2".to_owned()));
        assert_eq!(Cardinality::AtLeastOne.check(0), Err("expected at least 1 but got 0".to_owned()));
        assert!(Cardinality::ZeroOrMore.check(0).is_ok() && Cardinality::MaybeOne.check(0).is_ok());
        let p = read("plugins {\n KeyManager \"a\" {}\n KeyManager \"b\" {}\n KeyManager \"c\" { enabled = false }\n}")
            .unwrap();
        let mut diags = Diagnostics::new();
        p.check_cardinality(&[("KeyManager", Cardinality::ExactlyOne)], &mut diags);
        assert_eq!(
            diags.into_error().unwrap().to_string(),
            "plugin type \"KeyManager\": expected exactly 1 but got 2 (lines 2, 3)"
        );
    }
}
