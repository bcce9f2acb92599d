//! Federation relationships (`federated_trust_domains`).

use spire_identity::TrustDomain;

use super::dialect::inserted;
use super::{Builder, SqlStore, stored_spiffe_id, stored_trust_domain};
use crate::filters::{look_ahead_limit, split_page};
use crate::{
    BundleEndpointProfile, DataStoreError, FederationRelationship, FederationRelationshipMask, Pagination, Result,
    now_unix,
};

type Row = (String, String, String, String);

const COLUMNS: &str = "trust_domain, bundle_endpoint_url, bundle_endpoint_profile, endpoint_spiffe_id";

fn endpoint_id(profile: &BundleEndpointProfile) -> String {
    match profile {
        BundleEndpointProfile::HttpsWeb => String::new(),
        BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => endpoint_spiffe_id.to_string(),
    }
}

fn from_row((td, url, profile, endpoint): Row) -> Result<FederationRelationship> {
    let what = format!("federation relationship {td}");
    let profile = match profile.as_str() {
        "https_web" => BundleEndpointProfile::HttpsWeb,
        "https_spiffe" => {
            BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id: stored_spiffe_id(&endpoint, &what)? }
        }
        other => return Err(DataStoreError::internal(format!("stored {what} has unknown profile {other:?}"))),
    };
    Ok(FederationRelationship { trust_domain: stored_trust_domain(&td, &what)?, bundle_endpoint_url: url, profile })
}

pub(super) async fn create(store: &SqlStore, rel: FederationRelationship) -> Result<FederationRelationship> {
    let d = store.dialect;
    let now = now_unix();
    let insert = "INSERT INTO federated_trust_domains (trust_domain, bundle_endpoint_url, bundle_endpoint_profile, \
         endpoint_spiffe_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)";
    let done = sqlx::query(&d.sql(&d.insert_or_ignore(insert, "trust_domain")))
        .bind(rel.trust_domain.id_string())
        .bind(&rel.bundle_endpoint_url)
        .bind(rel.profile.name())
        .bind(endpoint_id(&rel.profile))
        .bind(now)
        .bind(now)
        .execute(&store.writer)
        .await;
    let inserted = inserted(done)?;
    if !inserted {
        return Err(DataStoreError::AlreadyExists(format!(
            "a federation relationship with {} already exists: update it instead",
            rel.trust_domain
        )));
    }
    Ok(rel)
}

pub(super) async fn fetch(store: &SqlStore, td: &TrustDomain) -> Result<Option<FederationRelationship>> {
    let d = store.dialect;
    let row: Option<Row> =
        sqlx::query_as(&d.sql(&format!("SELECT {COLUMNS} FROM federated_trust_domains WHERE trust_domain = ?")))
            .bind(td.id_string())
            .fetch_optional(&store.reader)
            .await?;
    row.map(from_row).transpose()
}

pub(super) async fn list(
    store: &SqlStore,
    pagination: Option<&Pagination>,
) -> Result<(Vec<FederationRelationship>, String)> {
    let d = store.dialect;
    let cursor = pagination.map(Pagination::cursor).transpose()?.flatten();
    let mut qb = Builder::new(d, format!("SELECT {COLUMNS} FROM federated_trust_domains WHERE 1 = 1"));
    if let Some(cursor) = cursor {
        qb.push(" AND trust_domain > ").push_bind(cursor);
    }
    qb.push(" ORDER BY trust_domain");
    if let Some(p) = pagination {
        qb.push(" LIMIT ").push_bind(look_ahead_limit(p));
    }
    let rows: Vec<Row> = qb.build_query_as().fetch_all(&store.replica).await?;
    let (rows, next) = split_page(rows, pagination, |r| &r.0);
    Ok((rows.into_iter().map(from_row).collect::<Result<_>>()?, next))
}

pub(super) async fn update(
    store: &SqlStore,
    update: FederationRelationship,
    mask: &FederationRelationshipMask,
) -> Result<FederationRelationship> {
    let d = store.dialect;
    let key = update.trust_domain.id_string();
    let mut tx = store.write().await?;
    let row: Option<Row> = sqlx::query_as(
        &d.sql(&format!("SELECT {COLUMNS} FROM federated_trust_domains WHERE trust_domain = ?{}", d.for_update())),
    )
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    let mut rel = row.map(from_row).transpose()?.ok_or_else(|| not_found(&update.trust_domain))?;
    mask.apply(&mut rel, update);
    sqlx::query(&d.sql(
        "UPDATE federated_trust_domains SET bundle_endpoint_url = ?, bundle_endpoint_profile = ?, \
         endpoint_spiffe_id = ?, updated_at = ? WHERE trust_domain = ?",
    ))
    .bind(&rel.bundle_endpoint_url)
    .bind(rel.profile.name())
    .bind(endpoint_id(&rel.profile))
    .bind(now_unix())
    .bind(&key)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rel)
}

pub(super) async fn delete(store: &SqlStore, td: &TrustDomain) -> Result<()> {
    let d = store.dialect;
    let deleted = sqlx::query(&d.sql("DELETE FROM federated_trust_domains WHERE trust_domain = ?"))
        .bind(td.id_string())
        .execute(&store.writer)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(not_found(td));
    }
    Ok(())
}

fn not_found(td: &TrustDomain) -> DataStoreError {
    DataStoreError::NotFound(format!("no federation relationship with {td} exists"))
}
