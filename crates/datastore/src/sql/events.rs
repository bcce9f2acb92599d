//! Change-event rows, appended inside the transaction of the write they record.

use sqlx::AnyConnection;

use super::{Builder, Dialect, SqlStore};
use crate::{EntryEvent, NodeEvent, Result};

pub(super) async fn entry_event(conn: &mut AnyConnection, entry_id: &str, now: i64) -> Result<()> {
    let d = Dialect::of(conn);
    sqlx::query(&d.sql("INSERT INTO registered_entries_events (entry_id, created_at) VALUES (?, ?)"))
        .bind(entry_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn node_event(conn: &mut AnyConnection, spiffe_id: &str, now: i64) -> Result<()> {
    let d = Dialect::of(conn);
    sqlx::query(&d.sql("INSERT INTO attested_node_entries_events (spiffe_id, created_at) VALUES (?, ?)"))
        .bind(spiffe_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

async fn list(store: &SqlStore, table: &str, column: &str, after: i64, limit: u32) -> Result<Vec<(i64, String)>> {
    let d = store.dialect;
    let mut qb = Builder::new(d, format!("SELECT id, {column} FROM {table} WHERE id > "));
    qb.push_bind(after).push(" ORDER BY id");
    if limit > 0 {
        qb.push(" LIMIT ").push_bind(i64::from(limit));
    }
    Ok(qb.build_query_as().fetch_all(&store.reader).await?)
}

pub(super) async fn list_entry_events(store: &SqlStore, after: i64, limit: u32) -> Result<Vec<EntryEvent>> {
    let rows = list(store, "registered_entries_events", "entry_id", after, limit).await?;
    Ok(rows.into_iter().map(|(event_id, entry_id)| EntryEvent { event_id, entry_id }).collect())
}

pub(super) async fn list_node_events(store: &SqlStore, after: i64, limit: u32) -> Result<Vec<NodeEvent>> {
    let rows = list(store, "attested_node_entries_events", "spiffe_id", after, limit).await?;
    Ok(rows.into_iter().map(|(event_id, spiffe_id)| NodeEvent { event_id, spiffe_id }).collect())
}

pub(super) async fn latest_id(store: &SqlStore, table: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}")).fetch_one(&store.reader).await?)
}

pub(super) async fn prune(store: &SqlStore, older_than: i64) -> Result<u64> {
    let d = store.dialect;
    let mut tx = store.write().await?;
    let mut pruned = 0;
    for table in ["registered_entries_events", "attested_node_entries_events"] {
        pruned += sqlx::query(&d.sql(&format!("DELETE FROM {table} WHERE created_at < ?")))
            .bind(older_than)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(pruned)
}
