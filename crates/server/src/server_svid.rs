//! The server's own X509-SVID, `spiffe://<td>/spire/server`, which it presents on its TCP endpoint.
//! Agents refuse any server that does not present exactly this ID. It is re-issued at half-life
//! (checked every 5 s, as SPIRE does), and the bundle the endpoint verifies clients against is
//! refreshed on the same tick.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use spire_datastore::DataStore;
use spire_identity::{Bundle, BundleSet, JwtAuthority, KeyType, PrivateKey, SpiffeId};

use crate::ca::Ca;
use crate::endpoints::tls::ServerCert;

/// How often the SVID and the client-verification bundles are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Why the server SVID could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum ServerSvidError {
    /// Signing failed.
    #[error("signing the server SVID: {0}")]
    Ca(#[from] crate::ca::CaError),
    /// Key generation failed.
    #[error("generating the server key: {0}")]
    Key(#[from] spire_identity::keys::KeyError),
    /// rustls refused the certificate.
    #[error("installing the server SVID: {0}")]
    Tls(#[from] rustls::Error),
    /// Reading bundles failed.
    #[error("reading bundles: {0}")]
    DataStore(#[from] spire_datastore::DataStoreError),
}

/// Issues and rotates the server SVID, and keeps the bundles for client verification current.
#[derive(Debug)]
pub struct ServerSvid {
    id: SpiffeId,
    ttl: Duration,
    ca: Arc<Ca>,
    cert: Arc<ServerCert>,
    bundles: Arc<RwLock<BundleSet>>,
    expires: RwLock<Option<(SystemTime, SystemTime)>>,
}

/// A stored bundle in the identity core's form.
pub fn identity_bundle(stored: &spire_datastore::StoredBundle) -> Bundle {
    let mut b = Bundle::new(stored.trust_domain.clone());
    for a in &stored.x509_authorities {
        // Authorities were validated when stored; an unreadable one is skipped rather than fatal.
        let _ = b.add_x509_authority(a.der.clone());
    }
    for k in &stored.jwt_authorities {
        let _ = b.add_jwt_authority(JwtAuthority {
            key_id: k.key_id.clone(),
            public_key_der: k.public_key_der.clone(),
            expires_at: k.expires_at,
        });
    }
    b.refresh_hint = u64::try_from(stored.refresh_hint).ok().filter(|&h| h > 0);
    b.sequence_number = stored.sequence_number;
    b
}

impl ServerSvid {
    /// A rotator for `ca`'s trust domain, issuing SVIDs of `ttl`.
    pub fn new(ca: Arc<Ca>, ttl: Duration, cert: Arc<ServerCert>, bundles: Arc<RwLock<BundleSet>>) -> Self {
        let id = ca.trust_domain().id_with_path("/spire/server").expect("valid path");
        Self { id, ttl, ca, cert, bundles, expires: RwLock::new(None) }
    }

    /// Re-issues the SVID if there is none or half its life has passed; returns whether it did.
    pub fn rotate_if_needed(&self, now: SystemTime) -> Result<bool, ServerSvidError> {
        if let Some((issued, expires)) = *self.expires.read().expect("svid lock") {
            let half = issued + (expires.duration_since(issued).unwrap_or_default() / 2);
            if now < half {
                return Ok(false);
            }
        }
        let key = PrivateKey::generate(KeyType::EcP256)?;
        let signed = self.ca.sign_x509_svid(&self.id, &key.public_key_der(), &[], None, self.ttl, now)?;
        self.cert.set(&signed.chain, &key)?;
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(signed.expires_at.max(0) as u64);
        *self.expires.write().expect("svid lock") = Some((now, expires));
        tracing::debug!(id = %self.id, "server SVID rotated");
        Ok(true)
    }

    /// Reloads every bundle (own and federated) used to verify client certificates.
    pub async fn refresh_bundles(&self, ds: &dyn DataStore) -> Result<(), ServerSvidError> {
        let (stored, _) = ds.list_bundles(None).await?;
        let set: BundleSet = stored.iter().map(identity_bundle).collect();
        *self.bundles.write().expect("bundle lock") = set;
        Ok(())
    }

    /// Runs both checks every [`CHECK_INTERVAL`].
    pub fn spawn(self: Arc<Self>, ds: Arc<dyn DataStore>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(CHECK_INTERVAL);
            loop {
                ticker.tick().await;
                if let Err(e) = self.refresh_bundles(ds.as_ref()).await {
                    tracing::warn!(error = %e, "failed to refresh bundles");
                }
                if let Err(e) = self.rotate_if_needed(SystemTime::now()) {
                    tracing::error!(error = %e, "failed to rotate the server SVID");
                }
            }
        })
    }
}
