//! The spire-server configuration: the `server`, `plugins`, `health_checks` and `telemetry`
//! blocks, with SPIRE's defaults, validation and messages, and the `spire-server run` flags that
//! override the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spire_identity::{KeyType, SpiffeId, TrustDomain};

use crate::decode::{Reader, UnknownKeys};
use crate::duration::format_duration_short;
use crate::error::{ConfigError, Diagnostics};
use crate::federation::FederationConfig;
use crate::health::HealthChecks;
use crate::inert::WrittenKeys;
use crate::log::{LogConfig, LogFormat, LogLevel};
use crate::plugin_data::{DiskKeyManagerConfig, DiskUpstreamAuthorityConfig, SqlDataStoreConfig, expect_no_data};
use crate::plugins::{Cardinality, PluginConfig, Plugins};
use crate::telemetry::Telemetry;
use crate::value::{Entry, Value};

/// Where `spire-server run` looks for its configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "conf/server/server.conf";
/// The default admin API socket.
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";
/// SPIRE's default CA TTL (`credtemplate.DefaultX509CATTL`).
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 3600);
/// SPIRE's default X509-SVID TTL.
pub const DEFAULT_X509_SVID_TTL: Duration = Duration::from_secs(3600);
/// SPIRE's default JWT-SVID TTL.
pub const DEFAULT_JWT_SVID_TTL: Duration = Duration::from_secs(300);
/// The longest SVID TTL a CA rotation schedule can guarantee, whatever the CA TTL (7 days).
pub const MAX_SVID_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// A CA is prepared when 1/6 of its lifetime is left, so an SVID TTL above `ca_ttl / 6` may be cut.
const CA_TTL_DIVISOR: u32 = 6;

/// The plugin types a server has, and how many of each it takes (`pkg/server/catalog`). DataStore
/// is checked apart, with SPIRE's own messages.
pub const SERVER_PLUGIN_TYPES: &[(&str, Cardinality)] = &[
    ("DataStore", Cardinality::ExactlyOne),
    ("KeyManager", Cardinality::ExactlyOne),
    ("UpstreamAuthority", Cardinality::MaybeOne),
    ("NodeAttestor", Cardinality::ZeroOrMore),
    ("Notifier", Cardinality::ZeroOrMore),
    ("BundlePublisher", Cardinality::ZeroOrMore),
    ("CredentialComposer", Cardinality::ZeroOrMore),
];

/// A loaded and validated spire-server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `trust_domain` (required).
    pub trust_domain: TrustDomain,
    /// `data_dir` (required): where the server keeps its state.
    pub data_dir: PathBuf,
    /// `bind_address` (default `0.0.0.0`): the host of the server API listener.
    pub bind_address: String,
    /// `bind_port` (default 8081).
    pub bind_port: u16,
    /// `socket_path` (default `/tmp/spire-server/private/api.sock`): the admin API socket.
    pub socket_path: PathBuf,
    /// `ca_ttl` (default 24h).
    pub ca_ttl: Duration,
    /// `default_x509_svid_ttl` (default 1h).
    pub default_x509_svid_ttl: Duration,
    /// `default_jwt_svid_ttl` (default 5m).
    pub default_jwt_svid_ttl: Duration,
    /// `agent_ttl`: the agents' SVID TTL (default: `default_x509_svid_ttl`).
    pub agent_ttl: Duration,
    /// `ca_key_type` (default ec-p256).
    pub ca_key_type: KeyType,
    /// `jwt_key_type` (default: `ca_key_type`).
    pub jwt_key_type: KeyType,
    /// `ca_subject` (default C=US, O=SPIFFE).
    pub ca_subject: CaSubject,
    /// `jwt_issuer`: the `iss` claim of JWT-SVIDs; none if unset.
    pub jwt_issuer: Option<String>,
    /// `disable_jwt_svids`.
    pub disable_jwt_svids: bool,
    /// `admin_ids`: SPIFFE IDs given admin rights on the server APIs.
    pub admin_ids: Vec<SpiffeId>,
    /// `audit_log_enabled`.
    pub audit_log_enabled: bool,
    /// `log_level`, `log_format`, `log_file`, `log_source_location`.
    pub log: LogConfig,
    /// `federation { ... }`.
    pub federation: Option<FederationConfig>,
    /// `ratelimit { attestation, signing }`.
    pub ratelimit: RateLimit,
    /// `prune_attested_nodes_expired_for`: delete agents expired for this long (off if unset).
    pub prune_attested_nodes_expired_for: Option<Duration>,
    /// `prune_attested_nodes_batch_size` (default 1000).
    pub prune_attested_nodes_batch_size: u32,
    /// `prune_tofu_nodes`: also prune agents that cannot re-attest.
    pub prune_tofu_nodes: bool,
    /// `proxy_protocol_trusted_cidrs`: peers allowed to send PROXY protocol headers.
    pub proxy_protocol_trusted_cidrs: Vec<String>,
    /// `max_attested_node_info_staleness`.
    pub max_attested_node_info_staleness: Option<Duration>,
    /// `profiling_*` (undocumented in SPIRE).
    pub profiling: Profiling,
    /// `experimental { ... }`.
    pub experimental: Experimental,
    /// The `plugins` block, every declaration in file order.
    pub plugins: Plugins,
    /// The DataStore `sql` settings, decoded from its `plugin_data`.
    pub datastore: SqlDataStoreConfig,
    /// `health_checks { ... }`.
    pub health_checks: HealthChecks,
    /// `telemetry { ... }`.
    pub telemetry: Telemetry,
    /// The keys the file wrote, for telling a block left empty from one left out.
    pub written: WrittenKeys,
    /// Things accepted that the operator should know about, for the server to log at startup.
    pub warnings: Vec<String>,
}

/// `ca_subject { country, organization, common_name }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSubject {
    /// C values.
    pub country: Vec<String>,
    /// O values.
    pub organization: Vec<String>,
    /// CN.
    pub common_name: String,
}

impl Default for CaSubject {
    /// SPIRE's `credtemplate.DefaultX509CASubject`: C=US, O=SPIFFE.
    fn default() -> Self {
        Self { country: vec!["US".to_owned()], organization: vec!["SPIFFE".to_owned()], common_name: String::new() }
    }
}

impl CaSubject {
    fn is_empty(&self) -> bool {
        self.country.is_empty() && self.organization.is_empty() && self.common_name.is_empty()
    }
}

/// `ratelimit { attestation = true, signing = true }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Rate-limit node attestation per IP.
    pub attestation: bool,
    /// Rate-limit signing requests per agent.
    pub signing: bool,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { attestation: true, signing: true }
    }
}

/// `profiling_enabled`, `profiling_port`, `profiling_freq`, `profiling_names`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profiling {
    /// Whether the profiling endpoint runs.
    pub enabled: bool,
    /// Its port.
    pub port: Option<u16>,
    /// Snapshot frequency in seconds.
    pub freq: Option<u32>,
    /// The profiles to take.
    pub names: Vec<String>,
}

/// `experimental { ... }`: accepted and kept; keys we do not know are kept in `other` with a
/// warning, because SPIRE does not check this block either.
#[derive(Debug, Clone, PartialEq)]
pub struct Experimental {
    /// `events_based_cache`.
    pub events_based_cache: bool,
    /// `cache_reload_interval` (default 5s).
    pub cache_reload_interval: Duration,
    /// `full_cache_reload_interval` (default 24h).
    pub full_cache_reload_interval: Duration,
    /// `prune_events_older_than` (default 12h).
    pub prune_events_older_than: Duration,
    /// `event_timeout` (default 15m; the deprecated `sql_transaction_timeout` sets it too).
    pub event_timeout: Duration,
    /// `sql_transaction_timeout`, as written.
    pub sql_transaction_timeout: Option<Duration>,
    /// `agent_spiffe_id_as_selector`.
    pub agent_spiffe_id_as_selector: bool,
    /// `require_pq_kem`.
    pub require_pq_kem: bool,
    /// `named_pipe_name` (Windows; refused elsewhere, as SPIRE refuses it).
    pub named_pipe_name: Option<String>,
    /// `feature_flags`.
    pub feature_flags: Vec<String>,
    /// `wit_key_type`.
    pub wit_key_type: Option<String>,
    /// `wit_issuer`.
    pub wit_issuer: Option<String>,
    /// `auth_opa_policy_engine { local { rego_path, policy_data_path } }`, kept raw.
    pub auth_opa_policy_engine: Option<Value>,
    /// Keys of the block we do not know, kept as written.
    pub other: Vec<Entry>,
}

impl Default for Experimental {
    fn default() -> Self {
        Self {
            events_based_cache: false,
            cache_reload_interval: Duration::from_secs(5),
            full_cache_reload_interval: Duration::from_secs(24 * 3600),
            prune_events_older_than: Duration::from_secs(12 * 3600),
            event_timeout: Duration::from_secs(15 * 60),
            sql_transaction_timeout: None,
            agent_spiffe_id_as_selector: false,
            require_pq_kem: false,
            named_pipe_name: None,
            feature_flags: Vec::new(),
            wit_key_type: None,
            wit_issuer: None,
            auth_opa_policy_engine: None,
            other: Vec::new(),
        }
    }
}

/// The `spire-server run` (and `validate`) flags that override the file. `None` (or `false`)
/// leaves the file's value, as SPIRE merges only the flags that were given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerOverrides {
    /// `-bindAddress`.
    pub bind_address: Option<String>,
    /// `-serverPort`.
    pub server_port: Option<u16>,
    /// `-dataDir`.
    pub data_dir: Option<PathBuf>,
    /// `-trustDomain`.
    pub trust_domain: Option<String>,
    /// `-socketPath`.
    pub socket_path: Option<PathBuf>,
    /// `-logLevel`.
    pub log_level: Option<String>,
    /// `-logFormat`.
    pub log_format: Option<String>,
    /// `-logFile`.
    pub log_file: Option<PathBuf>,
    /// `-logSourceLocation`.
    pub log_source_location: bool,
}

impl ServerConfig {
    /// Loads a configuration file (`expand_env` is `-expandEnv`).
    pub fn from_file(path: impl AsRef<Path>, expand_env: bool) -> Result<Self, ConfigError> {
        Self::load_file(path, expand_env, &ServerOverrides::default())
    }

    /// Loads configuration text.
    pub fn from_str(text: &str, expand_env: bool) -> Result<Self, ConfigError> {
        Self::load_str(text, expand_env, &ServerOverrides::default())
    }

    /// Loads a file with the `run` flags applied before validation, so that for example
    /// `-trustDomain` satisfies a file without `trust_domain`, as in SPIRE.
    pub fn load_file(
        path: impl AsRef<Path>,
        expand_env: bool,
        overrides: &ServerOverrides,
    ) -> Result<Self, ConfigError> {
        let doc = crate::load::read_file(path.as_ref(), expand_env)?;
        Self::from_value(&doc, overrides)
    }

    /// [`ServerConfig::load_file`] for text.
    pub fn load_str(text: &str, expand_env: bool, overrides: &ServerOverrides) -> Result<Self, ConfigError> {
        let doc = crate::load::parse_str(text, expand_env)?;
        Self::from_value(&doc, overrides)
    }

    /// Builds the configuration from a parsed document. Every problem found is reported at once.
    pub fn from_value(doc: &Value, overrides: &ServerOverrides) -> Result<Self, ConfigError> {
        let mut diags = Diagnostics::new();
        let config = build(doc, overrides, &mut diags);
        let (config, warnings) = diags.finish(config)?;
        // `build` returns `None` only after recording an error, so `finish` has returned by now.
        let mut config = config.ok_or_else(|| ConfigError::invalid("invalid configuration", None))?;
        config.warnings.splice(0..0, warnings);
        config.warnings.extend(config.ttl_warnings());
        config.written = WrittenKeys::from_document(doc);
        Ok(config)
    }

    /// Applies `run` flags to a loaded configuration, validating each one given.
    pub fn apply_overrides(&mut self, overrides: &ServerOverrides) -> Result<(), ConfigError> {
        let mut diags = Diagnostics::new();
        if let Some(td) = &overrides.trust_domain
            && let Some(td) = parse_trust_domain(td, None, &mut diags)
        {
            self.trust_domain = td;
        }
        if let Some(dir) = overrides.data_dir.clone().filter(|d| !d.as_os_str().is_empty()) {
            self.data_dir = dir;
        }
        if let Some(address) = overrides.bind_address.as_deref().filter(|a| !a.is_empty()) {
            self.bind_address = address.trim_matches(['[', ']']).to_owned();
        }
        if let Some(port) = overrides.server_port.filter(|&p| p != 0) {
            self.bind_port = port;
        }
        if let Some(path) = overrides.socket_path.clone().filter(|p| !p.as_os_str().is_empty()) {
            self.socket_path = path;
        }
        if let Some(level) = overrides.log_level.as_deref().filter(|l| !l.is_empty()) {
            match LogLevel::parse(level) {
                Some(level) => self.log.level = level,
                None => diags.error(ConfigError::invalid(crate::log::level_error("-logLevel", level), None)),
            }
        }
        if let Some(format) = overrides.log_format.as_deref().filter(|f| !f.is_empty()) {
            match LogFormat::parse(format) {
                Some(format) => self.log.format = format,
                None => diags.error(ConfigError::invalid(crate::log::format_error("-logFormat", format), None)),
            }
        }
        if let Some(file) = overrides.log_file.clone().filter(|f| !f.as_os_str().is_empty()) {
            self.log.file = Some(file);
        }
        self.log.source_location |= overrides.log_source_location;
        diags.finish(()).map(|_| ())
    }

    /// `host:port` of the server API listener (IPv6 hosts in brackets).
    pub fn bind_endpoint(&self) -> String {
        crate::join_host_port(&self.bind_address, self.bind_port)
    }

    /// The enabled KeyManager (exactly one after validation).
    pub fn key_manager(&self) -> &PluginConfig {
        self.plugins.enabled("KeyManager").next().expect("validated: exactly one KeyManager")
    }

    /// The enabled UpstreamAuthority, if any.
    pub fn upstream_authority(&self) -> Option<&PluginConfig> {
        self.plugins.enabled("UpstreamAuthority").next()
    }

    /// The enabled NodeAttestors.
    pub fn node_attestors(&self) -> impl Iterator<Item = &PluginConfig> {
        self.plugins.enabled("NodeAttestor")
    }

    /// SPIRE's startup advice when an SVID TTL exceeds what the CA rotation schedule can
    /// guarantee (`min(ca_ttl / 6, 7d)`): such SVIDs may be issued with shorter lifetimes.
    pub fn ttl_warnings(&self) -> Vec<String> {
        let mut checks = vec![
            ("default_x509_svid_ttl", self.default_x509_svid_ttl),
            ("default_jwt_svid_ttl", self.default_jwt_svid_ttl),
        ];
        if self.agent_ttl != self.default_x509_svid_ttl {
            checks.push(("agent_ttl", self.agent_ttl));
        }
        let max_for_ca = max_svid_ttl_for_ca_ttl(self.ca_ttl);
        let short = format_duration_short;
        checks
            .into_iter()
            .filter(|(_, ttl)| *ttl > max_for_ca)
            .map(|(name, ttl)| {
                if ttl < MAX_SVID_TTL {
                    format!(
                        "{name} is too high for the configured ca_ttl value. SVIDs with shorter lifetimes may be \
                         issued. Please set {name} to {} or less, or the ca_ttl to {} or more, to guarantee the \
                         full {name} lifetime when CA rotations are scheduled.",
                        short(max_for_ca),
                        short(ttl * CA_TTL_DIVISOR)
                    )
                } else if self.ca_ttl < MAX_SVID_TTL * CA_TTL_DIVISOR {
                    format!(
                        "{name} is too high and the ca_ttl is too low. SVIDs with shorter lifetimes may be issued. \
                         Please set {name} to {} or less, and the ca_ttl to {} or more, to guarantee the full \
                         {name} lifetime when CA rotations are scheduled.",
                        short(MAX_SVID_TTL),
                        short(MAX_SVID_TTL * CA_TTL_DIVISOR)
                    )
                } else {
                    format!(
                        "{name} is too high. SVIDs with shorter lifetimes may be issued. Please set {name} to {} \
                         or less to guarantee the full {name} lifetime when CA rotations are scheduled.",
                        short(max_for_ca)
                    )
                }
            })
            .collect()
    }
}

/// The longest SVID TTL a CA of this TTL can guarantee: `min(ca_ttl / 6, 7d)`.
pub fn max_svid_ttl_for_ca_ttl(ca_ttl: Duration) -> Duration {
    (ca_ttl / CA_TTL_DIVISOR).min(MAX_SVID_TTL)
}

fn parse_trust_domain(text: &str, line: Option<usize>, diags: &mut Diagnostics) -> Option<TrustDomain> {
    TrustDomain::parse(text)
        .map_err(|e| diags.error(ConfigError::invalid(format!("could not parse trust_domain {text:?}: {e}"), line)))
        .ok()
}

fn parse_key_type(key: &str, text: &str, line: usize, diags: &mut Diagnostics) -> Option<KeyType> {
    text.to_ascii_lowercase()
        .parse::<KeyType>()
        .map_err(|_| {
            let message = format!(
                "error parsing {key}: key type {text:?} is unknown; must be one of [rsa-2048, rsa-4096, ec-p256, ec-p384]"
            );
            diags.error(ConfigError::invalid(message, line));
        })
        .ok()
}

/// The sections other than `server`, read first.
struct Rest {
    plugins: Plugins,
    datastore: SqlDataStoreConfig,
    health_checks: HealthChecks,
    telemetry: Telemetry,
}

/// The whole document; `None` only when an error was recorded.
fn build(doc: &Value, o: &ServerOverrides, diags: &mut Diagnostics) -> Option<ServerConfig> {
    let mut top = Reader::new("", doc, diags)?;
    let known: Vec<&str> = SERVER_PLUGIN_TYPES.iter().map(|(t, _)| *t).collect();
    let plugins = top.object("plugins").map(|r| Plugins::read(r, &known));
    let datastore = match &plugins {
        Some(plugins) => check_plugins(plugins, top.diags()),
        None => {
            top.diags().error(ConfigError::invalid("plugins section must be configured", None));
            None
        }
    };
    let health_checks = top.object("health_checks").map(HealthChecks::read).unwrap_or_default();
    let telemetry = top.object("telemetry").map(Telemetry::read).unwrap_or_default();
    let rest = plugins.zip(datastore).map(|(plugins, datastore)| Rest { plugins, datastore, health_checks, telemetry });
    let server = match top.object("server") {
        Some(r) => read_server(r, o, rest),
        None => {
            top.diags().error(ConfigError::invalid("server section must be configured", None));
            None
        }
    };
    top.finish();
    server
}

/// Cardinality and the built-in plugins' data; returns the DataStore settings.
fn check_plugins(plugins: &Plugins, diags: &mut Diagnostics) -> Option<SqlDataStoreConfig> {
    let mut datastore = None;
    let datastores: Vec<&PluginConfig> = plugins.enabled("DataStore").collect();
    let pluggability = "pluggability for the DataStore is deprecated; only the built-in \"sql\" plugin is supported";
    match datastores.as_slice() {
        [] => diags.error(ConfigError::invalid("expecting a DataStore plugin", None)),
        [p] if p.name != "sql" || p.is_external() => diags.error(ConfigError::invalid(pluggability, p.pos.line)),
        [p] => datastore = SqlDataStoreConfig::from_plugin(p).map_err(|e| diags.error(e)).ok(),
        [_, second, ..] => diags.error(ConfigError::invalid("only one DataStore plugin is allowed", second.pos.line)),
    }
    let rules: Vec<(&str, Cardinality)> =
        SERVER_PLUGIN_TYPES.iter().copied().filter(|(t, _)| *t != "DataStore").collect();
    plugins.check_cardinality(&rules, diags);
    let mut record = |result: Result<(), ConfigError>| {
        if let Err(e) = result {
            diags.error(e);
        }
    };
    for p in plugins.all().iter().filter(|p| p.enabled) {
        if p.is_external() {
            if p.plugin_type == "NodeAttestor" && p.name == "join_token" {
                let message = "the built-in join_token node attestor cannot be overridden by an external plugin";
                record(Err(ConfigError::invalid(message, p.pos.line)));
            }
            continue;
        }
        if p.plugin_data_file.is_some() {
            continue; // read when the plugin is configured, as SPIRE does
        }
        match (p.plugin_type.as_str(), p.name.as_str()) {
            ("KeyManager", "disk") => record(DiskKeyManagerConfig::from_plugin(p).map(drop)),
            ("KeyManager", "memory") | ("NodeAttestor", "join_token") => record(expect_no_data(p)),
            ("UpstreamAuthority", "disk") => record(DiskUpstreamAuthorityConfig::from_plugin(p).map(drop)),
            _ => {}
        }
    }
    datastore
}

/// The `server` block with the flags applied, completed with the other sections (`None` if they
/// failed, after the `server` block has still been checked).
fn read_server(mut r: Reader<'_, '_>, o: &ServerOverrides, rest: Option<Rest>) -> Option<ServerConfig> {
    let block_line = r.pos().line;
    // Flags win over the file; the file's keys are still read so they count as known.
    let td_mistyped = is_block_or_list(r.peek("trust_domain"));
    let td_file = r.string_at("trust_domain");
    let trust_domain = match (&o.trust_domain, td_file) {
        (Some(td), _) if !td.is_empty() => parse_trust_domain(td, None, r.diags()),
        (_, Some((td, pos))) => parse_trust_domain(&td, Some(pos.line), r.diags()),
        _ if td_mistyped => None, // already reported
        _ => {
            r.diags().error(ConfigError::invalid("trust_domain must be configured", block_line));
            None
        }
    };
    let dd_mistyped = is_block_or_list(r.peek("data_dir"));
    let data_dir_file = r.non_empty_string("data_dir").map(PathBuf::from);
    let data_dir = o.data_dir.clone().filter(|d| !d.as_os_str().is_empty()).or(data_dir_file);
    if data_dir.is_none() && !dd_mistyped {
        r.diags().error(ConfigError::invalid("data_dir must be configured", block_line));
    }
    let bind_address_file = r.non_empty_string("bind_address");
    let bind_address = o
        .bind_address
        .clone()
        .filter(|a| !a.is_empty())
        .or(bind_address_file)
        .unwrap_or_else(|| "0.0.0.0".to_owned())
        .trim_matches(['[', ']'])
        .to_owned();
    let bind_port_file = r.int::<u16>("bind_port").filter(|&p| p != 0);
    let bind_port = o.server_port.filter(|&p| p != 0).or(bind_port_file).unwrap_or(8081);
    let socket_path_file = r.non_empty_string("socket_path").map(PathBuf::from);
    let socket_path = o
        .socket_path
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .or(socket_path_file)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_PATH));

    let ca_ttl = r.duration("ca_ttl").unwrap_or(DEFAULT_CA_TTL);
    let default_x509_svid_ttl = r.duration("default_x509_svid_ttl").unwrap_or(DEFAULT_X509_SVID_TTL);
    let default_jwt_svid_ttl = r.duration("default_jwt_svid_ttl").unwrap_or(DEFAULT_JWT_SVID_TTL);
    let agent_ttl = r.duration("agent_ttl").unwrap_or(default_x509_svid_ttl);
    let ca_key_type = match r.string_at("ca_key_type") {
        Some((text, pos)) => parse_key_type("ca_key_type", &text, pos.line, r.diags()),
        None => Some(KeyType::EcP256),
    };
    let jwt_key_type = match r.string_at("jwt_key_type") {
        Some((text, pos)) => parse_key_type("jwt_key_type", &text, pos.line, r.diags()),
        None => ca_key_type,
    };
    let ca_subject = read_ca_subject(&mut r);
    let jwt_issuer = r.non_empty_string("jwt_issuer");
    let disable_jwt_svids = r.bool("disable_jwt_svids").unwrap_or(false);
    let admin_ids = read_admin_ids(&mut r);
    let audit_log_enabled = r.bool("audit_log_enabled").unwrap_or(false);
    let log = read_log(&mut r, o);
    let federation = r.object("federation").map(FederationConfig::read);
    if let (Some(td), Some(f)) = (&trust_domain, &federation)
        && f.federates_with.iter().any(|fw| &fw.trust_domain == td)
    {
        let message = format!(
            "federation.federates_with[{:?}] names the server's own trust domain; a server cannot federate with \
             itself, remove this relationship",
            td.as_str()
        );
        r.diags().error(ConfigError::invalid(message, None));
    }
    let ratelimit = r.object("ratelimit").map_or_else(RateLimit::default, |mut rl| {
        let limits = RateLimit {
            attestation: rl.bool("attestation").unwrap_or(true),
            signing: rl.bool("signing").unwrap_or(true),
        };
        rl.finish();
        limits
    });
    let prune_attested_nodes_expired_for = r.duration("prune_attested_nodes_expired_for");
    let prune_attested_nodes_batch_size = r.int("prune_attested_nodes_batch_size").filter(|&n| n != 0).unwrap_or(1000);
    let prune_tofu_nodes = r.bool("prune_tofu_nodes").unwrap_or(false);
    let proxy_protocol_trusted_cidrs = r.string_list("proxy_protocol_trusted_cidrs").unwrap_or_default();
    let max_attested_node_info_staleness = r.duration("max_attested_node_info_staleness");
    let profiling = Profiling {
        enabled: r.bool("profiling_enabled").unwrap_or(false),
        port: r.int("profiling_port"),
        freq: r.int("profiling_freq"),
        names: r.string_list("profiling_names").unwrap_or_default(),
    };
    let experimental = r.object("experimental").map(read_experimental).unwrap_or_default();
    r.finish();
    let rest = rest?;

    Some(ServerConfig {
        trust_domain: trust_domain?,
        data_dir: data_dir?,
        bind_address,
        bind_port,
        socket_path,
        ca_ttl,
        default_x509_svid_ttl,
        default_jwt_svid_ttl,
        agent_ttl,
        ca_key_type: ca_key_type?,
        jwt_key_type: jwt_key_type?,
        ca_subject,
        jwt_issuer,
        disable_jwt_svids,
        admin_ids: admin_ids?,
        audit_log_enabled,
        log: log?,
        federation,
        ratelimit,
        prune_attested_nodes_expired_for,
        prune_attested_nodes_batch_size,
        prune_tofu_nodes,
        proxy_protocol_trusted_cidrs,
        max_attested_node_info_staleness,
        profiling,
        experimental,
        plugins: rest.plugins,
        datastore: rest.datastore,
        health_checks: rest.health_checks,
        telemetry: rest.telemetry,
        written: WrittenKeys::default(),
        warnings: Vec::new(),
    })
}

/// Whether a value is one no string conversion accepts (its error is reported by the conversion).
fn is_block_or_list(value: Option<&Value>) -> bool {
    value.is_some_and(|v| matches!(v.kind, crate::value::Kind::List(_) | crate::value::Kind::Object(_)))
}

fn read_ca_subject(r: &mut Reader<'_, '_>) -> CaSubject {
    let Some(mut cs) = r.object("ca_subject") else { return CaSubject::default() };
    let subject = CaSubject {
        country: cs.string_list("country").unwrap_or_default(),
        organization: cs.string_list("organization").unwrap_or_default(),
        common_name: cs.string("common_name").unwrap_or_default(),
    };
    cs.finish();
    if subject.is_empty() {
        r.diags().warn("ca_subject configurable is set but empty; the default will be used");
        return CaSubject::default();
    }
    subject
}

fn read_admin_ids(r: &mut Reader<'_, '_>) -> Option<Vec<SpiffeId>> {
    let Some(value) = r.take("admin_ids") else { return Some(Vec::new()) };
    let raw = crate::decode::to_string_list(value, &r.key_path("admin_ids")).map_err(|e| r.diags().error(e)).ok()?;
    let mut ids = Vec::new();
    let mut ok = true;
    for text in raw {
        match SpiffeId::parse(&text) {
            Ok(id) => ids.push(id),
            Err(e) => {
                ok = false;
                let message = format!("could not parse admin ID {text:?}: {e}");
                r.diags().error(ConfigError::invalid(message, value.pos.line));
            }
        }
    }
    ok.then_some(ids)
}

fn read_log(r: &mut Reader<'_, '_>, o: &ServerOverrides) -> Option<LogConfig> {
    let mut ok = true;
    let level_file = r.string_at("log_level");
    let level = match (o.log_level.as_deref().filter(|l| !l.is_empty()), level_file) {
        (Some(flag), _) => LogLevel::parse(flag).or_else(|| {
            r.diags().error(ConfigError::invalid(crate::log::level_error("-logLevel", flag), None));
            None
        }),
        (None, Some((text, pos))) => LogLevel::parse(&text).or_else(|| {
            let message = crate::log::level_error(&r.key_path("log_level"), &text);
            r.diags().error(ConfigError::invalid(message, pos.line));
            None
        }),
        (None, None) => Some(LogLevel::Info),
    };
    ok &= level.is_some();
    let format_file = r.string_at("log_format");
    let format = match (o.log_format.as_deref().filter(|f| !f.is_empty()), format_file) {
        (Some(flag), _) => LogFormat::parse(flag).or_else(|| {
            r.diags().error(ConfigError::invalid(crate::log::format_error("-logFormat", flag), None));
            None
        }),
        (None, Some((text, pos))) => LogFormat::parse(&text).or_else(|| {
            let message = crate::log::format_error(&r.key_path("log_format"), &text);
            r.diags().error(ConfigError::invalid(message, pos.line));
            None
        }),
        (None, None) => Some(LogFormat::Text),
    };
    ok &= format.is_some();
    let file_file = r.non_empty_string("log_file").map(PathBuf::from);
    let file = o.log_file.clone().filter(|f| !f.as_os_str().is_empty()).or(file_file);
    let source_location = r.bool("log_source_location").unwrap_or(false) || o.log_source_location;
    if !ok {
        return None;
    }
    Some(LogConfig { level: level?, format: format?, file, source_location })
}

fn read_experimental(r: Reader<'_, '_>) -> Experimental {
    let mut r = r.unknown_keys(UnknownKeys::Warn);
    let d = Experimental::default();
    let line = r.pos().line;
    let event_timeout = r.duration("event_timeout");
    let sql_transaction_timeout = r.duration("sql_transaction_timeout");
    if sql_transaction_timeout.is_some() {
        if event_timeout.is_some() {
            let message = "both experimental sql_transaction_timeout and event_timeout set, only set event_timeout";
            r.diags().error(ConfigError::invalid(message, line));
        } else {
            r.diags()
                .warn("experimental.sql_transaction_timeout is deprecated, use experimental.event_timeout instead");
        }
    }
    let named_pipe_name = r.non_empty_string("named_pipe_name");
    if cfg!(not(windows)) && named_pipe_name.is_some() {
        let message =
            "invalid configuration: named_pipe_name is not supported in this platform; please use socket_path instead";
        r.diags().error(ConfigError::invalid(message, line));
    }
    let mut e = Experimental {
        events_based_cache: r.bool("events_based_cache").unwrap_or(d.events_based_cache),
        cache_reload_interval: r.duration("cache_reload_interval").unwrap_or(d.cache_reload_interval),
        full_cache_reload_interval: r.duration("full_cache_reload_interval").unwrap_or(d.full_cache_reload_interval),
        prune_events_older_than: r.duration("prune_events_older_than").unwrap_or(d.prune_events_older_than),
        event_timeout: event_timeout.or(sql_transaction_timeout).unwrap_or(d.event_timeout),
        sql_transaction_timeout,
        agent_spiffe_id_as_selector: r.bool("agent_spiffe_id_as_selector").unwrap_or(false),
        require_pq_kem: r.bool("require_pq_kem").unwrap_or(false),
        named_pipe_name,
        feature_flags: r.string_list("feature_flags").unwrap_or_default(),
        wit_key_type: r.non_empty_string("wit_key_type"),
        wit_issuer: r.non_empty_string("wit_issuer"),
        auth_opa_policy_engine: r.take("auth_opa_policy_engine").cloned(),
        other: Vec::new(),
    };
    for flag in &e.feature_flags {
        r.diags().warn(format!("Developer feature flag {flag:?} has been enabled"));
    }
    let path = r.path().to_owned();
    for entry in r.take_unused() {
        let message = format!(
            "{path}.{} (line {}) is not known to spire-rs; it is kept but has no effect",
            entry.key, entry.key_pos.line
        );
        r.diags().warn(message);
        e.other.push(entry.clone());
    }
    if e != d {
        r.diags().warn(
            "Experimental features have been enabled. Please see doc/upgrading.md for upgrade and compatibility \
             considerations for experimental features.",
        );
    }
    r.finish();
    e
}
