//! Registration entries: the `registered_entries` row plus its selectors, DNS names and federated
//! bundles in child tables, written and read together.

use std::collections::HashMap;

use spire_identity::{Selector, TrustDomain};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::dialect::insert_id;
use super::set_match::{self, SetTable};
use super::{Builder, Dialect, SqlStore, events, flag, stored_spiffe_id, stored_trust_domain};
use crate::filters::{check_filters, look_ahead_limit, split_page};
use crate::{DataStoreError, EntryFilter, EntryMask, Pagination, RegistrationEntry, Result, now_unix, validate};

/// Boolean columns are read as 0/1 integers: sqlx's `Any` driver reads no boolean column type of
/// SQLite nor MySQL's TINYINT, and every database agrees on this expression.
const COLUMNS: &str = "e.id, e.entry_id, e.spiffe_id, e.parent_id, e.ttl, e.jwt_svid_ttl, \
                       CASE WHEN e.admin THEN 1 ELSE 0 END AS admin, \
                       CASE WHEN e.downstream THEN 1 ELSE 0 END AS downstream, e.expiry, e.revision_number, \
                       CASE WHEN e.store_svid THEN 1 ELSE 0 END AS store_svid, e.hint, \
                       CASE WHEN e.disable_x509_svid_prefetch THEN 1 ELSE 0 END AS disable_x509_svid_prefetch, \
                       CASE WHEN e.jwt_svid_include_jti THEN 1 ELSE 0 END AS jwt_svid_include_jti, e.created_at";

/// Above this many entries, child rows are read whole instead of by ID lists.
const BULK_THRESHOLD: usize = 2000;
/// IDs per `IN (...)` list, well under SQLite's bound-parameter limit.
const IN_CHUNK: usize = 500;

/// The `registered_entries` columns; the child tables are read separately.
struct EntryRow {
    pk: i64,
    entry_id: String,
    spiffe_id: String,
    parent_id: String,
    ttl: i32,
    jwt_svid_ttl: i32,
    admin: bool,
    downstream: bool,
    expiry: i64,
    revision_number: i64,
    store_svid: bool,
    hint: String,
    disable_x509_svid_prefetch: bool,
    jwt_svid_include_jti: bool,
    created_at: i64,
}

impl FromRow<'_, AnyRow> for EntryRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            pk: row.try_get("id")?,
            entry_id: row.try_get("entry_id")?,
            spiffe_id: row.try_get("spiffe_id")?,
            parent_id: row.try_get("parent_id")?,
            ttl: row.try_get("ttl")?,
            jwt_svid_ttl: row.try_get("jwt_svid_ttl")?,
            admin: flag(row, "admin")?,
            downstream: flag(row, "downstream")?,
            expiry: row.try_get("expiry")?,
            revision_number: row.try_get("revision_number")?,
            store_svid: flag(row, "store_svid")?,
            hint: row.try_get("hint")?,
            disable_x509_svid_prefetch: flag(row, "disable_x509_svid_prefetch")?,
            jwt_svid_include_jti: flag(row, "jwt_svid_include_jti")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub(super) async fn create(store: &SqlStore, mut entry: RegistrationEntry) -> Result<RegistrationEntry> {
    let d = store.dialect;
    entry.normalize();
    if entry.id.is_empty() {
        entry.id = uuid::Uuid::new_v4().to_string();
    }
    validate::entry(&entry)?;
    let now = now_unix();
    entry.created_at = now;
    entry.revision_number = 0;

    let mut tx = store.write().await?;
    if find_pk(&mut tx, &entry.id).await?.is_some() {
        return Err(DataStoreError::AlreadyExists(format!(
            "an entry with ID {} already exists: choose another ID, or leave it empty to have one generated",
            entry.id
        )));
    }
    let digest = entry.similarity_digest();
    check_not_similar(&mut tx, &digest, None).await?;
    let bundle_ids = federated_bundle_ids(&mut tx, &entry.id, &entry.federates_with).await?;
    let sql = d.returning_id(
        "INSERT INTO registered_entries (entry_id, spiffe_id, parent_id, similarity_digest, ttl, jwt_svid_ttl, admin, \
         downstream, expiry, revision_number, store_svid, hint, disable_x509_svid_prefetch, jwt_svid_include_jti, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let insert = sqlx::query(&sql)
        .bind(&entry.id)
        .bind(entry.spiffe_id.to_string())
        .bind(entry.parent_id.to_string())
        .bind(&digest)
        .bind(entry.x509_svid_ttl)
        .bind(entry.jwt_svid_ttl)
        .bind(entry.admin)
        .bind(entry.downstream)
        .bind(entry.expires_at)
        .bind(entry.revision_number)
        .bind(entry.store_svid)
        .bind(&entry.hint)
        .bind(entry.disable_x509_svid_prefetch)
        .bind(entry.jwt_svid_include_jti)
        .bind(now)
        .bind(now);
    let pk = insert_id(d, insert, &mut tx).await?;
    insert_children(&mut tx, pk, &entry, &bundle_ids).await?;
    events::entry_event(&mut tx, &entry.id, now).await?;
    tx.commit().await?;
    Ok(entry)
}

pub(super) async fn fetch(store: &SqlStore, id: &str) -> Result<Option<RegistrationEntry>> {
    let mut tx = store.read().await?;
    let entry = fetch_in(&mut tx, id, false).await?.map(|(_, entry)| entry);
    tx.commit().await?;
    Ok(entry)
}

pub(super) async fn fetch_many(store: &SqlStore, ids: &[String]) -> Result<HashMap<String, RegistrationEntry>> {
    let d = store.dialect;
    let mut tx = store.read().await?;
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let mut qb = Builder::new(d, format!("SELECT {COLUMNS} FROM registered_entries e WHERE e.entry_id IN ("));
        qb.push_list(", ", chunk.iter().cloned());
        qb.push(")");
        rows.extend(qb.build_query_as::<EntryRow>().fetch_all(&mut *tx).await?);
    }
    let entries = assemble(&mut tx, rows).await?;
    tx.commit().await?;
    Ok(entries.into_iter().map(|(_, e)| (e.id.clone(), e)).collect())
}

pub(super) async fn list(
    store: &SqlStore,
    filter: &EntryFilter,
    pagination: Option<&Pagination>,
) -> Result<(Vec<RegistrationEntry>, String)> {
    let d = store.dialect;
    check_filters(filter.by_selectors.as_ref(), filter.by_federates_with.as_ref())?;
    let cursor = pagination.map(Pagination::cursor).transpose()?.flatten();
    let mut qb = Builder::new(d, format!("SELECT {COLUMNS} FROM registered_entries e WHERE 1 = 1"));
    push_filter(&mut qb, filter);
    if let Some(cursor) = cursor {
        qb.push(" AND e.entry_id > ").push_bind(cursor);
    }
    qb.push(" ORDER BY e.entry_id");
    if let Some(p) = pagination {
        qb.push(" LIMIT ").push_bind(look_ahead_limit(p));
    }

    let mut tx = store.read_stale().await?;
    let rows = qb.build_query_as::<EntryRow>().fetch_all(&mut *tx).await?;
    let (rows, next) = split_page(rows, pagination, |r| &r.entry_id);
    let entries = assemble(&mut tx, rows).await?;
    tx.commit().await?;
    Ok((entries.into_iter().map(|(_, e)| e).collect(), next))
}

pub(super) async fn count(store: &SqlStore, filter: &EntryFilter) -> Result<u64> {
    let d = store.dialect;
    check_filters(filter.by_selectors.as_ref(), filter.by_federates_with.as_ref())?;
    let mut qb = Builder::new(d, "SELECT COUNT(*) FROM registered_entries e WHERE 1 = 1");
    push_filter(&mut qb, filter);
    let count: i64 = qb.build_query_scalar().fetch_one(&store.replica).await?;
    Ok(count as u64)
}

pub(super) async fn update(store: &SqlStore, update: RegistrationEntry, mask: &EntryMask) -> Result<RegistrationEntry> {
    let d = store.dialect;
    validate::entry_id(&update.id)?;
    let mut tx = store.write().await?;
    let (pk, mut entry) = fetch_in(&mut tx, &update.id, true).await?.ok_or_else(|| not_found(&update.id))?;
    mask.apply(&mut entry, update);
    validate::entry(&entry)?;
    let digest = entry.similarity_digest();
    check_not_similar(&mut tx, &digest, Some(pk)).await?;
    let bundle_ids = federated_bundle_ids(&mut tx, &entry.id, &entry.federates_with).await?;
    entry.revision_number += 1;
    let now = now_unix();
    sqlx::query(&d.sql(
        "UPDATE registered_entries SET spiffe_id = ?, parent_id = ?, similarity_digest = ?, ttl = ?, jwt_svid_ttl = ?, \
         admin = ?, downstream = ?, expiry = ?, revision_number = ?, store_svid = ?, hint = ?, \
         disable_x509_svid_prefetch = ?, jwt_svid_include_jti = ?, updated_at = ? WHERE id = ?",
    ))
    .bind(entry.spiffe_id.to_string())
    .bind(entry.parent_id.to_string())
    .bind(&digest)
    .bind(entry.x509_svid_ttl)
    .bind(entry.jwt_svid_ttl)
    .bind(entry.admin)
    .bind(entry.downstream)
    .bind(entry.expires_at)
    .bind(entry.revision_number)
    .bind(entry.store_svid)
    .bind(&entry.hint)
    .bind(entry.disable_x509_svid_prefetch)
    .bind(entry.jwt_svid_include_jti)
    .bind(now)
    .bind(pk)
    .execute(&mut *tx)
    .await?;
    // Rewriting every child row keeps this simple; an entry has a handful of them.
    for table in ["selectors", "dns_names", "federated_registration_entries"] {
        sqlx::query(&d.sql(&format!("DELETE FROM {table} WHERE registered_entry_id = ?")))
            .bind(pk)
            .execute(&mut *tx)
            .await?;
    }
    insert_children(&mut tx, pk, &entry, &bundle_ids).await?;
    events::entry_event(&mut tx, &entry.id, now).await?;
    tx.commit().await?;
    Ok(entry)
}

pub(super) async fn delete(store: &SqlStore, id: &str) -> Result<RegistrationEntry> {
    let d = store.dialect;
    let mut tx = store.write().await?;
    let (pk, entry) = fetch_in(&mut tx, id, true).await?.ok_or_else(|| not_found(id))?;
    // Child rows go with it (ON DELETE CASCADE).
    sqlx::query(&d.sql("DELETE FROM registered_entries WHERE id = ?")).bind(pk).execute(&mut *tx).await?;
    events::entry_event(&mut tx, id, now_unix()).await?;
    tx.commit().await?;
    Ok(entry)
}

pub(super) async fn prune(store: &SqlStore, expires_before: i64) -> Result<u64> {
    let d = store.dialect;
    let mut tx = store.write().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        &d.sql("SELECT entry_id FROM registered_entries WHERE expiry <> 0 AND expiry < ? ORDER BY entry_id"),
    )
    .bind(expires_before)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(&d.sql("DELETE FROM registered_entries WHERE expiry <> 0 AND expiry < ?"))
        .bind(expires_before)
        .execute(&mut *tx)
        .await?;
    let now = now_unix();
    for id in &ids {
        events::entry_event(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}

/// Appends the filter's conditions to a query over `registered_entries e`.
fn push_filter<'a>(qb: &mut Builder<'a>, filter: &'a EntryFilter) {
    if let Some(id) = &filter.by_spiffe_id {
        qb.push(" AND e.spiffe_id = ").push_bind(id.to_string());
    }
    if let Some(id) = &filter.by_parent_id {
        qb.push(" AND e.parent_id = ").push_bind(id.to_string());
    }
    if let Some(hint) = &filter.by_hint {
        qb.push(" AND e.hint = ").push_bind(hint.as_str());
    }
    if let Some(downstream) = filter.by_downstream {
        qb.push(" AND e.downstream = ").push_bind(downstream);
    }
    if let Some((selectors, mode)) = &filter.by_selectors {
        let table = SetTable { from: "selectors", key: "registered_entry_id", outer: "e.id" };
        set_match::push(qb, &table, *mode, selectors.len(), &|qb| {
            qb.push("(");
            for (i, s) in selectors.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("(type = ")
                    .push_bind(s.kind.as_str())
                    .push(" AND value = ")
                    .push_bind(s.value.as_str())
                    .push(")");
            }
            qb.push(")");
        });
    }
    if let Some((trust_domains, mode)) = &filter.by_federates_with {
        let mut ids: Vec<String> = trust_domains.iter().map(TrustDomain::id_string).collect();
        ids.sort();
        ids.dedup();
        let table = SetTable {
            from: "federated_registration_entries f JOIN bundles b ON b.id = f.bundle_id",
            key: "f.registered_entry_id",
            outer: "e.id",
        };
        set_match::push(qb, &table, *mode, ids.len(), &|qb| {
            qb.push("b.trust_domain IN (");
            qb.push_list(", ", ids.iter().cloned());
            qb.push(")");
        });
    }
}

fn not_found(id: &str) -> DataStoreError {
    DataStoreError::NotFound(format!("no registration entry has ID {id}"))
}

async fn find_pk(conn: &mut AnyConnection, id: &str) -> Result<Option<i64>> {
    let d = Dialect::of(conn);
    Ok(sqlx::query_scalar(&d.sql("SELECT id FROM registered_entries WHERE entry_id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Refuses an entry whose (parent, SPIFFE ID, selectors) another entry already has. The unique index
/// on the digest enforces the same rule; checking first gives SPIRE's message.
async fn check_not_similar(conn: &mut AnyConnection, digest: &[u8], this: Option<i64>) -> Result<()> {
    let d = Dialect::of(conn);
    let other: Option<i64> =
        sqlx::query_scalar(&d.sql("SELECT id FROM registered_entries WHERE similarity_digest = ?"))
            .bind(digest)
            .fetch_optional(conn)
            .await?;
    match other {
        Some(pk) if Some(pk) != this => Err(DataStoreError::AlreadyExists("similar entry already exists".into())),
        _ => Ok(()),
    }
}

/// The bundle rows an entry's `federates_with` points at; each trust domain needs a stored bundle.
async fn federated_bundle_ids(
    conn: &mut AnyConnection,
    entry_id: &str,
    trust_domains: &[TrustDomain],
) -> Result<Vec<i64>> {
    let d = Dialect::of(conn);
    let mut ids = Vec::with_capacity(trust_domains.len());
    for td in trust_domains {
        let id: Option<i64> = sqlx::query_scalar(&d.sql("SELECT id FROM bundles WHERE trust_domain = ?"))
            .bind(td.id_string())
            .fetch_optional(&mut *conn)
            .await?;
        ids.push(id.ok_or_else(|| {
            DataStoreError::FailedPrecondition(format!(
                "entry {entry_id} federates with {td}, which has no bundle: create the bundle (or a federation \
                 relationship and let it fetch the bundle) first"
            ))
        })?);
    }
    Ok(ids)
}

async fn insert_children(
    conn: &mut AnyConnection,
    pk: i64,
    entry: &RegistrationEntry,
    bundle_ids: &[i64],
) -> Result<()> {
    let d = Dialect::of(conn);
    for s in &entry.selectors {
        sqlx::query(&d.sql("INSERT INTO selectors (registered_entry_id, type, value) VALUES (?, ?, ?)"))
            .bind(pk)
            .bind(&s.kind)
            .bind(&s.value)
            .execute(&mut *conn)
            .await?;
    }
    for (position, name) in entry.dns_names.iter().enumerate() {
        sqlx::query(&d.sql("INSERT INTO dns_names (registered_entry_id, position, value) VALUES (?, ?, ?)"))
            .bind(pk)
            .bind(position as i64)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }
    for bundle_id in bundle_ids {
        sqlx::query(
            &d.sql("INSERT INTO federated_registration_entries (bundle_id, registered_entry_id) VALUES (?, ?)"),
        )
        .bind(bundle_id)
        .bind(pk)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The entry with this ID and its row ID, read inside the caller's transaction; with `lock`, its row
/// stays locked until a write transaction ends.
async fn fetch_in(conn: &mut AnyConnection, id: &str, lock: bool) -> Result<Option<(i64, RegistrationEntry)>> {
    let d = Dialect::of(conn);
    let lock = if lock { d.for_update() } else { "" };
    let row = sqlx::query_as::<_, EntryRow>(
        &d.sql(&format!("SELECT {COLUMNS} FROM registered_entries e WHERE e.entry_id = ?{lock}")),
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => assemble(conn, vec![row]).await?.pop(),
        None => None,
    })
}

/// Child rows of the given entries, keyed by entry row ID.
#[derive(Default)]
struct Children {
    selectors: HashMap<i64, Vec<Selector>>,
    dns_names: HashMap<i64, Vec<String>>,
    federates_with: HashMap<i64, Vec<String>>,
}

/// Reads the child rows of `rows` and builds the entries, in the order of `rows`.
async fn assemble(conn: &mut AnyConnection, rows: Vec<EntryRow>) -> Result<Vec<(i64, RegistrationEntry)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let pks: Vec<i64> = rows.iter().map(|r| r.pk).collect();
    let mut children = Children::default();
    if pks.len() > BULK_THRESHOLD {
        load_children(conn, None, &mut children).await?;
    } else {
        for chunk in pks.chunks(IN_CHUNK) {
            load_children(conn, Some(chunk), &mut children).await?;
        }
    }
    rows.into_iter()
        .map(|row| {
            let what = format!("entry {}", row.entry_id);
            let mut entry = RegistrationEntry {
                spiffe_id: stored_spiffe_id(&row.spiffe_id, &what)?,
                parent_id: stored_spiffe_id(&row.parent_id, &what)?,
                selectors: children.selectors.remove(&row.pk).unwrap_or_default(),
                x509_svid_ttl: row.ttl,
                jwt_svid_ttl: row.jwt_svid_ttl,
                federates_with: children
                    .federates_with
                    .remove(&row.pk)
                    .unwrap_or_default()
                    .iter()
                    .map(|td| stored_trust_domain(td, &what))
                    .collect::<Result<_>>()?,
                admin: row.admin,
                downstream: row.downstream,
                expires_at: row.expiry,
                dns_names: children.dns_names.remove(&row.pk).unwrap_or_default(),
                revision_number: row.revision_number,
                store_svid: row.store_svid,
                hint: row.hint,
                created_at: row.created_at,
                disable_x509_svid_prefetch: row.disable_x509_svid_prefetch,
                jwt_svid_include_jti: row.jwt_svid_include_jti,
                id: row.entry_id,
            };
            entry.normalize();
            Ok((row.pk, entry))
        })
        .collect()
}

/// Reads child rows for the entry row IDs in `pks`, or for every entry when `None`.
async fn load_children(conn: &mut AnyConnection, pks: Option<&[i64]>, into: &mut Children) -> Result<()> {
    let d = Dialect::of(conn);
    fn restrict<'a>(qb: &mut Builder<'a>, column: &str, pks: Option<&[i64]>) {
        if let Some(pks) = pks {
            qb.push(format!(" WHERE {column} IN ("));
            qb.push_list(", ", pks.iter().copied());
            qb.push(")");
        }
    }

    let mut qb = Builder::new(d, "SELECT registered_entry_id, type, value FROM selectors");
    restrict(&mut qb, "registered_entry_id", pks);
    for (pk, kind, value) in qb.build_query_as::<(i64, String, String)>().fetch_all(&mut *conn).await? {
        into.selectors.entry(pk).or_default().push(Selector { kind, value });
    }

    let mut qb = Builder::new(d, "SELECT registered_entry_id, value FROM dns_names");
    restrict(&mut qb, "registered_entry_id", pks);
    qb.push(" ORDER BY registered_entry_id, position");
    for (pk, name) in qb.build_query_as::<(i64, String)>().fetch_all(&mut *conn).await? {
        into.dns_names.entry(pk).or_default().push(name);
    }

    let mut qb = Builder::new(
        d,
        "SELECT f.registered_entry_id, b.trust_domain FROM federated_registration_entries f \
         JOIN bundles b ON b.id = f.bundle_id",
    );
    restrict(&mut qb, "f.registered_entry_id", pks);
    for (pk, td) in qb.build_query_as::<(i64, String)>().fetch_all(&mut *conn).await? {
        into.federates_with.entry(pk).or_default().push(td);
    }
    Ok(())
}
