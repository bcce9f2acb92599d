//! What differs between the SQL databases the store runs on. Queries are written once, in the
//! dialect SQLite and MySQL share (`?` placeholders, `ON CONFLICT` where MySQL has its own form), and
//! adapted here at run time.

use std::borrow::Cow;

use sqlx::any::{AnyArguments, AnyQueryResult};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite 3 (one file; one writer at a time).
    Sqlite,
    /// PostgreSQL (15 tested).
    Postgres,
    /// MySQL 8 or MariaDB (10.11 tested).
    Mysql,
}

impl Dialect {
    /// The dialect of a connection, from the name its driver reports.
    pub(crate) fn of(conn: &AnyConnection) -> Self {
        Self::from_backend(conn.backend_name())
    }

    /// From a driver's backend name ("SQLite", "PostgreSQL", "MySQL").
    pub(crate) fn from_backend(name: &str) -> Self {
        match name {
            "PostgreSQL" => Self::Postgres,
            "MySQL" => Self::Mysql,
            _ => Self::Sqlite,
        }
    }

    /// `sql` with its `?` placeholders as this database wants them: `$1`, `$2`... for PostgreSQL.
    /// The store's SQL never has a `?` inside a string literal or identifier.
    pub fn sql<'a>(self, sql: &'a str) -> Cow<'a, str> {
        if self != Self::Postgres || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// `sql` (an INSERT into a table with an auto-generated `id`), for [`insert_id`]: made to return
    /// the new row's `id` where the database can (MySQL cannot: its statement reports it instead).
    pub fn returning_id(self, sql: &str) -> String {
        match self {
            Self::Mysql => sql.to_owned(),
            _ => format!("{} RETURNING id", self.sql(sql)),
        }
    }

    /// The clause that locks the rows a SELECT reads until the transaction ends: needed for
    /// read-modify-write on databases with concurrent writers; SQLite already has the one write lock.
    pub fn for_update(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            _ => " FOR UPDATE",
        }
    }

    /// `INSERT ... ` that does nothing when a row with the same unique `key` exists: SQLite and
    /// PostgreSQL say `ON CONFLICT (<key>) DO NOTHING`. MySQL has no such clause (its `INSERT IGNORE`
    /// also ignores other errors, and `ON DUPLICATE KEY UPDATE` reports a found row as affected), so
    /// its statement stays a plain insert whose duplicate-key error [`inserted`] turns into "no row".
    pub fn insert_or_ignore(self, insert: &str, key: &str) -> String {
        match self {
            Self::Mysql => insert.to_owned(),
            _ => format!("{insert} ON CONFLICT ({key}) DO NOTHING"),
        }
    }

    /// `INSERT ...` that replaces `columns` of the existing row with the same unique `key`.
    pub fn upsert(self, insert: &str, key: &str, columns: &[&str]) -> String {
        match self {
            Self::Mysql => {
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                format!("{insert} ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            _ => {
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                format!("{insert} ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
            }
        }
    }
}

/// Runs an INSERT made with [`Dialect::returning_id`] and gives the new row's `id`.
pub(crate) async fn insert_id<'q>(
    dialect: Dialect,
    insert: Query<'q, Any, AnyArguments<'q>>,
    conn: &mut AnyConnection,
) -> crate::Result<i64> {
    if dialect == Dialect::Mysql {
        let done = insert.execute(conn).await?;
        return done.last_insert_id().ok_or_else(|| crate::DataStoreError::internal("MySQL gave no insert ID"));
    }
    Ok(insert.fetch_one(conn).await?.try_get::<i64, _>(0)?)
}

/// Whether a statement made with [`Dialect::insert_or_ignore`] inserted its row.
pub(crate) fn inserted(result: Result<AnyQueryResult, sqlx::Error>) -> crate::Result<bool> {
    match result {
        Ok(done) => Ok(done.rows_affected() > 0),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "SELECT a FROM t WHERE b = ? AND c IN (?, ?)";
        assert_eq!(Dialect::Postgres.sql(sql), "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)");
        assert_eq!(Dialect::Sqlite.sql(sql), sql);
        assert_eq!(Dialect::Mysql.sql(sql), sql);
        assert!(matches!(Dialect::Postgres.sql("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn upserts_per_dialect() {
        let insert = "INSERT INTO bundles (trust_domain, data) VALUES (?, ?)";
        assert_eq!(
            Dialect::Postgres.upsert(insert, "trust_domain", &["data"]),
            format!("{insert} ON CONFLICT (trust_domain) DO UPDATE SET data = excluded.data")
        );
        assert_eq!(
            Dialect::Mysql.upsert(insert, "trust_domain", &["data"]),
            format!("{insert} ON DUPLICATE KEY UPDATE data = VALUES(data)")
        );
        assert_eq!(Dialect::Mysql.insert_or_ignore(insert, "trust_domain"), insert);
        assert_eq!(
            Dialect::Sqlite.insert_or_ignore(insert, "trust_domain"),
            format!("{insert} ON CONFLICT (trust_domain) DO NOTHING")
        );
    }
}
