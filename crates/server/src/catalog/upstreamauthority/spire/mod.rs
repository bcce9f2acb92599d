//! UpstreamAuthority "spire": nested SPIRE. The server is a workload of an upstream SPIRE server of
//! the same trust domain (its entry is registered there with `-downstream`); with the X509-SVID the
//! upstream's agent on this node gives it, it asks the upstream server to sign its CA
//! (`SVID.NewDownstreamX509CA`), publishes its JWT keys there (`Bundle.PublishJWTAuthority`) and
//! follows the upstream bundle (`Bundle.GetBundle` every 5 s, as SPIRE's plugin polls).

mod client;
mod config;
mod workload;

pub use config::SpireUpstreamConfig;

use std::sync::Mutex;
use std::time::Duration;

use spire_datastore::{JwtKey, StoredBundle};
use spire_identity::TrustDomain;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::bundle::v1::{GetBundleRequest, PublishJwtAuthorityRequest};
use spire_proto::spire::api::server::svid::v1::NewDownstreamX509caRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::spire::api::types as pb;
use tokio::sync::watch;
use tonic::Status;

use super::{CaRequest, MintedCa, UpstreamAuthority, UpstreamAuthorityError, UpstreamBundle};
use client::UpstreamConnector;
use workload::X509Source;

/// How often the upstream bundle is fetched (SPIRE's `upstreamPollFreq`).
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The plugin name, as logs and errors show it.
const PLUGIN: &str = "upstreamauthority(spire)";

/// The `spire` upstream authority.
#[derive(Debug)]
pub struct SpireUpstreamAuthority {
    connector: std::sync::Arc<UpstreamConnector>,
    bundle: watch::Sender<UpstreamBundle>,
    poller: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for SpireUpstreamAuthority {
    fn drop(&mut self) {
        if let Some(task) = self.poller.lock().expect("poller lock").take() {
            task.abort();
        }
    }
}

fn plugin_err(message: String) -> UpstreamAuthorityError {
    UpstreamAuthorityError::Plugin { plugin: PLUGIN.into(), message }
}

/// A failed call as SPIRE prints it: `rpc error: code = ... desc = ...`.
fn rpc(status: &Status) -> String {
    format!("rpc error: code = {:?} desc = {}", status.code(), status.message())
}

impl SpireUpstreamAuthority {
    /// Starts following the Workload API at the configured socket; the upstream server is first
    /// called when the CA manager mints.
    pub fn new(config: SpireUpstreamConfig, trust_domain: TrustDomain) -> Self {
        let source = X509Source::start(config.workload_api_socket);
        let connector = UpstreamConnector::new(config.server_addr, trust_domain, config.require_pq_kem, source);
        Self {
            connector: std::sync::Arc::new(connector),
            bundle: watch::channel(UpstreamBundle::default()).0,
            poller: Mutex::new(None),
        }
    }

    /// Starts the bundle poller once.
    fn ensure_polling(&self) {
        let mut poller = self.poller.lock().expect("poller lock");
        if poller.is_none() {
            let (connector, bundle) = (self.connector.clone(), self.bundle.clone());
            *poller = Some(tokio::spawn(poll(connector, bundle)).abort_handle());
        }
    }
}

/// Fetches the upstream bundle every [`POLL_INTERVAL`] and publishes it when it changed.
async fn poll(connector: std::sync::Arc<UpstreamConnector>, bundle: watch::Sender<UpstreamBundle>) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        ticker.tick().await;
        match get_bundle(&connector).await {
            Ok(fetched) => {
                bundle.send_if_modified(|b| {
                    let changed = *b != fetched;
                    *b = fetched;
                    changed
                });
            }
            Err(e) => tracing::warn!(plugin = PLUGIN, error = %e, "Failed to fetch bundle while polling"),
        }
    }
}

async fn get_bundle(connector: &UpstreamConnector) -> Result<UpstreamBundle, String> {
    let channel = connector.channel().await?;
    let bundle = match BundleClient::new(channel).get_bundle(GetBundleRequest::default()).await {
        Ok(b) => b.into_inner(),
        Err(s) => {
            connector.reset().await;
            return Err(format!("failed to get bundle: {}", rpc(&s)));
        }
    };
    let stored = StoredBundle::from_proto(bundle).map_err(|e| format!("failed to parse upstream bundle: {e}"))?;
    Ok(UpstreamBundle {
        x509_roots: stored.x509_authorities.into_iter().map(|a| a.der).collect(),
        jwt_keys: stored.jwt_authorities,
    })
}

fn jwt_key_to_proto(key: &JwtKey) -> pb::JwtKey {
    pb::JwtKey {
        public_key: key.public_key_der.clone(),
        key_id: key.key_id.clone(),
        expires_at: key.expires_at,
        tainted: key.tainted,
        hint: String::new(),
    }
}

#[async_trait::async_trait]
impl UpstreamAuthority for SpireUpstreamAuthority {
    async fn mint_x509_ca(&self, request: CaRequest<'_>) -> Result<MintedCa, UpstreamAuthorityError> {
        self.ensure_polling();
        let minting = |e: String| plugin_err(format!("unable to request a new Downstream X509CA: {e}"));
        let channel = self.connector.channel().await.map_err(minting)?;
        let ttl = i32::try_from(request.ttl.as_secs()).unwrap_or(i32::MAX);
        let response = SvidClient::new(channel)
            .new_downstream_x509ca(NewDownstreamX509caRequest { csr: request.csr.to_vec(), preferred_ttl: ttl })
            .await;
        let response = match response {
            Ok(r) => r.into_inner(),
            Err(s) => {
                self.connector.reset().await;
                return Err(minting(rpc(&s)));
            }
        };
        if response.ca_cert_chain.is_empty() {
            return Err(minting("the upstream server returned no CA certificate".into()));
        }
        // As SPIRE's plugin, the roots come from the upstream bundle rather than the response.
        let fetched = get_bundle(&self.connector)
            .await
            .map_err(|e| plugin_err(format!("failed to fetch bundle from upstream server: {e}")))?;
        let roots = fetched.x509_roots.clone();
        self.bundle.send_modify(|b| b.x509_roots = fetched.x509_roots);
        let chain = response.ca_cert_chain.into_iter().filter(|c| !roots.contains(c)).collect();
        Ok(MintedCa { chain, upstream_roots: roots })
    }

    async fn publish_jwt_key(&self, key: &JwtKey) -> Result<Option<Vec<JwtKey>>, UpstreamAuthorityError> {
        self.ensure_polling();
        let pushing = |e: String| plugin_err(format!("failed to push JWT authority: {e}"));
        let channel = self.connector.channel().await.map_err(pushing)?;
        let request = PublishJwtAuthorityRequest { jwt_authority: Some(jwt_key_to_proto(key)) };
        let response = match BundleClient::new(channel).publish_jwt_authority(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                self.connector.reset().await;
                return Err(pushing(rpc(&s)));
            }
        };
        let keys: Vec<JwtKey> = response
            .jwt_authorities
            .into_iter()
            .map(|k| JwtKey {
                key_id: k.key_id,
                public_key_der: k.public_key,
                expires_at: k.expires_at,
                tainted: k.tainted,
            })
            .collect();
        self.bundle.send_modify(|b| b.jwt_keys = keys.clone());
        Ok(Some(keys))
    }

    fn bundle_updates(&self) -> Option<watch::Receiver<UpstreamBundle>> {
        Some(self.bundle.subscribe())
    }
}
