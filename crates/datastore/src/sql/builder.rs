//! A query assembled piece by piece with bound values, like sqlx's `QueryBuilder`, but writing each
//! placeholder in its database's dialect (sqlx's `Any` driver would always write `?`).

use std::fmt::Display;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::{QueryAs, QueryScalar};
use sqlx::{Any, Arguments, Encode, FromRow, Type};

use super::Dialect;

/// SQL text and the values bound to its placeholders so far.
pub(crate) struct Builder<'a> {
    dialect: Dialect,
    sql: String,
    args: AnyArguments<'a>,
    bound: usize,
}

impl<'a> Builder<'a> {
    /// A query starting with `sql` (which must hold no placeholder).
    pub(crate) fn new(dialect: Dialect, sql: impl Into<String>) -> Self {
        Self { dialect, sql: sql.into(), args: AnyArguments::default(), bound: 0 }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: impl Display) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.bound += 1;
        match self.dialect {
            Dialect::Postgres => {
                let n = self.bound;
                self.push(format_args!("${n}"))
            }
            _ => self.push("?"),
        };
        // Encoding into Any's buffer only records the value; it cannot fail for the store's types.
        self.args.add(value).expect("encode a bound value");
        self
    }

    /// Appends `values` as placeholders separated by `separator`.
    pub(crate) fn push_list<T, I>(&mut self, separator: &str, values: I) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
        I: IntoIterator<Item = T>,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(separator);
            }
            self.push_bind(value);
        }
        self
    }

    /// The SQL so far.
    #[cfg(test)]
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The statement, its rows read as `T`. Takes the bound values, so build once. The values borrow
    /// for `'a`, at least as long as the builder's borrow, so they can be lent to the statement for that.
    pub(crate) fn build_query_as<T>(&mut self) -> QueryAs<'_, Any, T, AnyArguments<'_>>
    where
        T: for<'r> FromRow<'r, AnyRow>,
    {
        sqlx::query_as_with(&self.sql, std::mem::take(&mut self.args))
    }

    /// The statement, its first column read as `T`.
    pub(crate) fn build_query_scalar<T>(&mut self) -> QueryScalar<'_, Any, T, AnyArguments<'_>>
    where
        (T,): for<'r> FromRow<'r, AnyRow>,
    {
        sqlx::query_scalar_with(&self.sql, std::mem::take(&mut self.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        for (dialect, expected) in [
            (Dialect::Sqlite, "SELECT 1 WHERE a = ? AND b IN (?, ?)"),
            (Dialect::Postgres, "SELECT 1 WHERE a = $1 AND b IN ($2, $3)"),
        ] {
            let mut b = Builder::new(dialect, "SELECT 1 WHERE a = ");
            b.push_bind(1_i64).push(" AND b IN (").push_list(", ", ["x", "y"]).push(")");
            assert_eq!(b.sql(), expected);
        }
    }
}
