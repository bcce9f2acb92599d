//! `spire.api.server.entry.v1.Entry`: registration entry CRUD with SPIRE's filters, masks, pagination
//! and per-item batch statuses, and the authorized-entry RPCs agents sync from.

use std::pin::Pin;
use std::sync::Arc;

use spire_datastore::{EntryFilter, EntryMask, Pagination, RegistrationEntry};
use spire_identity::{MatchMode, SelectorSet, TrustDomain};
use spire_proto::spire::api::server::entry::v1 as api;
use spire_proto::spire::api::server::entry::v1::entry_server::Entry;
use spire_proto::spire::api::types as pb;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::caller::Caller;
use super::{ServerContext, convert, ds_status, item_status, ok_status};

/// Entries per SyncAuthorizedEntries page (SPIRE's `defaultEntryPageSize`).
pub const SYNC_PAGE_SIZE: usize = 500;
/// Largest ListEntries page; bigger requests are clamped.
pub const MAX_LIST_PAGE_SIZE: i32 = 1000;

/// The Entry service.
#[derive(Debug, Clone)]
pub struct EntryService {
    ctx: Arc<ServerContext>,
}

impl EntryService {
    /// A service over `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> Self {
        Self { ctx }
    }
}

fn match_mode(value: i32) -> Result<MatchMode, Status> {
    Ok(match value {
        0 => MatchMode::Exact,
        1 => MatchMode::Subset,
        2 => MatchMode::Superset,
        3 => MatchMode::Any,
        other => {
            return Err(Status::invalid_argument(format!(
                "malformed selectors filter: unknown match behavior {other}"
            )));
        }
    })
}

/// The filter fields shared by ListEntries and CountEntries.
fn filter(
    by_spiffe_id: Option<&pb::Spiffeid>,
    by_parent_id: Option<&pb::Spiffeid>,
    by_selectors: Option<&pb::SelectorMatch>,
    by_federates_with: Option<&pb::FederatesWithMatch>,
    by_hint: Option<&String>,
    by_downstream: Option<bool>,
) -> Result<EntryFilter, Status> {
    let bad = |what: &str, m: String| Status::invalid_argument(format!("malformed {what} filter: {m}"));
    let mut f = EntryFilter::default();
    if let Some(id) = by_spiffe_id {
        f.by_spiffe_id = Some(convert::spiffe_id(Some(id)).map_err(|m| bad("SPIFFE ID", m))?);
    }
    if let Some(id) = by_parent_id {
        f.by_parent_id = Some(convert::spiffe_id(Some(id)).map_err(|m| bad("parent ID", m))?);
    }
    if let Some(m) = by_selectors {
        if m.selectors.is_empty() {
            return Err(bad("selectors", "empty selector set".into()));
        }
        let set: SelectorSet =
            m.selectors.iter().map(convert::selector).collect::<Result<_, _>>().map_err(|e| bad("selectors", e))?;
        f.by_selectors = Some((set, match_mode(m.r#match)?));
    }
    if let Some(m) = by_federates_with {
        if m.trust_domains.is_empty() {
            return Err(bad("federates with", "empty trust domain set".into()));
        }
        let tds = m
            .trust_domains
            .iter()
            .map(|td| TrustDomain::parse(td).map_err(|e| bad("federates with", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        f.by_federates_with = Some((tds, match_mode(m.r#match)?));
    }
    f.by_hint = by_hint.cloned();
    // SPIRE's datastore filters on `downstream = true` only: `by_downstream: false`, which SPIRE's
    // `entry show` and `entry count` always send, matches every entry.
    f.by_downstream = by_downstream.filter(|&d| d);
    Ok(f)
}

/// An API input mask as the datastore's update mask (all fields when absent, as SPIRE does).
fn update_mask(m: Option<&pb::EntryMask>) -> EntryMask {
    let Some(m) = m else { return EntryMask::ALL };
    EntryMask {
        spiffe_id: m.spiffe_id,
        parent_id: m.parent_id,
        selectors: m.selectors,
        x509_svid_ttl: m.x509_svid_ttl,
        jwt_svid_ttl: m.jwt_svid_ttl,
        federates_with: m.federates_with,
        admin: m.admin,
        downstream: m.downstream,
        expires_at: m.expires_at,
        dns_names: m.dns_names,
        store_svid: m.store_svid,
        hint: m.hint,
        disable_x509_svid_prefetch: m.additional_attributes,
        jwt_svid_include_jti: m.additional_attributes,
    }
}

impl EntryService {
    fn index_upsert(&self, entry: &RegistrationEntry) {
        self.ctx.index.write().expect("index lock").upsert(entry.clone());
    }

    fn index_remove(&self, id: &str) {
        self.ctx.index.write().expect("index lock").remove(id);
    }

    /// The federated trust domains must have bundles. SPIRE's datastore fails this with a plain
    /// error, which its API answers as Internal; `verb` is `create` or `update`, as in its message.
    async fn check_federates_with(&self, entry: &RegistrationEntry, verb: &str) -> Result<(), Status> {
        for td in &entry.federates_with {
            if self.ctx.ds.fetch_bundle(td).await.map_err(ds_status)?.is_none() {
                return Err(Status::internal(format!(
                    "failed to {verb} entry: unable to find federated bundle \"spiffe://{td}\""
                )));
            }
        }
        Ok(())
    }

    /// An entry with the same SPIFFE ID, parent ID and selectors (SPIRE's `lookupSimilarEntry`).
    async fn similar_entry(&self, entry: &RegistrationEntry) -> Option<RegistrationEntry> {
        let filter = EntryFilter {
            by_spiffe_id: Some(entry.spiffe_id.clone()),
            by_parent_id: Some(entry.parent_id.clone()),
            by_selectors: Some((entry.selector_set(), MatchMode::Exact)),
            ..EntryFilter::default()
        };
        self.ctx.ds.list_entries(&filter, None).await.ok().and_then(|(v, _)| v.into_iter().next())
    }

    /// SPIRE's `createEntry`: convert, the datastore's own checks, a similar entry (answered
    /// AlreadyExists with that entry), the federated bundles, then the insert.
    async fn create_one(
        &self,
        e: &pb::Entry,
        mask: Option<&pb::EntryMask>,
    ) -> api::batch_create_entry_response::Result {
        let fail = |status: Status, entry: Option<pb::Entry>| api::batch_create_entry_response::Result {
            status: Some(item_status(&status)),
            entry,
        };
        let entry = match convert::entry(e, &self.ctx.trust_domain) {
            Ok(entry) => entry,
            Err(m) => return fail(Status::invalid_argument(format!("failed to convert entry: {m}")), None),
        };
        if let Err(m) = convert::entry_datastore_checks(&entry) {
            return fail(Status::invalid_argument(format!("failed to create entry: datastore-validation: {m}")), None);
        }
        if let Some(existing) = self.similar_entry(&entry).await {
            return fail(
                Status::already_exists("similar entry already exists"),
                Some(convert::entry_proto(&existing, mask)),
            );
        }
        if let Err(s) = self.check_federates_with(&entry, "create").await {
            return fail(s, None);
        }
        match self.ctx.ds.create_entry(entry.clone()).await {
            Ok(created) => {
                self.index_upsert(&created);
                api::batch_create_entry_response::Result {
                    status: Some(ok_status()),
                    entry: Some(convert::entry_proto(&created, mask)),
                }
            }
            Err(spire_datastore::DataStoreError::AlreadyExists(m)) => {
                // Written meanwhile, or a custom entry ID that is taken: SPIRE looks for a similar
                // entry before inserting, so re-creating an entry (even with its own fixed ID, as
                // re-running a `-data` file does) reads as a similar entry.
                let existing = self.similar_entry(&entry).await;
                let message = if existing.is_some() || m.contains("similar") {
                    "similar entry already exists".to_owned()
                } else {
                    m
                };
                fail(Status::already_exists(message), existing.map(|x| convert::entry_proto(&x, mask)))
            }
            Err(err) => fail(ds_status(err), None),
        }
    }

    async fn update_one(
        &self,
        e: &pb::Entry,
        input: Option<&pb::EntryMask>,
        output: Option<&pb::EntryMask>,
    ) -> api::batch_update_entry_response::Result {
        let fail = |status: Status| api::batch_update_entry_response::Result {
            status: Some(item_status(&status)),
            entry: None,
        };
        if e.id.is_empty() {
            return fail(Status::invalid_argument("failed to convert entry: missing entry ID"));
        }
        let mask = update_mask(input);
        // Fields outside the mask need not be valid; fill them from the stored entry before checking.
        // SPIRE answers a missing entry with only its own words (NotFound hides the cause).
        let stored = match self.ctx.ds.fetch_entry(&e.id).await {
            Ok(Some(s)) => s,
            Ok(None) => return fail(Status::not_found("failed to update entry")),
            Err(err) => return fail(ds_status(err)),
        };
        let mut merged = convert::entry_proto(&stored, None);
        let p = e.clone();
        macro_rules! take {
            ($($f:ident),*) => { $( if mask.$f { merged.$f = p.$f.clone(); } )* };
        }
        take!(
            spiffe_id,
            parent_id,
            selectors,
            x509_svid_ttl,
            jwt_svid_ttl,
            federates_with,
            admin,
            downstream,
            expires_at,
            dns_names,
            store_svid,
            hint
        );
        if input.is_some_and(|m| m.additional_attributes) || input.is_none() {
            merged.additional_attributes = p.additional_attributes;
        }
        let mut entry = match convert::entry(&merged, &self.ctx.trust_domain) {
            Ok(entry) => entry,
            Err(m) => return fail(Status::invalid_argument(format!("failed to convert entry: {m}"))),
        };
        entry.id = e.id.clone();
        if let Err(m) = convert::entry_datastore_checks(&entry) {
            return fail(Status::invalid_argument(format!("failed to update entry: datastore-validation: {m}")));
        }
        if let Err(s) = self.check_federates_with(&entry, "update").await {
            return fail(s);
        }
        match self.ctx.ds.update_entry(entry, &mask).await {
            Ok(updated) => {
                self.index_upsert(&updated);
                api::batch_update_entry_response::Result {
                    status: Some(ok_status()),
                    entry: Some(convert::entry_proto(&updated, output)),
                }
            }
            Err(spire_datastore::DataStoreError::NotFound(_)) => fail(Status::not_found("failed to update entry")),
            Err(err) => fail(ds_status(err)),
        }
    }

    fn authorized(&self, caller: &Caller) -> Result<Vec<Arc<RegistrationEntry>>, Status> {
        let agent = caller.agent_id()?;
        let selectors = caller.node_selectors.clone();
        Ok(self.ctx.index.read().expect("index lock").authorized_entries(agent, &selectors))
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<api::SyncAuthorizedEntriesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Entry for EntryService {
    async fn count_entries(
        &self,
        request: Request<api::CountEntriesRequest>,
    ) -> Result<Response<api::CountEntriesResponse>, Status> {
        let req = request.into_inner();
        let f = match &req.filter {
            Some(f) => filter(
                f.by_spiffe_id.as_ref(),
                f.by_parent_id.as_ref(),
                f.by_selectors.as_ref(),
                f.by_federates_with.as_ref(),
                f.by_hint.as_ref(),
                f.by_downstream,
            )?,
            None => EntryFilter::default(),
        };
        let count = self.ctx.ds.count_entries(&f).await.map_err(ds_status)?;
        Ok(Response::new(api::CountEntriesResponse { count: i32::try_from(count).unwrap_or(i32::MAX) }))
    }

    async fn list_entries(
        &self,
        request: Request<api::ListEntriesRequest>,
    ) -> Result<Response<api::ListEntriesResponse>, Status> {
        let req = request.into_inner();
        if req.page_size < 0 {
            return Err(Status::invalid_argument(format!(
                "invalid page size {}: it must not be negative",
                req.page_size
            )));
        }
        let f = match &req.filter {
            Some(f) => filter(
                f.by_spiffe_id.as_ref(),
                f.by_parent_id.as_ref(),
                f.by_selectors.as_ref(),
                f.by_federates_with.as_ref(),
                f.by_hint.as_ref(),
                f.by_downstream,
            )?,
            None => EntryFilter::default(),
        };
        let pagination = (req.page_size > 0 || !req.page_token.is_empty()).then(|| Pagination {
            page_size: req.page_size.clamp(1, MAX_LIST_PAGE_SIZE) as u32,
            token: req.page_token.clone(),
        });
        let (entries, next) = self.ctx.ds.list_entries(&f, pagination.as_ref()).await.map_err(ds_status)?;
        let mask = req.output_mask.as_ref();
        Ok(Response::new(api::ListEntriesResponse {
            entries: entries.iter().map(|e| convert::entry_proto(e, mask)).collect(),
            next_page_token: next,
        }))
    }

    async fn get_entry(&self, request: Request<api::GetEntryRequest>) -> Result<Response<pb::Entry>, Status> {
        let req = request.into_inner();
        if req.id.is_empty() {
            return Err(Status::invalid_argument("missing ID"));
        }
        match self.ctx.ds.fetch_entry(&req.id).await.map_err(ds_status)? {
            Some(e) => Ok(Response::new(convert::entry_proto(&e, req.output_mask.as_ref()))),
            None => Err(Status::not_found("entry not found")),
        }
    }

    async fn batch_create_entry(
        &self,
        request: Request<api::BatchCreateEntryRequest>,
    ) -> Result<Response<api::BatchCreateEntryResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.entries.len());
        for e in &req.entries {
            results.push(self.create_one(e, req.output_mask.as_ref()).await);
        }
        Ok(Response::new(api::BatchCreateEntryResponse { results }))
    }

    async fn batch_update_entry(
        &self,
        request: Request<api::BatchUpdateEntryRequest>,
    ) -> Result<Response<api::BatchUpdateEntryResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.entries.len());
        for e in &req.entries {
            results.push(self.update_one(e, req.input_mask.as_ref(), req.output_mask.as_ref()).await);
        }
        Ok(Response::new(api::BatchUpdateEntryResponse { results }))
    }

    async fn batch_delete_entry(
        &self,
        request: Request<api::BatchDeleteEntryRequest>,
    ) -> Result<Response<api::BatchDeleteEntryResponse>, Status> {
        let req = request.into_inner();
        let mut results = Vec::with_capacity(req.ids.len());
        for id in req.ids {
            let status = if id.is_empty() {
                item_status(&Status::invalid_argument("missing entry ID"))
            } else {
                match self.ctx.ds.delete_entry(&id).await {
                    Ok(_) => {
                        self.index_remove(&id);
                        ok_status()
                    }
                    Err(spire_datastore::DataStoreError::NotFound(_)) => {
                        item_status(&Status::not_found("entry not found"))
                    }
                    Err(err) => item_status(&ds_status(err)),
                }
            };
            results.push(api::batch_delete_entry_response::Result { status: Some(status), id });
        }
        Ok(Response::new(api::BatchDeleteEntryResponse { results }))
    }

    async fn get_authorized_entries(
        &self,
        request: Request<api::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<api::GetAuthorizedEntriesResponse>, Status> {
        let entries = self.authorized(Caller::of(&request)?)?;
        let mask = request.get_ref().output_mask.as_ref();
        Ok(Response::new(api::GetAuthorizedEntriesResponse {
            entries: entries.iter().map(|e| convert::entry_proto(e, mask)).collect(),
        }))
    }

    type SyncAuthorizedEntriesStream = SyncStream;

    /// SPIRE's paged revision protocol: small sets go out whole; otherwise revisions are paged, the
    /// agent asks back for the IDs it needs, and those are paged in full.
    async fn sync_authorized_entries(
        &self,
        request: Request<Streaming<api::SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        let entries = self.authorized(Caller::of(&request)?)?;
        let mut incoming = request.into_inner();
        let first = incoming.next().await.ok_or_else(|| Status::invalid_argument("expected an initial request"))??;
        let mask = first.output_mask;
        if !first.ids.is_empty() {
            return Err(Status::invalid_argument("first request must not carry entry IDs"));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let send = |resp| tx.send(Ok(resp));
            if entries.len() < SYNC_PAGE_SIZE {
                let resp = api::SyncAuthorizedEntriesResponse {
                    entries: entries.iter().map(|e| convert::entry_proto(e, mask.as_ref())).collect(),
                    ..Default::default()
                };
                let _ = send(resp).await;
                return;
            }
            let revisions: Vec<api::EntryRevision> = entries
                .iter()
                .map(|e| api::EntryRevision {
                    id: e.id.clone(),
                    revision_number: e.revision_number,
                    created_at: e.created_at,
                })
                .collect();
            let pages: Vec<_> = revisions.chunks(SYNC_PAGE_SIZE).collect();
            for (i, page) in pages.iter().enumerate() {
                let resp = api::SyncAuthorizedEntriesResponse {
                    entry_revisions: page.to_vec(),
                    more: i + 1 < pages.len(),
                    ..Default::default()
                };
                if send(resp).await.is_err() {
                    return;
                }
            }
            let by_id: std::collections::HashMap<&str, &Arc<RegistrationEntry>> =
                entries.iter().map(|e| (e.id.as_str(), e)).collect();
            while let Some(Ok(req)) = incoming.next().await {
                let wanted: Vec<pb::Entry> = req
                    .ids
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()))
                    .map(|e| convert::entry_proto(e, mask.as_ref()))
                    .collect();
                let chunks: Vec<_> = wanted.chunks(SYNC_PAGE_SIZE).map(<[pb::Entry]>::to_vec).collect();
                if chunks.is_empty() {
                    let _ = send(api::SyncAuthorizedEntriesResponse::default()).await;
                    continue;
                }
                let n = chunks.len();
                for (i, chunk) in chunks.into_iter().enumerate() {
                    let resp =
                        api::SyncAuthorizedEntriesResponse { entries: chunk, more: i + 1 < n, ..Default::default() };
                    if send(resp).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
