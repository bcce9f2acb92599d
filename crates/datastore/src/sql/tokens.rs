//! Join tokens. Each operation is one statement, atomic on its own.

use super::SqlStore;
use super::dialect::inserted;
use crate::{DataStoreError, JoinToken, Result, now_unix};

pub(super) async fn create(store: &SqlStore, token: JoinToken) -> Result<()> {
    let d = store.dialect;
    if token.token.is_empty() {
        return Err(DataStoreError::invalid("join token is empty: give the token's value"));
    }
    let insert = "INSERT INTO join_tokens (token, expiry, created_at) VALUES (?, ?, ?)";
    let done = sqlx::query(&d.sql(&d.insert_or_ignore(insert, "token")))
        .bind(&token.token)
        .bind(token.expires_at)
        .bind(now_unix())
        .execute(&store.writer)
        .await;
    let inserted = inserted(done)?;
    if !inserted {
        return Err(DataStoreError::AlreadyExists("join token already exists: generate another".into()));
    }
    Ok(())
}

pub(super) async fn fetch(store: &SqlStore, token: &str) -> Result<Option<JoinToken>> {
    let d = store.dialect;
    let expiry: Option<i64> = sqlx::query_scalar(&d.sql("SELECT expiry FROM join_tokens WHERE token = ?"))
        .bind(token)
        .fetch_optional(&store.reader)
        .await?;
    Ok(expiry.map(|expires_at| JoinToken { token: token.to_owned(), expires_at }))
}

pub(super) async fn delete(store: &SqlStore, token: &str) -> Result<bool> {
    let d = store.dialect;
    let deleted = sqlx::query(&d.sql("DELETE FROM join_tokens WHERE token = ?"))
        .bind(token)
        .execute(&store.writer)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

pub(super) async fn prune(store: &SqlStore, expires_before: i64) -> Result<u64> {
    let d = store.dialect;
    Ok(sqlx::query(&d.sql("DELETE FROM join_tokens WHERE expiry < ?"))
        .bind(expires_before)
        .execute(&store.writer)
        .await?
        .rows_affected())
}
