//! The sync loop: every `sync_interval`, fetch the authorized entries (SyncAuthorizedEntries with its
//! paged revision protocol) and the bundles, mint SVIDs for new, changed and half-expired entries in
//! batches (keys are generated here, never sent), drop SVIDs of entries that are gone, and publish.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_identity::x509::certificate_request;
use spire_identity::{Bundle, BundleSet, KeyType, PrivateKey, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::bundle::v1::GetFederatedBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::entry::v1 as entry_api;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::svid::v1 as svid_api;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::spire::api::types as pb;
use tonic::transport::Channel;

use super::cache::{AgentEntry, Cache, Snapshot, X509Svid};
use crate::node::{NodeError, bundle_from_proto, fetch_bundle};
use crate::server_client::ServerClient;

/// SVIDs requested per BatchNewX509SVID call.
pub const BATCH_SIZE: usize = 250;

/// Everything one sync needs.
#[derive(Debug, Clone)]
pub struct Syncer {
    /// The server connection factory.
    pub client: ServerClient,
    /// Where results go.
    pub cache: Cache,
    /// `workload_x509_svid_key_type`.
    pub key_type: KeyType,
    /// The agent's trust domain.
    pub trust_domain: TrustDomain,
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn agent_entry(e: &pb::Entry) -> Option<AgentEntry> {
    let id = e.spiffe_id.as_ref()?;
    let td = TrustDomain::parse(&id.trust_domain).ok()?;
    let spiffe_id = td.id_with_path(&id.path).ok()?;
    let selectors: SelectorSet = e
        .selectors
        .iter()
        .filter_map(|s| spire_identity::Selector::new(s.r#type.clone(), s.value.clone()).ok())
        .collect();
    Some(AgentEntry {
        id: e.id.clone(),
        spiffe_id,
        selectors,
        federates_with: e.federates_with.iter().filter_map(|t| TrustDomain::parse(t).ok()).collect(),
        dns_names: e.dns_names.clone(),
        revision: e.revision_number,
        hint: e.hint.clone(),
        created_at: e.created_at,
        jwt_svid_ttl: e.jwt_svid_ttl,
    })
}

/// SyncAuthorizedEntries: all entries when the set is small; otherwise revisions, then the full
/// entries whose revision we do not have.
async fn sync_entries(
    channel: Channel,
    known: &BTreeMap<String, AgentEntry>,
) -> Result<BTreeMap<String, AgentEntry>, NodeError> {
    let mut client = EntryClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(entry_api::SyncAuthorizedEntriesRequest::default()).await.expect("receiver alive");
    let mut inbound = client
        .sync_authorized_entries(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(NodeError::Refused)?
        .into_inner();
    let mut entries = BTreeMap::new();
    let mut revisions: Vec<entry_api::EntryRevision> = Vec::new();
    loop {
        let msg = inbound
            .message()
            .await
            .map_err(NodeError::Refused)?
            .ok_or_else(|| NodeError::Protocol("sync stream ended early".into()))?;
        entries.extend(msg.entries.iter().filter_map(agent_entry).map(|e| (e.id.clone(), e)));
        revisions.extend(msg.entry_revisions);
        if !msg.more {
            break;
        }
    }
    if revisions.is_empty() {
        return Ok(entries);
    }
    // Keep what is current; ask for the rest.
    let mut wanted = Vec::new();
    for r in &revisions {
        match known.get(&r.id) {
            Some(e) if e.revision == r.revision_number => {
                entries.insert(e.id.clone(), e.clone());
            }
            _ => wanted.push(r.id.clone()),
        }
    }
    if !wanted.is_empty() {
        let expected = wanted.len();
        tx.send(entry_api::SyncAuthorizedEntriesRequest { output_mask: None, ids: wanted }).await.ok();
        let mut got = 0;
        while got < expected {
            let Some(msg) = inbound.message().await.map_err(NodeError::Refused)? else { break };
            got += msg.entries.len();
            entries.extend(msg.entries.iter().filter_map(agent_entry).map(|e| (e.id.clone(), e)));
            if !msg.more && msg.entries.is_empty() {
                break;
            }
        }
    }
    Ok(entries)
}

impl Syncer {
    /// One sync cycle at `now`.
    pub async fn sync_once(&self, now: SystemTime) -> Result<(), NodeError> {
        let previous = self.cache.snapshot();
        let channel = self.client.channel().await?;
        let entries = sync_entries(channel.clone(), &previous.entries).await?;

        // Bundles: ours, and every federated one an entry asks for.
        let own = fetch_bundle(&self.client, &self.trust_domain).await?;
        *self.client.bundles().write().expect("bundle lock") = BundleSet::from(own.clone());
        let mut bundles = BundleSet::from(own);
        let federated: HashSet<&TrustDomain> = entries.values().flat_map(|e| e.federates_with.iter()).collect();
        let mut bundle_client = BundleClient::new(channel.clone());
        for td in federated {
            let req = GetFederatedBundleRequest { trust_domain: td.to_string(), output_mask: None };
            match bundle_client.get_federated_bundle(req).await {
                Ok(b) => bundles.insert(bundle_from_proto(td, b.get_ref())),
                Err(e) => {
                    tracing::warn!(trust_domain = %td, error = %e.message(), "failed to fetch a federated bundle")
                }
            }
        }

        // SVIDs: keep current ones, mint the rest.
        let t = unix(now);
        let mut svids: HashMap<String, Arc<X509Svid>> = HashMap::new();
        let mut stale: Vec<&AgentEntry> = Vec::new();
        for e in entries.values() {
            match previous.svids.get(&e.id) {
                Some(s) if s.revision == e.revision && !s.needs_rotation(t) => {
                    svids.insert(e.id.clone(), s.clone());
                }
                _ => stale.push(e),
            }
        }
        let mut svid_client = SvidClient::new(channel);
        for batch in stale.chunks(BATCH_SIZE) {
            let keys: Vec<PrivateKey> = batch
                .iter()
                .map(|_| PrivateKey::generate(self.key_type))
                .collect::<Result<_, _>>()
                .map_err(|e| NodeError::Csr(e.to_string()))?;
            let params = batch
                .iter()
                .zip(&keys)
                .map(|(e, k)| {
                    let csr = certificate_request(k, &[], &[]).map_err(|e| NodeError::Csr(e.to_string()))?;
                    Ok(svid_api::NewX509svidParams { entry_id: e.id.clone(), csr })
                })
                .collect::<Result<Vec<_>, NodeError>>()?;
            let resp = svid_client
                .batch_new_x509svid(svid_api::BatchNewX509svidRequest { params })
                .await
                .map_err(NodeError::Refused)?
                .into_inner();
            for ((entry, key), result) in batch.iter().zip(keys).zip(resp.results) {
                let ok = result.status.as_ref().is_some_and(|s| s.code == 0);
                match result.svid {
                    Some(svid) if ok => {
                        let svid = X509Svid {
                            entry_id: entry.id.clone(),
                            spiffe_id: entry.spiffe_id.clone(),
                            chain: svid.cert_chain,
                            key,
                            issued_at: t,
                            expires_at: svid.expires_at,
                            revision: entry.revision,
                        };
                        svids.insert(entry.id.clone(), Arc::new(svid));
                    }
                    _ => {
                        tracing::warn!(entry = %entry.id, status = ?result.status, "failed to mint an SVID");
                        // Keep serving the old SVID while it is still valid.
                        if let Some(old) = previous.svids.get(&entry.id).filter(|s| s.expires_at > t) {
                            svids.insert(entry.id.clone(), old.clone());
                        }
                    }
                }
            }
        }
        let snapshot = Snapshot { trust_domain: self.trust_domain.clone(), entries, svids, bundles, ready: true };
        self.cache.publish(snapshot);
        Ok(())
    }

    /// Syncs every `interval`, backing off (doubling, at most 8 minutes) while the server is
    /// unreachable; the cache keeps serving what it has meanwhile.
    pub async fn run(self, interval: Duration, stop: tokio::sync::watch::Receiver<bool>) -> NodeError {
        let mut delay = interval;
        loop {
            match self.sync_once(SystemTime::now()).await {
                Ok(()) => delay = interval,
                Err(e) if e.is_permission_denied() => return e,
                Err(e) => {
                    tracing::warn!(error = %e, "sync failed");
                    delay = (delay * 2).min(Duration::from_secs(480));
                }
            }
            let mut stop = stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return NodeError::Protocol("stopped".into()),
            }
        }
    }
}

/// The SPIFFE ID of an agent SVID's leaf.
pub fn svid_id(chain: &[Vec<u8>]) -> Option<SpiffeId> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(chain.first()?).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => SpiffeId::parse(u).ok(),
        _ => None,
    })
}

/// (issued, expires) of a chain's leaf, Unix seconds.
pub fn svid_validity(chain: &[Vec<u8>]) -> Option<(i64, i64)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(chain.first()?).ok()?;
    Some((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}

/// The own bundle of a set.
pub fn own_bundle<'a>(set: &'a BundleSet, td: &TrustDomain) -> Option<&'a Bundle> {
    set.get(td)
}
