//! SQL for the match modes of selector and federates-with filters. Both compare the set of rows a
//! record owns in a child table with the filter's set:
//!
//! - superset: the record owns every filter value, i.e. `n` matching rows (rows are unique per record);
//! - any: the record owns at least one matching row;
//! - subset: every row the record owns matches, and it owns at least one (a record with no rows matches
//!   no filter, as in SPIRE);
//! - exact: subset, with exactly `n` rows.
//!
//! The candidate records always come from the matching rows, so the (type, value) indexes narrow the
//! scan before any grouping.

use super::Builder;
use spire_identity::MatchMode;

/// Where a record's set lives.
pub(super) struct SetTable {
    /// `FROM` clause holding the rows (may join).
    pub(super) from: &'static str,
    /// Column of that clause naming the owning record.
    pub(super) key: &'static str,
    /// Column of the outer query the key is compared with.
    pub(super) outer: &'static str,
}

/// Appends ` AND <outer> IN (...)` restricting the outer query to records whose set matches.
/// `predicate` appends a condition true for rows matching one of the `n` distinct filter values.
pub(super) fn push<'a>(
    qb: &mut Builder<'a>,
    table: &SetTable,
    mode: MatchMode,
    n: usize,
    predicate: &dyn Fn(&mut Builder<'a>),
) {
    let SetTable { from, key, outer } = table;
    qb.push(format!(" AND {outer} IN (SELECT {key} FROM {from} WHERE "));
    match mode {
        MatchMode::Any => predicate(qb),
        MatchMode::Superset => {
            predicate(qb);
            qb.push(format!(" GROUP BY {key} HAVING COUNT(*) = {n}"));
        }
        MatchMode::Subset | MatchMode::Exact => {
            qb.push(format!("{key} IN (SELECT {key} FROM {from} WHERE "));
            predicate(qb);
            qb.push(format!(") GROUP BY {key} HAVING SUM(CASE WHEN "));
            predicate(qb);
            qb.push(" THEN 0 ELSE 1 END) = 0");
            if mode == MatchMode::Exact {
                qb.push(format!(" AND COUNT(*) = {n}"));
            }
        }
    }
    qb.push(")");
}
