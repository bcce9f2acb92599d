//! SPIRE's server APIs (spire-api-sdk), one module per service, sharing a [`ServerContext`].
//!
//! Authorization is not done in the handlers: the [`auth`] layer classifies every caller and applies
//! SPIRE's policy table before a handler runs, and hands the handler a [`Caller`] in the request
//! extensions.

pub mod agent;
pub mod auth;
pub mod bundle;
pub mod caller;
pub mod convert;
pub mod csr;
pub mod debug;
pub mod dns;
pub mod entry;
pub mod health;
pub mod logger;
pub mod ratelimit;
pub mod svid;
pub mod trustdomain;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use spire_datastore::{DataStore, DataStoreError};
use spire_identity::{SpiffeId, TrustDomain};
use tonic::Status;

use crate::authorized::EntryIndex;
use crate::ca::{Ca, CaError};
use crate::catalog::nodeattestor::NodeAttestors;

pub use caller::Caller;

/// Server settings the APIs need (from the `server {}` block).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `default_x509_svid_ttl`.
    pub default_x509_svid_ttl: Duration,
    /// `default_jwt_svid_ttl`.
    pub default_jwt_svid_ttl: Duration,
    /// `agent_ttl`.
    pub agent_ttl: Duration,
    /// `admin_ids`.
    pub admin_ids: Vec<SpiffeId>,
    /// `ratelimit.attestation`.
    pub ratelimit_attestation: bool,
    /// `ratelimit.signing`.
    pub ratelimit_signing: bool,
    /// `experimental.prune_events_older_than`: how long change events are kept for the other
    /// servers' followers.
    pub prune_events_older_than: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_x509_svid_ttl: Duration::from_secs(3600),
            default_jwt_svid_ttl: Duration::from_secs(300),
            agent_ttl: Duration::from_secs(3600),
            admin_ids: Vec::new(),
            ratelimit_attestation: true,
            ratelimit_signing: true,
            prune_events_older_than: Duration::from_secs(crate::maintenance::EVENT_RETENTION as u64),
        }
    }
}

/// Everything the API handlers share.
pub struct ServerContext {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// `spiffe://<td>/spire/server`: parent of node alias entries and the server's own SVID ID.
    pub server_id: SpiffeId,
    /// Storage.
    pub ds: Arc<dyn DataStore>,
    /// Signing.
    pub ca: Arc<Ca>,
    /// Authorized-entry index, kept current on every entry write.
    pub index: Arc<RwLock<EntryIndex>>,
    /// Settings.
    pub settings: Settings,
    /// Per-IP limits of the TCP endpoint.
    pub limits: ratelimit::RateLimiter,
    /// The configured node attestors (the Agent service adds `join_token`).
    pub node_attestors: NodeAttestors,
    /// The federation bundle client, which the TrustDomain API refreshes and reloads.
    pub bundle_client: Arc<crate::federation::client::Manager>,
    /// CredentialComposer plugins, applied to agent and workload SVIDs before they are signed.
    pub composers: crate::catalog::credentialcomposer::CredentialComposers,
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext").field("trust_domain", &self.trust_domain).finish_non_exhaustive()
    }
}

impl ServerContext {
    /// A context; the index starts empty (see [`ServerContext::load_index`]).
    pub fn new(trust_domain: TrustDomain, ds: Arc<dyn DataStore>, ca: Arc<Ca>, settings: Settings) -> Self {
        let server_id = trust_domain.id_with_path("/spire/server").expect("valid path");
        let index = Arc::new(RwLock::new(EntryIndex::new(trust_domain.clone())));
        let limits = ratelimit::RateLimiter::new(settings.ratelimit_attestation, settings.ratelimit_signing);
        let bundle_client = Arc::new(crate::federation::client::Manager::new(trust_domain.clone(), ds.clone()));
        Self {
            trust_domain,
            server_id,
            ds,
            ca,
            index,
            settings,
            limits,
            node_attestors: NodeAttestors::new(),
            bundle_client,
            composers: Default::default(),
        }
    }

    /// The context with `composers` shaping the SVIDs it signs.
    pub fn with_credential_composers(
        mut self,
        composers: crate::catalog::credentialcomposer::CredentialComposers,
    ) -> Self {
        self.composers = composers;
        self
    }

    /// The subject and DNS names of an X509-SVID for `id`, after the CredentialComposer plugins:
    /// `None` when there are none (the certificate then gets the default subject).
    pub async fn compose_x509_svid(
        &self,
        kind: crate::catalog::credentialcomposer::X509SvidKind,
        id: &SpiffeId,
        public_key_der: &[u8],
        subject: Option<spire_identity::x509::Subject>,
        dns_names: &[String],
    ) -> Result<Option<(spire_identity::x509::Subject, Vec<String>)>, tonic::Status> {
        if self.composers.is_empty() {
            return Ok(None);
        }
        let attributes = crate::catalog::credentialcomposer::X509SvidAttributes {
            subject: subject.unwrap_or_else(spire_identity::x509::Subject::default_svid),
            dns_names: dns_names.to_vec(),
        };
        let composed = self.composers.x509_svid(kind, id, public_key_der, attributes).await?;
        Ok(Some((composed.subject, composed.dns_names)))
    }

    /// The context with `manager` as its federation bundle client.
    pub fn with_bundle_client(mut self, manager: Arc<crate::federation::client::Manager>) -> Self {
        self.bundle_client = manager;
        self
    }

    /// The context with `attestors` as its configured node attestors.
    pub fn with_node_attestors(mut self, attestors: NodeAttestors) -> Self {
        self.node_attestors = attestors;
        self
    }

    /// Fills the authorized-entry index from the datastore (at startup). One unpaged listing: the
    /// store then reads each child table (selectors, DNS names, federations) in one query, instead of
    /// by ID lists page after page, which dominated start-up on MySQL.
    pub async fn load_index(&self) -> Result<usize, DataStoreError> {
        let (loaded, _) = self.ds.list_entries(&spire_datastore::EntryFilter::default(), None).await?;
        let mut index = self.index.write().expect("index lock");
        let n = loaded.len();
        for e in loaded {
            index.upsert(e);
        }
        Ok(n)
    }
}

/// A datastore error as the gRPC status SPIRE would answer.
pub fn ds_status(e: DataStoreError) -> Status {
    match e {
        DataStoreError::NotFound(m) => Status::not_found(m),
        DataStoreError::AlreadyExists(m) => Status::already_exists(m),
        DataStoreError::InvalidArgument(m) => Status::invalid_argument(m),
        DataStoreError::FailedPrecondition(m) => Status::failed_precondition(m),
        DataStoreError::Aborted(m) => Status::aborted(m),
        DataStoreError::Unavailable(m) => Status::unavailable(m),
        other => Status::internal(other.to_string()),
    }
}

/// A CA error as a gRPC status.
pub fn ca_status(e: CaError) -> Status {
    match e {
        CaError::Unavailable(m) => Status::unavailable(m),
        CaError::InvalidArgument(m) => Status::invalid_argument(m),
        CaError::Sign(m) => Status::internal(m),
    }
}

/// The per-item status of a batch RPC.
pub fn item_status(status: &Status) -> spire_proto::spire::api::types::Status {
    spire_proto::spire::api::types::Status { code: status.code() as i32, message: status.message().to_owned() }
}

/// The Logger API's level for a configured log level.
pub use spire_cli::logging::api_level as logger_level;

/// The OK per-item status.
pub fn ok_status() -> spire_proto::spire::api::types::Status {
    spire_proto::spire::api::types::Status { code: 0, message: "OK".into() }
}
