//! Join tokens. Each operation is one statement, atomic on its own.

use super::SqliteStore;
use crate::{DataStoreError, JoinToken, Result, now_unix};

pub(super) async fn create(store: &SqliteStore, token: JoinToken) -> Result<()> {
    if token.token.is_empty() {
        return Err(DataStoreError::invalid("join token is empty: give the token's value"));
    }
    let inserted = sqlx::query(
        "INSERT INTO join_tokens (token, expiry, created_at) VALUES (?, ?, ?) ON CONFLICT (token) DO NOTHING",
    )
    .bind(&token.token)
    .bind(token.expires_at)
    .bind(now_unix())
    .execute(&store.writer)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(DataStoreError::AlreadyExists("join token already exists: generate another".into()));
    }
    Ok(())
}

pub(super) async fn fetch(store: &SqliteStore, token: &str) -> Result<Option<JoinToken>> {
    let expiry: Option<i64> = sqlx::query_scalar("SELECT expiry FROM join_tokens WHERE token = ?")
        .bind(token)
        .fetch_optional(&store.reader)
        .await?;
    Ok(expiry.map(|expires_at| JoinToken { token: token.to_owned(), expires_at }))
}

pub(super) async fn delete(store: &SqliteStore, token: &str) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM join_tokens WHERE token = ?")
        .bind(token)
        .execute(&store.writer)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

pub(super) async fn prune(store: &SqliteStore, expires_before: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM join_tokens WHERE expiry < ?")
        .bind(expires_before)
        .execute(&store.writer)
        .await?
        .rows_affected())
}
