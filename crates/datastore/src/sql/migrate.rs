//! Schema migrations, embedded in the binary so that a server needs nothing but its executable and
//! its database file. Applied versions are recorded in sqlx's `_sqlx_migrations` table.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::AnyPool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::Dialect;
use crate::{DataStoreError, Result};

/// `(version, description, SQL)` per dialect, oldest first. Never edit a released migration: sqlx
/// refuses a database whose applied migration's checksum changed. Add a new one instead.
const SQLITE: &[(i64, &str, &str)] =
    &[(1, "initial schema", include_str!("../../migrations/sqlite/0001_initial_schema.sql"))];
const POSTGRES: &[(i64, &str, &str)] =
    &[(1, "initial schema", include_str!("../../migrations/postgres/0001_initial_schema.sql"))];
const MYSQL: &[(i64, &str, &str)] =
    &[(1, "initial schema", include_str!("../../migrations/mysql/0001_initial_schema.sql"))];

fn migrations(dialect: Dialect) -> &'static [(i64, &'static str, &'static str)] {
    match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
        Dialect::Mysql => MYSQL,
    }
}

/// The migrations above as a sqlx source, so that sqlx's migrator (checksums, one transaction per
/// migration) runs them without the `macros` feature.
#[derive(Debug)]
struct Embedded(Dialect);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(migrations(self.0)
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
pub(super) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    Migrator::new(Embedded(dialect)).await?.run(pool).await?;
    Ok(())
}

/// With migrations disabled: fails unless every embedded migration has been applied.
pub(super) async fn check(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    let latest = migrations(dialect).last().map_or(0, |m| m.0);
    let applied: Option<i64> =
        match sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(pool).await {
            Ok(version) => version,
            // No migrations table: nothing was ever applied.
            Err(sqlx::Error::Database(_)) => None,
            Err(e) => return Err(e.into()),
        };
    match applied {
        Some(version) if version == latest => Ok(()),
        found => Err(DataStoreError::FailedPrecondition(format!(
            "the database schema is at version {} but this server needs version {latest}, and migrations are \
             disabled: run the server once without disable_migration, or migrate the database yourself",
            found.unwrap_or(0)
        ))),
    }
}
