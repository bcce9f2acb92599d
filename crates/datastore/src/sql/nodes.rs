//! Attested nodes and their selectors (`node_resolver_map_entries`, keyed by SPIFFE ID).

use std::collections::{BTreeMap, HashMap};

use spire_identity::{Selector, SpiffeId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::dialect::inserted;
use super::set_match::{self, SetTable};
use super::{Builder, Dialect, SqlStore, events, flag, stored_spiffe_id};
use crate::filters::{check_filters, look_ahead_limit, split_page};
use crate::{AttestedNode, DataStoreError, NodeFilter, NodeMask, Pagination, Result, now_unix, validate};

/// `can_reattest` is read as 0/1 (see `entries::COLUMNS`).
const COLUMNS: &str = "n.spiffe_id, n.data_type, n.serial_number, n.expires_at, n.new_serial_number, \
                       n.new_expires_at, CASE WHEN n.can_reattest THEN 1 ELSE 0 END AS can_reattest, n.agent_version";
const IN_CHUNK: usize = 500;

struct NodeRow {
    spiffe_id: String,
    data_type: String,
    serial_number: String,
    expires_at: i64,
    new_serial_number: String,
    new_expires_at: i64,
    can_reattest: bool,
    agent_version: String,
}

impl FromRow<'_, AnyRow> for NodeRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            spiffe_id: row.try_get("spiffe_id")?,
            data_type: row.try_get("data_type")?,
            serial_number: row.try_get("serial_number")?,
            expires_at: row.try_get("expires_at")?,
            new_serial_number: row.try_get("new_serial_number")?,
            new_expires_at: row.try_get("new_expires_at")?,
            can_reattest: flag(row, "can_reattest")?,
            agent_version: row.try_get("agent_version")?,
        })
    }
}

pub(super) async fn create(store: &SqlStore, mut node: AttestedNode) -> Result<AttestedNode> {
    let d = store.dialect;
    node.normalize();
    validate::selectors(&node.selectors, &format!("node {}", node.spiffe_id))?;
    let id = node.spiffe_id.to_string();
    let now = now_unix();
    let mut tx = store.write().await?;
    let insert = "INSERT INTO attested_node_entries (spiffe_id, data_type, serial_number, expires_at, new_serial_number, \
         new_expires_at, can_reattest, agent_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let done = sqlx::query(&d.sql(&d.insert_or_ignore(insert, "spiffe_id")))
        .bind(&id)
        .bind(&node.attestation_data_type)
        .bind(&node.cert_serial_number)
        .bind(node.cert_not_after)
        .bind(&node.new_cert_serial_number)
        .bind(node.new_cert_not_after)
        .bind(node.can_reattest)
        .bind(&node.agent_version)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
    let inserted = inserted(done)?;
    if !inserted {
        return Err(DataStoreError::AlreadyExists(format!(
            "node {id} is already attested: update it, or delete it before attesting again"
        )));
    }
    replace_selectors(&mut tx, &id, &node.selectors).await?;
    events::node_event(&mut tx, &id, now).await?;
    tx.commit().await?;
    Ok(node)
}

pub(super) async fn fetch(store: &SqlStore, spiffe_id: &SpiffeId) -> Result<Option<AttestedNode>> {
    let mut tx = store.read().await?;
    let node = fetch_in(&mut tx, &spiffe_id.to_string(), false).await?;
    tx.commit().await?;
    Ok(node)
}

pub(super) async fn list(
    store: &SqlStore,
    filter: &NodeFilter,
    pagination: Option<&Pagination>,
) -> Result<(Vec<AttestedNode>, String)> {
    let d = store.dialect;
    check_filters(filter.by_selectors.as_ref(), None)?;
    let cursor = pagination.map(Pagination::cursor).transpose()?.flatten();
    let mut qb = Builder::new(d, format!("SELECT {COLUMNS} FROM attested_node_entries n WHERE 1 = 1"));
    push_filter(&mut qb, filter);
    if let Some(cursor) = cursor {
        qb.push(" AND n.spiffe_id > ").push_bind(cursor);
    }
    qb.push(" ORDER BY n.spiffe_id");
    if let Some(p) = pagination {
        qb.push(" LIMIT ").push_bind(look_ahead_limit(p));
    }
    let mut tx = store.read_stale().await?;
    let rows = qb.build_query_as::<NodeRow>().fetch_all(&mut *tx).await?;
    let (rows, next) = split_page(rows, pagination, |r| &r.spiffe_id);
    let nodes = assemble(&mut tx, rows).await?;
    tx.commit().await?;
    Ok((nodes, next))
}

pub(super) async fn count(store: &SqlStore, filter: &NodeFilter) -> Result<u64> {
    let d = store.dialect;
    check_filters(filter.by_selectors.as_ref(), None)?;
    let mut qb = Builder::new(d, "SELECT COUNT(*) FROM attested_node_entries n WHERE 1 = 1");
    push_filter(&mut qb, filter);
    let count: i64 = qb.build_query_scalar().fetch_one(&store.replica).await?;
    Ok(count as u64)
}

pub(super) async fn update(store: &SqlStore, update: AttestedNode, mask: &NodeMask) -> Result<AttestedNode> {
    let d = store.dialect;
    let id = update.spiffe_id.to_string();
    let mut tx = store.write().await?;
    let mut node = fetch_in(&mut tx, &id, true).await?.ok_or_else(|| not_found(&id))?;
    mask.apply(&mut node, update);
    validate::selectors(&node.selectors, &format!("node {id}"))?;
    let now = now_unix();
    sqlx::query(&d.sql(
        "UPDATE attested_node_entries SET serial_number = ?, expires_at = ?, new_serial_number = ?, \
         new_expires_at = ?, can_reattest = ?, agent_version = ?, updated_at = ? WHERE spiffe_id = ?",
    ))
    .bind(&node.cert_serial_number)
    .bind(node.cert_not_after)
    .bind(&node.new_cert_serial_number)
    .bind(node.new_cert_not_after)
    .bind(node.can_reattest)
    .bind(&node.agent_version)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if mask.selectors {
        replace_selectors(&mut tx, &id, &node.selectors).await?;
    }
    events::node_event(&mut tx, &id, now).await?;
    tx.commit().await?;
    Ok(node)
}

pub(super) async fn delete(store: &SqlStore, spiffe_id: &SpiffeId) -> Result<AttestedNode> {
    let d = store.dialect;
    let id = spiffe_id.to_string();
    let mut tx = store.write().await?;
    let node = fetch_in(&mut tx, &id, true).await?.ok_or_else(|| not_found(&id))?;
    sqlx::query(&d.sql("DELETE FROM attested_node_entries WHERE spiffe_id = ?")).bind(&id).execute(&mut *tx).await?;
    sqlx::query(&d.sql("DELETE FROM node_resolver_map_entries WHERE spiffe_id = ?"))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    events::node_event(&mut tx, &id, now_unix()).await?;
    tx.commit().await?;
    Ok(node)
}

pub(super) async fn set_selectors(store: &SqlStore, spiffe_id: &SpiffeId, mut selectors: Vec<Selector>) -> Result<()> {
    selectors.sort();
    selectors.dedup();
    let id = spiffe_id.to_string();
    validate::selectors(&selectors, &format!("node {id}"))?;
    let mut tx = store.write().await?;
    replace_selectors(&mut tx, &id, &selectors).await?;
    events::node_event(&mut tx, &id, now_unix()).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get_selectors(store: &SqlStore, spiffe_id: &SpiffeId) -> Result<Vec<Selector>> {
    let d = store.dialect;
    let rows: Vec<(String, String)> = sqlx::query_as(
        &d.sql("SELECT type, value FROM node_resolver_map_entries WHERE spiffe_id = ? ORDER BY type, value"),
    )
    .bind(spiffe_id.to_string())
    .fetch_all(&store.reader)
    .await?;
    let mut selectors: Vec<Selector> = rows.into_iter().map(|(kind, value)| Selector { kind, value }).collect();
    selectors.sort();
    Ok(selectors)
}

pub(super) async fn list_selectors(
    store: &SqlStore,
    valid_at: Option<i64>,
) -> Result<BTreeMap<SpiffeId, Vec<Selector>>> {
    let d = store.dialect;
    let rows: Vec<(String, String, String)> = match valid_at {
        Some(t) => {
            sqlx::query_as(&d.sql(
                "SELECT s.spiffe_id, s.type, s.value FROM node_resolver_map_entries s \
                 JOIN attested_node_entries n ON n.spiffe_id = s.spiffe_id WHERE n.expires_at > ?",
            ))
            .bind(t)
            .fetch_all(&store.reader)
            .await?
        }
        None => {
            sqlx::query_as(&d.sql("SELECT spiffe_id, type, value FROM node_resolver_map_entries"))
                .fetch_all(&store.reader)
                .await?
        }
    };
    let mut map: BTreeMap<SpiffeId, Vec<Selector>> = BTreeMap::new();
    for (id, kind, value) in rows {
        map.entry(stored_spiffe_id(&id, "node selector")?).or_default().push(Selector { kind, value });
    }
    for selectors in map.values_mut() {
        selectors.sort();
    }
    Ok(map)
}

fn not_found(id: &str) -> DataStoreError {
    DataStoreError::NotFound(format!("no attested node has SPIFFE ID {id}"))
}

/// Appends the filter's conditions to a query over `attested_node_entries n`.
fn push_filter<'a>(qb: &mut Builder<'a>, filter: &'a NodeFilter) {
    if let Some(kind) = &filter.by_attestation_type {
        qb.push(" AND n.data_type = ").push_bind(kind.as_str());
    }
    match filter.by_banned {
        Some(true) => {
            qb.push(" AND n.serial_number = ''");
        }
        Some(false) => {
            qb.push(" AND n.serial_number <> ''");
        }
        None => {}
    }
    if let Some(before) = filter.by_expires_before {
        qb.push(" AND n.expires_at < ").push_bind(before);
    }
    if let Some(can_reattest) = filter.by_can_reattest {
        qb.push(" AND n.can_reattest = ").push_bind(can_reattest);
    }
    if let Some((selectors, mode)) = &filter.by_selectors {
        let table = SetTable { from: "node_resolver_map_entries", key: "spiffe_id", outer: "n.spiffe_id" };
        set_match::push(qb, &table, *mode, selectors.len(), &|qb| {
            qb.push("(");
            for (i, s) in selectors.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("(type = ")
                    .push_bind(s.kind.as_str())
                    .push(" AND value = ")
                    .push_bind(s.value.as_str())
                    .push(")");
            }
            qb.push(")");
        });
    }
}

async fn replace_selectors(conn: &mut AnyConnection, id: &str, selectors: &[Selector]) -> Result<()> {
    let d = Dialect::of(conn);
    sqlx::query(&d.sql("DELETE FROM node_resolver_map_entries WHERE spiffe_id = ?"))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for s in selectors {
        sqlx::query(&d.sql("INSERT INTO node_resolver_map_entries (spiffe_id, type, value) VALUES (?, ?, ?)"))
            .bind(id)
            .bind(&s.kind)
            .bind(&s.value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The node, read inside the caller's transaction; with `lock`, its row stays locked until a write
/// transaction ends.
async fn fetch_in(conn: &mut AnyConnection, id: &str, lock: bool) -> Result<Option<AttestedNode>> {
    let d = Dialect::of(conn);
    let lock = if lock { d.for_update() } else { "" };
    let row = sqlx::query_as::<_, NodeRow>(
        &d.sql(&format!("SELECT {COLUMNS} FROM attested_node_entries n WHERE n.spiffe_id = ?{lock}")),
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => assemble(conn, vec![row]).await?.pop(),
        None => None,
    })
}

async fn assemble(conn: &mut AnyConnection, rows: Vec<NodeRow>) -> Result<Vec<AttestedNode>> {
    let d = Dialect::of(conn);
    let mut selectors: HashMap<String, Vec<Selector>> = HashMap::new();
    let ids: Vec<&str> = rows.iter().map(|r| r.spiffe_id.as_str()).collect();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut qb =
            Builder::new(d, "SELECT spiffe_id, type, value FROM node_resolver_map_entries WHERE spiffe_id IN (");
        qb.push_list(", ", chunk.iter().copied());
        qb.push(")");
        for (id, kind, value) in qb.build_query_as::<(String, String, String)>().fetch_all(&mut *conn).await? {
            selectors.entry(id).or_default().push(Selector { kind, value });
        }
    }
    rows.into_iter()
        .map(|row| {
            let mut node = AttestedNode {
                spiffe_id: stored_spiffe_id(&row.spiffe_id, "attested node")?,
                attestation_data_type: row.data_type,
                cert_serial_number: row.serial_number,
                cert_not_after: row.expires_at,
                new_cert_serial_number: row.new_serial_number,
                new_cert_not_after: row.new_expires_at,
                can_reattest: row.can_reattest,
                agent_version: row.agent_version,
                selectors: selectors.remove(&row.spiffe_id).unwrap_or_default(),
            };
            node.normalize();
            Ok(node)
        })
        .collect()
}
