//! Bundles, stored as protobuf blobs keyed by trust domain ID. Read-modify-write operations (update,
//! append, prune) hold the write lock from the read on, so concurrent appends cannot lose authorities.

use spire_identity::TrustDomain;
use sqlx::AnyConnection;

use super::dialect::inserted;
use super::{Builder, Dialect, SqlStore, events};
use crate::filters::{look_ahead_limit, split_page};
use crate::{BundleMask, DataStoreError, DeleteMode, Pagination, Result, StoredBundle, now_unix};

pub(super) async fn create(store: &SqlStore, bundle: StoredBundle) -> Result<StoredBundle> {
    let d = store.dialect;
    let now = now_unix();
    let insert = "INSERT INTO bundles (trust_domain, data, created_at, updated_at) VALUES (?, ?, ?, ?)";
    let done = sqlx::query(&d.sql(&d.insert_or_ignore(insert, "trust_domain")))
        .bind(bundle.trust_domain.id_string())
        .bind(bundle.encode())
        .bind(now)
        .bind(now)
        .execute(&store.writer)
        .await;
    if !inserted(done)? {
        return Err(DataStoreError::AlreadyExists(format!(
            "a bundle for {} already exists: update, set or append to it instead",
            bundle.trust_domain
        )));
    }
    Ok(bundle)
}

pub(super) async fn fetch(store: &SqlStore, td: &TrustDomain) -> Result<Option<StoredBundle>> {
    let d = store.dialect;
    let data: Option<Vec<u8>> = sqlx::query_scalar(&d.sql("SELECT data FROM bundles WHERE trust_domain = ?"))
        .bind(td.id_string())
        .fetch_optional(&store.reader)
        .await?;
    data.as_deref().map(StoredBundle::decode).transpose()
}

pub(super) async fn list(store: &SqlStore, pagination: Option<&Pagination>) -> Result<(Vec<StoredBundle>, String)> {
    let d = store.dialect;
    let cursor = pagination.map(Pagination::cursor).transpose()?.flatten();
    let mut qb = Builder::new(d, "SELECT trust_domain, data FROM bundles WHERE 1 = 1");
    if let Some(cursor) = cursor {
        qb.push(" AND trust_domain > ").push_bind(cursor);
    }
    qb.push(" ORDER BY trust_domain");
    if let Some(p) = pagination {
        qb.push(" LIMIT ").push_bind(look_ahead_limit(p));
    }
    let rows: Vec<(String, Vec<u8>)> = qb.build_query_as().fetch_all(&store.replica).await?;
    let (rows, next) = split_page(rows, pagination, |r| &r.0);
    Ok((rows.iter().map(|(_, data)| StoredBundle::decode(data)).collect::<Result<_>>()?, next))
}

pub(super) async fn count(store: &SqlStore) -> Result<u64> {
    let d = store.dialect;
    let count: i64 = sqlx::query_scalar(&d.sql("SELECT COUNT(*) FROM bundles")).fetch_one(&store.replica).await?;
    Ok(count as u64)
}

pub(super) async fn update(store: &SqlStore, update: StoredBundle, mask: &BundleMask) -> Result<StoredBundle> {
    let mut tx = store.write().await?;
    let (_, mut bundle) =
        fetch_in(&mut tx, &update.trust_domain).await?.ok_or_else(|| not_found(&update.trust_domain))?;
    mask.apply(&mut bundle, update);
    write(&mut tx, &bundle).await?;
    tx.commit().await?;
    Ok(bundle)
}

pub(super) async fn set(store: &SqlStore, bundle: StoredBundle) -> Result<StoredBundle> {
    let d = store.dialect;
    let now = now_unix();
    let insert = "INSERT INTO bundles (trust_domain, data, created_at, updated_at) VALUES (?, ?, ?, ?)";
    sqlx::query(&d.sql(&d.upsert(insert, "trust_domain", &["data", "updated_at"])))
        .bind(bundle.trust_domain.id_string())
        .bind(bundle.encode())
        .bind(now)
        .bind(now)
        .execute(&store.writer)
        .await?;
    Ok(bundle)
}

pub(super) async fn append(store: &SqlStore, incoming: StoredBundle) -> Result<StoredBundle> {
    let d = store.dialect;
    let mut tx = store.write().await?;
    let bundle = match fetch_in(&mut tx, &incoming.trust_domain).await? {
        Some((_, mut bundle)) => {
            if bundle.merge(&incoming) {
                write(&mut tx, &bundle).await?;
            }
            bundle
        }
        None => {
            let now = now_unix();
            sqlx::query(&d.sql("INSERT INTO bundles (trust_domain, data, created_at, updated_at) VALUES (?, ?, ?, ?)"))
                .bind(incoming.trust_domain.id_string())
                .bind(incoming.encode())
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            incoming
        }
    };
    tx.commit().await?;
    Ok(bundle)
}

pub(super) async fn delete(store: &SqlStore, td: &TrustDomain, mode: DeleteMode) -> Result<()> {
    let d = store.dialect;
    let mut tx = store.write().await?;
    let (bundle_pk, _) = fetch_in(&mut tx, td).await?.ok_or_else(|| not_found(td))?;
    let federated: Vec<(i64, String)> = sqlx::query_as(&d.sql(
        "SELECT e.id, e.entry_id FROM federated_registration_entries f \
         JOIN registered_entries e ON e.id = f.registered_entry_id WHERE f.bundle_id = ? ORDER BY e.entry_id",
    ))
    .bind(bundle_pk)
    .fetch_all(&mut *tx)
    .await?;
    let now = now_unix();
    if !federated.is_empty() {
        match mode {
            DeleteMode::Restrict => {
                return Err(DataStoreError::FailedPrecondition(format!(
                    "cannot delete the bundle of {td}: {} registration entries federate with it; delete them, \
                     or delete the bundle in mode DELETE (deletes them) or DISSOCIATE (unlinks them)",
                    federated.len()
                )));
            }
            DeleteMode::Delete => {
                for (pk, _) in &federated {
                    sqlx::query(&d.sql("DELETE FROM registered_entries WHERE id = ?"))
                        .bind(pk)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            DeleteMode::Dissociate => {
                sqlx::query(&d.sql("DELETE FROM federated_registration_entries WHERE bundle_id = ?"))
                    .bind(bundle_pk)
                    .execute(&mut *tx)
                    .await?;
                for (pk, _) in &federated {
                    sqlx::query(
                        &d.sql("UPDATE registered_entries SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?"),
                    )
                    .bind(now)
                    .bind(pk)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        for (_, entry_id) in &federated {
            events::entry_event(&mut tx, entry_id, now).await?;
        }
    }
    sqlx::query(&d.sql("DELETE FROM bundles WHERE id = ?")).bind(bundle_pk).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn prune(store: &SqlStore, td: &TrustDomain, expires_before: i64) -> Result<bool> {
    let mut tx = store.write().await?;
    let (_, mut bundle) = fetch_in(&mut tx, td).await?.ok_or_else(|| not_found(td))?;
    let changed = bundle.prune(expires_before)?;
    if changed {
        write(&mut tx, &bundle).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

fn not_found(td: &TrustDomain) -> DataStoreError {
    DataStoreError::NotFound(format!("no bundle is stored for {td}"))
}

/// The bundle, locked until the caller's write transaction ends.
async fn fetch_in(conn: &mut AnyConnection, td: &TrustDomain) -> Result<Option<(i64, StoredBundle)>> {
    let d = Dialect::of(conn);
    let sql = format!("SELECT id, data FROM bundles WHERE trust_domain = ?{}", d.for_update());
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(&d.sql(&sql)).bind(td.id_string()).fetch_optional(conn).await?;
    row.map(|(pk, data)| Ok((pk, StoredBundle::decode(&data)?))).transpose()
}

async fn write(conn: &mut AnyConnection, bundle: &StoredBundle) -> Result<()> {
    let d = Dialect::of(conn);
    sqlx::query(&d.sql("UPDATE bundles SET data = ?, updated_at = ? WHERE trust_domain = ?"))
        .bind(bundle.encode())
        .bind(now_unix())
        .bind(bundle.trust_domain.id_string())
        .execute(conn)
        .await?;
    Ok(())
}
