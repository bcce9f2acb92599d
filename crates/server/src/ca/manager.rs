//! The CA manager: prepares, activates and retires the X.509 CA and the JWT signing key (slots A/B),
//! publishes prepared authorities in the trust bundle, and persists the journal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_datastore::{CaJournal, DataStore, DataStoreError, JwtKey, StoredBundle, X509Authority as StoredX509};
use spire_identity::jwt::{JwtSigner, random_key_id};
use spire_identity::x509::{CaParams, Issuer, Subject, key_identifier, self_signed_ca};
use spire_identity::{KeyType, SigningKey, TrustDomain};
use tokio::sync::Mutex;

use super::journal::{Journal, JwtKeyEntry, X509CaEntry};
use super::signer::{ActiveAuthorities, Ca, JwtAuthority, X509Authority, unix};
use super::slot::{SlotId, SlotStatus, activate_at, prepare_at};
use crate::catalog::keymanager::{KeyManager, KeyManagerError};
use crate::catalog::upstreamauthority::{CaRequest, UpstreamAuthority, UpstreamAuthorityError, UpstreamBundle, ca_csr};

/// How often the rotator looks at the slots (SPIRE's rotator interval).
pub const ROTATE_INTERVAL: Duration = Duration::from_secs(10);

/// Why the CA manager failed.
#[derive(Debug, thiserror::Error)]
pub enum CaManagerError {
    /// The key manager failed.
    #[error(transparent)]
    KeyManager(#[from] KeyManagerError),
    /// The upstream authority failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamAuthorityError),
    /// The datastore failed.
    #[error("datastore: {0}")]
    DataStore(#[from] DataStoreError),
    /// A certificate could not be built.
    #[error("building CA: {0}")]
    Build(String),
}

/// What the CA is made of (from the server config).
#[derive(Debug, Clone)]
pub struct CaManagerConfig {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// `ca_key_type`.
    pub ca_key_type: KeyType,
    /// `jwt_key_type`.
    pub jwt_key_type: KeyType,
    /// `ca_ttl`.
    pub ca_ttl: Duration,
    /// `ca_subject`.
    pub ca_subject: Subject,
    /// `disable_jwt_svids`.
    pub disable_jwt_svids: bool,
}

#[derive(Debug)]
struct State {
    journal_id: i64,
    journal: Journal,
}

/// Owns the CA lifecycle; [`Ca`] is its signing front.
pub struct CaManager {
    cfg: CaManagerConfig,
    keys: Arc<dyn KeyManager>,
    upstream: Option<Arc<dyn UpstreamAuthority>>,
    ds: Arc<dyn DataStore>,
    ca: Arc<Ca>,
    state: Mutex<State>,
}

impl std::fmt::Debug for CaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaManager").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn build_err(e: impl ToString) -> CaManagerError {
    CaManagerError::Build(e.to_string())
}

impl CaManager {
    /// Loads the journal of the authorities whose keys the key manager still holds (so that servers
    /// sharing a database each resume their own), dropping entries whose key is gone.
    pub async fn load(
        cfg: CaManagerConfig,
        keys: Arc<dyn KeyManager>,
        upstream: Option<Arc<dyn UpstreamAuthority>>,
        ds: Arc<dyn DataStore>,
        ca: Arc<Ca>,
    ) -> Result<Self, CaManagerError> {
        let mut state = State { journal_id: 0, journal: Journal::default() };
        for slot in [SlotId::A, SlotId::B] {
            let Some(key) = keys.get_key(slot.x509_key_id()).await? else { continue };
            let authority_id = hex(&key_identifier(&key.public_key_der()).map_err(build_err)?);
            if let Some(found) = ds.fetch_ca_journal(&authority_id).await? {
                // An unreadable journal is replaced by fresh authorities rather than blocking startup.
                if let Ok(journal) = Journal::decode(&found.data) {
                    state = State { journal_id: found.id, journal };
                    break;
                }
            }
        }
        let mut kept = Journal::default();
        for entry in state.journal.x509.drain(..) {
            if let Some(key) = keys.get_key(entry.slot.x509_key_id()).await?
                && Issuer::new(entry.chain[0].clone(), key).is_ok()
            {
                kept.x509.push(entry);
            }
        }
        for entry in state.journal.jwt.drain(..) {
            if let Some(key) = keys.get_key(entry.slot.jwt_key_id()).await?
                && key.public_key_der() == entry.public_key_der
            {
                kept.jwt.push(entry);
            }
        }
        state.journal = kept;
        Ok(Self { cfg, keys, upstream, ds, ca, state: Mutex::new(state) })
    }

    /// The signing front.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// One rotation step at `now`: make sure an authority is active, prepare the next one and activate
    /// it on SPIRE's schedule, publish what changed. Safe to call at any interval.
    pub async fn rotate(&self, now: SystemTime) -> Result<(), CaManagerError> {
        let mut state = self.state.lock().await;
        let t = unix(now);
        let mut changed = false;

        let current = state.journal.x509_with(SlotStatus::Active).filter(|e| e.not_after > t).cloned();
        match current {
            None => {
                let slot = state.journal.x509.last().map(|e| e.slot.other()).unwrap_or(SlotId::A);
                let entry = self.prepare_x509(slot, now).await?;
                state.journal.add_x509(entry);
                state.journal.activate_x509();
                changed = true;
            }
            Some(cur) => {
                if state.journal.x509_with(SlotStatus::Prepared).is_none()
                    && t >= prepare_at(cur.issued_at, cur.not_after)
                {
                    let entry = self.prepare_x509(cur.slot.other(), now).await?;
                    state.journal.add_x509(entry);
                    changed = true;
                }
                if state.journal.x509_with(SlotStatus::Prepared).is_some()
                    && t >= activate_at(cur.issued_at, cur.not_after)
                {
                    state.journal.activate_x509();
                    changed = true;
                }
            }
        }

        if !self.cfg.disable_jwt_svids {
            let current = state.journal.jwt_with(SlotStatus::Active).filter(|e| e.not_after > t).cloned();
            match current {
                None => {
                    let slot = state.journal.jwt.last().map(|e| e.slot.other()).unwrap_or(SlotId::A);
                    let entry = self.prepare_jwt(slot, now).await?;
                    state.journal.add_jwt(entry);
                    state.journal.activate_jwt();
                    changed = true;
                }
                Some(cur) => {
                    if state.journal.jwt_with(SlotStatus::Prepared).is_none()
                        && t >= prepare_at(cur.issued_at, cur.not_after)
                    {
                        let entry = self.prepare_jwt(cur.slot.other(), now).await?;
                        state.journal.add_jwt(entry);
                        changed = true;
                    }
                    if state.journal.jwt_with(SlotStatus::Prepared).is_some()
                        && t >= activate_at(cur.issued_at, cur.not_after)
                    {
                        state.journal.activate_jwt();
                        changed = true;
                    }
                }
            }
        }

        if changed {
            self.persist(&mut state).await?;
        }
        if changed || self.ca.active().is_err() {
            self.publish(&state.journal).await?;
        }
        Ok(())
    }

    /// Runs [`Self::rotate`] every [`ROTATE_INTERVAL`] until the task is dropped; failures are logged
    /// and retried on the next tick.
    pub fn spawn_rotator(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(ROTATE_INTERVAL);
            loop {
                ticker.tick().await;
                if let Err(e) = self.rotate(SystemTime::now()).await {
                    tracing::error!(error = %e, "CA rotation failed");
                }
            }
        })
    }

    /// Follows the upstream bundle, if the upstream authority streams it: every change is appended
    /// to our bundle (SPIRE's `SyncX509Roots` and `AppendJWTKeys`), so that agents and downstream
    /// servers learn new upstream roots and the JWT keys of the whole topology.
    pub fn spawn_upstream_sync(self: Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let mut updates = self.upstream.as_ref()?.bundle_updates()?;
        Some(tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                let update = updates.borrow_and_update().clone();
                if let Err(e) = self.append_upstream(update).await {
                    tracing::error!(error = %e, "Failed to store the bundle received from the upstream authority plugin");
                }
            }
        }))
    }

    async fn append_upstream(&self, update: UpstreamBundle) -> Result<(), CaManagerError> {
        let bundle = StoredBundle {
            x509_authorities: update.x509_roots.into_iter().map(|der| StoredX509 { der, tainted: false }).collect(),
            jwt_authorities: update.jwt_keys,
            ..StoredBundle::new(self.cfg.trust_domain.clone())
        };
        let before = self.ds.fetch_bundle(&self.cfg.trust_domain).await?;
        let after = self.ds.append_bundle(bundle).await?;
        if before.is_none_or(|b| b.sequence_number != after.sequence_number) {
            tracing::info!(sequence_number = after.sequence_number, "Bundle updated from the upstream authority");
        }
        Ok(())
    }

    async fn prepare_x509(&self, slot: SlotId, now: SystemTime) -> Result<X509CaEntry, CaManagerError> {
        let key = self.keys.generate_key(slot.x509_key_id(), self.cfg.ca_key_type).await?;
        let public = key.public_key_der();
        let (chain, roots, self_signed) = match &self.upstream {
            Some(upstream) => {
                let csr = ca_csr(&key, &self.cfg.trust_domain, &self.cfg.ca_subject)?;
                let minted = upstream
                    .mint_x509_ca(CaRequest {
                        trust_domain: &self.cfg.trust_domain,
                        public_key_der: &public,
                        csr: &csr,
                        subject: self.cfg.ca_subject.clone(),
                        now,
                        ttl: self.cfg.ca_ttl,
                    })
                    .await?;
                (minted.chain, minted.upstream_roots, false)
            }
            None => {
                let params = CaParams {
                    trust_domain: &self.cfg.trust_domain,
                    public_key_der: &public,
                    subject: self.cfg.ca_subject.clone(),
                    now,
                    ttl: self.cfg.ca_ttl,
                };
                let der = self_signed_ca(&params, &key).map_err(build_err)?;
                (vec![der.clone()], vec![der], true)
            }
        };
        let issuer = Issuer::new(chain[0].clone(), key).map_err(build_err)?;
        let bundle = StoredBundle {
            trust_domain: self.cfg.trust_domain.clone(),
            x509_authorities: roots.into_iter().map(|der| StoredX509 { der, tainted: false }).collect(),
            jwt_authorities: vec![],
            refresh_hint: 0,
            sequence_number: 0,
        };
        self.ds.append_bundle(bundle).await?;
        tracing::info!(slot = ?slot, not_after = unix(issuer.not_after()), "X509 CA prepared");
        Ok(X509CaEntry {
            slot,
            status: SlotStatus::Prepared,
            issued_at: unix(now),
            not_after: unix(issuer.not_after()),
            chain,
            self_signed,
            authority_id: hex(&key_identifier(&public).map_err(build_err)?),
        })
    }

    async fn prepare_jwt(&self, slot: SlotId, now: SystemTime) -> Result<JwtKeyEntry, CaManagerError> {
        let key = self.keys.generate_key(slot.jwt_key_id(), self.cfg.jwt_key_type).await?;
        let key_id = random_key_id();
        let not_after = unix(now + self.cfg.ca_ttl);
        let public_key_der = key.public_key_der();
        let own = JwtKey {
            key_id: key_id.clone(),
            public_key_der: public_key_der.clone(),
            expires_at: not_after,
            tainted: false,
        };
        // With an upstream, the keys it answers (ours among those of the whole topology) go into the
        // bundle; a plugin that cannot publish leaves us with our own key, as SPIRE's manager does.
        let published = match &self.upstream {
            Some(upstream) => upstream.publish_jwt_key(&own).await?,
            None => None,
        };
        let jwt_authorities = match published {
            Some(keys) => keys,
            None => {
                if self.upstream.is_some() {
                    tracing::warn!(
                        "UpstreamAuthority plugin does not support JWT-SVIDs. Workloads managed by this server may \
                         have trouble communicating with workloads outside this cluster when using JWT-SVIDs."
                    );
                }
                vec![own]
            }
        };
        let bundle = StoredBundle { jwt_authorities, ..StoredBundle::new(self.cfg.trust_domain.clone()) };
        self.ds.append_bundle(bundle).await?;
        tracing::info!(slot = ?slot, key_id = %key_id, "JWT key prepared");
        Ok(JwtKeyEntry { slot, status: SlotStatus::Prepared, issued_at: unix(now), not_after, key_id, public_key_der })
    }

    async fn persist(&self, state: &mut State) -> Result<(), CaManagerError> {
        let journal = &state.journal;
        let saved = self
            .ds
            .set_ca_journal(CaJournal {
                id: state.journal_id,
                data: journal.encode(),
                active_x509_authority_id: journal
                    .x509_with(SlotStatus::Active)
                    .map(|e| e.authority_id.clone())
                    .unwrap_or_default(),
                active_jwt_authority_id: journal
                    .jwt_with(SlotStatus::Active)
                    .map(|e| e.key_id.clone())
                    .unwrap_or_default(),
                expires_at: journal.expires_at(),
            })
            .await?;
        state.journal_id = saved.id;
        Ok(())
    }

    async fn publish(&self, journal: &Journal) -> Result<(), CaManagerError> {
        let entry = journal.x509_with(SlotStatus::Active).ok_or_else(|| build_err("no active X509 CA"))?;
        let key = self.key(entry.slot.x509_key_id()).await?;
        let issuer = Issuer::new(entry.chain[0].clone(), key).map_err(build_err)?;
        let chain_tail = if entry.self_signed { Vec::new() } else { entry.chain.clone() };
        let x509 = X509Authority { issuer, chain_tail, authority_id: entry.authority_id.clone() };
        let jwt = match journal.jwt_with(SlotStatus::Active) {
            Some(j) if !self.cfg.disable_jwt_svids => {
                let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(j.not_after.max(0) as u64);
                let key = self.key(j.slot.jwt_key_id()).await?;
                Some(JwtAuthority {
                    signer: JwtSigner::new(j.key_id.clone(), key).with_not_after(not_after),
                    not_after,
                })
            }
            _ => None,
        };
        self.ca.set_active(ActiveAuthorities { x509, jwt });
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<SigningKey, CaManagerError> {
        self.keys.get_key(id).await?.ok_or_else(|| build_err(format!("key {id:?} is missing from the key manager")))
    }
}
