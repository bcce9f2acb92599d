//! The spire-agent configuration: the `agent`, `plugins`, `health_checks` and `telemetry` blocks,
//! with SPIRE's defaults, validation and messages, and the `spire-agent run` flags that override
//! the file.
//!
//! As in SPIRE (`cmd/spire-agent/cli/run`), each flag that is given replaces its file key before
//! validation, key by key: `-trustDomain` satisfies a file without `trust_domain`, and
//! `-trustBundle` next to a file with `insecure_bootstrap = true` is refused as two bootstrap
//! sources, exactly as SPIRE's field-by-field merge does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spire_identity::{KeyType, SpiffeId, TrustDomain};

use crate::decode::{Reader, UnknownKeys};
use crate::duration::format_duration;
use crate::error::{ConfigError, Diagnostics};
use crate::health::HealthChecks;
use crate::inert::WrittenKeys;
use crate::log::{LogConfig, LogFormat, LogLevel};
use crate::plugin_data::{DiskKeyManagerAgentConfig, UnixWorkloadAttestorConfig, expect_no_data};
use crate::plugins::{Cardinality, PluginConfig, Plugins};
use crate::server::Profiling;
use crate::telemetry::Telemetry;
use crate::value::{Entry, Kind, Pos, Value};

/// Where `spire-agent run` looks for its configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "conf/agent/agent.conf";
/// The default Workload API (and SDS) socket.
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-agent/public/api.sock";
/// The default data directory: the directory the agent is started from.
pub const DEFAULT_DATA_DIR: &str = ".";
/// SPIRE's default size of the X509-SVID and JWT-SVID caches (a configured 0 means this).
pub const DEFAULT_CACHE_MAX_SIZE: usize = 1000;
/// The shortest `availability_target` SPIRE accepts.
pub const MIN_AVAILABILITY_TARGET: Duration = Duration::from_secs(24 * 3600);
/// SPIRE's default `rebootstrap_delay`.
pub const DEFAULT_REBOOTSTRAP_DELAY: Duration = Duration::from_secs(10 * 60);
/// SPIRE's default `experimental.sync_interval`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// The agent's RPC timeout, which is also the default (and the exclusive upper bound) of
/// `experimental.jwt_svid_cache_hit_timeout`.
pub const DEFAULT_JWT_SVID_CACHE_HIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The lowest `experimental.jwt_svid_cache_hit_timeout` SPIRE accepts.
pub const MIN_JWT_SVID_CACHE_HIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The plugin types an agent has, and how many of each it takes (`pkg/agent/catalog`).
///
/// NodeAttestor is relaxed to "at most one" when a join token is configured: see
/// [`AgentConfig::node_attestation`].
pub const AGENT_PLUGIN_TYPES: &[(&str, Cardinality)] = &[
    ("KeyManager", Cardinality::ExactlyOne),
    ("NodeAttestor", Cardinality::ExactlyOne),
    ("WorkloadAttestor", Cardinality::AtLeastOne),
    ("SVIDStore", Cardinality::ZeroOrMore),
];

/// A loaded and validated spire-agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `trust_domain` (required).
    pub trust_domain: TrustDomain,
    /// `server_address` (required): DNS name or IP of the SPIRE server, without brackets.
    pub server_address: String,
    /// `server_port` (required).
    pub server_port: u16,
    /// How the agent gets the bundle it authenticates the server with the first time: exactly
    /// one of `trust_bundle_path`, `trust_bundle_url`, `trust_bundle_spiffe_workload_api` or
    /// `insecure_bootstrap = true`.
    pub trust_bundle: TrustBundleSource,
    /// `trust_bundle_format` (default pem): the format of the file or download.
    pub trust_bundle_format: TrustBundleFormat,
    /// `data_dir` (default `.`): where the agent keeps its SVID and bundle.
    pub data_dir: PathBuf,
    /// `socket_path` (default `/tmp/spire-agent/public/api.sock`): the Workload API socket.
    pub socket_path: PathBuf,
    /// `admin_socket_path`: the admin API socket; the admin API is off when unset.
    pub admin_socket_path: Option<PathBuf>,
    /// The join token the agent attests with: `join_token`, `-joinToken`, or the trimmed content
    /// of `join_token_file` / `-joinTokenFile`, read at load. See [`AgentConfig::node_attestation`].
    pub join_token: Option<String>,
    /// `join_token_file` (or `-joinTokenFile`), when the token came from a file.
    pub join_token_file: Option<PathBuf>,
    /// `log_level`, `log_format`, `log_file`, `log_source_location`.
    pub log: LogConfig,
    /// `log_selectors`: selector prefixes (`k8s:ns`, `unix:user`) whose matching selectors SPIRE
    /// adds to the Workload API's "No identity issued" log line.
    pub log_selectors: Vec<String>,
    /// `workload_x509_svid_key_type` (default ec-p256; rsa-2048, ec-p256 or ec-p384).
    pub workload_x509_svid_key_type: KeyType,
    /// `x509_svid_cache_max_size` (default 1000; 0 means the default).
    pub x509_svid_cache_max_size: usize,
    /// `jwt_svid_cache_max_size` (default 1000; 0 means the default).
    pub jwt_svid_cache_max_size: usize,
    /// `availability_target`: renew SVIDs early enough to survive a server outage this long
    /// (at least 24h; off when unset).
    pub availability_target: Option<Duration>,
    /// `allow_unauthenticated_verifiers`: release bundles to workloads without an identity.
    pub allow_unauthenticated_verifiers: bool,
    /// `allowed_foreign_jwt_claims`: claims kept when validating JWT-SVIDs of other trust domains.
    pub allowed_foreign_jwt_claims: Vec<String>,
    /// `authorized_delegates`: SPIFFE IDs (of this trust domain) allowed to use the Delegated
    /// Identity API on the admin socket.
    pub authorized_delegates: Vec<SpiffeId>,
    /// `disable_workload_api`: do not serve the SPIFFE Workload API.
    pub disable_workload_api: bool,
    /// `disable_sds_api`: do not serve Envoy SDS.
    pub disable_sds_api: bool,
    /// `rebootstrap_mode` (default never).
    pub rebootstrap_mode: RebootstrapMode,
    /// `rebootstrap_delay` (default 10m): how long the server must stay untrusted before the
    /// agent bootstraps again.
    pub rebootstrap_delay: Duration,
    /// `retry_bootstrap` (deprecated in SPIRE): keep retrying the first attestation.
    pub retry_bootstrap: bool,
    /// `sds { ... }`.
    pub sds: SdsConfig,
    /// `profiling_*` (undocumented in SPIRE).
    pub profiling: Profiling,
    /// `experimental { ... }`.
    pub experimental: AgentExperimental,
    /// The `plugins` block, every declaration in file order.
    pub plugins: Plugins,
    /// `health_checks { ... }`.
    pub health_checks: HealthChecks,
    /// `telemetry { ... }`.
    pub telemetry: Telemetry,
    /// The keys the file wrote, for telling a block left empty from one left out.
    pub written: WrittenKeys,
    /// Things accepted that the operator should know about, for the agent to log at startup.
    pub warnings: Vec<String>,
}

/// Where the bootstrap trust bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustBundleSource {
    /// `trust_bundle_path` / `-trustBundle`: a file copied to the node beforehand.
    Path(PathBuf),
    /// `trust_bundle_url` / `-trustBundleUrl`: downloaded over HTTPS, or over plain HTTP through
    /// the Unix socket `trust_bundle_unix_socket` when that is set.
    Url {
        /// The URL.
        url: String,
        /// `trust_bundle_unix_socket`.
        unix_socket: Option<PathBuf>,
    },
    /// `trust_bundle_spiffe_workload_api`: the X.509 bundle of the trust domain, fetched from
    /// another SPIFFE Workload API at this address (nested agents).
    SpiffeWorkloadApi(String),
    /// `insecure_bootstrap = true`: the server is not authenticated on the first connection.
    Insecure,
}

/// `trust_bundle_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustBundleFormat {
    /// PEM `CERTIFICATE` blocks (the default).
    #[default]
    Pem,
    /// A SPIFFE bundle (JWKS), as served by a bundle endpoint.
    Spiffe,
}

impl TrustBundleFormat {
    /// SPIRE's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pem => "pem",
            Self::Spiffe => "spiffe",
        }
    }
}

/// `rebootstrap_mode`: what the agent does when it no longer trusts the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RebootstrapMode {
    /// Never bootstrap again (the default).
    #[default]
    Never,
    /// Bootstrap again if the node attestor allows re-attestation; otherwise carry on.
    Auto,
    /// Bootstrap again, and refuse to start if the node attestor does not allow it.
    Always,
}

impl RebootstrapMode {
    /// SPIRE's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Auto => "auto",
            Self::Always => "always",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "never" => Some(Self::Never),
            "auto" => Some(Self::Auto),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
}

/// `sds { ... }`: Envoy SDS resource names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsConfig {
    /// `default_svid_name` (default `default`): the TLS certificate resource of the default SVID.
    pub default_svid_name: String,
    /// `default_bundle_name` (default `ROOTCA`): the validation context of the trust domain bundle.
    pub default_bundle_name: String,
    /// `default_all_bundles_name` (default `ALL`): the validation context of all bundles.
    pub default_all_bundles_name: String,
    /// `disable_spiffe_cert_validation`: do not send the SPIFFE custom validator to Envoy.
    pub disable_spiffe_cert_validation: bool,
}

impl Default for SdsConfig {
    fn default() -> Self {
        Self {
            default_svid_name: "default".to_owned(),
            default_bundle_name: "ROOTCA".to_owned(),
            default_all_bundles_name: "ALL".to_owned(),
            disable_spiffe_cert_validation: false,
        }
    }
}

/// The agent's `experimental { ... }`: accepted and kept; keys we do not know are kept in `other`
/// with a warning, because SPIRE does not check this block either.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentExperimental {
    /// `sync_interval` (default 5s): how often the agent syncs entries with the server.
    pub sync_interval: Duration,
    /// `use_sync_authorized_entries` (default true; deprecated in SPIRE).
    pub use_sync_authorized_entries: bool,
    /// `jwt_svid_cache_hit_timeout` (default 30s; 5s ≤ t < 30s when set).
    pub jwt_svid_cache_hit_timeout: Duration,
    /// `named_pipe_name` (Windows only).
    pub named_pipe_name: Option<String>,
    /// `admin_named_pipe_name` (Windows only).
    pub admin_named_pipe_name: Option<String>,
    /// `require_pq_kem`: require a post-quantum key exchange with the server.
    pub require_pq_kem: bool,
    /// `feature_flags`.
    pub feature_flags: Vec<String>,
    /// `ratelimit { fetch_x509_svid, fetch_jwt_svid, ... }`, kept raw.
    pub ratelimit: Option<Value>,
    /// `broker { ... }`, kept raw.
    pub broker: Option<Value>,
    /// Keys of the block we do not know, kept as written.
    pub other: Vec<Entry>,
}

impl Default for AgentExperimental {
    fn default() -> Self {
        Self {
            sync_interval: DEFAULT_SYNC_INTERVAL,
            use_sync_authorized_entries: true,
            jwt_svid_cache_hit_timeout: DEFAULT_JWT_SVID_CACHE_HIT_TIMEOUT,
            named_pipe_name: None,
            admin_named_pipe_name: None,
            require_pq_kem: false,
            feature_flags: Vec::new(),
            ratelimit: None,
            broker: None,
            other: Vec::new(),
        }
    }
}

/// The `spire-agent run` (and `validate`) flags that override the file. `None` (or `false`)
/// leaves the file's value, as SPIRE merges only the flags that were given. `-config` and
/// `-expandEnv` are not here: they choose and read the file ([`DEFAULT_CONFIG_PATH`],
/// [`AgentConfig::load_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentOverrides {
    /// `-dataDir`.
    pub data_dir: Option<PathBuf>,
    /// `-joinToken`.
    pub join_token: Option<String>,
    /// `-joinTokenFile`.
    pub join_token_file: Option<PathBuf>,
    /// `-logFile`.
    pub log_file: Option<PathBuf>,
    /// `-logFormat`.
    pub log_format: Option<String>,
    /// `-logLevel`.
    pub log_level: Option<String>,
    /// `-logSourceLocation`.
    pub log_source_location: bool,
    /// `-serverAddress`.
    pub server_address: Option<String>,
    /// `-serverPort`.
    pub server_port: Option<u16>,
    /// `-trustDomain`.
    pub trust_domain: Option<String>,
    /// `-trustBundle`: a `trust_bundle_path`.
    pub trust_bundle_path: Option<PathBuf>,
    /// `-trustBundleUrl`.
    pub trust_bundle_url: Option<String>,
    /// `-trustBundleFormat`.
    pub trust_bundle_format: Option<String>,
    /// `-allowUnauthenticatedVerifiers`.
    pub allow_unauthenticated_verifiers: bool,
    /// `-insecureBootstrap`.
    pub insecure_bootstrap: bool,
    /// `-socketPath`.
    pub socket_path: Option<PathBuf>,
    /// `-disableWorkloadAPI`.
    pub disable_workload_api: bool,
    /// `-disableSDSAPI`.
    pub disable_sds_api: bool,
    /// `-rebootstrapMode`.
    pub rebootstrap_mode: Option<String>,
    /// `-rebootstrapDelay` (a Go duration).
    pub rebootstrap_delay: Option<String>,
}

/// How the agent attests its node, after the join-token rule is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeAttestation<'a> {
    /// With the built-in `join_token` attestor and this token.
    JoinToken(&'a str),
    /// With the configured NodeAttestor plugin.
    Plugin(&'a PluginConfig),
}

impl AgentConfig {
    /// Loads a configuration file (`expand_env` is `-expandEnv`).
    pub fn from_file(path: impl AsRef<Path>, expand_env: bool) -> Result<Self, ConfigError> {
        Self::load_file(path, expand_env, &AgentOverrides::default())
    }

    /// Loads configuration text.
    pub fn from_str(text: &str, expand_env: bool) -> Result<Self, ConfigError> {
        Self::load_str(text, expand_env, &AgentOverrides::default())
    }

    /// Loads a file with the `run` flags applied before validation, so that for example
    /// `-serverAddress` satisfies a file without `server_address`, as in SPIRE.
    pub fn load_file(
        path: impl AsRef<Path>,
        expand_env: bool,
        overrides: &AgentOverrides,
    ) -> Result<Self, ConfigError> {
        let doc = crate::load::read_file(path.as_ref(), expand_env)?;
        Self::from_value(&doc, overrides)
    }

    /// [`AgentConfig::load_file`] for text.
    pub fn load_str(text: &str, expand_env: bool, overrides: &AgentOverrides) -> Result<Self, ConfigError> {
        let doc = crate::load::parse_str(text, expand_env)?;
        Self::from_value(&doc, overrides)
    }

    /// Builds the configuration from a parsed document. Every problem found is reported at once.
    pub fn from_value(doc: &Value, overrides: &AgentOverrides) -> Result<Self, ConfigError> {
        let mut diags = Diagnostics::new();
        let config = build(doc, overrides, &mut diags);
        let (config, warnings) = diags.finish(config)?;
        // `build` returns `None` only after recording an error, so `finish` has returned by now.
        let mut config = config.ok_or_else(|| ConfigError::invalid("invalid configuration", None))?;
        config.warnings.splice(0..0, warnings);
        config.written = WrittenKeys::from_document(doc);
        Ok(config)
    }

    /// `host:port` of the SPIRE server (IPv6 hosts in brackets), as Go's `net.JoinHostPort`.
    pub fn server_endpoint(&self) -> String {
        crate::join_host_port(&self.server_address, self.server_port)
    }

    /// Whether the agent bootstraps without authenticating the server.
    pub fn insecure_bootstrap(&self) -> bool {
        self.trust_bundle == TrustBundleSource::Insecure
    }

    /// The enabled KeyManager (exactly one after validation).
    pub fn key_manager(&self) -> &PluginConfig {
        self.plugins.enabled("KeyManager").next().expect("validated: exactly one KeyManager")
    }

    /// How the agent attests its node.
    ///
    /// When a join token is configured (`join_token`, `join_token_file`, `-joinToken` or
    /// `-joinTokenFile`), the agent attests with the built-in `join_token` attestor and that
    /// token, whatever NodeAttestor the `plugins` block names: this is SPIRE's behaviour
    /// (`pkg/agent/agent.go` uses `nodeattestor.JoinToken` whenever the token is set). Since
    /// the configured plugin would go unused, a file with a join token may omit NodeAttestor
    /// altogether (SPIRE's catalog would still insist on one); if it names one other than
    /// `join_token`, a warning says it is not used. Without a token, the one enabled
    /// NodeAttestor plugin is used.
    pub fn node_attestation(&self) -> NodeAttestation<'_> {
        match &self.join_token {
            Some(token) => NodeAttestation::JoinToken(token),
            None => NodeAttestation::Plugin(
                self.plugins.enabled("NodeAttestor").next().expect("validated: exactly one NodeAttestor"),
            ),
        }
    }

    /// The configured NodeAttestor plugin, if any. With a join token it is not the one used:
    /// see [`AgentConfig::node_attestation`].
    pub fn node_attestor(&self) -> Option<&PluginConfig> {
        self.plugins.enabled("NodeAttestor").next()
    }

    /// The enabled WorkloadAttestors (at least one after validation).
    pub fn workload_attestors(&self) -> impl Iterator<Item = &PluginConfig> {
        self.plugins.enabled("WorkloadAttestor")
    }

    /// The enabled SVIDStores.
    pub fn svid_stores(&self) -> impl Iterator<Item = &PluginConfig> {
        self.plugins.enabled("SVIDStore")
    }
}

/// The sections other than `agent`, read first.
struct Rest {
    plugins: Plugins,
    health_checks: HealthChecks,
    telemetry: Telemetry,
}

/// The whole document; `None` only when an error was recorded.
fn build(doc: &Value, o: &AgentOverrides, diags: &mut Diagnostics) -> Option<AgentConfig> {
    let mut top = Reader::new("", doc, diags)?;
    let known: Vec<&str> = AGENT_PLUGIN_TYPES.iter().map(|(t, _)| *t).collect();
    let plugins = top.object("plugins").map(|r| Plugins::read(r, &known));
    if plugins.is_none() {
        top.diags().error(ConfigError::invalid("plugins section must be configured", None));
    }
    let health_checks = top.object("health_checks").map(HealthChecks::read).unwrap_or_default();
    let telemetry = top.object("telemetry").map(Telemetry::read).unwrap_or_default();
    let agent = match top.object("agent") {
        Some(r) => read_agent(r, o),
        None => {
            top.diags().error(ConfigError::invalid("agent section must be configured", None));
            None
        }
    };
    // The plugins are checked once the join token is known; without a readable `agent` block,
    // SPIRE's own rule (exactly one NodeAttestor) applies.
    let has_join_token = agent.as_ref().is_some_and(|a| a.join_token.is_some());
    if let Some(plugins) = &plugins {
        check_plugins(plugins, has_join_token, top.diags());
    }
    top.finish();
    let rest = Rest { plugins: plugins?, health_checks, telemetry };
    agent.map(|a| a.complete(rest))
}

/// Cardinality (with the join-token rule) and the built-in plugins' data.
fn check_plugins(plugins: &Plugins, has_join_token: bool, diags: &mut Diagnostics) {
    let rules: Vec<(&str, Cardinality)> = AGENT_PLUGIN_TYPES
        .iter()
        .map(|&(t, rule)| if t == "NodeAttestor" && has_join_token { (t, Cardinality::MaybeOne) } else { (t, rule) })
        .collect();
    plugins.check_cardinality(&rules, diags);
    if has_join_token {
        for p in plugins.enabled("NodeAttestor").filter(|p| p.name != "join_token") {
            diags.warn(format!(
                "a join token is configured: the agent attests with the built-in join_token node attestor, and \
                 NodeAttestor {:?} (line {}) is not used",
                p.name, p.pos.line
            ));
        }
    }
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
            ("KeyManager", "disk") => record(DiskKeyManagerAgentConfig::from_plugin(p).map(drop)),
            ("KeyManager", "memory") | ("NodeAttestor", "join_token") => record(expect_no_data(p)),
            ("WorkloadAttestor", "unix") => record(UnixWorkloadAttestorConfig::from_plugin(p).map(drop)),
            _ => {}
        }
    }
}

/// The `agent` block, validated, waiting for the other sections.
struct AgentBlock {
    trust_domain: TrustDomain,
    server_address: String,
    server_port: u16,
    trust_bundle: TrustBundleSource,
    trust_bundle_format: TrustBundleFormat,
    data_dir: PathBuf,
    socket_path: PathBuf,
    admin_socket_path: Option<PathBuf>,
    join_token: Option<String>,
    join_token_file: Option<PathBuf>,
    log: LogConfig,
    log_selectors: Vec<String>,
    workload_x509_svid_key_type: KeyType,
    x509_svid_cache_max_size: usize,
    jwt_svid_cache_max_size: usize,
    availability_target: Option<Duration>,
    allow_unauthenticated_verifiers: bool,
    allowed_foreign_jwt_claims: Vec<String>,
    authorized_delegates: Vec<SpiffeId>,
    disable_workload_api: bool,
    disable_sds_api: bool,
    rebootstrap_mode: RebootstrapMode,
    rebootstrap_delay: Duration,
    retry_bootstrap: bool,
    sds: SdsConfig,
    profiling: Profiling,
    experimental: AgentExperimental,
}

impl AgentBlock {
    fn complete(self, rest: Rest) -> AgentConfig {
        AgentConfig {
            trust_domain: self.trust_domain,
            server_address: self.server_address,
            server_port: self.server_port,
            trust_bundle: self.trust_bundle,
            trust_bundle_format: self.trust_bundle_format,
            data_dir: self.data_dir,
            socket_path: self.socket_path,
            admin_socket_path: self.admin_socket_path,
            join_token: self.join_token,
            join_token_file: self.join_token_file,
            log: self.log,
            log_selectors: self.log_selectors,
            workload_x509_svid_key_type: self.workload_x509_svid_key_type,
            x509_svid_cache_max_size: self.x509_svid_cache_max_size,
            jwt_svid_cache_max_size: self.jwt_svid_cache_max_size,
            availability_target: self.availability_target,
            allow_unauthenticated_verifiers: self.allow_unauthenticated_verifiers,
            allowed_foreign_jwt_claims: self.allowed_foreign_jwt_claims,
            authorized_delegates: self.authorized_delegates,
            disable_workload_api: self.disable_workload_api,
            disable_sds_api: self.disable_sds_api,
            rebootstrap_mode: self.rebootstrap_mode,
            rebootstrap_delay: self.rebootstrap_delay,
            retry_bootstrap: self.retry_bootstrap,
            sds: self.sds,
            profiling: self.profiling,
            experimental: self.experimental,
            plugins: rest.plugins,
            health_checks: rest.health_checks,
            telemetry: rest.telemetry,
            written: WrittenKeys::default(),
            warnings: Vec::new(),
        }
    }
}

/// A setting from a flag (no position) or from the file (with the position of its value).
type Sourced<T> = Option<(T, Option<Pos>)>;

/// The flag if given (non-empty), else the file's value.
fn flag_or_file<T>(flag: Option<T>, file: Option<(T, Pos)>) -> Sourced<T> {
    match flag {
        Some(v) => Some((v, None)),
        None => file.map(|(v, pos)| (v, Some(pos))),
    }
}

fn non_empty(flag: Option<&String>) -> Option<String> {
    flag.filter(|s| !s.is_empty()).cloned()
}

fn non_empty_path(flag: Option<&PathBuf>) -> Option<PathBuf> {
    flag.filter(|p| !p.as_os_str().is_empty()).cloned()
}

/// The `agent` block with the flags applied; `None` if it has errors (all recorded).
fn read_agent(mut r: Reader<'_, '_>, o: &AgentOverrides) -> Option<AgentBlock> {
    let block_line = r.pos().line;

    // Required keys, in SPIRE's order of checks. The file's keys are always read so that they
    // count as known, even when a flag wins.
    let address_mistyped = is_block_or_list(r.peek("server_address"));
    let address_file = r.string_at("server_address");
    let server_address = flag_or_file(non_empty(o.server_address.as_ref()), address_file)
        .map(|(a, _)| a.trim_matches(['[', ']']).to_owned());
    if server_address.is_none() && !address_mistyped {
        r.diags().error(ConfigError::invalid("server_address must be configured", block_line));
    }
    let port_file = int_at::<u16>(&mut r, "server_port");
    let server_port =
        o.server_port.filter(|&p| p != 0).or(port_file.ok().flatten().map(|(p, _)| p).filter(|&p| p != 0));
    if server_port.is_none() && port_file.is_ok() {
        r.diags().error(ConfigError::invalid("server_port must be configured", block_line));
    }
    let td_mistyped = is_block_or_list(r.peek("trust_domain"));
    let td_file = r.string_at("trust_domain");
    let trust_domain = match flag_or_file(non_empty(o.trust_domain.as_ref()), td_file) {
        Some((td, pos)) => parse_trust_domain(&td, pos.map(|p| p.line), r.diags()),
        None if td_mistyped => None, // already reported
        None => {
            r.diags().error(ConfigError::invalid("trust_domain must be configured", block_line));
            None
        }
    };

    let trust_bundle = read_trust_bundle(&mut r, o, block_line);
    let format_flag = non_empty(o.trust_bundle_format.as_ref());
    let format_file = r.string_at("trust_bundle_format");
    let trust_bundle_format = match flag_or_file(format_flag, format_file) {
        None => Some(TrustBundleFormat::Pem),
        Some((text, pos)) => match text.as_str() {
            "pem" => Some(TrustBundleFormat::Pem),
            "spiffe" => Some(TrustBundleFormat::Spiffe),
            _ => {
                let message = "invalid value for trust_bundle_format, expected \"pem\" or \"spiffe\"";
                r.diags().error(ConfigError::invalid(message, pos.map(|p| p.line)));
                None
            }
        },
    };

    let data_dir_file = r.non_empty_string("data_dir").map(PathBuf::from);
    let data_dir =
        non_empty_path(o.data_dir.as_ref()).or(data_dir_file).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let socket_path_file = r.non_empty_string("socket_path").map(PathBuf::from);
    let socket_path = non_empty_path(o.socket_path.as_ref())
        .or(socket_path_file)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_PATH));
    let admin_socket_path = r.string_at("admin_socket_path").map(|(p, pos)| (PathBuf::from(p), pos));
    if let Some((admin, pos)) = &admin_socket_path {
        check_admin_socket(&socket_path, admin, pos.line, r.diags());
    }
    let admin_socket_path = admin_socket_path.map(|(p, _)| p);

    let (join_token, join_token_file) = read_join_token(&mut r, o, block_line);
    let log = read_log(&mut r, o);
    let log_selectors = r.string_list("log_selectors").unwrap_or_default();
    let workload_x509_svid_key_type = match r.string_at("workload_x509_svid_key_type") {
        Some((text, pos)) => parse_workload_key_type(&text, pos.line, r.diags()),
        None => Some(KeyType::EcP256),
    };
    let x509_svid_cache_max_size = read_cache_size(&mut r, "x509_svid_cache_max_size");
    let jwt_svid_cache_max_size = read_cache_size(&mut r, "jwt_svid_cache_max_size");
    let availability_target = read_availability_target(&mut r);
    let allow_unauthenticated_verifiers =
        r.bool("allow_unauthenticated_verifiers").unwrap_or(false) || o.allow_unauthenticated_verifiers;
    let allowed_foreign_jwt_claims = r.string_list("allowed_foreign_jwt_claims").unwrap_or_default();
    let authorized_delegates = read_authorized_delegates(&mut r, trust_domain.as_ref());
    let disable_workload_api = r.bool("disable_workload_api").unwrap_or(false) || o.disable_workload_api;
    let disable_sds_api = r.bool("disable_sds_api").unwrap_or(false) || o.disable_sds_api;
    let rebootstrap_mode = read_rebootstrap_mode(&mut r, o);
    let rebootstrap_delay = read_rebootstrap_delay(&mut r, o);
    let retry_bootstrap = r.bool("retry_bootstrap").unwrap_or(false);
    let sds = r.object("sds").map(read_sds).unwrap_or_default();
    if sds.default_all_bundles_name == sds.default_bundle_name {
        r.diags().warn(
            "The \"default_bundle_name\" and \"default_all_bundles_name\" configurables have the same value. \
             \"default_all_bundles_name\" will be ignored. Please configure distinct values or use the defaults. \
             This will be a configuration error in a future release.",
        );
    }
    let profiling = Profiling {
        enabled: r.bool("profiling_enabled").unwrap_or(false),
        port: r.int("profiling_port"),
        freq: r.int("profiling_freq"),
        names: r.string_list("profiling_names").unwrap_or_default(),
    };
    let experimental = r.object("experimental").map_or_else(|| Some(AgentExperimental::default()), read_experimental);
    r.finish();

    Some(AgentBlock {
        trust_domain: trust_domain?,
        server_address: server_address?,
        server_port: server_port?,
        trust_bundle: trust_bundle?,
        trust_bundle_format: trust_bundle_format?,
        data_dir,
        socket_path,
        admin_socket_path,
        join_token: join_token?,
        join_token_file,
        log: log?,
        log_selectors,
        workload_x509_svid_key_type: workload_x509_svid_key_type?,
        x509_svid_cache_max_size: x509_svid_cache_max_size?,
        jwt_svid_cache_max_size: jwt_svid_cache_max_size?,
        availability_target: availability_target?,
        allow_unauthenticated_verifiers,
        allowed_foreign_jwt_claims,
        authorized_delegates: authorized_delegates?,
        disable_workload_api,
        disable_sds_api,
        rebootstrap_mode: rebootstrap_mode?,
        rebootstrap_delay: rebootstrap_delay?,
        retry_bootstrap,
        sds,
        profiling,
        experimental: experimental?,
    })
}

/// Whether a value is one no string conversion accepts (its error is reported by the conversion).
fn is_block_or_list(value: Option<&Value>) -> bool {
    value.is_some_and(|v| matches!(v.kind, Kind::List(_) | Kind::Object(_)))
}

fn parse_trust_domain(text: &str, line: Option<usize>, diags: &mut Diagnostics) -> Option<TrustDomain> {
    TrustDomain::parse(text)
        .map_err(|e| diags.error(ConfigError::invalid(format!("could not parse trust_domain {text:?}: {e}"), line)))
        .ok()
}

/// The bootstrap trust bundle source, with SPIRE's exclusivity rules and messages (SPIRE reports
/// the first of these problems only, and so do we).
fn read_trust_bundle(r: &mut Reader<'_, '_>, o: &AgentOverrides, block_line: usize) -> Option<TrustBundleSource> {
    // A mistyped source is reported by its conversion, not again as a missing source.
    let mistyped = ["trust_bundle_path", "trust_bundle_url", "trust_bundle_spiffe_workload_api"]
        .iter()
        .any(|key| is_block_or_list(r.peek(key)));
    let insecure_present = r.peek("insecure_bootstrap").is_some();
    let path_flag = non_empty_path(o.trust_bundle_path.as_ref());
    let path_file = r.string_at("trust_bundle_path").map(|(p, pos)| (PathBuf::from(p), pos));
    let path = flag_or_file(path_flag, path_file);
    let url = flag_or_file(non_empty(o.trust_bundle_url.as_ref()), r.string_at("trust_bundle_url"));
    let unix_socket = r.string_at("trust_bundle_unix_socket");
    let workload_api = r.string_at("trust_bundle_spiffe_workload_api");
    let insecure_file = r.peek("insecure_bootstrap").map(|v| v.pos);
    let insecure_value = r.bool("insecure_bootstrap");
    let mistyped = mistyped || (insecure_present && insecure_value.is_none());
    let insecure = match insecure_value {
        Some(true) => Some(((), insecure_file)),
        _ if o.insecure_bootstrap => Some(((), None)),
        _ => None,
    };

    // The line of a conflict: the last of the keys involved that are written in the file.
    let line_of = |sources: &[Option<Option<Pos>>]| -> Option<usize> {
        sources.iter().flatten().flatten().map(|p| p.line).max().or(Some(block_line))
    };
    let (p_at, u_at) = (path.as_ref().map(|(_, pos)| *pos), url.as_ref().map(|(_, pos)| *pos));
    let i_at = insecure.as_ref().map(|(_, pos)| *pos);
    let w_at = workload_api.as_ref().map(|(_, pos)| Some(*pos));

    let conflict = if insecure.is_some() {
        match (&url, &path, &workload_api) {
            (Some(_), Some(_), _) => Some((
                "only one of insecure_bootstrap, trust_bundle_url, or trust_bundle_path can be specified, not the \
                 three options",
                line_of(&[i_at, u_at, p_at]),
            )),
            (Some(_), None, _) => Some((
                "only one of insecure_bootstrap or trust_bundle_url can be specified, not both",
                line_of(&[i_at, u_at]),
            )),
            (None, Some(_), _) => Some((
                "only one of insecure_bootstrap or trust_bundle_path can be specified, not both",
                line_of(&[i_at, p_at]),
            )),
            (None, None, Some(_)) => Some((
                "only one of insecure_bootstrap or trust_bundle_spiffe_workload_api can be specified, not both",
                line_of(&[i_at, w_at]),
            )),
            (None, None, None) => None,
        }
    } else if path.is_none() && url.is_none() && workload_api.is_none() {
        if mistyped {
            return None;
        }
        Some((
            "trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set",
            Some(block_line),
        ))
    } else if url.is_some() && path.is_some() {
        Some(("only one of trust_bundle_url or trust_bundle_path can be specified, not both", line_of(&[u_at, p_at])))
    } else if workload_api.is_some() && url.is_some() {
        Some((
            "only one of trust_bundle_spiffe_workload_api or trust_bundle_url can be specified, not both",
            line_of(&[w_at, u_at]),
        ))
    } else if workload_api.is_some() && path.is_some() {
        Some((
            "only one of trust_bundle_spiffe_workload_api or trust_bundle_path can be specified, not both",
            line_of(&[w_at, p_at]),
        ))
    } else {
        None
    };
    if let Some((message, line)) = conflict {
        r.diags().error(ConfigError::invalid(message, line));
        return None;
    }

    if let Some((socket, pos)) = &unix_socket
        && url.is_none()
    {
        r.diags().warn(format!(
            "trust_bundle_unix_socket (line {}) is only used with trust_bundle_url; {socket:?} is ignored",
            pos.line
        ));
    }
    if insecure.is_some() {
        return Some(TrustBundleSource::Insecure);
    }
    if let Some((path, _)) = path {
        return Some(TrustBundleSource::Path(path));
    }
    if let Some((address, _)) = workload_api {
        return Some(TrustBundleSource::SpiffeWorkloadApi(address));
    }
    let (url, url_pos) = url?;
    let line = url_pos.map(|p| p.line);
    let unix_socket = unix_socket.map(|(s, _)| PathBuf::from(s));
    match check_trust_bundle_url(&url, unix_socket.is_some()) {
        Ok(()) => Some(TrustBundleSource::Url { url, unix_socket }),
        Err(message) => {
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
    }
}

/// SPIRE's checks of `trust_bundle_url`: `https://`, or `http://` through a Unix socket with no
/// query parameter named `spiffe-*` or `spire-*` (those are reserved for the agent's own use).
/// The scheme is found as Go's `url.Parse` finds it.
fn check_trust_bundle_url(url: &str, unix_socket: bool) -> Result<(), String> {
    if url.chars().any(|c| c.is_ascii_control()) {
        return Err(format!(
            "unable to parse trust bundle URL: parse {url:?}: net/url: invalid control character in URL"
        ));
    }
    let scheme = go_url_scheme(url).map_err(|e| format!("unable to parse trust bundle URL: parse {url:?}: {e}"))?;
    if !unix_socket {
        return if scheme == "https" { Ok(()) } else { Err("trust bundle URL must start with https://".to_owned()) };
    }
    if scheme != "http" {
        return Err("trust bundle URL must start with http://".to_owned());
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = query_unescape(pair.split_once('=').map_or(pair, |(k, _)| k));
        for reserved in ["spiffe-", "spire-"] {
            if key.starts_with(reserved) {
                return Err(format!("trust_bundle_url query params can not start with {reserved}"));
            }
        }
    }
    Ok(())
}

/// Go's `url.getScheme`, lower-cased: the scheme, empty if there is none.
fn go_url_scheme(url: &str) -> Result<String, &'static str> {
    for (i, c) in url.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme"),
            ':' => return Ok(url[..i].to_ascii_lowercase()),
            _ => return Ok(String::new()),
        }
    }
    Ok(String::new())
}

/// Go's `url.QueryUnescape`, leniently: `+` is a space and valid `%XX` escapes are decoded.
fn query_unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// An integer key with where it is written: `Ok(None)` if absent, `Err` once the reason is
/// recorded (mistyped or out of `T`'s range).
fn int_at<T: TryFrom<i64>>(r: &mut Reader<'_, '_>, key: &str) -> Result<Option<(T, usize)>, ()> {
    let Some(value) = r.take(key) else { return Ok(None) };
    let path = r.key_path(key);
    let line = value.pos.line;
    let n = crate::decode::to_int(value, &path).map_err(|e| r.diags().error(e))?;
    T::try_from(n)
        .map(|v| Some((v, line)))
        .map_err(|_| r.diags().error(ConfigError::invalid(format!("{path}: {n} is out of range"), line)))
}

/// A Go duration key with where it is written: `Ok(None)` if absent or empty (SPIRE's "unset"),
/// `Err` once the reason is recorded. Same messages as [`Reader::duration`].
fn duration_at(r: &mut Reader<'_, '_>, key: &str) -> Result<Option<(Duration, usize)>, ()> {
    let Some(value) = r.take(key) else { return Ok(None) };
    let path = r.key_path(key);
    let line = value.pos.line;
    let text = crate::decode::to_string(value, &path).map_err(|e| r.diags().error(e))?;
    if text.is_empty() {
        return Ok(None);
    }
    crate::duration::parse_duration(&text).map(|d| Some((d, line))).map_err(|e| {
        r.diags().error(ConfigError::invalid(format!("could not parse {path} {text:?}: {e}"), line));
    })
}

/// SPIRE refuses an admin socket next to (or below) the public one, which workloads can reach.
fn check_admin_socket(socket_path: &Path, admin: &Path, line: usize, diags: &mut Diagnostics) {
    let (Ok(public), Ok(admin)) = (std::path::absolute(socket_path), std::path::absolute(admin)) else { return };
    let Some(public_dir) = public.parent() else { return };
    if admin.starts_with(public_dir) && admin != public_dir {
        let message =
            "admin socket cannot be in the same directory or a subdirectory as that containing the Workload API socket";
        diags.error(ConfigError::invalid(message, line));
    }
}

/// The join token: `-joinToken` / `join_token`, or read now from `-joinTokenFile` /
/// `join_token_file`. The outer `None` means an error was recorded.
fn read_join_token(
    r: &mut Reader<'_, '_>,
    o: &AgentOverrides,
    block_line: usize,
) -> (Option<Option<String>>, Option<PathBuf>) {
    let token_file_value = r.string_at("join_token");
    let file_file_value = r.string_at("join_token_file").map(|(p, pos)| (PathBuf::from(p), pos));
    let token = flag_or_file(non_empty(o.join_token.as_ref()), token_file_value);
    let file = flag_or_file(non_empty_path(o.join_token_file.as_ref()), file_file_value);
    match (token, file) {
        (Some(_), Some((_, pos))) => {
            let message = "only one of join_token or join_token_file can be specified, not both";
            r.diags().error(ConfigError::invalid(message, pos.map_or(block_line, |p| p.line)));
            (None, None)
        }
        (Some((token, _)), None) => (Some(Some(token)), None),
        (None, None) => (Some(None), None),
        (None, Some((path, pos))) => {
            let line = pos.map(|p| p.line);
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => (Some(Some(text.trim().to_owned())), Some(path)),
                Ok(_) => {
                    let message = format!("join token file {:?} is empty", path.display().to_string());
                    r.diags().error(ConfigError::invalid(message, line));
                    (None, Some(path))
                }
                Err(e) => {
                    let message = format!("unable to read join token file {:?}: {e}", path.display().to_string());
                    r.diags().error(ConfigError::invalid(message, line));
                    (None, Some(path))
                }
            }
        }
    }
}

fn read_log(r: &mut Reader<'_, '_>, o: &AgentOverrides) -> Option<LogConfig> {
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
    let file_file = r.non_empty_string("log_file").map(PathBuf::from);
    let file = non_empty_path(o.log_file.as_ref()).or(file_file);
    let source_location = r.bool("log_source_location").unwrap_or(false) || o.log_source_location;
    Some(LogConfig { level: level?, format: format?, file, source_location })
}

/// The agent's workload key types (`pkg/agent/workloadkey`): no rsa-4096.
fn parse_workload_key_type(text: &str, line: usize, diags: &mut Diagnostics) -> Option<KeyType> {
    match text.to_ascii_lowercase().parse::<KeyType>() {
        Ok(kt) if kt != KeyType::Rsa4096 => Some(kt),
        _ => {
            let message = format!(
                "error parsing workload_x509_svid_key_type: key type {text:?} is unknown; must be one of \
                 [rsa-2048, ec-p256, ec-p384]"
            );
            diags.error(ConfigError::invalid(message, line));
            None
        }
    }
}

/// A cache size: negative is refused with SPIRE's message, 0 means the default.
fn read_cache_size(r: &mut Reader<'_, '_>, key: &str) -> Option<usize> {
    match int_at::<i64>(r, key).ok()? {
        None | Some((0, _)) => Some(DEFAULT_CACHE_MAX_SIZE),
        Some((n, line)) if n < 0 => {
            r.diags().error(ConfigError::invalid(format!("{key} should not be negative"), line));
            None
        }
        Some((n, line)) => usize::try_from(n)
            .map_err(|_| r.diags().error(ConfigError::invalid(format!("{key}: {n} is out of range"), line)))
            .ok(),
    }
}

/// `availability_target`: `None` only on error; `Some(None)` when unset.
fn read_availability_target(r: &mut Reader<'_, '_>) -> Option<Option<Duration>> {
    match duration_at(r, "availability_target").ok()? {
        Some((t, line)) if t < MIN_AVAILABILITY_TARGET => {
            let message = format!("availability_target must be at least {}", format_duration(MIN_AVAILABILITY_TARGET));
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
        found => Some(found.map(|(t, _)| t)),
    }
}

fn read_authorized_delegates(r: &mut Reader<'_, '_>, td: Option<&TrustDomain>) -> Option<Vec<SpiffeId>> {
    let Some(value) = r.take("authorized_delegates") else { return Some(Vec::new()) };
    let path = r.key_path("authorized_delegates");
    let raw = crate::decode::to_string_list(value, &path).map_err(|e| r.diags().error(e)).ok()?;
    let mut ids = Vec::new();
    let mut ok = true;
    for text in raw {
        let checked = SpiffeId::parse(&text).map_err(|e| e.to_string()).and_then(|id| match td {
            Some(td) if !id.is_member_of(td) => {
                Err(format!("SPIFFE ID {:?} is not a member of trust domain {:?}", id.to_string(), td.as_str()))
            }
            _ => Ok(id),
        });
        match checked {
            Ok(id) => ids.push(id),
            Err(e) => {
                ok = false;
                let message = format!("error validating authorized delegate: {e}");
                r.diags().error(ConfigError::invalid(message, value.pos.line));
            }
        }
    }
    ok.then_some(ids)
}

fn read_rebootstrap_mode(r: &mut Reader<'_, '_>, o: &AgentOverrides) -> Option<RebootstrapMode> {
    let file = r.string_at("rebootstrap_mode");
    match flag_or_file(non_empty(o.rebootstrap_mode.as_ref()), file) {
        None => Some(RebootstrapMode::Never),
        Some((text, pos)) => RebootstrapMode::parse(&text).or_else(|| {
            let name = if pos.is_some() { "rebootstrap_mode" } else { "-rebootstrapMode" };
            let message = format!("invalid {name} {text:?}: use \"never\", \"auto\" or \"always\"");
            r.diags().error(ConfigError::invalid(message, pos.map(|p| p.line)));
            None
        }),
    }
}

fn read_rebootstrap_delay(r: &mut Reader<'_, '_>, o: &AgentOverrides) -> Option<Duration> {
    let file = duration_at(r, "rebootstrap_delay");
    match non_empty(o.rebootstrap_delay.as_ref()) {
        Some(flag) => crate::duration::parse_duration(&flag)
            .map_err(|e| {
                let message = format!("could not parse -rebootstrapDelay {flag:?}: {e}");
                r.diags().error(ConfigError::invalid(message, None));
            })
            .ok(),
        None => file.ok().map(|d| d.map_or(DEFAULT_REBOOTSTRAP_DELAY, |(d, _)| d)),
    }
}

fn read_sds(mut r: Reader<'_, '_>) -> SdsConfig {
    let d = SdsConfig::default();
    let sds = SdsConfig {
        default_svid_name: r.non_empty_string("default_svid_name").unwrap_or(d.default_svid_name),
        default_bundle_name: r.non_empty_string("default_bundle_name").unwrap_or(d.default_bundle_name),
        default_all_bundles_name: r.non_empty_string("default_all_bundles_name").unwrap_or(d.default_all_bundles_name),
        disable_spiffe_cert_validation: r.bool("disable_spiffe_cert_validation").unwrap_or(false),
    };
    r.finish();
    sds
}

/// `experimental { ... }`; `None` only when an error was recorded.
fn read_experimental(r: Reader<'_, '_>) -> Option<AgentExperimental> {
    let mut r = r.unknown_keys(UnknownKeys::Warn);
    let d = AgentExperimental::default();
    let mut ok = true;

    let sync_interval = duration_at(&mut r, "sync_interval");
    ok &= sync_interval.is_ok();
    let sync_interval = sync_interval.ok().flatten().map(|(d, _)| d);

    let use_sync = r.bool("use_sync_authorized_entries");
    if use_sync.is_some() {
        r.diags().warn(
            "The 'use_sync_authorized_entries' configuration is deprecated. The option to disable it will be \
             removed in SPIRE 1.13.",
        );
    }

    let jwt_svid_cache_hit_timeout = match duration_at(&mut r, "jwt_svid_cache_hit_timeout") {
        Err(()) => None,
        Ok(None) => Some(d.jwt_svid_cache_hit_timeout),
        Ok(Some((t, line))) if t < MIN_JWT_SVID_CACHE_HIT_TIMEOUT => {
            let message = format!(
                "jwt_svid_cache_hit_timeout ({}) must be greater than {}",
                format_duration(t),
                format_duration(MIN_JWT_SVID_CACHE_HIT_TIMEOUT)
            );
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
        Ok(Some((t, line))) if t >= DEFAULT_JWT_SVID_CACHE_HIT_TIMEOUT => {
            let message = format!(
                "jwt_svid_cache_hit_timeout ({}) must be less than {}",
                format_duration(t),
                format_duration(DEFAULT_JWT_SVID_CACHE_HIT_TIMEOUT)
            );
            r.diags().error(ConfigError::invalid(message, line));
            None
        }
        Ok(Some((t, _))) => {
            r.diags().warn("The use of 'jwt_svid_cache_hit_timeout' is experimental");
            Some(t)
        }
    };
    ok &= jwt_svid_cache_hit_timeout.is_some();

    let named_pipe_name = r.non_empty_string("named_pipe_name");
    let admin_named_pipe_name = r.non_empty_string("admin_named_pipe_name");
    if cfg!(not(windows)) {
        let line = r.pos().line;
        if named_pipe_name.is_some() {
            let message = "invalid configuration: named_pipe_name is not supported in this platform; please use \
                           socket_path instead";
            r.diags().error(ConfigError::invalid(message, line));
            ok = false;
        }
        if admin_named_pipe_name.is_some() {
            let message = "invalid configuration: admin_named_pipe_name is not supported in this platform; please \
                           use admin_socket_path instead";
            r.diags().error(ConfigError::invalid(message, line));
            ok = false;
        }
    }

    let mut e = AgentExperimental {
        sync_interval: sync_interval.unwrap_or(d.sync_interval),
        use_sync_authorized_entries: use_sync.unwrap_or(d.use_sync_authorized_entries),
        jwt_svid_cache_hit_timeout: jwt_svid_cache_hit_timeout.unwrap_or(d.jwt_svid_cache_hit_timeout),
        named_pipe_name,
        admin_named_pipe_name,
        require_pq_kem: r.bool("require_pq_kem").unwrap_or(false),
        feature_flags: r.string_list("feature_flags").unwrap_or_default(),
        ratelimit: r.take("ratelimit").cloned(),
        broker: r.take("broker").cloned(),
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
    ok.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_checks() {
        assert_eq!(check_trust_bundle_url("https://example.org/bundle", false), Ok(()));
        assert_eq!(check_trust_bundle_url("HTTPS://example.org/bundle", false), Ok(()));
        assert_eq!(check_trust_bundle_url("foo.bar", false).unwrap_err(), "trust bundle URL must start with https://");
        assert_eq!(
            check_trust_bundle_url("http://example.org", false).unwrap_err(),
            "trust bundle URL must start with https://"
        );
        assert_eq!(check_trust_bundle_url("foo.bar", true).unwrap_err(), "trust bundle URL must start with http://");
        assert_eq!(check_trust_bundle_url("http://localhost/tb?instance=a&x", true), Ok(()));
        assert_eq!(
            check_trust_bundle_url("http://localhost/trustbundle?spiffe-test=foo", true).unwrap_err(),
            "trust_bundle_url query params can not start with spiffe-"
        );
        assert_eq!(
            check_trust_bundle_url("http://localhost/trustbundle?a=1&%73pire-x=foo#f", true).unwrap_err(),
            "trust_bundle_url query params can not start with spire-"
        );
        assert_eq!(
            check_trust_bundle_url("://x", false).unwrap_err(),
            "unable to parse trust bundle URL: parse \"://x\": missing protocol scheme"
        );
        assert!(check_trust_bundle_url("https://a\nb", false).unwrap_err().contains("invalid control character"));
    }

    #[test]
    fn unescape() {
        assert_eq!(query_unescape("a+b%20c%zz%4"), "a b c%zz%4");
    }
}
