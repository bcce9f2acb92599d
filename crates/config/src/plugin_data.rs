//! Typed `plugin_data` of the built-in plugins this project implements first, each with its own
//! unknown-key check, and [`decode`] for writing more.

use std::path::PathBuf;
use std::time::Duration;

use crate::decode::Reader;
use crate::error::{ConfigError, Diagnostics};
use crate::plugins::PluginConfig;
use crate::value::{Kind, Value};

/// Decodes a plugin's data with `read`, then refuses the keys `read` did not take. Errors name the
/// keys as `plugins.<Type>.<name>.plugin_data.<key>` with their line.
pub fn decode<T>(plugin: &PluginConfig, read: impl FnOnce(&mut Reader<'_, '_>) -> T) -> Result<T, ConfigError> {
    let data = plugin.data()?;
    decode_value(&format!("{}.plugin_data", plugin.path()), &data, read)
}

/// [`decode`] for data already in hand, named `path` in messages.
pub fn decode_value<T>(
    path: &str,
    data: &Value,
    read: impl FnOnce(&mut Reader<'_, '_>) -> T,
) -> Result<T, ConfigError> {
    let mut diags = Diagnostics::new();
    let value = Reader::new(path, data, &mut diags).map(|mut r| {
        let value = read(&mut r);
        r.finish();
        value
    });
    match (diags.into_error(), value) {
        (Some(e), _) => Err(e),
        (None, Some(v)) => Ok(v),
        (None, None) => Err(ConfigError::invalid(format!("{path}: expected a block"), data.pos.line)),
    }
}

/// Checks that a plugin that takes no settings (KeyManager `memory`, NodeAttestor `join_token`) was
/// given none.
pub fn expect_no_data(plugin: &PluginConfig) -> Result<(), ConfigError> {
    decode(plugin, |_| ())
}

/// The database engines of the `sql` DataStore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseType {
    /// `sqlite3`.
    Sqlite3,
    /// `postgres`.
    Postgres,
    /// `mysql`.
    Mysql,
}

impl DatabaseType {
    /// SPIRE's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite3 => "sqlite3",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

/// DataStore `sql` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlDataStoreConfig {
    /// `database_type`.
    pub database_type: DatabaseType,
    /// `connection_string`: a file path for SQLite, a DSN or URL otherwise.
    pub connection_string: String,
    /// `ro_connection_string`: a read-only replica for reads that may be slightly stale.
    pub ro_connection_string: Option<String>,
    /// `root_ca_path`: CA to verify the database server (MySQL).
    pub root_ca_path: Option<PathBuf>,
    /// `client_cert_path`: client certificate (MySQL).
    pub client_cert_path: Option<PathBuf>,
    /// `client_key_path`: client key (MySQL).
    pub client_key_path: Option<PathBuf>,
    /// `max_open_conns` (default 100).
    pub max_open_conns: u32,
    /// `max_idle_conns` (default 100).
    pub max_idle_conns: u32,
    /// `conn_max_lifetime`: how long a connection may be reused (unlimited if unset).
    pub conn_max_lifetime: Option<Duration>,
    /// `disable_migration`: refuse to start rather than migrate an old schema.
    pub disable_migration: bool,
    /// `log_sql` (undocumented in SPIRE): log every statement.
    pub log_sql: bool,
}

impl SqlDataStoreConfig {
    /// SPIRE's default for both connection limits.
    pub const DEFAULT_MAX_CONNS: u32 = 100;

    /// Decodes the DataStore plugin's data.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        let data = plugin.data()?;
        Self::from_value(&format!("{}.plugin_data", plugin.path()), &data)
    }

    /// Decodes `data`, named `path` in messages.
    pub fn from_value(path: &str, data: &Value) -> Result<Self, ConfigError> {
        let config = decode_value(path, data, |r| {
            let database_type = read_database_type(r);
            let connection_string = r.non_empty_string("connection_string");
            if connection_string.is_none() {
                let message = format!("{} must be set", r.key_path("connection_string"));
                let line = r.pos().line;
                r.diags().error(ConfigError::invalid(message, line));
            }
            let config = Self {
                database_type: database_type.unwrap_or(DatabaseType::Sqlite3),
                connection_string: connection_string.unwrap_or_default(),
                ro_connection_string: r.non_empty_string("ro_connection_string"),
                root_ca_path: r.non_empty_string("root_ca_path").map(PathBuf::from),
                client_cert_path: r.non_empty_string("client_cert_path").map(PathBuf::from),
                client_key_path: r.non_empty_string("client_key_path").map(PathBuf::from),
                max_open_conns: r.int("max_open_conns").unwrap_or(Self::DEFAULT_MAX_CONNS),
                max_idle_conns: r.int("max_idle_conns").unwrap_or(Self::DEFAULT_MAX_CONNS),
                conn_max_lifetime: r.duration("conn_max_lifetime"),
                disable_migration: r.bool("disable_migration").unwrap_or(false),
                log_sql: r.bool("log_sql").unwrap_or(false),
            };
            if database_type.is_none() { None } else { Some(config) }
        })?;
        // A missing database_type was recorded as an error inside, so `None` never escapes.
        config.ok_or_else(|| ConfigError::invalid(format!("{path}.database_type must be set"), data.pos.line))
    }
}

fn read_database_type(r: &mut Reader<'_, '_>) -> Option<DatabaseType> {
    let path = r.key_path("database_type");
    let Some(value) = r.take("database_type") else {
        let line = r.pos().line;
        r.diags().error(ConfigError::invalid(format!("{path} must be set"), line));
        return None;
    };
    if let Kind::Object(entries) = &value.kind {
        // `database_type "aws_postgres" { region = ... }`: cloud IAM authentication.
        let name = entries.first().map_or("", |e| e.key.as_str());
        let message =
            format!("{path} {name:?} (cloud IAM authentication) is not supported: use sqlite3, postgres or mysql");
        r.diags().error(ConfigError::invalid(message, value.pos.line));
        return None;
    }
    let text = match crate::decode::to_string(value, &path) {
        Ok(text) => text,
        Err(e) => {
            r.diags().error(e);
            return None;
        }
    };
    let parsed = match text.as_str() {
        "sqlite3" => DatabaseType::Sqlite3,
        "postgres" => DatabaseType::Postgres,
        "mysql" => DatabaseType::Mysql,
        _ => {
            let message = format!("unsupported {path} {text:?}: use sqlite3, postgres or mysql");
            r.diags().error(ConfigError::invalid(message, value.pos.line));
            return None;
        }
    };
    Some(parsed)
}

/// KeyManager `disk` settings (server): keys are kept in one JSON file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskKeyManagerConfig {
    /// `keys_path`: the file holding the keys.
    pub keys_path: PathBuf,
}

impl DiskKeyManagerConfig {
    /// Decodes the plugin's data.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, |r| {
            let keys_path = required_path(r, "keys_path");
            keys_path.map(|keys_path| Self { keys_path })
        })
        .and_then(|c| c.ok_or_else(|| unreachable_missing(plugin)))
    }
}

/// UpstreamAuthority `disk` settings: sign the server CA with a CA read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUpstreamAuthorityConfig {
    /// `cert_file_path`: the upstream CA certificate (chain).
    pub cert_file_path: PathBuf,
    /// `key_file_path`: its private key.
    pub key_file_path: PathBuf,
    /// `bundle_file_path`: upstream trust bundle, when the CA is an intermediate.
    pub bundle_file_path: Option<PathBuf>,
}

impl DiskUpstreamAuthorityConfig {
    /// Decodes the plugin's data.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, |r| {
            let cert = required_path(r, "cert_file_path");
            let key = required_path(r, "key_file_path");
            let bundle = r.non_empty_string("bundle_file_path").map(PathBuf::from);
            Some(Self { cert_file_path: cert?, key_file_path: key?, bundle_file_path: bundle })
        })
        .and_then(|c| c.ok_or_else(|| unreachable_missing(plugin)))
    }
}

/// KeyManager `disk` settings (agent): the agent's private key is kept in `keys.json` under a
/// directory. Note the asymmetry with the server's plugin, which takes a file path (`keys_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskKeyManagerAgentConfig {
    /// `directory`: where the key file is written.
    pub directory: PathBuf,
}

impl DiskKeyManagerAgentConfig {
    /// Decodes the plugin's data.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, |r| required_path(r, "directory").map(|directory| Self { directory }))
            .and_then(|c| c.ok_or_else(|| unreachable_missing(plugin)))
    }
}

/// WorkloadAttestor `unix` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnixWorkloadAttestorConfig {
    /// `discover_workload_path` (default false): add `path` and `sha256` selectors for the
    /// workload's executable.
    pub discover_workload_path: bool,
    /// `workload_size_limit` (default 0): the largest executable hashed for the `sha256` selector;
    /// 0 means no limit and a negative value means never hash.
    pub workload_size_limit: i64,
}

impl UnixWorkloadAttestorConfig {
    /// Decodes the plugin's data.
    pub fn from_plugin(plugin: &PluginConfig) -> Result<Self, ConfigError> {
        decode(plugin, |r| Self {
            discover_workload_path: r.bool("discover_workload_path").unwrap_or(false),
            workload_size_limit: r.int("workload_size_limit").unwrap_or(0),
        })
    }
}

fn required_path(r: &mut Reader<'_, '_>, key: &str) -> Option<PathBuf> {
    let value = r.non_empty_string(key);
    if value.is_none() {
        let message = format!("{} is required", r.key_path(key));
        let line = r.pos().line;
        r.diags().error(ConfigError::invalid(message, line));
    }
    value.map(PathBuf::from)
}

/// Every path that returns `None` above records an error first, so this is never what users see.
fn unreachable_missing(plugin: &PluginConfig) -> ConfigError {
    ConfigError::invalid(format!("{}.plugin_data is incomplete", plugin.path()), plugin.pos.line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse_str;
    use crate::plugins::Plugins;

    fn plugin(text: &str) -> PluginConfig {
        let doc = parse_str(text, false).unwrap();
        let mut diags = Diagnostics::new();
        let r = Reader::new("plugins", doc.get("plugins").unwrap(), &mut diags).unwrap();
        let plugins = Plugins::read(r, &["DataStore", "KeyManager", "UpstreamAuthority", "NodeAttestor"]);
        assert!(!diags.has_errors());
        plugins.all()[0].clone()
    }

    #[test]
    fn sql_defaults_and_full() {
        let p = plugin(
            r#"plugins { DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "./d.sqlite3" } } }"#,
        );
        let c = SqlDataStoreConfig::from_plugin(&p).unwrap();
        assert_eq!(c.database_type, DatabaseType::Sqlite3);
        assert_eq!(c.connection_string, "./d.sqlite3");
        assert_eq!((c.max_open_conns, c.max_idle_conns), (100, 100));
        assert_eq!((c.conn_max_lifetime, c.disable_migration, c.ro_connection_string), (None, false, None));

        let p = plugin(
            r#"plugins { DataStore "sql" { plugin_data {
  database_type = "mysql"
  connection_string = "spire:pw@tcp(db:3306)/spire?parseTime=true"
  ro_connection_string = "ro@tcp(db2:3306)/spire"
  root_ca_path = "/ca.pem"
  client_cert_path = "/c.pem"
  client_key_path = "/k.pem"
  max_open_conns = "20"
  max_idle_conns = 5
  conn_max_lifetime = "30s"
  disable_migration = true
} } }"#,
        );
        let c = SqlDataStoreConfig::from_plugin(&p).unwrap();
        assert_eq!(c.database_type, DatabaseType::Mysql);
        assert_eq!((c.max_open_conns, c.max_idle_conns), (20, 5));
        assert_eq!(c.conn_max_lifetime, Some(Duration::from_secs(30)));
        assert_eq!(c.root_ca_path, Some(PathBuf::from("/ca.pem")));
        assert!(c.disable_migration);
    }

    #[test]
    fn sql_mistakes() {
        let err = |data: &str| {
            let p = plugin(&format!("plugins {{\n DataStore \"sql\" {{\n plugin_data {{\n{data}\n }}\n }}\n}}"));
            SqlDataStoreConfig::from_plugin(&p).unwrap_err().to_string()
        };
        assert_eq!(
            err("database_type = \"oracle\"\nconnection_string = \"x\""),
            "unsupported plugins.DataStore.sql.plugin_data.database_type \"oracle\": use sqlite3, postgres or mysql (line 4)"
        );
        assert_eq!(
            err("database_type = \"sqlite3\""),
            "plugins.DataStore.sql.plugin_data.connection_string must be set (line 3)"
        );
        assert_eq!(
            err("database_type = \"sqlite3\"\nconnection_string = \"x\"\nconection_string = \"y\""),
            "unknown configuration key \"conection_string\" at line 6 (in plugins.DataStore.sql.plugin_data)"
        );
        assert_eq!(
            err("connection_string = \"x\"\nmax_open_conns = \"lots\""),
            "2 configuration errors:\n  - plugins.DataStore.sql.plugin_data.database_type must be set (line 3)\n  \
             - invalid value for plugins.DataStore.sql.plugin_data.max_open_conns at line 5: expected an integer, got \"lots\""
        );
        assert!(
            err("database_type \"aws_postgres\" { region = \"x\" }\nconnection_string = \"x\"")
                .contains("not supported")
        );
    }

    #[test]
    fn disk_and_memory() {
        let p = plugin(r#"plugins { KeyManager "disk" { plugin_data { keys_path = "./.data/keys.json" } } }"#);
        assert_eq!(DiskKeyManagerConfig::from_plugin(&p).unwrap().keys_path, PathBuf::from("./.data/keys.json"));
        let p = plugin("plugins {\n KeyManager \"disk\" { plugin_data {} }\n}");
        assert_eq!(
            DiskKeyManagerConfig::from_plugin(&p).unwrap_err().to_string(),
            "plugins.KeyManager.disk.plugin_data.keys_path is required (line 2)"
        );
        let p = plugin("plugins { KeyManager \"memory\" { plugin_data = {} } }");
        expect_no_data(&p).unwrap();
        let p = plugin("plugins {\n KeyManager \"memory\" {\n plugin_data { keys_path = \"x\" }\n }\n}");
        assert_eq!(
            expect_no_data(&p).unwrap_err().to_string(),
            "unknown configuration key \"keys_path\" at line 3 (in plugins.KeyManager.memory.plugin_data)"
        );
        let p = plugin(
            r#"plugins { UpstreamAuthority "disk" { plugin_data { cert_file_path = "/c.crt" key_file_path = "/c.key" } } }"#,
        );
        let c = DiskUpstreamAuthorityConfig::from_plugin(&p).unwrap();
        assert_eq!((c.cert_file_path.to_str(), c.bundle_file_path), (Some("/c.crt"), None));
        let p = plugin("plugins {\n UpstreamAuthority \"disk\" { plugin_data { key_file_path = \"/c.key\" } }\n}");
        assert_eq!(
            DiskUpstreamAuthorityConfig::from_plugin(&p).unwrap_err().to_string(),
            "plugins.UpstreamAuthority.disk.plugin_data.cert_file_path is required (line 2)"
        );
    }
}
