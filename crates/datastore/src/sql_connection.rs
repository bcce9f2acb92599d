//! SPIRE's `connection_string`s, as the "sql" DataStore plugin takes them, turned into the URLs that
//! sqlx connects with.
//!
//! SPIRE hands the string to a Go driver; operators copy working strings from their SPIRE
//! configuration, so each form is read the way that driver reads it:
//!
//! * `sqlite3` (mattn/go-sqlite3): a file path, optionally followed by `?param=value&...`, or a
//!   `file:` URI. spire-rs also takes `:memory:` and sqlx's own `sqlite:` URLs (passed through).
//! * `postgres` (lib/pq): a libpq key/value string (`dbname=spire user=spire password='p w'
//!   host=db sslmode=verify-full`; values may be single-quoted, backslash escapes one character)
//!   or a `postgres://`/`postgresql://` URL.
//! * `mysql` (go-sql-driver/mysql): `[user[:password]@][net[(addr)]]/dbname[?param=value&...]`
//!   with net `tcp` (default `127.0.0.1:3306`) or `unix` (default `/tmp/mysql.sock`).
//!
//! Parameters that have no sqlx counterpart are dropped, and their names (never their values)
//! returned in [`DatabaseUrl::ignored`] so that the caller can log them:
//!
//! * SQLite: go-sqlite3's `_`-prefixed parameters (`_busy_timeout`, `_journal_mode`, `_txlock`, ...:
//!   the store sets journal mode, foreign keys, synchronous and busy timeout itself) and any SQLite
//!   URI parameter other than `mode`, `cache`, `immutable` and `vfs`.
//! * PostgreSQL: `connect_timeout`, `sslsni`, `krbsrvname`, `krbspn`, `binary_parameters`,
//!   `disable_prepared_binary_result`, `client_encoding`, `datestyle` (sqlx fixes the last two).
//!   Like lib/pq, any key that is not a connection setting is a server run-time parameter
//!   (`search_path=spire`): it is passed on with `options=-c key=value`. libpq settings that lib/pq
//!   never supported either (`target_session_attrs`, `sslcrl`, `passfile`, ...) are refused.
//! * MySQL: the Go driver's own parameters (`parseTime`, `loc`, `timeout`, `readTimeout`,
//!   `writeTimeout`, `charset`, `collation`, `allowNativePasswords`, `allowCleartextPasswords`,
//!   `allowFallbackToPlaintext`, `interpolateParams`, `multiStatements`, `clientFoundRows`,
//!   `maxAllowedPacket`, `serverPubKey`, ...) and system variables (`sql_mode=...`, `time_zone=...`):
//!   sqlx always talks utf8mb4 and sets its own session variables.
//!
//! TLS follows SPIRE: for MySQL, `root_ca_path` or a client certificate switches to a custom TLS
//! configuration that verifies the server's certificate and host name, whatever the `tls`
//! parameter says; without them `tls=true|skip-verify|preferred|false` map to sqlx's
//! `VERIFY_IDENTITY|REQUIRED|PREFERRED|DISABLED`, and no `tls` parameter means no TLS (the Go
//! driver's default). For PostgreSQL (where SPIRE ignores them) the three paths fill in
//! `sslrootcert`, `sslcert` and `sslkey`; a missing `sslmode` is lib/pq's default, `require`, which
//! lib/pq verifies against the CA (`verify-ca`) when a root certificate is given, and `verify-full`
//! when it comes from `root_ca_path` ($PGSSLMODE and $PGSSLROOTCERT count, as for lib/pq). Over a
//! Unix socket, where PostgreSQL never offers TLS, a missing `sslmode` means `disable`.
//!
//! Passwords never appear in error messages; [`DatabaseUrl`]'s `Debug` masks them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::DataStoreError;

/// The plugin configuration's TLS material: `root_ca_path`, `client_cert_path`, `client_key_path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbTls {
    /// CA bundle that the server's certificate must chain to.
    pub root_ca_path: Option<PathBuf>,
    /// Client certificate (PEM), presented to the server; needs `client_key_path`.
    pub client_cert_path: Option<PathBuf>,
    /// Private key (PEM) of the client certificate; needs `client_cert_path`.
    pub client_key_path: Option<PathBuf>,
}

/// Why a `database_type`/`connection_string` pair cannot be turned into a URL. Messages name the
/// setting to fix and never contain a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// `database_type` names no database that spire-rs supports.
    #[error("{0}")]
    DatabaseType(String),
    /// `connection_string` cannot be read, or asks for something sqlx cannot do.
    #[error("connection_string: {0}")]
    ConnectionString(String),
    /// `root_ca_path`, `client_cert_path` or `client_key_path` are incomplete or contradict the
    /// connection string.
    #[error("{0}")]
    Tls(String),
}

impl From<ConnectionStringError> for DataStoreError {
    fn from(err: ConnectionStringError) -> Self {
        Self::InvalidArgument(err.to_string())
    }
}

type Result<T> = std::result::Result<T, ConnectionStringError>;

fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(ConnectionStringError::ConnectionString(message.into()))
}

/// A connection string converted for sqlx.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// `sqlite:...`, `postgres://...` or `mysql://...`, for `AnyConnectOptions`; holds the password.
    pub url: String,
    /// Names of the parameters (and plugin settings) that were dropped because sqlx has no
    /// equivalent; worth a warning in the log.
    pub ignored: Vec<String>,
}

impl DatabaseUrl {
    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl").field("url", &self.redacted()).field("ignored", &self.ignored).finish()
    }
}

/// The sqlx URL for SPIRE's `database_type` and `connection_string` (or `ro_connection_string`).
pub fn database_url(database_type: &str, connection_string: &str, tls: &DbTls) -> Result<String> {
    convert(database_type, connection_string, tls).map(|converted| converted.url)
}

/// [`database_url`], also naming what was dropped.
pub fn convert(database_type: &str, connection_string: &str, tls: &DbTls) -> Result<DatabaseUrl> {
    let env = PgEnv { sslmode: env_var("PGSSLMODE"), sslrootcert: env_var("PGSSLROOTCERT") };
    convert_with(database_type, connection_string, tls, &env)
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The environment variables that lib/pq reads and that change what the URL must say (sqlx reads
/// the others, PGHOST, PGUSER..., itself when the URL leaves them out).
#[derive(Debug, Default)]
struct PgEnv {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

fn convert_with(database_type: &str, connection_string: &str, tls: &DbTls, env: &PgEnv) -> Result<DatabaseUrl> {
    let kind = match database_type {
        "sqlite3" => Kind::Sqlite,
        "postgres" => Kind::Postgres,
        "mysql" => Kind::Mysql,
        "" => {
            return Err(ConnectionStringError::DatabaseType(
                "database_type must be set: use sqlite3, postgres or mysql".into(),
            ));
        }
        "aws_postgres" | "aws_mysql" | "azure_postgres" | "azure_mysql" => {
            return Err(ConnectionStringError::DatabaseType(format!(
                "database_type {database_type:?} (cloud IAM authentication) is not supported: use {} with a \
                 password in connection_string",
                if database_type.ends_with("postgres") { "postgres" } else { "mysql" }
            )));
        }
        other => {
            return Err(ConnectionStringError::DatabaseType(format!(
                "database_type {other:?} is not supported: use sqlite3, postgres or mysql"
            )));
        }
    };
    if connection_string.trim().is_empty() {
        return invalid("must be set");
    }
    // An empty path in the configuration means "not set".
    let non_empty = |path: &Option<PathBuf>| path.clone().filter(|p| !p.as_os_str().is_empty());
    let tls = &DbTls {
        root_ca_path: non_empty(&tls.root_ca_path),
        client_cert_path: non_empty(&tls.client_cert_path),
        client_key_path: non_empty(&tls.client_key_path),
    };
    match (&tls.client_cert_path, &tls.client_key_path) {
        (Some(_), None) => {
            return Err(ConnectionStringError::Tls(
                "client_cert_path is set but client_key_path is not: set both, or neither".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ConnectionStringError::Tls(
                "client_key_path is set but client_cert_path is not: set both, or neither".into(),
            ));
        }
        _ => {}
    }
    match kind {
        Kind::Sqlite => sqlite(connection_string, tls),
        Kind::Postgres => postgres(connection_string, tls, env),
        Kind::Mysql => mysql(connection_string, tls),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

// ---------------------------------------------------------------------------------------------------
// SQLite

/// SQLite URI parameters that sqlx understands; everything else is dropped.
const SQLITE_PARAMS: &[&str] = &["mode", "cache", "immutable", "vfs"];

fn sqlite(cs: &str, tls: &DbTls) -> Result<DatabaseUrl> {
    let mut ignored = Vec::new();
    for (name, set) in [
        ("root_ca_path", tls.root_ca_path.is_some()),
        ("client_cert_path", tls.client_cert_path.is_some()),
        ("client_key_path", tls.client_key_path.is_some()),
    ] {
        if set {
            ignored.push(name.to_owned());
        }
    }
    if cs == ":memory:" {
        return Ok(DatabaseUrl { url: "sqlite::memory:".into(), ignored });
    }
    if cs.starts_with("sqlite:") {
        return Ok(DatabaseUrl { url: cs.to_owned(), ignored });
    }

    // What Go's url.Parse makes of it, as SPIRE parses the string before handing it to the driver:
    // the path ends at '?' (query) or '#' (fragment) and is percent-decoded.
    let without_fragment = cs.split_once('#').map_or(cs, |(before, _)| before);
    let (raw_path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (without_fragment, None),
    };
    let path = if let Some(rest) = raw_path.strip_prefix("file:") {
        // SQLite URI: file:path or file://[localhost]/absolute/path.
        let path = match rest.strip_prefix("//") {
            Some(authority_and_path) => {
                let (authority, path) = match authority_and_path.find('/') {
                    Some(at) => authority_and_path.split_at(at),
                    None => (authority_and_path, ""),
                };
                if !authority.is_empty() && authority != "localhost" {
                    return invalid(format!(
                        "the file: URI names host {authority:?}: SQLite only opens local files, write \
                         file:///path or a plain path"
                    ));
                }
                path
            }
            None => rest,
        };
        decode(path, false).ok_or_else(|| bad_encoding("the SQLite file name"))?
    } else {
        decode(raw_path, false).ok_or_else(|| bad_encoding("the SQLite file path"))?
    };
    if path.is_empty() {
        return invalid("the SQLite file path is empty: give one, such as ./data/datastore.sqlite3");
    }

    let mut params = Vec::new();
    let mut has_mode = false;
    for (key, value) in query_pairs(query.unwrap_or(""))? {
        if SQLITE_PARAMS.contains(&key.as_str()) {
            has_mode |= key == "mode";
            params.push((key, value));
        } else if !ignored.contains(&key) {
            ignored.push(key);
        }
    }
    if path == ":memory:" {
        // sqlx opens a fresh private in-memory database for this name.
        params.retain(|(key, _)| key != "mode");
        return Ok(DatabaseUrl { url: with_query("sqlite::memory:".into(), &params), ignored });
    }
    if !has_mode {
        params.insert(0, ("mode".into(), "rwc".into()));
    }
    // "sqlite:" + path, not "sqlite://": the URL parser would take a relative path's first segment
    // for a host. A path starting with "//" needs the empty authority to stay a path.
    let prefix = if path.starts_with("//") { "sqlite://" } else { "sqlite:" };
    let url = format!("{prefix}{}", encode(&path, is_path_char));
    Ok(DatabaseUrl { url: with_query(url, &params), ignored })
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

/// Keys lib/pq reads itself and sqlx has no use for.
const PG_IGNORED: &[&str] = &[
    "connect_timeout",
    "sslsni",
    "krbsrvname",
    "krbspn",
    "binary_parameters",
    "disable_prepared_binary_result",
    "client_encoding",
    "datestyle",
];

/// libpq settings that lib/pq does not know (it sends them to the server, which refuses them) and sqlx
/// cannot honour either: refused rather than dropped, since some of them tighten security.
const PG_UNSUPPORTED: &[&str] = &[
    "passfile",
    "service",
    "channel_binding",
    "require_auth",
    "gssencmode",
    "gsslib",
    "gssdelegation",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcompression",
    "sslcertmode",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requiressl",
    "target_session_attrs",
    "load_balance_hosts",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
];

/// libpq keywords that are connection settings rather than server run-time parameters; naming one
/// in an error message cannot leak a secret.
const PG_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslinline",
    "application_name",
    "fallback_application_name",
    "options",
];

fn postgres(cs: &str, tls: &DbTls, env: &PgEnv) -> Result<DatabaseUrl> {
    let cs = cs.trim();
    let pairs = if cs.starts_with("postgres://") || cs.starts_with("postgresql://") {
        parse_pg_url(cs)?
    } else if cs.contains("://") {
        let scheme = cs.split("://").next().unwrap_or_default();
        return invalid(format!(
            "URL scheme {scheme:?} is not PostgreSQL's: write postgres://user:password@host:port/dbname or \
             key=value pairs (dbname=spire user=spire host=localhost)"
        ));
    } else {
        parse_pg_dsn(cs)?
    };
    // Later settings win, as in libpq.
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in pairs {
        settings.insert(key, value);
    }

    let mut ignored = Vec::new();
    let mut runtime: Vec<(String, String)> = Vec::new();
    let mut known: BTreeMap<&'static str, String> = BTreeMap::new();
    for (key, value) in settings {
        if let Some(&keyword) = PG_KEYWORDS.iter().find(|&&k| k == key) {
            known.insert(keyword, value);
        } else if PG_IGNORED.contains(&key.as_str()) {
            ignored.push(key);
        } else if PG_UNSUPPORTED.contains(&key.as_str()) {
            return invalid(format!(
                "{key} is not supported (SPIRE's PostgreSQL driver, lib/pq, does not support it either): remove it"
            ));
        } else {
            // Neither lib/pq nor libpq option: lib/pq sends it to the server as a run-time parameter.
            if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
                // Not named: a key with odd characters may be part of a badly quoted password.
                return invalid(
                    "a key is neither a PostgreSQL connection setting nor a run-time parameter name (letters, \
                     digits, '_' and '.'): check the quoting of values that contain spaces",
                );
            }
            runtime.push((key, value));
        }
    }

    if let Some(inline) = known.remove("sslinline")
        && is_true(&inline)
    {
        return invalid(
            "sslinline=true (certificates inline in the string) is not supported: put them in files and name \
             them with sslrootcert, sslcert and sslkey (or root_ca_path, client_cert_path, client_key_path)",
        );
    }

    let host = known.remove("host").filter(|h| !h.is_empty());
    let hostaddr = known.remove("hostaddr").filter(|h| !h.is_empty());
    if host.as_deref().is_some_and(|h| h.contains(',')) || hostaddr.as_deref().is_some_and(|h| h.contains(',')) {
        return invalid("several hosts (host=a,b) are not supported: name one");
    }
    let port = known.remove("port").filter(|p| !p.is_empty());
    if let Some(port) = &port {
        if port.contains(',') {
            return invalid("several ports (port=a,b) are not supported: name one");
        }
        if port.parse::<u16>().is_err() {
            return invalid(format!("port {port:?} is not a port number"));
        }
    }
    let socket = host.as_deref().is_some_and(|h| h.starts_with('/'));
    if let Some(h) = host.as_deref().filter(|_| !socket) {
        check_host(h)?;
    }

    // TLS: the connection string's own settings, then the plugin's paths, then lib/pq's defaults.
    let mut root_cert_from_config = false;
    for (key, setting, path) in [
        ("sslrootcert", "root_ca_path", &tls.root_ca_path),
        ("sslcert", "client_cert_path", &tls.client_cert_path),
        ("sslkey", "client_key_path", &tls.client_key_path),
    ] {
        let Some(path) = path else { continue };
        let path = path_str(path, setting)?;
        match known.get(key) {
            Some(existing) if existing != path => {
                return Err(ConnectionStringError::Tls(format!(
                    "{setting} ({path}) and {key} in connection_string ({existing}) disagree: set only one"
                )));
            }
            Some(_) => {}
            None => {
                known.insert(key, path.to_owned());
                root_cert_from_config |= key == "sslrootcert";
            }
        }
    }
    let has_root_cert = known.contains_key("sslrootcert") || env.sslrootcert.is_some();
    let sslmode = match known.remove("sslmode").or_else(|| env.sslmode.clone()) {
        Some(mode) => {
            let mode = mode.to_ascii_lowercase();
            match mode.as_str() {
                // lib/pq (like libpq) verifies against the CA when one is given, even in require mode.
                "require" if has_root_cert => "verify-ca".to_owned(),
                "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full" => mode,
                _ => {
                    return invalid(format!(
                        "sslmode {mode:?} is not valid: use disable, require, verify-ca or verify-full"
                    ));
                }
            }
        }
        None if root_cert_from_config => "verify-full".to_owned(),
        None if has_root_cert => "verify-ca".to_owned(),
        None if socket => "disable".to_owned(),
        None => "require".to_owned(),
    };

    let user = known.remove("user").filter(|u| !u.is_empty());
    let password = known.remove("password").filter(|p| !p.is_empty());
    let dbname = known.remove("dbname").filter(|d| !d.is_empty());

    let mut params: Vec<(String, String)> = Vec::new();
    let mut url = String::from("postgres://");
    match host.as_deref().filter(|_| !socket) {
        Some(host) => {
            if let Some(user) = &user {
                url.push_str(&encode(user, is_unreserved));
            }
            if let Some(password) = &password {
                url.push(':');
                url.push_str(&encode(password, is_unreserved));
            }
            if user.is_some() || password.is_some() {
                url.push('@');
            }
            if host.contains(':') {
                url.push('[');
                url.push_str(host);
                url.push(']');
            } else {
                url.push_str(host);
            }
            if let Some(port) = &port {
                url.push(':');
                url.push_str(port);
            }
        }
        None => {
            // No TCP host: the URL cannot have an authority with user information, so everything goes
            // in the query. Without a host sqlx uses $PGHOST or localhost, as lib/pq does.
            if let Some(user) = &user {
                params.push(("user".into(), user.clone()));
            }
            if let Some(password) = &password {
                params.push(("password".into(), password.clone()));
            }
            if let Some(host) = &host {
                params.push(("host".into(), host.clone()));
            }
            if let Some(port) = &port {
                params.push(("port".into(), port.clone()));
            }
        }
    }
    url.push('/');
    if let Some(dbname) = &dbname {
        url.push_str(&encode(dbname, is_unreserved));
    }
    if let Some(hostaddr) = hostaddr {
        params.push(("hostaddr".into(), hostaddr));
    }
    params.push(("sslmode".into(), sslmode));
    for key in ["sslrootcert", "sslcert", "sslkey"] {
        if let Some(value) = known.remove(key).filter(|v| !v.is_empty()) {
            params.push((key.into(), value));
        }
    }
    let fallback = known.remove("fallback_application_name");
    if let Some(name) = known.remove("application_name").or(fallback).filter(|n| !n.is_empty()) {
        params.push(("application_name".into(), name));
    }
    let mut options = known.remove("options").unwrap_or_default();
    for (key, value) in runtime {
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str("-c ");
        options.push_str(&key);
        options.push('=');
        // The server splits `options` at unescaped white space; a backslash escapes one character.
        for c in value.chars() {
            if c == '\\' || c.is_whitespace() {
                options.push('\\');
            }
            options.push(c);
        }
    }
    if !options.is_empty() {
        params.push(("options".into(), options));
    }
    Ok(DatabaseUrl { url: with_query(url, &params), ignored })
}

/// libpq's key/value syntax: `key = value` pairs separated by white space; a value is either a run
/// of non-space characters or single-quoted; in both a backslash takes the next character literally.
fn parse_pg_dsn(s: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        skip_space(&mut chars);
        if chars.next() != Some('=') {
            // An unknown word may be a stray password: only name known keywords.
            return invalid(if PG_KEYWORDS.contains(&key.as_str()) {
                format!("missing \"=\" after {key:?} in the PostgreSQL key=value string")
            } else {
                format!(
                    "missing \"=\" after word {} of the PostgreSQL key=value string: write key=value pairs, and \
                     quote values containing spaces ('...')",
                    pairs.len() + 1
                )
            });
        }
        if key.is_empty() {
            return invalid("a \"=\" without a key in the PostgreSQL key=value string");
        }
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return invalid(format!(
                            "unterminated quote in the value of {} in the PostgreSQL key=value string: close it \
                             with ' (write \\' for a quote inside)",
                            if PG_KEYWORDS.contains(&key.as_str()) { key.as_str() } else { "a setting" }
                        ));
                    }
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return invalid("unterminated quote in the PostgreSQL key=value string");
                        }
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// `postgres[ql]://[user[:password]@][host][:port][/dbname][?key=value&...]`, read as lib/pq does: the
/// URL's parts become settings, then its query parameters, which may override them.
fn parse_pg_url(s: &str) -> Result<Vec<(String, String)>> {
    let rest = s.split_once("://").map_or("", |(_, rest)| rest);
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (main, query) = rest.split_once('?').map_or((rest, ""), |(main, query)| (main, query));
    let (authority, path) = main.split_once('/').map_or((main, ""), |(authority, path)| (authority, path));
    let mut pairs = Vec::new();
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            pairs.push(("user".into(), decode(user, false).ok_or_else(|| bad_encoding("the user name"))?));
            if let Some(password) = password {
                pairs.push(("password".into(), decode(password, false).ok_or_else(|| bad_encoding("the password"))?));
            }
            host_port
        }
        None => authority,
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return invalid("unterminated [ in the URL's host: write [IPv6 address]:port");
        };
        match after {
            "" => (host.to_owned(), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host.to_owned(), Some(port)),
                None => return invalid("unexpected characters after the URL's [IPv6 address]"),
            },
        }
    } else {
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        (decode(host, false).ok_or_else(|| bad_encoding("the host"))?, port)
    };
    if !host.is_empty() {
        pairs.push(("host".into(), host));
    }
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        pairs.push(("port".into(), port.to_owned()));
    }
    if !path.is_empty() {
        pairs.push(("dbname".into(), decode(path, false).ok_or_else(|| bad_encoding("the database name"))?));
    }
    pairs.extend(query_pairs(query)?);
    Ok(pairs)
}

/// A TCP host name or IP address, written into the URL as is.
fn check_host(host: &str) -> Result<()> {
    let ok = if host.contains(':') {
        host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if ok {
        Ok(())
    } else {
        invalid(format!("host {host:?} is not a host name, IP address or Unix socket directory (which starts with /)"))
    }
}

fn is_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "1" | "t" | "true" | "on" | "yes" | "y")
}

// ---------------------------------------------------------------------------------------------------
// MySQL

fn mysql(cs: &str, tls: &DbTls) -> Result<DatabaseUrl> {
    let dsn = cs.trim();
    // go-sql-driver's ParseDSN: the last '/' starts the database name (the password and the address
    // may contain '/'); left of it, the last '@' ends user[:password] (the password may contain '@'),
    // whose first ':' separates the two.
    let Some(slash) = dsn.rfind('/') else {
        return invalid(
            "missing \"/\" before the database name: write user:password@tcp(host:port)/dbname?parseTime=true",
        );
    };
    let left = &dsn[..slash];
    let (userinfo, net_addr) = match left.rfind('@') {
        Some(at) => (Some(&left[..at]), &left[at + 1..]),
        None => (None, left),
    };
    let (user, password) = match userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (user, password),
            None => (userinfo, ""),
        },
        None => ("", ""),
    };
    let (net, addr) = match net_addr.find('(') {
        Some(open) => {
            let Some(addr) = net_addr[open + 1..].strip_suffix(')') else {
                return invalid(
                    "the address is not closed by \")\" right before \"/dbname\": write tcp(host:port)/dbname",
                );
            };
            (&net_addr[..open], addr)
        }
        None => (net_addr, ""),
    };
    let after = &dsn[slash + 1..];
    let (raw_dbname, params) = after.split_once('?').map_or((after, ""), |(db, params)| (db, params));
    let dbname = decode(raw_dbname, false).ok_or_else(|| bad_encoding("the database name"))?;

    if user.is_empty() {
        return invalid("no user name: write user[:password]@ before the address (an empty user is not supported)");
    }
    if dbname.is_empty() {
        return invalid("the database name after \"/\" is empty: name the database SPIRE's tables live in");
    }

    // Address.
    let (host, port, socket) = match net {
        "" | "tcp" | "tcp4" | "tcp6" => {
            let addr = if addr.is_empty() { "127.0.0.1:3306" } else { addr };
            let (host, port) = split_host_port(addr)?;
            (host, port, None)
        }
        "unix" => ("localhost".to_owned(), None, Some(if addr.is_empty() { "/tmp/mysql.sock" } else { addr })),
        other => {
            return invalid(format!(
                "network {other:?} is not supported: use tcp(host:port) or unix(/path/to/mysqld.sock)"
            ));
        }
    };

    // Parameters: only tls means anything to sqlx; the rest is the Go driver's or system variables.
    let mut ignored = Vec::new();
    let mut tls_param: Option<String> = None;
    for part in params.split('&') {
        let Some((key, value)) = part.split_once('=') else { continue };
        if key == "tls" {
            tls_param = Some(match value {
                "1" | "true" | "TRUE" | "True" => "true".to_owned(),
                "0" | "false" | "FALSE" | "False" => "false".to_owned(),
                v if v.eq_ignore_ascii_case("skip-verify") || v.eq_ignore_ascii_case("preferred") => {
                    v.to_ascii_lowercase()
                }
                v => decode(v, true).ok_or_else(|| bad_encoding("the tls parameter"))?,
            });
        } else if !ignored.iter().any(|k| k == key) {
            ignored.push(key.to_owned());
        }
    }

    let custom_tls = tls.root_ca_path.is_some() || tls.client_cert_path.is_some();
    let ssl_mode = if custom_tls {
        // SPIRE registers its own TLS configuration (CA and/or client certificate, full
        // verification) and uses it whatever the tls parameter says.
        "VERIFY_IDENTITY"
    } else {
        match tls_param.as_deref() {
            None | Some("false") => "DISABLED",
            Some("true") => "VERIFY_IDENTITY",
            Some("skip-verify") => "REQUIRED",
            Some("preferred") => "PREFERRED",
            Some(name) => {
                return Err(ConnectionStringError::Tls(format!(
                    "connection_string asks for the custom TLS configuration tls={name:?}: set root_ca_path \
                     (and client_cert_path/client_key_path for a client certificate) in the plugin configuration \
                     instead"
                )));
            }
        }
    };

    let mut url = String::from("mysql://");
    url.push_str(&encode(user, is_unreserved));
    if !password.is_empty() {
        url.push(':');
        url.push_str(&encode(password, is_unreserved));
    }
    url.push('@');
    if host.contains(':') {
        url.push('[');
        url.push_str(&host);
        url.push(']');
    } else {
        url.push_str(&host);
    }
    if let Some(port) = port {
        url.push(':');
        url.push_str(&port.to_string());
    }
    url.push('/');
    url.push_str(&encode(&dbname, is_unreserved));

    let mut query: Vec<(String, String)> = vec![("ssl-mode".into(), ssl_mode.into())];
    if custom_tls {
        if let Some(ca) = &tls.root_ca_path {
            query.push(("ssl-ca".into(), path_str(ca, "root_ca_path")?.to_owned()));
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert_path, &tls.client_key_path) {
            query.push(("ssl-cert".into(), path_str(cert, "client_cert_path")?.to_owned()));
            query.push(("ssl-key".into(), path_str(key, "client_key_path")?.to_owned()));
        }
    }
    if let Some(socket) = socket {
        query.push(("socket".into(), socket.to_owned()));
    }
    Ok(DatabaseUrl { url: with_query(url, &query), ignored })
}

/// Go's net.SplitHostPort, with the driver's default port 3306 when there is none.
fn split_host_port(addr: &str) -> Result<(String, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = addr.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return invalid("unterminated [ in the address: write tcp([IPv6 address]:port)");
        };
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return invalid("unexpected characters after the [IPv6 address]: write tcp([address]:port)"),
        }
    } else if addr.matches(':').count() > 1 {
        // A bare IPv6 address; Go adds the default port.
        (addr, None)
    } else {
        match addr.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (addr, None),
        }
    };
    let port =
        match port {
            Some(port) => Some(port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| {
                ConnectionStringError::ConnectionString(format!("port {port:?} is not a port number"))
            })?),
            None => Some(3306),
        };
    if host.is_empty() {
        return invalid("the address has no host: write tcp(host:port)");
    }
    check_host(host)?;
    Ok((host.to_owned(), port))
}

// ---------------------------------------------------------------------------------------------------
// Encoding helpers

/// RFC 3986 unreserved characters: safe anywhere in a URL.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters left alone in an SQLite file path: sqlx percent-decodes the path, so '%', '?' and '#'
/// (and anything the URL parser would mangle) are encoded.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(b, b'/' | b':' | b'@' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
}

fn encode(s: &str, keep: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding; with `plus_is_space`, form decoding as in a query string. `None` for a malformed
/// escape or a result that is not UTF-8.
fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `a=b&c=d`, form-decoded; empty pieces are skipped, a piece without '=' has an empty value.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(key, true).ok_or_else(|| bad_encoding("a parameter name"))?;
        let what = if key == "password" { "the password" } else { "a parameter value" };
        let value = decode(value, true).ok_or_else(|| bad_encoding(what))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn with_query(mut url: String, params: &[(String, String)]) -> String {
    for (i, (key, value)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode(key, is_unreserved));
        url.push('=');
        url.push_str(&encode(value, is_unreserved));
    }
    url
}

fn bad_encoding(what: &str) -> ConnectionStringError {
    ConnectionStringError::ConnectionString(format!(
        "{what} is not validly percent-encoded: write % as %25, and %XX only with two hex digits"
    ))
}

fn path_str<'a>(path: &'a Path, setting: &str) -> Result<&'a str> {
    path.to_str().ok_or_else(|| {
        ConnectionStringError::Tls(format!("{setting} {} is not valid UTF-8: move the file", path.display()))
    })
}

/// The URL with the password in its user information and any `password=` parameter masked.
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..].find(['/', '?', '#']).map_or(out.len(), |at| authority_start + at);
        let authority = &out[authority_start..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out.replace_range(authority_start + colon + 1..authority_start + at, "***");
        }
    }
    if let Some(query_start) = out.find('?') {
        let query = out[query_start + 1..].to_owned();
        let masked: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((key, _)) if key == "password" => format!("{key}=***"),
                _ => part.to_owned(),
            })
            .collect();
        out.replace_range(query_start + 1.., &masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> PgEnv {
        PgEnv::default()
    }

    fn pg(cs: &str) -> String {
        convert_with("postgres", cs, &DbTls::default(), &no_env()).unwrap().url
    }

    fn pg_tls(cs: &str, tls: &DbTls) -> Result<String> {
        convert_with("postgres", cs, tls, &no_env()).map(|c| c.url)
    }

    fn my(cs: &str) -> String {
        convert_with("mysql", cs, &DbTls::default(), &no_env()).unwrap().url
    }

    fn my_err(cs: &str) -> String {
        convert_with("mysql", cs, &DbTls::default(), &no_env()).unwrap_err().to_string()
    }

    fn lite(cs: &str) -> String {
        convert_with("sqlite3", cs, &DbTls::default(), &no_env()).unwrap().url
    }

    fn tls(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> DbTls {
        DbTls {
            root_ca_path: ca.map(PathBuf::from),
            client_cert_path: cert.map(PathBuf::from),
            client_key_path: key.map(PathBuf::from),
        }
    }

    // --- database_type -----------------------------------------------------------------------------

    #[test]
    fn database_types() {
        let err = database_url("oracle", "x", &DbTls::default()).unwrap_err();
        assert_eq!(err.to_string(), "database_type \"oracle\" is not supported: use sqlite3, postgres or mysql");
        let err = database_url("aws_postgres", "dbname=x", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("\"aws_postgres\" (cloud IAM authentication) is not supported"), "{err}");
        assert!(err.to_string().contains("use postgres"), "{err}");
        let err = database_url("aws_mysql", "u@/db", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("use mysql"), "{err}");
        assert!(database_url("", "x", &DbTls::default()).unwrap_err().to_string().contains("must be set"));
        let err = database_url("sqlite3", "  ", &DbTls::default()).unwrap_err();
        assert_eq!(err.to_string(), "connection_string: must be set");
        assert!(matches!(
            DataStoreError::from(ConnectionStringError::ConnectionString("x".into())),
            DataStoreError::InvalidArgument(_)
        ));
    }

    #[test]
    fn empty_paths_are_unset() {
        let t = tls(Some(""), Some(""), None);
        assert_eq!(database_url("mysql", "u@tcp(h)/db", &t).unwrap(), "mysql://u@h:3306/db?ssl-mode=DISABLED");
    }

    #[test]
    fn client_cert_and_key_go_together() {
        for (cert, key) in [(Some("/c.pem"), None), (None, Some("/k.pem"))] {
            for kind in ["postgres", "mysql", "sqlite3"] {
                let cs = if kind == "mysql" { "u@/db" } else { "x" };
                let err = database_url(kind, cs, &tls(None, cert, key)).unwrap_err();
                assert!(matches!(err, ConnectionStringError::Tls(_)), "{err}");
                assert!(err.to_string().contains("set both, or neither"), "{err}");
            }
        }
    }

    // --- SQLite ------------------------------------------------------------------------------------

    #[test]
    fn sqlite_paths() {
        assert_eq!(lite("./data/datastore.sqlite3"), "sqlite:./data/datastore.sqlite3?mode=rwc");
        assert_eq!(lite("datastore.sqlite3"), "sqlite:datastore.sqlite3?mode=rwc");
        assert_eq!(lite("/var/lib/spire/data store.db"), "sqlite:/var/lib/spire/data%20store.db?mode=rwc");
        assert_eq!(lite("../d/x.db"), "sqlite:../d/x.db?mode=rwc");
        assert_eq!(lite("//srv/x.db"), "sqlite:////srv/x.db?mode=rwc");
        // Go's url.Parse decodes the path, and '%' must survive sqlx's own decoding.
        assert_eq!(lite("./a%20b.db"), "sqlite:./a%20b.db?mode=rwc");
        assert_eq!(lite("./100%25.db"), "sqlite:./100%25.db?mode=rwc");
        let err = convert_with("sqlite3", "./bad%zz.db", &DbTls::default(), &no_env()).unwrap_err();
        assert!(err.to_string().contains("not validly percent-encoded"), "{err}");
    }

    #[test]
    fn sqlite_parameters() {
        let c = convert_with(
            "sqlite3",
            "./data/datastore.sqlite3?_busy_timeout=5000&_journal_mode=WAL&cache=shared",
            &DbTls::default(),
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.url, "sqlite:./data/datastore.sqlite3?mode=rwc&cache=shared");
        assert_eq!(c.ignored, ["_busy_timeout", "_journal_mode"]);
        assert_eq!(lite("x.db?mode=ro"), "sqlite:x.db?mode=ro");
    }

    #[test]
    fn sqlite_uris_and_memory() {
        assert_eq!(lite("file:data.db"), "sqlite:data.db?mode=rwc");
        assert_eq!(lite("file:///var/lib/spire/ds.db?_txlock=immediate"), "sqlite:/var/lib/spire/ds.db?mode=rwc");
        assert_eq!(lite("file://localhost/var/x.db"), "sqlite:/var/x.db?mode=rwc");
        assert_eq!(lite("file:my%20db.sqlite"), "sqlite:my%20db.sqlite?mode=rwc");
        let err = convert_with("sqlite3", "file://db.example/x.db", &DbTls::default(), &no_env()).unwrap_err();
        assert!(err.to_string().contains("only opens local files"), "{err}");
        // SPIRE's documented in-memory form.
        assert_eq!(lite("file:memdb?mode=memory&cache=shared"), "sqlite:memdb?mode=memory&cache=shared");
        assert_eq!(lite(":memory:"), "sqlite::memory:");
        assert_eq!(lite("file::memory:?cache=shared"), "sqlite::memory:?cache=shared");
        // spire-rs's own forms pass through.
        assert_eq!(lite("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(lite("sqlite://data/x.db?mode=rwc"), "sqlite://data/x.db?mode=rwc");
        let err = convert_with("sqlite3", "?mode=rwc", &DbTls::default(), &no_env()).unwrap_err();
        assert!(err.to_string().contains("file path is empty"), "{err}");
    }

    #[test]
    fn sqlite_ignores_tls_settings() {
        let c = convert_with("sqlite3", "x.db", &tls(Some("/ca.pem"), None, None), &no_env()).unwrap();
        assert_eq!(c.url, "sqlite:x.db?mode=rwc");
        assert_eq!(c.ignored, ["root_ca_path"]);
    }

    // --- PostgreSQL key=value ----------------------------------------------------------------------

    #[test]
    fn pg_dsn_basic() {
        assert_eq!(
            pg("dbname=spire user=postgres password=secret host=localhost port=5432 sslmode=disable"),
            "postgres://postgres:secret@localhost:5432/spire?sslmode=disable"
        );
        // SPIRE's documented sample; lib/pq's default sslmode is require.
        assert_eq!(
            pg("dbname=spire_development user=spire host=127.0.0.1"),
            "postgres://spire@127.0.0.1/spire_development?sslmode=require"
        );
        // White space around '=' and between pairs, as libpq allows.
        assert_eq!(
            pg("  host = db.internal\tdbname =spire  user= me "),
            "postgres://me@db.internal/spire?sslmode=require"
        );
    }

    #[test]
    fn pg_dsn_quoting() {
        assert_eq!(
            pg("user=spire password='p w' host=h dbname=spire sslmode=disable"),
            "postgres://spire:p%20w@h/spire?sslmode=disable"
        );
        assert_eq!(pg(r"password='it\'s' user=u host=h"), "postgres://u:it%27s@h/?sslmode=require");
        assert_eq!(pg(r"password='back\\slash' user=u host=h"), "postgres://u:back%5Cslash@h/?sslmode=require");
        // Unquoted values: a backslash escapes the next character, including a space.
        assert_eq!(pg(r"password=a\ b\'c user=u host=h"), "postgres://u:a%20b%27c@h/?sslmode=require");
        assert_eq!(pg("password='' user=u host=h"), "postgres://u@h/?sslmode=require");
        // '=' inside a value is fine.
        assert_eq!(pg("password=a=b user=u host=h"), "postgres://u:a%3Db@h/?sslmode=require");
    }

    #[test]
    fn pg_dsn_errors_never_show_the_password() {
        let secret = "hunter2-secret";
        for cs in [
            format!("user=u password='{secret}"),
            format!("user=u password='{secret}\\"),
            format!("user=u {secret}"),
            format!("user=u password={secret} {secret}"),
            format!("user=u password={secret} sslmode=bogus"),
            format!("postgres://u:{secret}%zz@h/db"),
            format!("postgres://u@h/db?password={secret}%zz"),
            format!("user=u password={secret} host=a,b"),
            format!("user=u password={secret} sslinline=true"),
        ] {
            let err = convert_with("postgres", &cs, &DbTls::default(), &no_env()).unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
        }
        let err = convert_with("postgres", "user=u password='x", &DbTls::default(), &no_env()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection_string: unterminated quote in the value of password in the PostgreSQL key=value string: \
             close it with ' (write \\' for a quote inside)"
        );
        let err = convert_with("postgres", "user=u hunter2", &DbTls::default(), &no_env()).unwrap_err();
        assert!(err.to_string().contains("missing \"=\" after word 2"), "{err}");
        let err = convert_with("postgres", "user x", &DbTls::default(), &no_env()).unwrap_err();
        assert!(err.to_string().contains("missing \"=\" after \"user\""), "{err}");
        let err = convert_with("postgres", "=x", &DbTls::default(), &no_env()).unwrap_err();
        assert!(err.to_string().contains("without a key"), "{err}");
    }

    #[test]
    fn pg_dsn_settings() {
        let err = pg_tls("host=h sslmode=bogus", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("sslmode \"bogus\" is not valid"), "{err}");
        let err = pg_tls("host=a,b", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("several hosts"), "{err}");
        let err = pg_tls("host=h port=54x", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("port \"54x\" is not a port number"), "{err}");
        let err = pg_tls("host='bad host'", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("is not a host name"), "{err}");
        let err = pg_tls("host=h sslinline=true", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("sslinline"), "{err}");
        // Last one wins.
        assert_eq!(pg("host=a host=b"), "postgres://b/?sslmode=require");
        // IPv6.
        assert_eq!(pg("host=::1 port=5433 user=u"), "postgres://u@[::1]:5433/?sslmode=require");
        // application_name, fallback_application_name and options.
        assert_eq!(
            pg("host=h fallback_application_name=spire"),
            "postgres://h/?sslmode=require&application_name=spire"
        );
        assert_eq!(
            pg("host=h fallback_application_name=x application_name=spire-server"),
            "postgres://h/?sslmode=require&application_name=spire-server"
        );
        assert_eq!(
            pg("host=h options='-c statement_timeout=5s'"),
            "postgres://h/?sslmode=require&options=-c%20statement_timeout%3D5s"
        );
    }

    #[test]
    fn pg_runtime_parameters_and_ignored_keys() {
        let c = convert_with(
            "postgres",
            "host=h search_path='spire, public' connect_timeout=10 sslsni=1",
            &DbTls::default(),
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.url, "postgres://h/?sslmode=require&options=-c%20search_path%3Dspire%2C%5C%20public");
        assert_eq!(c.ignored, ["connect_timeout", "sslsni"]);
        let err = pg_tls("host=h target_session_attrs=read-write", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("target_session_attrs is not supported"), "{err}");
        let err = pg_tls("host=h bad-key=1", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("neither a PostgreSQL connection setting"), "{err}");
        assert!(!err.to_string().contains("bad-key"), "{err}");
    }

    #[test]
    fn pg_unix_socket_and_defaults() {
        // No TCP host: everything in the query, sqlx takes $PGHOST etc. for what is missing.
        assert_eq!(
            pg("host=/var/run/postgresql dbname=spire user=spire password=pw port=5433"),
            "postgres:///spire?user=spire&password=pw&host=%2Fvar%2Frun%2Fpostgresql&port=5433&sslmode=disable"
        );
        assert_eq!(pg("dbname=spire"), "postgres:///spire?sslmode=require");
        assert_eq!(pg("host=/tmp sslmode=require"), "postgres:///?host=%2Ftmp&sslmode=require");
    }

    #[test]
    fn pg_special_characters_in_credentials() {
        let url = pg(r"user='sp ire@x' password='p w' host=h");
        assert_eq!(url, "postgres://sp%20ire%40x:p%20w@h/?sslmode=require");
        let url = pg(r"user=u password='p@ss/w:rd\' %+?#&=' host=h dbname='my db'");
        assert_eq!(url, "postgres://u:p%40ss%2Fw%3Ard%27%20%25%2B%3F%23%26%3D@h/my%20db?sslmode=require");
    }

    #[test]
    fn pg_tls_settings() {
        // root_ca_path without sslmode: full verification, as for MySQL.
        assert_eq!(
            pg_tls("host=db user=u", &tls(Some("/etc/ca.pem"), None, None)).unwrap(),
            "postgres://u@db/?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
        );
        // sslrootcert in the string without sslmode, or with require: lib/pq verifies the CA.
        assert_eq!(pg("host=db sslrootcert=/ca.pem"), "postgres://db/?sslmode=verify-ca&sslrootcert=%2Fca.pem");
        assert_eq!(
            pg("host=db sslmode=require sslrootcert=/ca.pem"),
            "postgres://db/?sslmode=verify-ca&sslrootcert=%2Fca.pem"
        );
        // Explicit sslmode wins over the root_ca_path default.
        assert_eq!(
            pg_tls("host=db sslmode=verify-ca", &tls(Some("/ca.pem"), Some("/c.pem"), Some("/k.pem"))).unwrap(),
            "postgres://db/?sslmode=verify-ca&sslrootcert=%2Fca.pem&sslcert=%2Fc.pem&sslkey=%2Fk.pem"
        );
        assert_eq!(
            pg_tls("host=db sslmode=verify-full sslcert=/c.pem sslkey=/k.pem", &DbTls::default()).unwrap(),
            "postgres://db/?sslmode=verify-full&sslcert=%2Fc.pem&sslkey=%2Fk.pem"
        );
        // Same path twice is fine, two different ones are not.
        assert!(pg_tls("host=db sslrootcert=/ca.pem", &tls(Some("/ca.pem"), None, None)).is_ok());
        let err = pg_tls("host=db sslrootcert=/a.pem", &tls(Some("/b.pem"), None, None)).unwrap_err();
        assert!(matches!(err, ConnectionStringError::Tls(_)), "{err}");
        assert!(err.to_string().contains("root_ca_path (/b.pem) and sslrootcert"), "{err}");
    }

    #[test]
    fn pg_environment() {
        let env = PgEnv { sslmode: Some("disable".into()), sslrootcert: None };
        assert_eq!(
            convert_with("postgres", "host=h", &DbTls::default(), &env).unwrap().url,
            "postgres://h/?sslmode=disable"
        );
        assert_eq!(
            convert_with("postgres", "host=h sslmode=verify-full", &DbTls::default(), &env).unwrap().url,
            "postgres://h/?sslmode=verify-full"
        );
        let env = PgEnv { sslmode: None, sslrootcert: Some("/ca.pem".into()) };
        assert_eq!(
            convert_with("postgres", "host=h", &DbTls::default(), &env).unwrap().url,
            "postgres://h/?sslmode=verify-ca"
        );
    }

    // --- PostgreSQL URLs ---------------------------------------------------------------------------

    #[test]
    fn pg_urls() {
        assert_eq!(
            pg("postgres://spire:secret@db.example:5432/spire?sslmode=verify-full&sslrootcert=/ca.pem"),
            "postgres://spire:secret@db.example:5432/spire?sslmode=verify-full&sslrootcert=%2Fca.pem"
        );
        assert_eq!(pg("postgresql://u@h/db"), "postgres://u@h/db?sslmode=require");
        // Percent-encoded credentials are decoded, then encoded again.
        assert_eq!(
            pg("postgres://u:p%40ss%2Fw@h/d%20b?sslmode=disable"),
            "postgres://u:p%40ss%2Fw@h/d%20b?sslmode=disable"
        );
        // Query parameters override the URL's parts, as in lib/pq.
        assert_eq!(pg("postgres://u@h/db?user=v&sslmode=disable"), "postgres://v@h/db?sslmode=disable");
        assert_eq!(pg("postgres://u@[::1]:5433/db?sslmode=disable"), "postgres://u@[::1]:5433/db?sslmode=disable");
        assert_eq!(
            pg("postgres://u@%2Fvar%2Frun%2Fpostgresql/db"),
            "postgres:///db?user=u&host=%2Fvar%2Frun%2Fpostgresql&sslmode=disable"
        );
        assert_eq!(pg("postgres:///db?host=/tmp"), "postgres:///db?host=%2Ftmp&sslmode=disable");
        let err = pg_tls("mysql://u@h/db", &DbTls::default()).unwrap_err();
        assert!(err.to_string().contains("is not PostgreSQL's"), "{err}");
    }

    // --- MySQL -------------------------------------------------------------------------------------

    #[test]
    fn mysql_basic() {
        assert_eq!(
            my("spire:pw@tcp(localhost:3306)/spire?parseTime=true"),
            "mysql://spire:pw@localhost:3306/spire?ssl-mode=DISABLED"
        );
        // SPIRE's documented sample: empty password, default port.
        assert_eq!(
            my("spire:@tcp(127.0.0.1)/spire_development?parseTime=true"),
            "mysql://spire@127.0.0.1:3306/spire_development?ssl-mode=DISABLED"
        );
        // No address: the Go driver's 127.0.0.1:3306.
        assert_eq!(my("spire@/spire"), "mysql://spire@127.0.0.1:3306/spire?ssl-mode=DISABLED");
        assert_eq!(my("spire@tcp/spire"), "mysql://spire@127.0.0.1:3306/spire?ssl-mode=DISABLED");
        assert_eq!(my("u@tcp([::1]:3307)/db"), "mysql://u@[::1]:3307/db?ssl-mode=DISABLED");
        assert_eq!(my("u@tcp(::1)/db"), "mysql://u@[::1]:3306/db?ssl-mode=DISABLED");
        assert_eq!(my("u@tcp(db.example)/my%20db"), "mysql://u@db.example:3306/my%20db?ssl-mode=DISABLED");
    }

    #[test]
    fn mysql_unix_socket() {
        assert_eq!(
            my("spire:pw@unix(/var/run/mysqld/mysqld.sock)/spire?parseTime=true"),
            "mysql://spire:pw@localhost/spire?ssl-mode=DISABLED&socket=%2Fvar%2Frun%2Fmysqld%2Fmysqld.sock"
        );
        assert_eq!(
            my("spire@unix/spire"),
            "mysql://spire@localhost/spire?ssl-mode=DISABLED&socket=%2Ftmp%2Fmysql.sock"
        );
    }

    #[test]
    fn mysql_special_characters_in_password() {
        // The password runs from the first ':' to the last '@' before the address, unescaped.
        assert_eq!(
            my("spire:p@ss/w:rd' %+?#@tcp(h:3306)/spire"),
            "mysql://spire:p%40ss%2Fw%3Ard%27%20%25%2B%3F%23@h:3306/spire?ssl-mode=DISABLED"
        );
        // Go does not decode the password: %40 is three characters.
        assert_eq!(my("u:a%40b@tcp(h)/db"), "mysql://u:a%2540b@h:3306/db?ssl-mode=DISABLED");
    }

    #[test]
    fn mysql_ignored_parameters() {
        let c = convert_with(
            "mysql",
            "u@tcp(h)/db?parseTime=true&loc=Local&charset=utf8mb4&sql_mode=%27ANSI%27&timeout=5s&tls=false&parseTime=1",
            &DbTls::default(),
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.url, "mysql://u@h:3306/db?ssl-mode=DISABLED");
        assert_eq!(c.ignored, ["parseTime", "loc", "charset", "sql_mode", "timeout"]);
    }

    #[test]
    fn mysql_tls_parameter() {
        assert_eq!(my("u@tcp(h)/db?tls=true"), "mysql://u@h:3306/db?ssl-mode=VERIFY_IDENTITY");
        assert_eq!(my("u@tcp(h)/db?tls=1"), "mysql://u@h:3306/db?ssl-mode=VERIFY_IDENTITY");
        assert_eq!(my("u@tcp(h)/db?tls=skip-verify"), "mysql://u@h:3306/db?ssl-mode=REQUIRED");
        assert_eq!(my("u@tcp(h)/db?tls=preferred"), "mysql://u@h:3306/db?ssl-mode=PREFERRED");
        assert_eq!(my("u@tcp(h)/db?tls=False"), "mysql://u@h:3306/db?ssl-mode=DISABLED");
        let err = my_err("u@tcp(h)/db?tls=custom");
        assert!(err.contains("custom TLS configuration tls=\"custom\": set root_ca_path"), "{err}");
    }

    #[test]
    fn mysql_tls_settings() {
        let url = |cs: &str, t: &DbTls| convert_with("mysql", cs, t, &no_env()).unwrap().url;
        // As in SPIRE, the plugin's TLS material overrides the tls parameter.
        assert_eq!(
            url("u:pw@tcp(db:3306)/spire?tls=false", &tls(Some("/etc/ca.pem"), None, None)),
            "mysql://u:pw@db:3306/spire?ssl-mode=VERIFY_IDENTITY&ssl-ca=%2Fetc%2Fca.pem"
        );
        assert_eq!(
            url("u@tcp(db)/spire?tls=custom", &tls(Some("/ca.pem"), Some("/c.pem"), Some("/k.pem"))),
            "mysql://u@db:3306/spire?ssl-mode=VERIFY_IDENTITY&ssl-ca=%2Fca.pem&ssl-cert=%2Fc.pem&ssl-key=%2Fk.pem"
        );
        // A client certificate alone: system roots.
        assert_eq!(
            url("u@tcp(db)/spire", &tls(None, Some("/c.pem"), Some("/k.pem"))),
            "mysql://u@db:3306/spire?ssl-mode=VERIFY_IDENTITY&ssl-cert=%2Fc.pem&ssl-key=%2Fk.pem"
        );
    }

    #[test]
    fn mysql_errors() {
        assert!(my_err("spire:pw@tcp(h)").contains("missing \"/\" before the database name"));
        assert!(my_err("u@tcp(h/db").contains("not closed by \")\""));
        assert!(my_err("tcp(h)/db").contains("no user name"));
        assert!(my_err("u@tcp(h)/").contains("database name after \"/\" is empty"));
        assert!(my_err("u@cloudsql(project:region:instance)/db").contains("network \"cloudsql\" is not supported"));
        assert!(my_err("u@tcp(h:99999)/db").contains("port \"99999\" is not a port number"));
        assert!(my_err("u@tcp(:3306)/db").contains("has no host"));
        assert!(my_err("u@tcp(h)/d%zzb").contains("not validly percent-encoded"));
        // Passwords never show.
        for cs in [
            "u:hunter2-secret@tcp(h)",
            "u:hunter2-secret@tcp(h/db",
            "u:hunter2-secret@bad(h)/db",
            "u:hunter2-secret@tcp(h)/",
        ] {
            let err = my_err(cs);
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    // --- Output ------------------------------------------------------------------------------------

    #[test]
    fn redaction() {
        let c = convert_with("postgres", "user=u password='p@ss w' host=h", &DbTls::default(), &no_env()).unwrap();
        assert_eq!(c.redacted(), "postgres://u:***@h/?sslmode=require");
        assert!(!format!("{c:?}").contains("p%40ss"));
        let c = convert_with("postgres", "user=u password=pw host=/tmp", &DbTls::default(), &no_env()).unwrap();
        assert_eq!(c.redacted(), "postgres:///?user=u&password=***&host=%2Ftmp&sslmode=disable");
        let c = convert_with("mysql", "u:p@w@tcp(h)/db", &DbTls::default(), &no_env()).unwrap();
        assert_eq!(c.redacted(), "mysql://u:***@h:3306/db?ssl-mode=DISABLED");
        assert_eq!(redact("sqlite:./x.db?mode=rwc"), "sqlite:./x.db?mode=rwc");
    }

    #[test]
    fn encoding_round_trips() {
        let all: String = (1u8..128).map(char::from).chain("é€😀".chars()).collect();
        assert_eq!(decode(&encode(&all, is_unreserved), false).as_deref(), Some(all.as_str()));
        assert_eq!(decode(&encode(&all, is_path_char), false).as_deref(), Some(all.as_str()));
        assert_eq!(decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(decode("%", false), None);
        assert_eq!(decode("%ff", false), None);
    }
}
