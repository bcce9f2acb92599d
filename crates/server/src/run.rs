//! `spire-server run`: from a loaded configuration to serving listeners, in the order SPIRE starts:
//! datastore, key manager, upstream authority, CA, server SVID, registry index, then the endpoints.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use spire_config::plugin_data::{DatabaseType, DiskKeyManagerConfig, DiskUpstreamAuthorityConfig, SqlDataStoreConfig};
use spire_config::{PluginConfig, ServerConfig};
use spire_datastore::sql_connection::{DbTls, convert};
use spire_datastore::{DataStore, SqlOptions, SqlStore, SqliteOptions};
use spire_identity::x509::Subject;
use spire_identity::{BundleSet, TrustDomain};
use tonic::service::Routes;

use crate::api::debug::DebugService;
use crate::api::health::HealthService;
use crate::api::logger::{LevelSetter, LoggerService};
use crate::api::{ServerContext, Settings};
use crate::authorized::follower::{self, EventCursor};
use crate::bundle_events::BundleConsumers;
use crate::ca::{Ca, CaManager, CaManagerConfig};
use crate::catalog::credentialcomposer::CredentialComposers;
use crate::catalog::external::host_services::ServerHost;
use crate::catalog::external::{self as ext, ExternalPlugins};
use crate::catalog::keymanager::{DiskKeyManager, KeyManager, MemoryKeyManager};
use crate::catalog::nodeattestor::{
    self, K8sPsatAttestor, NodeAttestor, NodeAttestors, SshPopAttestor, TpmDevIdAttestor, X509PopAttestor, k8s_psat,
    sshpop, tpm_devid, x509pop,
};
use crate::catalog::upstreamauthority::spire::SpireUpstreamConfig;
use crate::catalog::upstreamauthority::{DiskUpstreamAuthority, SpireUpstreamAuthority, UpstreamAuthority};
use crate::endpoints::{self, tls::ServerCert};
use crate::server_svid::ServerSvid;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration names something this build cannot do.
    #[error("{0}")]
    Config(String),
    /// The datastore could not be opened.
    #[error("failed to open the datastore: {0}")]
    DataStore(#[from] spire_datastore::DataStoreError),
    /// A plugin failed to start.
    #[error("{0}")]
    Plugin(String),
    /// The CA could not be set up.
    #[error("failed to set up the CA: {0}")]
    Ca(#[from] crate::ca::CaManagerError),
    /// The server SVID could not be issued.
    #[error("{0}")]
    ServerSvid(#[from] crate::server_svid::ServerSvidError),
    /// A listener failed.
    #[error("{0}")]
    Endpoint(#[from] endpoints::EndpointError),
    /// The federation bundle endpoint could not start.
    #[error("{0}")]
    BundleEndpoint(#[from] crate::federation::BundleEndpointError),
    /// An external plugin failed to load or configure (the message names it).
    #[error("{0}")]
    ExternalPlugin(#[from] spire_plugin_host::PluginError),
    /// A notifier refused the bundle loaded at start.
    #[error("{0}")]
    BundleEvents(#[from] crate::bundle_events::BundleEventsError),
}

/// Opens the configured datastore: DataStore "sql" on SQLite (a file), PostgreSQL or MySQL.
pub async fn open_datastore(config: &SqlDataStoreConfig) -> Result<Arc<dyn DataStore>, RunError> {
    match config.database_type {
        DatabaseType::Sqlite3 => {
            if let Some(dir) = std::path::Path::new(&config.connection_string).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| RunError::Config(format!("cannot create {}: {e}", dir.display())))?;
            }
            let options = SqliteOptions { disable_migration: config.disable_migration, ..SqliteOptions::default() };
            Ok(Arc::new(SqlStore::open(&config.connection_string, options).await?))
        }
        DatabaseType::Postgres | DatabaseType::Mysql => {
            let tls = DbTls {
                root_ca_path: config.root_ca_path.clone(),
                client_cert_path: config.client_cert_path.clone(),
                client_key_path: config.client_key_path.clone(),
            };
            let kind = config.database_type.as_str();
            let url = |field: &str, text: &str| {
                let converted = convert(kind, text, &tls)
                    .map_err(|e| RunError::Config(format!("DataStore \"sql\" {field}: {e}")))?;
                if !converted.ignored.is_empty() {
                    tracing::warn!(field, ignored = ?converted.ignored, "connection string parameters ignored");
                }
                Ok::<_, RunError>(converted.url)
            };
            let options = SqlOptions {
                url: url("connection_string", &config.connection_string)?,
                read_only_url: config
                    .ro_connection_string
                    .as_deref()
                    .map(|t| url("ro_connection_string", t))
                    .transpose()?,
                max_open_conns: config.max_open_conns,
                conn_max_lifetime: config.conn_max_lifetime,
                disable_migration: config.disable_migration,
                ..SqlOptions::default()
            };
            Ok(Arc::new(SqlStore::connect(options).await?))
        }
    }
}

/// The configured plugins with their `plugin_data` decoded, before anything is opened or
/// connected. `validate` stops here and [`start`] builds from it, so the two cannot disagree about a
/// configuration. (The DataStore's is decoded with the configuration itself.)
#[derive(Debug)]
pub struct Plugins {
    key_manager: KeyManagerPlugin,
    upstream_authority: Option<UpstreamAuthorityPlugin>,
    node_attestors: Vec<NodeAttestorPlugin>,
    /// External (`plugin_cmd`) plugins of the types that have no built-ins here.
    notifiers: Vec<PluginConfig>,
    bundle_publishers: Vec<PluginConfig>,
    credential_composers: Vec<PluginConfig>,
}

#[derive(Debug)]
enum UpstreamAuthorityPlugin {
    Disk(DiskUpstreamAuthorityConfig),
    Spire(SpireUpstreamConfig),
    External(PluginConfig),
}

#[derive(Debug)]
enum KeyManagerPlugin {
    Disk(DiskKeyManagerConfig),
    Memory,
    External(PluginConfig),
}

/// A NodeAttestor with an instance of its own. `join_token` has none: the Agent service always
/// has it, as SPIRE's does.
#[derive(Debug)]
enum NodeAttestorPlugin {
    K8sPsat(k8s_psat::K8sPsatConfig),
    X509Pop(x509pop::X509PopConfig),
    SshPop(sshpop::SshPopConfig),
    TpmDevId(tpm_devid::TpmDevIdConfig),
    GcpIit(nodeattestor::gcp_iit::GcpIitConfig),
    AzureMsi(nodeattestor::azure_msi::AzureMsiConfig),
    HttpChallenge(nodeattestor::http_challenge::HttpChallengeConfig),
    AwsIid(nodeattestor::aws_iid::AwsIidConfig),
    External(PluginConfig),
}

impl Plugins {
    /// Decodes every plugin [`start`] configures, one arm per plugin this build has; a plugin it
    /// does not have is refused. Reads no file but a `plugin_data_file`, connects nowhere.
    pub fn decode(config: &ServerConfig) -> Result<Self, RunError> {
        let key_manager = match config.key_manager().name.as_str() {
            _ if config.key_manager().is_external() => KeyManagerPlugin::External(config.key_manager().clone()),
            "disk" => {
                KeyManagerPlugin::Disk(DiskKeyManagerConfig::from_plugin(config.key_manager()).map_err(plugin_error)?)
            }
            "memory" => KeyManagerPlugin::Memory,
            other => {
                return Err(RunError::Plugin(format!(
                    "unknown KeyManager plugin {other:?}: use \"disk\" or \"memory\""
                )));
            }
        };
        let upstream_authority = match config.upstream_authority().filter(|p| p.enabled) {
            None => None,
            Some(plugin) if plugin.is_external() => Some(UpstreamAuthorityPlugin::External(plugin.clone())),
            Some(plugin) if plugin.name == "disk" => Some(UpstreamAuthorityPlugin::Disk(
                DiskUpstreamAuthorityConfig::from_plugin(plugin).map_err(plugin_error)?,
            )),
            Some(plugin) if plugin.name == "spire" => {
                Some(UpstreamAuthorityPlugin::Spire(SpireUpstreamConfig::from_plugin(plugin).map_err(plugin_error)?))
            }
            Some(plugin) => {
                return Err(RunError::Plugin(format!(
                    "unknown UpstreamAuthority plugin {:?}: this build supports {}",
                    plugin.name,
                    spire_config::inert::supported_names(crate::inert_settings::BUILTIN_PLUGINS, "UpstreamAuthority")
                )));
            }
        };
        let mut node_attestors = Vec::new();
        for plugin in config.node_attestors().filter(|p| p.enabled) {
            node_attestors.push(match plugin.name.as_str() {
                _ if plugin.is_external() => NodeAttestorPlugin::External(plugin.clone()),
                nodeattestor::join_token::NAME => continue,
                k8s_psat::NAME => NodeAttestorPlugin::K8sPsat(
                    k8s_psat::K8sPsatConfig::from_plugin(plugin, &config.trust_domain).map_err(plugin_error)?,
                ),
                sshpop::NAME => {
                    NodeAttestorPlugin::SshPop(sshpop::SshPopConfig::from_plugin(plugin).map_err(plugin_error)?)
                }
                x509pop::NAME => {
                    NodeAttestorPlugin::X509Pop(x509pop::X509PopConfig::from_plugin(plugin).map_err(plugin_error)?)
                }
                tpm_devid::NAME => {
                    NodeAttestorPlugin::TpmDevId(tpm_devid::TpmDevIdConfig::from_plugin(plugin).map_err(plugin_error)?)
                }
                nodeattestor::gcp_iit::NAME => NodeAttestorPlugin::GcpIit(
                    nodeattestor::gcp_iit::GcpIitConfig::from_plugin(plugin).map_err(plugin_error)?,
                ),
                nodeattestor::azure_msi::NAME => NodeAttestorPlugin::AzureMsi(
                    nodeattestor::azure_msi::AzureMsiConfig::from_plugin(plugin).map_err(plugin_error)?,
                ),
                nodeattestor::aws_iid::NAME => NodeAttestorPlugin::AwsIid(
                    nodeattestor::aws_iid::AwsIidConfig::from_plugin(plugin).map_err(plugin_error)?,
                ),
                nodeattestor::http_challenge::NAME => NodeAttestorPlugin::HttpChallenge(
                    nodeattestor::http_challenge::HttpChallengeConfig::from_plugin(plugin).map_err(plugin_error)?,
                ),
                other => {
                    return Err(RunError::Plugin(format!(
                        "unknown NodeAttestor plugin {other:?}: this build supports {}",
                        spire_config::inert::supported_names(crate::inert_settings::BUILTIN_PLUGINS, "NodeAttestor")
                    )));
                }
            });
        }
        let external = |plugin_type: &str| -> Vec<PluginConfig> {
            config.plugins.enabled(plugin_type).filter(|p| p.is_external()).cloned().collect()
        };
        Ok(Self {
            key_manager,
            upstream_authority,
            node_attestors,
            notifiers: external("Notifier"),
            bundle_publishers: external("BundlePublisher"),
            credential_composers: external("CredentialComposer"),
        })
    }
}

/// Refuses settings outside the plugins that this build cannot act on and must not ignore (a
/// bundle endpoint ACME domain that is not a DNS name); `validate` and [`start`] both call it.
pub fn refuse_unsupported(config: &ServerConfig) -> Result<(), RunError> {
    if let Some(endpoint) = config.federation.as_ref().and_then(|f| f.bundle_endpoint.as_ref()) {
        crate::federation::bundle_endpoint::check(endpoint)?;
    }
    Ok(())
}

/// Where external plugins are started: the processes' owner and the host services they are offered.
struct External<'a> {
    plugins: &'a ExternalPlugins,
    host: &'a ServerHost,
}

impl External<'_> {
    /// Starts, binds and configures `config`'s plugin for the SDK `service`.
    async fn start(&self, config: &PluginConfig, service: &str) -> Result<tonic::transport::Channel, RunError> {
        let td = self.host.trust_domain.to_string();
        let plugin = ext::ExternalConfig::from_plugin(config).expect("called for plugin_cmd blocks only")?;
        Ok(self.plugins.start(&plugin, &td, service, self.host.services()).await?)
    }
}

async fn key_manager(plugin: KeyManagerPlugin, external: &External<'_>) -> Result<Arc<dyn KeyManager>, RunError> {
    Ok(match plugin {
        KeyManagerPlugin::Disk(cfg) => Arc::new(DiskKeyManager::open(cfg.keys_path).map_err(plugin_error)?),
        KeyManagerPlugin::Memory => Arc::new(MemoryKeyManager::new()),
        KeyManagerPlugin::External(config) => {
            let channel = external.start(&config, spire_plugin_host::keymanager::SERVER_SERVICE).await?;
            Arc::new(spire_plugin_host::keymanager::ServerKeyManager::server(&config.name, channel))
        }
    })
}

async fn upstream_authority(
    plugin: Option<UpstreamAuthorityPlugin>,
    trust_domain: &TrustDomain,
    external: &External<'_>,
) -> Result<Option<Arc<dyn UpstreamAuthority>>, RunError> {
    Ok(match plugin {
        Some(UpstreamAuthorityPlugin::External(config)) => {
            let channel = external.start(&config, ext::upstreamauthority::SERVICE).await?;
            Some(Arc::new(ext::upstreamauthority::ExternalUpstreamAuthority::new(&config.name, channel)))
        }
        None => None,
        Some(UpstreamAuthorityPlugin::Disk(cfg)) => Some(Arc::new(
            DiskUpstreamAuthority::new(cfg.cert_file_path, cfg.key_file_path, cfg.bundle_file_path)
                .map_err(plugin_error)?,
        )),
        Some(UpstreamAuthorityPlugin::Spire(cfg)) => {
            Some(Arc::new(SpireUpstreamAuthority::new(cfg, trust_domain.clone())))
        }
    })
}

/// The notifiers and bundle publishers, started.
async fn bundle_consumers(plugins: &Plugins, external: &External<'_>) -> Result<BundleConsumers, RunError> {
    let mut consumers = BundleConsumers::default();
    for config in &plugins.notifiers {
        let channel = external.start(config, ext::notifier::SERVICE).await?;
        consumers.notifiers.push(Arc::new(ext::notifier::ExternalNotifier::new(&config.name, channel)));
    }
    for config in &plugins.bundle_publishers {
        let channel = external.start(config, ext::bundlepublisher::SERVICE).await?;
        consumers.publishers.push(Arc::new(ext::bundlepublisher::ExternalBundlePublisher::new(&config.name, channel)));
    }
    Ok(consumers)
}

/// The credential composers, started, in configuration order.
async fn credential_composers(plugins: &Plugins, external: &External<'_>) -> Result<CredentialComposers, RunError> {
    let mut composers: Vec<Arc<dyn crate::catalog::credentialcomposer::CredentialComposer>> = Vec::new();
    for config in &plugins.credential_composers {
        let channel = external.start(config, ext::credentialcomposer::SERVICE).await?;
        composers.push(Arc::new(ext::credentialcomposer::ExternalCredentialComposer::new(&config.name, channel)));
    }
    Ok(CredentialComposers::new(composers))
}

/// The NodeAttestor instances; kube clients are built here, not in [`Plugins::decode`].
async fn node_attestors(
    plugins: Vec<NodeAttestorPlugin>,
    td: &TrustDomain,
    ds: &Arc<dyn DataStore>,
    external: &External<'_>,
) -> Result<NodeAttestors, RunError> {
    let mut attestors = NodeAttestors::new();
    for plugin in plugins {
        let attestor: Arc<dyn NodeAttestor> = match plugin {
            NodeAttestorPlugin::External(config) => {
                let channel = external.start(&config, ext::nodeattestor::SERVICE).await?;
                Arc::new(ext::nodeattestor::ExternalNodeAttestor::new(&config.name, channel))
            }
            NodeAttestorPlugin::K8sPsat(cfg) => {
                Arc::new(K8sPsatAttestor::from_config(cfg, td.clone()).await.map_err(plugin_error)?)
            }
            NodeAttestorPlugin::SshPop(cfg) => {
                Arc::new(SshPopAttestor::from_config(cfg, td.clone()).map_err(plugin_error)?)
            }
            NodeAttestorPlugin::X509Pop(cfg) => {
                let bundle = Arc::new(x509pop::StoredServerBundle { datastore: ds.clone(), trust_domain: td.clone() });
                Arc::new(X509PopAttestor::from_config(cfg, td.clone(), bundle).map_err(plugin_error)?)
            }
            NodeAttestorPlugin::TpmDevId(cfg) => {
                Arc::new(TpmDevIdAttestor::from_config(cfg, td.clone()).map_err(plugin_error)?)
            }
            NodeAttestorPlugin::GcpIit(cfg) => Arc::new(nodeattestor::GcpIitAttestor::new(
                cfg,
                td.clone(),
                Arc::new(nodeattestor::DataStoreAgentStore(ds.clone())),
            )),
            NodeAttestorPlugin::AzureMsi(cfg) => Arc::new(
                nodeattestor::AzureMsiAttestor::from_config(
                    cfg,
                    td.clone(),
                    Arc::new(nodeattestor::DataStoreAgentStore(ds.clone())),
                )
                .await
                .map_err(plugin_error)?,
            ),
            NodeAttestorPlugin::AwsIid(cfg) => Arc::new(
                nodeattestor::AwsIidAttestor::from_config(
                    cfg,
                    td.clone(),
                    Arc::new(nodeattestor::DataStoreAgentStore(ds.clone())),
                )
                .map_err(plugin_error)?,
            ),
            NodeAttestorPlugin::HttpChallenge(cfg) => {
                let agents = Arc::new(nodeattestor::DataStoreAgentStore(ds.clone()));
                Arc::new(nodeattestor::HttpChallengeAttestor::new(cfg, td.clone(), agents))
            }
        };
        attestors.register(attestor);
    }
    Ok(attestors)
}

fn plugin_error(e: impl std::fmt::Display) -> RunError {
    RunError::Plugin(e.to_string())
}

/// A started server; dropping it does not stop it, [`Server::shutdown`] does.
#[derive(Debug)]
pub struct Server {
    /// The API context (datastore, CA, index).
    pub ctx: Arc<ServerContext>,
    /// The bound TCP address (useful with port 0).
    pub tcp_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), endpoints::EndpointError>>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    external: Arc<ExternalPlugins>,
}

impl Server {
    /// Stops the listeners and background tasks, waiting for in-flight RPCs to finish, then the
    /// external plugins.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for t in self.background {
            t.abort();
        }
        self.external.shutdown().await;
    }

    /// Waits until a listener stops (it only stops on error or shutdown).
    pub async fn wait(&mut self) -> Result<(), RunError> {
        if self.tasks.is_empty() {
            return Ok(());
        }
        let (result, _, rest) = futures_util::future::select_all(self.tasks.drain(..)).await;
        self.tasks = rest;
        match result {
            Ok(r) => Ok(r?),
            Err(e) => Err(RunError::Config(format!("listener task failed: {e}"))),
        }
    }
}

/// Starts everything `config` describes; `set_level` lets the Logger API change the log level.
pub async fn start(config: &ServerConfig, set_level: LevelSetter) -> Result<Server, RunError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    for setting in crate::inert_settings::find(config) {
        tracing::warn!("{setting}");
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| RunError::Config(format!("cannot create data_dir {}: {e}", config.data_dir.display())))?;
    let plugins = Plugins::decode(config)?;
    refuse_unsupported(config)?;
    let bundle_endpoint = config.federation.as_ref().and_then(|f| f.bundle_endpoint.as_ref());
    let ds = open_datastore(&config.datastore).await?;
    // The server SVID's holder exists before the plugins: the IdentityProvider host service reads it.
    let cert = Arc::new(ServerCert::default());
    let external_plugins = Arc::new(ExternalPlugins::new());
    let host = ServerHost {
        datastore: ds.clone(),
        trust_domain: config.trust_domain.clone(),
        cert: cert.clone(),
        metrics: spire_plugin_host::PluginMetrics::new(),
    };
    let external = External { plugins: &external_plugins, host: &host };
    let composers = credential_composers(&plugins, &external).await?;
    let consumers = bundle_consumers(&plugins, &external).await?;
    let attestors = node_attestors(plugins.node_attestors, &config.trust_domain, &ds, &external).await?;
    let keys = key_manager(plugins.key_manager, &external).await?;
    let upstream = upstream_authority(plugins.upstream_authority, &config.trust_domain, &external).await?;

    let td = config.trust_domain.clone();
    let ca = Arc::new(Ca::new(td.clone(), config.jwt_issuer.clone()));
    let subject = Subject {
        country: config.ca_subject.country.clone(),
        organization: config.ca_subject.organization.clone(),
        organizational_unit: Vec::new(),
        common_name: Some(config.ca_subject.common_name.clone()).filter(|c| !c.is_empty()),
    };
    let ca_config = CaManagerConfig {
        trust_domain: td.clone(),
        ca_key_type: config.ca_key_type,
        jwt_key_type: config.jwt_key_type,
        ca_ttl: config.ca_ttl,
        ca_subject: subject,
        disable_jwt_svids: config.disable_jwt_svids,
    };
    let manager = Arc::new(CaManager::load(ca_config, keys, upstream, ds.clone(), ca.clone()).await?);
    manager.rotate(SystemTime::now()).await?;
    let bundle_events = consumers.start(ds.clone(), config.trust_domain.clone()).await?;

    let settings = Settings {
        default_x509_svid_ttl: config.default_x509_svid_ttl,
        default_jwt_svid_ttl: config.default_jwt_svid_ttl,
        agent_ttl: config.agent_ttl,
        admin_ids: config.admin_ids.clone(),
        ratelimit_attestation: config.ratelimit.attestation,
        ratelimit_signing: config.ratelimit.signing,
        prune_events_older_than: config.experimental.prune_events_older_than,
    };
    let federates_with = config.federation.as_ref().map_or(&[][..], |f| f.federates_with.as_slice());
    let bundle_client = crate::federation::client::Manager::new(td.clone(), ds.clone())
        .with_configured(crate::federation::client::configured(federates_with));
    let ctx = Arc::new(
        ServerContext::new(td, ds.clone(), ca.clone(), settings)
            .with_node_attestors(attestors)
            .with_credential_composers(composers)
            .with_bundle_client(Arc::new(bundle_client)),
    );
    // The events position is taken before the entries are read, so that a write another server makes
    // meanwhile is replayed rather than missed.
    let cursor =
        EventCursor::after(ds.latest_entry_event_id().await?).with_gap_timeout(config.experimental.event_timeout);
    let entries = ctx.load_index().await?;
    tracing::info!(entries, "registration entries loaded");

    let bundles = Arc::new(RwLock::new(BundleSet::new()));
    let svid = Arc::new(ServerSvid::new(ca.clone(), config.default_x509_svid_ttl, cert.clone(), bundles.clone()));
    svid.refresh_bundles(ds.as_ref()).await?;
    svid.rotate_if_needed(SystemTime::now())?;

    let addr: SocketAddr = config
        .bind_endpoint()
        .parse()
        .map_err(|e| RunError::Config(format!("invalid bind address {}: {e}", config.bind_endpoint())))?;
    let tcp = endpoints::bind_tcp(addr).await?;
    let tcp_addr = tcp.local_addr().map_err(|e| RunError::Config(e.to_string()))?;
    let uds = endpoints::bind_uds(&config.socket_path)?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let federation = match bundle_endpoint {
        Some(endpoint) => {
            let (td, data_dir) = (config.trust_domain.clone(), config.data_dir.as_path());
            crate::federation::start(endpoint, data_dir, td, ds.clone(), cert.clone()).await?.tasks
        }
        None => Vec::new(),
    };
    let launch = crate::api::logger_level(config.log.level);
    let local_only =
        Routes::new(spire_proto::grpc::health::v1::health_server::HealthServer::new(HealthService::new(ctx.clone())))
            .add_service(spire_proto::spire::api::server::debug::v1::debug_server::DebugServer::new(DebugService::new(
                ctx.clone(),
                cert.clone(),
            )))
            .add_service(spire_proto::spire::api::server::logger::v1::logger_server::LoggerServer::new(
                LoggerService::new(launch, set_level),
            ));
    let tasks = vec![
        tokio::spawn(endpoints::serve_uds(ctx.clone(), uds, local_only, until_stopped(stopped.clone()))),
        tokio::spawn(endpoints::serve_tcp(ctx.clone(), tcp, cert, bundles, until_stopped(stopped))),
    ];
    let mut background = vec![
        manager.clone().spawn_rotator(),
        follower::spawn(
            ds.clone(),
            ctx.index.clone(),
            cursor,
            config
                .experimental
                .cache_reload_interval
                .clamp(std::time::Duration::from_millis(100), follower::POLL_INTERVAL),
        ),
        svid.spawn(ds),
        crate::maintenance::spawn(ctx.clone()),
        ctx.bundle_client.spawn(),
    ];
    background.extend(manager.spawn_upstream_sync());
    background.extend(bundle_events);
    background.extend(federation);
    tracing::info!(address = %tcp_addr, socket = %config.socket_path.display(), "server started");
    Ok(Server { ctx, tcp_addr, stop, tasks, background, external: external_plugins })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(node_attestors: &str) -> ServerConfig {
        let text = format!(
            r#"server {{
    trust_domain = "example.org"
    data_dir = "/tmp/d"
}}
plugins {{
    DataStore "sql" {{ plugin_data {{ database_type = "sqlite3" connection_string = "/tmp/d/datastore.sqlite3" }} }}
    KeyManager "memory" {{}}
    {node_attestors}
}}
"#
        );
        ServerConfig::from_str(&text, false).unwrap()
    }

    /// What `start` makes of the NodeAttestors `config` names.
    async fn built(config: &ServerConfig) -> Result<NodeAttestors, RunError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.sqlite3");
        let ds: Arc<dyn DataStore> =
            Arc::new(SqlStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
        let plugins = ExternalPlugins::new();
        let host = ServerHost {
            datastore: ds.clone(),
            trust_domain: config.trust_domain.clone(),
            cert: Arc::new(ServerCert::default()),
            metrics: spire_plugin_host::PluginMetrics::new(),
        };
        let external = External { plugins: &plugins, host: &host };
        node_attestors(Plugins::decode(config)?.node_attestors, &config.trust_domain, &ds, &external).await
    }

    #[tokio::test]
    async fn node_attestors_are_built_from_the_table() {
        let attestors = built(&config(r#"NodeAttestor "join_token" {}"#)).await.unwrap();
        assert_eq!(attestors.names().count(), 0, "join_token is the Agent service's own");

        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\n",
        )
        .unwrap();
        let psat = format!(
            r#"NodeAttestor "k8s_psat" {{ plugin_data {{ clusters = {{ "c" = {{
                service_account_allow_list = ["spire:spire-agent"]
                kube_config_file = "{}"
            }} }} }} }}"#,
            kubeconfig.display()
        );
        let attestors = built(&config(&psat)).await.unwrap();
        assert_eq!(attestors.names().collect::<Vec<_>>(), ["k8s_psat"]);

        let err =
            built(&config(r#"NodeAttestor "k8s_psat" { plugin_data { clusters = { "c" = {} } } }"#)).await.unwrap_err();
        assert!(err.to_string().contains("service_account_allow_list"), "{err}");

        let err = built(&config(r#"NodeAttestor "no_such_attestor" {}"#)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown NodeAttestor plugin \"no_such_attestor\": this build supports \"join_token\", \"aws_iid\", \"azure_msi\", \"gcp_iit\", \"http_challenge\", \"k8s_psat\", \"sshpop\", \"tpm_devid\" and \"x509pop\""
        );
        let err = built(&config(r#"NodeAttestor "x509pop" { plugin_data { ca_bundle_path = "/no/such/ca.pem" } }"#))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unable to load trust bundle \"/no/such/ca.pem\""), "{err}");
        let disabled = built(&config(r#"NodeAttestor "aws_iid" { enabled = false }"#)).await.unwrap();
        assert_eq!(disabled.names().count(), 0);
    }

    /// `validate`'s check is [`Plugins::decode`]: the `plugin_data` of a k8s_psat block is decoded
    /// with its keys named, an unknown plugin is refused with `start`'s message, and no kubeconfig
    /// is read.
    #[tokio::test]
    async fn validate_decodes_without_building() {
        let psat = |cluster: &str| {
            format!(r#"NodeAttestor "k8s_psat" {{ plugin_data {{ clusters = {{ "c" = {{ {cluster} }} }} }} }}"#)
        };
        let missing_kubeconfig = config(&psat(
            r#"service_account_allow_list = ["spire:spire-agent"]
               kube_config_file = "/no/such/kubeconfig""#,
        ));
        Plugins::decode(&missing_kubeconfig).unwrap();
        let err = built(&missing_kubeconfig).await.unwrap_err().to_string();
        assert!(err.starts_with("plugins.NodeAttestor.k8s_psat.plugin_data.clusters[\"c\"]: "), "{err}");

        let refused = [
            (
                psat(r#"service_account_allow_list = ["a:b"] audiences = ["x"]"#),
                "unknown configuration key \"audiences\" at line 8 (in plugins.NodeAttestor.k8s_psat.plugin_data.clusters[\"c\"])",
            ),
            (
                psat(r#"audience = ["x"]"#),
                "plugins.NodeAttestor.k8s_psat.plugin_data.clusters[\"c\"].service_account_allow_list: ",
            ),
            (
                r#"NodeAttestor "no_such_attestor" {}"#.to_owned(),
                "unknown NodeAttestor plugin \"no_such_attestor\": this build supports \"join_token\", \"aws_iid\", \"azure_msi\", \"gcp_iit\", \"http_challenge\", \"k8s_psat\", \"sshpop\", \"tpm_devid\" and \"x509pop\"",
            ),
            (
                r#"NodeAttestor "x509pop" {}"#.to_owned(),
                "plugins.NodeAttestor.x509pop.plugin_data: one of ca_bundle_path or ca_bundle_paths must be configured",
            ),
            (
                r#"UpstreamAuthority "vault" {}"#.to_owned(),
                "unknown UpstreamAuthority plugin \"vault\": this build supports \"disk\" and \"spire\"",
            ),
        ];
        for (plugins, message) in refused {
            let err = Plugins::decode(&config(&plugins)).unwrap_err().to_string();
            assert!(err.contains(message), "{plugins}: {err}");
        }
    }
}
