//! The updater of one federated trust domain (SPIRE's `bundleUpdater`): fetch the endpoint's
//! bundle and store it as that trust domain's federated bundle when it differs from ours.

use std::sync::{Arc, Mutex};

use rustls::RootCertStore;
use spire_datastore::{BundleEndpointProfile, DataStore, JwtKey, StoredBundle, X509Authority};
use spire_identity::{Bundle, TrustDomain};

use super::auth::{self, AuthError};
use super::fetch::{self, FetchError};
use crate::server_svid::identity_bundle;

/// Where a trust domain's bundle is fetched and how its endpoint is authenticated (SPIRE's
/// `TrustDomainConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The bundle endpoint URL.
    pub url: String,
    /// Its profile.
    pub profile: BundleEndpointProfile,
}

impl Endpoint {
    /// The profile's name as SPIRE logs it.
    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            BundleEndpointProfile::HttpsWeb => "https_web",
            BundleEndpointProfile::HttpsSpiffe { .. } => "https_spiffe",
        }
    }
}

/// Why an update failed; the messages are SPIRE's.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The bundle authenticating an `https_spiffe` endpoint could not be read.
    #[error("failed to fetch local copy of bundle for {trust_domain:?}: {source}")]
    EndpointBundle {
        /// The endpoint SPIFFE ID's trust domain.
        trust_domain: String,
        /// The datastore error.
        source: spire_datastore::DataStoreError,
    },
    /// No bundle to authenticate an `https_spiffe` endpoint with: the operator must bootstrap it.
    #[error("can't perform SPIFFE Authentication: local copy of bundle not found")]
    NoEndpointBundle,
    /// The TLS configuration could not be made.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Our copy of the federated bundle could not be read.
    #[error("failed to fetch local federated bundle: {0}")]
    LocalBundle(spire_datastore::DataStoreError),
    /// The endpoint did not give a usable bundle.
    #[error("failed to fetch federated bundle from endpoint: {0}")]
    Fetch(#[from] FetchError),
    /// The fetched bundle could not be stored.
    #[error("failed to store fetched federated bundle: {0}")]
    Store(spire_datastore::DataStoreError),
}

/// What an update found: our bundle before it (when it could be read), the fetched one when it
/// differed and was stored, and the error if any.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The stored federated bundle before the update.
    pub local: Option<StoredBundle>,
    /// The new bundle, stored.
    pub stored: Option<StoredBundle>,
    /// Why the update failed.
    pub error: Option<UpdateError>,
}

/// The updater of one trust domain.
pub struct Updater {
    trust_domain: TrustDomain,
    ds: Arc<dyn DataStore>,
    endpoint: Mutex<Endpoint>,
    web_roots: Option<Arc<RootCertStore>>,
}

impl Updater {
    /// An updater of `trust_domain` fetching from `endpoint`; `web_roots` replaces the system roots
    /// of `https_web` (tests).
    pub fn new(
        trust_domain: TrustDomain,
        ds: Arc<dyn DataStore>,
        endpoint: Endpoint,
        web_roots: Option<Arc<RootCertStore>>,
    ) -> Self {
        Self { trust_domain, ds, endpoint: Mutex::new(endpoint), web_roots }
    }

    /// The current endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.lock().expect("endpoint lock").clone()
    }

    /// Replaces the endpoint; returns whether it changed.
    pub fn set_endpoint(&self, endpoint: Endpoint) -> bool {
        let mut current = self.endpoint.lock().expect("endpoint lock");
        if *current == endpoint {
            return false;
        }
        *current = endpoint;
        true
    }

    /// Fetches the endpoint's bundle and stores it if it differs from ours.
    pub async fn update(&self) -> Outcome {
        let endpoint = self.endpoint();
        let tls = match self.tls(&endpoint).await {
            Ok(tls) => tls,
            Err(e) => return Outcome { error: Some(e), ..Outcome::default() },
        };
        let local = match self.ds.fetch_bundle(&self.trust_domain).await {
            Ok(local) => local,
            Err(e) => return Outcome { error: Some(UpdateError::LocalBundle(e)), ..Outcome::default() },
        };
        let fetched = match fetch::fetch(&endpoint.url, &self.trust_domain, tls).await {
            Ok(fetched) => stored_form(&fetched),
            Err(e) => return Outcome { local, stored: None, error: Some(e.into()) },
        };
        if local.as_ref() == Some(&fetched) {
            return Outcome { local, stored: None, error: None };
        }
        match self.ds.set_bundle(fetched.clone()).await {
            Ok(_) => Outcome { local, stored: Some(fetched), error: None },
            Err(e) => Outcome { local, stored: None, error: Some(UpdateError::Store(e)) },
        }
    }

    async fn tls(&self, endpoint: &Endpoint) -> Result<rustls::ClientConfig, UpdateError> {
        match &endpoint.profile {
            BundleEndpointProfile::HttpsWeb => {
                Ok(auth::web(self.web_roots.clone().unwrap_or_else(auth::system_roots))?)
            }
            BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
                let td = endpoint_spiffe_id.trust_domain();
                let bundle = self
                    .ds
                    .fetch_bundle(td)
                    .await
                    .map_err(|source| UpdateError::EndpointBundle { trust_domain: td.as_str().to_owned(), source })?;
                let bundle = bundle.ok_or(UpdateError::NoEndpointBundle)?;
                Ok(auth::spiffe(endpoint_spiffe_id.clone(), identity_bundle(&bundle))?)
            }
        }
    }
}

/// A fetched bundle as SPIRE stores it: its authorities and refresh hint; the sequence number is
/// 0, since SPIRE's bundle decoder does not read `spiffe_sequence`.
pub fn stored_form(bundle: &Bundle) -> StoredBundle {
    StoredBundle {
        x509_authorities: bundle
            .x509_authorities()
            .iter()
            .map(|der| X509Authority { der: der.clone(), tainted: false })
            .collect(),
        jwt_authorities: bundle
            .jwt_authorities()
            .iter()
            .map(|a| JwtKey {
                key_id: a.key_id.clone(),
                public_key_der: a.public_key_der.clone(),
                expires_at: 0,
                tainted: false,
            })
            .collect(),
        refresh_hint: bundle.refresh_hint.and_then(|h| i64::try_from(h).ok()).unwrap_or(0),
        sequence_number: 0,
        ..StoredBundle::new(bundle.trust_domain().clone())
    }
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater").field("trust_domain", &self.trust_domain).finish_non_exhaustive()
    }
}
