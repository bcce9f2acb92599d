//! Schema migrations, embedded in the binary so that a server needs nothing but its executable and
//! its database file. Applied versions are recorded in sqlx's `_sqlx_migrations` table.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::SqlitePool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::{DataStoreError, Result};

/// `(version, description, SQL)`, oldest first. Never edit a released migration: sqlx refuses a
/// database whose applied migration's checksum changed. Add a new one instead.
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "initial schema", include_str!("../../migrations/sqlite/0001_initial_schema.sql"))];

/// The migrations above as a sqlx source, so that sqlx's migrator (checksums, one transaction per
/// migration) runs them without the `macros` feature.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Brings the schema up to date.
pub(super) async fn run(pool: &SqlitePool) -> Result<()> {
    Migrator::new(Embedded).await?.run(pool).await?;
    Ok(())
}

/// With migrations disabled: fails unless every embedded migration has been applied.
pub(super) async fn check(pool: &SqlitePool) -> Result<()> {
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
        .fetch_one(pool)
        .await
        .ok()
        .flatten();
    match applied {
        Some(version) if version == latest => Ok(()),
        found => Err(DataStoreError::FailedPrecondition(format!(
            "the database schema is at version {} but this server needs version {latest}, and migrations are \
             disabled: run the server once without disable_migration, or migrate the database yourself",
            found.unwrap_or(0)
        ))),
    }
}
