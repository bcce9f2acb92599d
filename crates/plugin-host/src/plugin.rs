//! One external plugin: started, connected, brokered, initialised, configured, stopped.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use spire_proto::plugin::ConnInfo;
use spire_proto::plugin::grpc_broker_client::GrpcBrokerClient;
use spire_proto::plugin::grpc_controller_client::GrpcControllerClient;
use spire_proto::plugin::grpc_stdio_client::GrpcStdioClient;
use spire_proto::spire::service::common::config::v1 as configv1;
use spire_proto::spire::service::private::init::v1 as initv1;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::checksum::{self, ChecksumError};
use crate::handshake::Address;
use crate::host::HostServices;
use crate::process::{self, LaunchError, Running, Tag};
use crate::{PluginError, Timeouts, go_status};

/// The broker ID under which SPIRE serves its host services (spire-plugin-sdk's
/// `private.HostServiceProviderID`).
pub const HOST_SERVICE_PROVIDER_ID: u32 = 1;

/// The gRPC name of the SDK's configuration service.
const CONFIG_SERVICE: &str = "spire.service.common.config.v1.Config";

/// How a plugin is declared: `plugin_cmd`, `plugin_args`, `plugin_checksum`, and the plugin's type
/// and name, which go-plugin's magic cookie and our logs use.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `KeyManager`, `NodeAttestor`...
    pub plugin_type: String,
    /// The name in the configuration.
    pub name: String,
    /// The executable.
    pub cmd: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Hex SHA-256 the executable must have.
    pub checksum: Option<String>,
}

impl Spec {
    /// The spec of a `plugin_cmd` block; `None` for a built-in plugin.
    pub fn from_config(config: &spire_config::PluginConfig) -> Option<Self> {
        Some(Self {
            plugin_type: config.plugin_type.clone(),
            name: config.name.clone(),
            cmd: PathBuf::from(config.plugin_cmd.as_ref()?),
            args: config.plugin_args.clone(),
            checksum: config.plugin_checksum.clone().filter(|c| !c.is_empty()),
        })
    }
}

/// A running external plugin.
#[derive(Debug)]
pub struct ExternalPlugin {
    tag: Tag,
    channel: Channel,
    services: Vec<String>,
    process: Running,
    timeouts: Timeouts,
    // The host services' socket lives in this directory; removed with it.
    _broker_dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ExternalPlugin {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ExternalPlugin {
    /// Starts the plugin and initialises it: checksum, process, handshake, connection, host services
    /// on the broker, the plugin's stdio mirrored, and the SDK's `Init` (which services each side
    /// has). Errors are SPIRE's `failed to load plugin "<name>": ...`.
    pub async fn start(spec: &Spec, host: HostServices, timeouts: Timeouts) -> Result<Self, PluginError> {
        let load = |source: LoadError| PluginError::Load { name: spec.name.clone(), source };
        let tag = Tag { plugin_type: spec.plugin_type.clone(), name: spec.name.clone() };
        // An absolute path: the plugin must not be looked up in PATH.
        let path = std::path::absolute(&spec.cmd).map_err(|e| load(LoadError::Path(e)))?;
        match &spec.checksum {
            Some(sum) => {
                let expected = checksum::parse(sum).map_err(|e| load(LoadError::ChecksumForm(e)))?;
                checksum::verify(&path, &expected)
                    .await
                    .map_err(|e| load(LoadError::Launch(LaunchError::Checksum(e))))?;
            }
            None => {
                tracing::warn!(plugin_type = %tag.plugin_type, plugin_name = %tag.name, "Plugin checksum not configured")
            }
        }
        let process =
            process::start(&path, &spec.args, &tag, timeouts.start).await.map_err(|e| load(LoadError::Launch(e)))?;
        let channel = connect(&process.address).await.map_err(|e| load(LoadError::Connect(e.to_string())))?;

        let broker_dir = tempfile::Builder::new()
            .prefix("spire-plugin-broker")
            .tempdir()
            .map_err(|e| load(LoadError::Broker(e.to_string())))?;
        let mut tasks = Vec::new();
        tasks.push(
            serve_host_services(&channel, broker_dir.path(), &host, &tag)
                .await
                .map_err(|e| load(LoadError::Broker(e)))?,
        );
        tasks.push(mirror_stdio(channel.clone(), tag.clone()));

        let mut init = initv1::init_client::InitClient::new(channel.clone());
        let request = initv1::InitRequest { host_service_names: host.names.clone() };
        let services = tokio::time::timeout(timeouts.call, init.init(request))
            .await
            .map_err(|_| load(LoadError::Timeout("Init")))?
            .map_err(|s| load(LoadError::Init(go_status(&s))))?
            .into_inner()
            .plugin_service_names;
        tracing::debug!(plugin_type = %tag.plugin_type, plugin_name = %tag.name, ?services, "Plugin initialized");
        Ok(Self { tag, channel, services, process, timeouts, _broker_dir: broker_dir, tasks })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.tag.name
    }

    /// The plugin's type.
    pub fn plugin_type(&self) -> &str {
        &self.tag.plugin_type
    }

    /// The connection to the plugin, for the clients of its services.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The gRPC services the plugin says it implements.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Whether the plugin implements `service` (a fully qualified gRPC service name).
    pub fn implements(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }

    /// Requires one of `services` (a plugin type's versions, newest first) and returns it; SPIRE's
    /// "no supported plugin interface found" otherwise.
    pub fn require(&self, services: &[&str]) -> Result<String, PluginError> {
        services.iter().find(|s| self.implements(s)).map(|s| (*s).to_owned()).ok_or_else(|| PluginError::Bind {
            name: self.tag.name.clone(),
            message: format!("no supported plugin interface found in: {:?}", self.services),
        })
    }

    /// Configures the plugin with its data (the `Config` service's `Configure`). A plugin without
    /// that service accepts only an empty configuration, as in SPIRE.
    pub async fn configure(&self, trust_domain: &str, data: &str) -> Result<(), PluginError> {
        let fail = |message: String| PluginError::Configure { name: self.tag.name.clone(), message };
        if !self.implements(CONFIG_SERVICE) {
            if data.trim().is_empty() {
                return Ok(());
            }
            return Err(fail("no supported configuration interface found".into()));
        }
        let mut client = configv1::config_client::ConfigClient::new(self.channel.clone());
        let request = configv1::ConfigureRequest {
            core_configuration: Some(configv1::CoreConfiguration { trust_domain: trust_domain.to_owned() }),
            hcl_configuration: data.to_owned(),
        };
        tokio::time::timeout(self.timeouts.call, client.configure(request))
            .await
            .map_err(|_| fail(format!("no answer to Configure within {:?}", self.timeouts.call)))?
            .map_err(|s| fail(go_status(&s)))?;
        tracing::info!(
            plugin_type = %self.tag.plugin_type,
            plugin_name = %self.tag.name,
            reconfigurable = false,
            "Configured plugin"
        );
        Ok(())
    }

    /// Asks the plugin whether `data` is a valid configuration (the `Config` service's `Validate`):
    /// `Ok(notes)` when valid, an error carrying the notes when not.
    pub async fn validate(&self, trust_domain: &str, data: &str) -> Result<Vec<String>, PluginError> {
        let fail = |message: String| PluginError::Validate { name: self.tag.name.clone(), message };
        if !self.implements(CONFIG_SERVICE) {
            return Err(fail("plugin does not support a validation interface".into()));
        }
        let mut client = configv1::config_client::ConfigClient::new(self.channel.clone());
        let request = configv1::ValidateRequest {
            core_configuration: Some(configv1::CoreConfiguration { trust_domain: trust_domain.to_owned() }),
            hcl_configuration: data.to_owned(),
        };
        let response = tokio::time::timeout(self.timeouts.call, client.validate(request))
            .await
            .map_err(|_| fail(format!("no answer to Validate within {:?}", self.timeouts.call)))?
            .map_err(|s| fail(go_status(&s)))?
            .into_inner();
        if response.valid {
            Ok(response.notes)
        } else if response.notes.is_empty() {
            Err(fail("the plugin says its configuration is invalid".into()))
        } else {
            Err(fail(response.notes.join("; ")))
        }
    }

    /// The process's exit status, once it exited.
    pub fn exited(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.process.exited.clone()
    }

    /// Stops the plugin as SPIRE does: the SDK's `Deinit`, go-plugin's `Shutdown`, then a kill if
    /// the process is still there two seconds later.
    pub async fn shutdown(mut self) {
        self.process.stopping.store(true, Ordering::SeqCst);
        let mut exited = self.process.exited.clone();
        if exited.borrow().is_none() {
            let mut init = initv1::init_client::InitClient::new(self.channel.clone());
            match tokio::time::timeout(Duration::from_secs(10), init.deinit(initv1::DeinitRequest {})).await {
                Ok(Ok(_)) => tracing::debug!(plugin_name = %self.tag.name, "Plugin deinitialized"),
                Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => {}
                Ok(Err(s)) => {
                    tracing::error!(plugin_name = %self.tag.name, error = %go_status(&s), "Failed to deinitialize plugin")
                }
                Err(_) => tracing::error!(plugin_name = %self.tag.name, "Failed to deinitialize plugin: timed out"),
            }
            let mut controller = GrpcControllerClient::new(self.channel.clone());
            let _ =
                tokio::time::timeout(Duration::from_secs(2), controller.shutdown(spire_proto::plugin::Empty {})).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), exited.wait_for(Option::is_some)).await;
        }
        if let Some(kill) = self.process.kill.take() {
            let _ = kill.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), exited.wait_for(Option::is_some)).await;
        tracing::info!(plugin_type = %self.tag.plugin_type, plugin_name = %self.tag.name, "Plugin unloaded");
    }
}

/// Why a plugin could not be loaded (under SPIRE's `failed to load plugin "<name>": `).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The path could not be made absolute.
    #[error("failed to resolve plugin path: {0}")]
    Path(#[source] std::io::Error),
    /// `plugin_checksum` is not a SHA-256 in hex.
    #[error(transparent)]
    ChecksumForm(ChecksumError),
    /// The process did not start and shake hands.
    #[error("failed to launch plugin: {0}")]
    Launch(#[source] LaunchError),
    /// Its address could not be dialled.
    #[error("failed to launch plugin: {0}")]
    Connect(String),
    /// The host services could not be offered.
    #[error("failed to serve host services: {0}")]
    Broker(String),
    /// The SDK's `Init` failed.
    #[error("{0}")]
    Init(String),
    /// No answer.
    #[error("no answer to {0} in time")]
    Timeout(&'static str),
}

/// A channel to the plugin's gRPC address. Plugins serve without TLS; the `:authority` is
/// irrelevant on a Unix socket.
async fn connect(address: &Address) -> Result<Channel, tonic::transport::Error> {
    match address {
        Address::Unix(path) => {
            let path = PathBuf::from(path);
            Endpoint::from_static("http://plugin")
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
                }))
                .await
        }
        Address::Tcp(addr) => Endpoint::from_shared(format!("http://{addr}"))?.connect().await,
    }
}

/// Offers the host services to the plugin: serves them on a Unix socket of our own and announces it
/// on go-plugin's broker stream under [`HOST_SERVICE_PROVIDER_ID`], where the SDK dials them.
async fn serve_host_services(
    channel: &Channel,
    dir: &Path,
    host: &HostServices,
    tag: &Tag,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let socket = dir.join("host.sock");
    let listener = tokio::net::UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let routes = host.routes.clone();
    let (announce, outbound) = tokio::sync::mpsc::channel::<ConnInfo>(4);
    announce
        .send(ConnInfo {
            service_id: HOST_SERVICE_PROVIDER_ID,
            network: "unix".into(),
            address: socket.to_string_lossy().into_owned(),
            knock: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut broker = GrpcBrokerClient::new(channel.clone());
    let tag = tag.clone();
    Ok(tokio::spawn(async move {
        // The sender stays alive as long as the stream should.
        let _announce = announce;
        let incoming = spire_uds::incoming(listener, Some);
        let server = tonic::transport::Server::builder().add_routes(routes).serve_with_incoming(incoming);
        // The call is awaited here, not before returning: go-plugin answers the stream's headers
        // only with its first message, which may never come.
        let drain = async move {
            match broker.start_stream(tokio_stream::wrappers::ReceiverStream::new(outbound)).await {
                Ok(response) => {
                    let mut inbound = response.into_inner();
                    // The plugin may announce services of its own; SPIRE's host dials none.
                    while let Ok(Some(info)) = inbound.message().await {
                        tracing::debug!(
                            plugin_name = %tag.name,
                            service_id = info.service_id,
                            "Plugin offered a brokered service"
                        );
                    }
                }
                Err(s) => {
                    tracing::debug!(plugin_name = %tag.name, error = %go_status(&s), "Plugin broker stream ended")
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            result = server => if let Err(e) = result { tracing::error!(error = %e, "Host services server failed") },
            () = drain => {}
        }
    }))
}

/// Logs what the plugin writes on stdout and stderr after the handshake, as go-plugin mirrors it.
fn mirror_stdio(channel: Channel, tag: Tag) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = GrpcStdioClient::new(channel);
        let Ok(response) = client.stream_stdio(()).await else { return };
        let mut stream = response.into_inner();
        while let Ok(Some(chunk)) = stream.message().await {
            for text in String::from_utf8_lossy(&chunk.data).lines() {
                crate::logs::emit(&tag.plugin_type, &tag.name, &crate::logs::parse(text));
            }
        }
    })
}
