//! The provider's HCL (or JSON) configuration, with SPIRE v1.13.3's keys, defaults and messages.
//!
//! SPIRE decodes this file with plain `hcl.Decode`, which ignores keys it does not know; so that a
//! file SPIRE accepts still loads here, unknown keys are warnings (logged at start), not errors.
//! Every other mistake is reported at once, in SPIRE's words.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use spire_config::log::{LogConfig, LogFormat, LogLevel};
use spire_config::{ConfigError, Diagnostics, Reader, UnknownKeys, Value};
use spire_identity::TrustDomain;

/// Where `oidc-discovery-provider` looks for its configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "oidc-discovery-provider.conf";
/// Default `poll_interval` of every key source.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Default `serving_cert_file.file_sync_interval`.
pub const DEFAULT_FILE_SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// Default `acme.cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = "./.acme-cache";
/// Default `health_checks.bind_port`.
pub const DEFAULT_HEALTH_PORT: u16 = 8008;
/// Default `serving_cert_file.addr`.
pub const DEFAULT_ADDR: &str = ":443";

/// A loaded and validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `log_level` (default info), `log_format`, `log_path`.
    pub log: LogConfig,
    /// `log_requests`: log every request at debug level.
    pub log_requests: bool,
    /// `domains` (required, deduplicated in order): the hosts the discovery document is served for.
    pub domains: Vec<String>,
    /// `set_key_use`: add `"use": "sig"` to every key of the JWKS.
    pub set_key_use: bool,
    /// `allow_insecure_scheme`: `http` URLs in the document for plain HTTP requests.
    pub allow_insecure_scheme: bool,
    /// How requests arrive: exactly one of `acme`, `serving_cert_file`, `insecure_addr`,
    /// `listen_socket_path`.
    pub listen: Listen,
    /// Where the keys come from: exactly one of `server_api`, `workload_api`, `file`.
    pub source: SourceConfig,
    /// `health_checks { ... }`, off when absent.
    pub health_checks: Option<HealthChecks>,
    /// `jwt_issuer`: the issuer written in the document instead of the request's host.
    pub jwt_issuer: Option<String>,
    /// `jwks_uri`: the `jwks_uri` written in the document.
    pub jwks_uri: Option<String>,
    /// `server_path_prefix` (default `/`): the endpoints' path prefix.
    pub server_path_prefix: String,
    /// Things accepted that the operator should know about (unknown keys...).
    pub warnings: Vec<String>,
}

/// How the provider receives requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `acme { ... }`: HTTPS on :443 with certificates from an ACME CA.
    Acme(Acme),
    /// `serving_cert_file { ... }`: HTTPS with a certificate and key from disk.
    ServingCertFile(ServingCertFile),
    /// `insecure_addr`: plain HTTP on a TCP address.
    InsecureAddr(String),
    /// `listen_socket_path`: plain HTTP on a Unix socket (behind a reverse proxy).
    Socket(PathBuf),
}

/// `acme { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// `cache_dir` (default `./.acme-cache`); `None` when explicitly set to `""` (no cache).
    pub cache_dir: Option<PathBuf>,
    /// `directory_url`; Let's Encrypt when unset.
    pub directory_url: Option<String>,
    /// `email` (required).
    pub email: String,
    /// `tos_accepted` (must be true).
    pub tos_accepted: bool,
}

/// `serving_cert_file { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingCertFile {
    /// `cert_file_path` (required): PEM certificate chain.
    pub cert_file_path: PathBuf,
    /// `key_file_path` (required): PEM private key.
    pub key_file_path: PathBuf,
    /// `addr` (default `:443`), resolved.
    pub addr: SocketAddr,
    /// `file_sync_interval` (default 1m): how often the files are re-read.
    pub file_sync_interval: Duration,
}

/// Where the JWT authorities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// `server_api { address, poll_interval }`: the server's Bundle API on its private socket.
    ServerApi {
        /// The socket path from `address` (`unix:///path` or `unix:path`).
        socket_path: PathBuf,
        /// `poll_interval` (default 10s).
        poll_interval: Duration,
    },
    /// `workload_api { socket_path, trust_domain, poll_interval }`: FetchJWTBundles of an agent.
    WorkloadApi {
        /// `socket_path` (required).
        socket_path: PathBuf,
        /// `trust_domain` (required): whose bundle to serve.
        trust_domain: TrustDomain,
        /// `poll_interval` (default 10s).
        poll_interval: Duration,
    },
    /// `file { path, poll_interval }`: a SPIFFE bundle on disk.
    File {
        /// `path`.
        path: PathBuf,
        /// `poll_interval` (default 10s).
        poll_interval: Duration,
    },
}

impl SourceConfig {
    /// The configured poll interval.
    pub fn poll_interval(&self) -> Duration {
        match self {
            Self::ServerApi { poll_interval, .. }
            | Self::WorkloadApi { poll_interval, .. }
            | Self::File { poll_interval, .. } => *poll_interval,
        }
    }
}

/// `health_checks { bind_port, ready_path, live_path }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChecks {
    /// `bind_port` (default 8008), on every interface as SPIRE listens.
    pub bind_port: u16,
    /// `ready_path` (default `/ready`).
    pub ready_path: String,
    /// `live_path` (default `/live`).
    pub live_path: String,
}

impl Config {
    /// Loads a configuration file (`expand_env` is `-expandEnv`).
    pub fn from_file(path: &Path, expand_env: bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let reason = spire_cli::goerror::errno_text(&e);
            ConfigError::invalid(format!("unable to load configuration: open {}: {reason}", path.display()), None)
        })?;
        Self::from_str(&text, expand_env)
    }

    /// Loads configuration text.
    pub fn from_str(text: &str, expand_env: bool) -> Result<Self, ConfigError> {
        let doc = spire_config::parse_str(text, expand_env)?;
        Self::from_value(&doc)
    }

    /// Builds the configuration from a parsed document; every problem is reported at once.
    pub fn from_value(doc: &Value) -> Result<Self, ConfigError> {
        let mut diags = Diagnostics::new();
        let config = build(doc, &mut diags);
        let (config, warnings) = diags.finish(config)?;
        let mut config = config.ok_or_else(|| ConfigError::invalid("invalid configuration", None))?;
        config.warnings.splice(0..0, warnings);
        Ok(config)
    }
}

fn invalid(diags: &mut Diagnostics, message: impl Into<String>) {
    diags.error(ConfigError::invalid(message, None));
}

/// The whole document; `None` only when an error was recorded.
fn build(doc: &Value, diags: &mut Diagnostics) -> Option<Config> {
    let mut top = Reader::new("", doc, diags)?.unknown_keys(UnknownKeys::Warn);
    let log = read_log(&mut top);
    let log_requests = top.bool("log_requests").unwrap_or(false);
    let domains = dedupe(top.string_list("domains").unwrap_or_default());
    if domains.is_empty() {
        invalid(top.diags(), "at least one domain must be configured");
    }
    let set_key_use = top.bool("set_key_use").unwrap_or(false);
    let allow_insecure_scheme = top.bool("allow_insecure_scheme").unwrap_or(false);
    let insecure_addr = top.non_empty_string("insecure_addr");
    let socket = top.non_empty_string("listen_socket_path").map(PathBuf::from);
    let acme = top.object("acme").map(|r| read_acme(r, insecure_addr.is_some()));
    let serving = top.object("serving_cert_file").map(read_serving_cert_file);
    let mut sources = Vec::new();
    if let Some(r) = top.object("server_api") {
        sources.push(read_server_api(r));
    }
    if let Some(r) = top.object("workload_api") {
        sources.push(read_workload_api(r));
    }
    if let Some(r) = top.object("file") {
        sources.push(read_file_source(r));
    }
    let health_checks = top.object("health_checks").map(read_health_checks);
    if let Some(mut r) = top.object("experimental") {
        if r.non_empty_string("listen_named_pipe_name").is_some() {
            r.diags().warn("experimental.listen_named_pipe_name is for Windows only: ignored");
        }
        let r = r.unknown_keys(UnknownKeys::Warn);
        r.finish();
    }
    let jwt_issuer = top.non_empty_string("jwt_issuer");
    let jwks_uri = top.non_empty_string("jwks_uri");
    let server_path_prefix = top.non_empty_string("server_path_prefix").unwrap_or_else(|| "/".to_owned());
    top.finish();

    let listen = choose_listen(acme, serving, insecure_addr, socket, diags);
    let source = match sources.len() {
        0 => {
            invalid(diags, "exactly one of the server_api, workload_api, or file sections must be configured");
            None
        }
        1 => sources.pop().flatten(),
        _ => {
            invalid(diags, "the server_api, workload_api, and file sections are mutually exclusive");
            None
        }
    };
    if let Some(issuer) = &jwt_issuer {
        match split_url(issuer) {
            Err(e) => invalid(diags, format!("the jwt_issuer url could not be parsed: {e}")),
            Ok(("", _)) => invalid(diags, "the jwt_issuer url must contain a scheme"),
            Ok((_, "")) => invalid(diags, "the jwt_issuer url must contain a host"),
            Ok(_) => {}
        }
    }
    if let Some(uri) = &jwks_uri {
        match split_url(uri) {
            Err(e) => invalid(diags, format!("the jwks_uri setting could not be parsed: {e}")),
            Ok((scheme, host)) if scheme.is_empty() || host.is_empty() => invalid(
                diags,
                "the jwks_uri setting could not be parsed: it must be an absolute URL with a scheme and a host",
            ),
            Ok(_) => {}
        }
    }
    if jwks_uri.is_none() && jwt_issuer.is_some() {
        diags.warn(
            "The jwt_issuer configuration will also affect the jwks_uri behavior when jwks_url is not set. \
             This behaviour will be changed in 1.13.0.",
        );
    }
    Some(Config {
        log: log?,
        log_requests,
        domains,
        set_key_use,
        allow_insecure_scheme,
        listen: listen?,
        source: source?,
        health_checks,
        jwt_issuer,
        jwks_uri,
        server_path_prefix,
        warnings: Vec::new(),
    })
}

/// `log_level` (logrus names, case-insensitive), `log_format` (`""`, `text` or `json`), `log_path`.
fn read_log(top: &mut Reader<'_, '_>) -> Option<LogConfig> {
    let level_text = top.non_empty_string("log_level").unwrap_or_else(|| "info".to_owned());
    let format_text = top.string("log_format").unwrap_or_default();
    let file = top.non_empty_string("log_path").map(PathBuf::from);
    let level = LogLevel::parse(&level_text);
    if level.is_none() {
        invalid(top.diags(), format!("not a valid logrus Level: {level_text:?}"));
    }
    let format = if format_text.is_empty() { Some(LogFormat::Text) } else { LogFormat::parse(&format_text) };
    if format.is_none() {
        invalid(top.diags(), format!("unknown logger format: {format_text:?}"));
    }
    Some(LogConfig { level: level?, format: format?, file, source_location: false })
}

fn read_acme(mut r: Reader<'_, '_>, with_insecure_addr: bool) -> Option<Acme> {
    let cache_dir = match r.string("cache_dir") {
        None => Some(PathBuf::from(DEFAULT_CACHE_DIR)),
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
    };
    let directory_url = r.non_empty_string("directory_url");
    let email = r.non_empty_string("email");
    let tos_accepted = r.bool("tos_accepted").unwrap_or(false);
    let problem = if with_insecure_addr {
        Some("insecure_addr and the acme section are mutually exclusive")
    } else if !tos_accepted {
        Some("tos_accepted must be set to true in the acme configuration section")
    } else if email.is_none() {
        Some("email must be configured in the acme configuration section")
    } else {
        None
    };
    if let Some(message) = problem {
        invalid(r.diags(), message);
    }
    r.unknown_keys(UnknownKeys::Warn).finish();
    problem.is_none().then(|| Acme { cache_dir, directory_url, email: email.unwrap_or_default(), tos_accepted })
}

fn read_serving_cert_file(mut r: Reader<'_, '_>) -> Option<ServingCertFile> {
    const SECTION: &str = "in the serving_cert_file configuration section";
    let cert = r.non_empty_string("cert_file_path");
    let key = r.non_empty_string("key_file_path");
    let raw_addr = r.non_empty_string("addr").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let raw_sync = r.string("file_sync_interval").unwrap_or_default();
    let mut ok = true;
    if cert.is_none() {
        invalid(r.diags(), format!("cert_file_path must be configured {SECTION}"));
        ok = false;
    } else if key.is_none() {
        invalid(r.diags(), format!("key_file_path must be configured {SECTION}"));
        ok = false;
    }
    let addr = resolve_tcp_addr(&raw_addr).map_err(|e| invalid(r.diags(), format!("invalid addr {SECTION}: {e}"))).ok();
    let sync = duration_field(&raw_sync, DEFAULT_FILE_SYNC_INTERVAL)
        .map_err(|e| invalid(r.diags(), format!("invalid file_sync_interval {SECTION}: {e}")))
        .ok();
    r.unknown_keys(UnknownKeys::Warn).finish();
    if !ok {
        return None;
    }
    Some(ServingCertFile {
        cert_file_path: cert?.into(),
        key_file_path: key?.into(),
        addr: addr?,
        file_sync_interval: sync?,
    })
}

/// `poll_interval` of a source section, with SPIRE's message naming the section.
fn poll_interval(r: &mut Reader<'_, '_>, section: &str) -> Option<Duration> {
    let raw = r.string("poll_interval").unwrap_or_default();
    duration_field(&raw, DEFAULT_POLL_INTERVAL)
        .map_err(|e| invalid(r.diags(), format!("invalid poll_interval in the {section} configuration section: {e}")))
        .ok()
}

/// Reads and warns about `experimental { named_pipe_name }`, which only Windows builds use.
fn windows_only_experimental(r: &mut Reader<'_, '_>) {
    if let Some(mut e) = r.object("experimental") {
        if e.non_empty_string("named_pipe_name").is_some() {
            let path = e.key_path("named_pipe_name");
            e.diags().warn(format!("{path} is for Windows only: ignored"));
        }
        e.unknown_keys(UnknownKeys::Warn).finish();
    }
}

fn read_server_api(mut r: Reader<'_, '_>) -> Option<SourceConfig> {
    let poll_interval = poll_interval(&mut r, "server_api");
    let address = r.non_empty_string("address");
    windows_only_experimental(&mut r);
    let socket_path = match address {
        None => {
            invalid(r.diags(), "address must be configured in the server_api configuration section");
            None
        }
        Some(a) => match unix_target_path(&a) {
            Some(path) => Some(path),
            None => {
                invalid(r.diags(), "address must use the unix name system in the server_api configuration section");
                None
            }
        },
    };
    r.unknown_keys(UnknownKeys::Warn).finish();
    Some(SourceConfig::ServerApi { socket_path: socket_path?, poll_interval: poll_interval? })
}

/// The socket path of a gRPC `unix:` target: `unix:///abs/path` or `unix:rel/path`.
fn unix_target_path(address: &str) -> Option<PathBuf> {
    let rest = address.strip_prefix("unix:")?;
    let path = match rest.strip_prefix("//") {
        Some(abs) => abs,
        None => rest,
    };
    Some(PathBuf::from(path))
}

fn read_workload_api(mut r: Reader<'_, '_>) -> Option<SourceConfig> {
    let socket_path = r.non_empty_string("socket_path");
    let trust_domain = r.non_empty_string("trust_domain");
    windows_only_experimental(&mut r);
    if trust_domain.is_none() {
        invalid(r.diags(), "trust_domain must be configured in the workload_api configuration section");
    }
    let poll_interval = poll_interval(&mut r, "workload_api");
    if socket_path.is_none() {
        invalid(r.diags(), "socket_path must be configured in the workload_api configuration section");
    }
    let trust_domain = trust_domain.and_then(|td| {
        TrustDomain::parse(&td)
            .map_err(|e| {
                invalid(r.diags(), format!("invalid trust_domain in the workload_api configuration section: {e}"))
            })
            .ok()
    });
    r.unknown_keys(UnknownKeys::Warn).finish();
    Some(SourceConfig::WorkloadApi {
        socket_path: socket_path?.into(),
        trust_domain: trust_domain?,
        poll_interval: poll_interval?,
    })
}

fn read_file_source(mut r: Reader<'_, '_>) -> Option<SourceConfig> {
    let path = r.string("path").unwrap_or_default();
    let poll_interval = poll_interval(&mut r, "file");
    r.unknown_keys(UnknownKeys::Warn).finish();
    Some(SourceConfig::File { path: path.into(), poll_interval: poll_interval? })
}

fn read_health_checks(mut r: Reader<'_, '_>) -> HealthChecks {
    let port = r.int::<i64>("bind_port").unwrap_or(0);
    let bind_port = if port <= 0 {
        DEFAULT_HEALTH_PORT
    } else {
        u16::try_from(port).unwrap_or_else(|_| {
            invalid(r.diags(), format!("health_checks.bind_port: {port} is not a valid port"));
            DEFAULT_HEALTH_PORT
        })
    };
    let ready_path = r.non_empty_string("ready_path").unwrap_or_else(|| "/ready".to_owned());
    let live_path = r.non_empty_string("live_path").unwrap_or_else(|| "/live".to_owned());
    r.unknown_keys(UnknownKeys::Warn).finish();
    HealthChecks { bind_port, ready_path, live_path }
}

/// Exactly one way of listening, with SPIRE's (Unix) messages for each pair.
fn choose_listen(
    acme: Option<Option<Acme>>,
    serving: Option<Option<ServingCertFile>>,
    insecure_addr: Option<String>,
    socket: Option<PathBuf>,
    diags: &mut Diagnostics,
) -> Option<Listen> {
    let (a, s, i, l) = (acme.is_some(), serving.is_some(), insecure_addr.is_some(), socket.is_some());
    let conflict = match () {
        _ if !a && !l && !s && !i => {
            Some("either acme, serving_cert_file, insecure_addr or listen_socket_path must be configured")
        }
        _ if a && s => Some("acme and serving_cert_file are mutually exclusive"),
        _ if a && l => Some("listen_socket_path and the acme section are mutually exclusive"),
        _ if s && i => Some("serving_cert_file and insecure_addr are mutually exclusive"),
        _ if s && l => Some("serving_cert_file and listen_socket_path are mutually exclusive"),
        // acme with insecure_addr is reported by the acme section itself, as SPIRE does.
        _ if a && i => return None,
        _ if i && l => Some("insecure_addr and listen_socket_path are mutually exclusive"),
        _ => None,
    };
    if let Some(message) = conflict {
        invalid(diags, message);
        return None;
    }
    if let Some(addr) = insecure_addr {
        return Some(Listen::InsecureAddr(addr));
    }
    if let Some(path) = socket {
        return Some(Listen::Socket(path));
    }
    if let Some(serving) = serving {
        return serving.map(Listen::ServingCertFile);
    }
    acme.flatten().map(Listen::Acme)
}

fn dedupe(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Go's `parseDurationField`: empty, zero or negative means the default.
fn duration_field(raw: &str, default: Duration) -> Result<Duration, spire_config::DurationError> {
    if raw.is_empty() {
        return Ok(default);
    }
    match spire_config::parse_duration(raw) {
        Ok(d) if d.is_zero() => Ok(default),
        Ok(d) => Ok(d),
        Err(spire_config::DurationError::Negative(_)) => Ok(default),
        Err(e) => Err(e),
    }
}

/// Why a `host:port` address is not usable, in Go's `net` words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {addr}: {reason}")]
pub struct AddrError {
    addr: String,
    reason: String,
}

/// Go's `net.SplitHostPort`.
pub fn split_host_port(addr: &str) -> Result<(&str, &str), AddrError> {
    let err = |reason: &str| AddrError { addr: addr.to_owned(), reason: reason.to_owned() };
    let Some(colon) = addr.rfind(':') else { return Err(err("missing port in address")) };
    let (host, port) = (&addr[..colon], &addr[colon + 1..]);
    let host = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').ok_or_else(|| err("missing ']' in address"))?
    } else {
        if host.contains(':') {
            return Err(err("too many colons in address"));
        }
        host
    };
    if host.contains('[') || host.contains(']') || port.contains('[') || port.contains(']') {
        return Err(err("unexpected '[' in address"));
    }
    Ok((host, port))
}

/// Go's `net.ResolveTCPAddr("tcp", addr)` for listening: an empty host is every interface, a
/// name is resolved now.
pub fn resolve_tcp_addr(addr: &str) -> Result<SocketAddr, AddrError> {
    let (host, port) = split_host_port(addr)?;
    let err = |reason: String| AddrError { addr: addr.to_owned(), reason };
    let port: u16 =
        if port.is_empty() { 0 } else { port.parse().map_err(|_| err(format!("unknown port {port:?}")))? };
    if host.is_empty() {
        return Ok(SocketAddr::from(([0u16; 8], port)));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| err(format!("lookup {host}: {e}")))?
        .next()
        .ok_or_else(|| err(format!("lookup {host}: no such host")))
}

/// The scheme and host of a URL (either may be empty), or why it is not one, as Go's `url.Parse`
/// sees it.
pub fn split_url(raw: &str) -> Result<(&str, &str), String> {
    if raw.chars().any(|c| c.is_ascii_control()) {
        return Err(format!("parse {raw:?}: net/url: invalid control character in URL"));
    }
    let (scheme, rest) = match raw.find(':') {
        Some(0) => return Err(format!("parse {raw:?}: missing protocol scheme")),
        Some(i)
            if raw[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && raw[..i].chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (&raw[..i], &raw[i + 1..])
        }
        _ => ("", raw),
    };
    let host = match rest.strip_prefix("//") {
        Some(after) => {
            let authority = after.split(['/', '?', '#']).next().unwrap_or("");
            authority.rsplit_once('@').map_or(authority, |(_, h)| h)
        }
        None => "",
    };
    Ok((scheme, host))
}

#[cfg(test)]
mod tests;
