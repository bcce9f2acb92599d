//! CA journals: opaque blobs indexed by active authority and prunable by expiry.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::SqlStore;
use super::dialect::insert_id;
use crate::{CaJournal, DataStoreError, Result, now_unix};

const COLUMNS: &str = "id, data, active_x509_authority_id, active_jwt_authority_id, expires_at";

struct JournalRow(CaJournal);

impl FromRow<'_, AnyRow> for JournalRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self(CaJournal {
            id: row.try_get("id")?,
            data: row.try_get("data")?,
            active_x509_authority_id: row.try_get("active_x509_authority_id")?,
            active_jwt_authority_id: row.try_get("active_jwt_authority_id")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }
}

pub(super) async fn set(store: &SqlStore, mut journal: CaJournal) -> Result<CaJournal> {
    let d = store.dialect;
    let now = now_unix();
    if journal.id == 0 {
        let sql = d.returning_id(
            "INSERT INTO ca_journals (data, active_x509_authority_id, active_jwt_authority_id, expires_at, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        );
        let insert = sqlx::query(&sql)
            .bind(&journal.data)
            .bind(&journal.active_x509_authority_id)
            .bind(&journal.active_jwt_authority_id)
            .bind(journal.expires_at)
            .bind(now)
            .bind(now);
        let mut conn = store.writer.acquire().await?;
        journal.id = insert_id(d, insert, &mut conn).await?;
        return Ok(journal);
    }
    let updated = sqlx::query(&d.sql(
        "UPDATE ca_journals SET data = ?, active_x509_authority_id = ?, active_jwt_authority_id = ?, expires_at = ?, \
         updated_at = ? WHERE id = ?",
    ))
    .bind(&journal.data)
    .bind(&journal.active_x509_authority_id)
    .bind(&journal.active_jwt_authority_id)
    .bind(journal.expires_at)
    .bind(now)
    .bind(journal.id)
    .execute(&store.writer)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(DataStoreError::NotFound(format!(
            "no CA journal has ID {}: use ID 0 to store a new journal",
            journal.id
        )));
    }
    Ok(journal)
}

pub(super) async fn fetch(store: &SqlStore, active_x509_authority_id: &str) -> Result<Option<CaJournal>> {
    let d = store.dialect;
    let row: Option<JournalRow> = sqlx::query_as(&d.sql(&format!(
        "SELECT {COLUMNS} FROM ca_journals WHERE active_x509_authority_id = ? ORDER BY id DESC LIMIT 1"
    )))
    .bind(active_x509_authority_id)
    .fetch_optional(&store.reader)
    .await?;
    Ok(row.map(|r| r.0))
}

pub(super) async fn fetch_latest(store: &SqlStore) -> Result<Option<CaJournal>> {
    let d = store.dialect;
    let row: Option<JournalRow> =
        sqlx::query_as(&d.sql(&format!("SELECT {COLUMNS} FROM ca_journals ORDER BY id DESC LIMIT 1")))
            .fetch_optional(&store.reader)
            .await?;
    Ok(row.map(|r| r.0))
}

pub(super) async fn prune(store: &SqlStore, all_expired_before: i64) -> Result<u64> {
    let d = store.dialect;
    Ok(sqlx::query(&d.sql("DELETE FROM ca_journals WHERE expires_at <> 0 AND expires_at < ?"))
        .bind(all_expired_before)
        .execute(&store.writer)
        .await?
        .rows_affected())
}
