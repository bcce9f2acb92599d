//! `spire-server run` and `spire-server validate`: flags, config loading, logging, signals.

use std::path::PathBuf;

use spire_cli::flags::FlagSet;
use spire_config::{ServerConfig, ServerOverrides};

use crate::api::logger::LevelSetter;

/// The flags of `run` and `validate`.
#[derive(Debug, Default)]
pub struct RunFlags {
    /// `-config`.
    pub config: Option<PathBuf>,
    /// `-expandEnv`.
    pub expand_env: bool,
    /// Everything that overrides the file.
    pub overrides: ServerOverrides,
}

/// Why the command line was refused (Go's message; `-h` asks for the usage text).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

/// The flags of `spire-server run` and `validate`, with SPIRE's names and usage.
pub fn flag_set(command: &str) -> FlagSet {
    let mut f = FlagSet::new(command);
    f.string("config", spire_config::server::DEFAULT_CONFIG_PATH, "Path to a SPIRE config file")
        .bool("expandEnv", false, "Expand environment variables in SPIRE config file")
        .string("bindAddress", "", "IP address or DNS name of the SPIRE server")
        .string("serverPort", "", "Port number of the SPIRE server")
        .string("dataDir", "", "Directory to store runtime data to")
        .string("trustDomain", "", "The trust domain that this server belongs to")
        .string("socketPath", "", "Path to bind the SPIRE Server API socket to")
        .string("logLevel", "", "'debug', 'info', 'warn', or 'error'")
        .string("logFormat", "", "'text' or 'json'")
        .string("logFile", "", "File to write logs to")
        .bool("logSourceLocation", false, "Include source file, line number, and function name in log lines");
    f
}

/// Parses the command line of `run`/`validate` with Go's flag rules.
pub fn parse_flags(args: &[String]) -> Result<RunFlags, FlagError> {
    let set = flag_set("run");
    let p = set.parse(args).map_err(|e| match e {
        spire_cli::flags::FlagError::Help => FlagError(set.usage()),
        spire_cli::flags::FlagError::Invalid(m) => FlagError(format!("{m}\n{}", set.usage())),
    })?;
    let opt = |name: &str| Some(p.string(name)).filter(|v| !v.is_empty());
    let server_port = match opt("serverPort") {
        Some(v) => Some(v.parse().map_err(|_| FlagError(format!("invalid value {v:?} for flag -serverPort")))?),
        None => None,
    };
    Ok(RunFlags {
        config: Some(PathBuf::from(p.string("config"))),
        expand_env: p.bool("expandEnv"),
        overrides: ServerOverrides {
            bind_address: opt("bindAddress"),
            server_port,
            data_dir: opt("dataDir").map(PathBuf::from),
            trust_domain: opt("trustDomain"),
            socket_path: opt("socketPath").map(PathBuf::from),
            log_level: opt("logLevel"),
            log_format: opt("logFormat"),
            log_file: opt("logFile").map(PathBuf::from),
            log_source_location: p.bool("logSourceLocation"),
        },
    })
}

/// Loads the configuration the flags point at.
pub fn load_config(flags: &RunFlags) -> Result<ServerConfig, spire_config::ConfigError> {
    let path = flags.config.clone().unwrap_or_else(|| PathBuf::from(spire_config::server::DEFAULT_CONFIG_PATH));
    ServerConfig::load_file(path, flags.expand_env, &flags.overrides)
}

/// `validate`: loads the configuration the flags point at, decodes its plugins and refuses what
/// this build cannot do as `run` does ([`crate::run::Plugins::decode`],
/// [`crate::run::refuse_unsupported`]), opening and connecting nothing.
pub fn validate(args: &[String]) -> Result<(ServerConfig, Vec<String>), String> {
    let config = load_config(&parse_flags(args).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    crate::run::Plugins::decode(&config).map_err(|e| e.to_string())?;
    crate::run::refuse_unsupported(&config).map_err(|e| e.to_string())?;
    let notes = validate_external_plugins(&config)?;
    Ok((config, notes))
}

/// Starts each external plugin only to run its `Validate` on its data (SPIRE v1.13.3's `validate`
/// starts no plugin; the SDK's Validate exists for this). Returns the plugins' notes, each prefixed
/// with the plugin's name; the first invalid answer is the error.
fn validate_external_plugins(config: &ServerConfig) -> Result<Vec<String>, String> {
    let external: Vec<&spire_config::PluginConfig> =
        config.plugins.all().iter().filter(|p| p.enabled && p.is_external()).collect();
    if external.is_empty() {
        return Ok(Vec::new());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut notes = Vec::new();
        for plugin in external {
            use crate::catalog::external::{self, ExternalConfig, ExternalPlugins};
            let Some(service) = external::service_of(&plugin.plugin_type) else { continue };
            let host = external::host_services::validation_services();
            let td = config.trust_domain.to_string();
            let plugin_config =
                ExternalConfig::from_plugin(plugin).expect("an external plugin").map_err(|e| e.to_string())?;
            let said =
                ExternalPlugins::validate(&plugin_config, &td, service, host).await.map_err(|e| e.to_string())?;
            notes.extend(said.into_iter().map(|note| format!("plugin {:?}: {note}", plugin.name)));
        }
        Ok(notes)
    })
}

/// Installs the process logger per the config; returns the handle the Logger API uses.
pub fn init_logging(config: &ServerConfig) -> Result<LevelSetter, String> {
    spire_cli::logging::init(&config.log)
}
