//! The SQL store: one implementation of [`DataStore`] over sqlx's `Any` driver for SQLite, PostgreSQL
//! and MySQL/MariaDB, the queries written once and adapted per [`Dialect`].
//!
//! SQLite admits one writer at a time. Funnelling every write transaction through a one-connection
//! pool queues writers inside the process instead of letting them collide on the file lock, and
//! starting each with `BEGIN IMMEDIATE` takes the write lock up front, so a transaction never has to
//! upgrade from read to write halfway (the upgrade is where SQLite returns SQLITE_BUSY without waiting).
//! Readers use their own pool and, thanks to WAL, never block the writer nor wait for it; multi-query
//! reads run in a read transaction so they see one snapshot.

mod builder;
mod bundles;
mod ca_journals;
mod dialect;
mod entries;
mod events;
mod federation;
mod migrate;
mod nodes;
mod set_match;
mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use spire_identity::{Selector, SpiffeId, TrustDomain};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub(crate) use builder::Builder;
pub use dialect::Dialect;

use crate::store::Page;
use crate::{
    AttestedNode, BundleMask, CaJournal, DataStore, DataStoreError, DeleteMode, EntryEvent, EntryFilter, EntryMask,
    FederationRelationship, FederationRelationshipMask, JoinToken, NodeEvent, NodeFilter, NodeMask, Pagination,
    RegistrationEntry, Result, StoredBundle,
};

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Do not bring the schema up to date at open; fail instead if it is not (SPIRE's
    /// `disable_migration`, for operators who migrate out of band).
    pub disable_migration: bool,
    /// How long a statement waits for another process's lock before failing with Unavailable.
    pub busy_timeout: Duration,
    /// Connections for concurrent readers (the writer has its own).
    pub max_read_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { disable_migration: false, busy_timeout: Duration::from_secs(10), max_read_connections: 4 }
    }
}

/// How to reach a PostgreSQL or MySQL database (SPIRE's DataStore "sql" settings).
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// The sqlx URL of the database (see `sql_connection::database_url` for SPIRE's forms).
    pub url: String,
    /// `ro_connection_string` as a URL: a replica for reads, if any.
    pub read_only_url: Option<String>,
    /// `max_open_conns`.
    pub max_open_conns: u32,
    /// `conn_max_lifetime`.
    pub conn_max_lifetime: Option<Duration>,
    /// `disable_migration`.
    pub disable_migration: bool,
    /// How long to wait for a connection from the pool (then Unavailable).
    pub acquire_timeout: Duration,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            url: String::new(),
            read_only_url: None,
            max_open_conns: 100,
            conn_max_lifetime: None,
            disable_migration: false,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`DataStore`] on one SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    writer: AnyPool,
    reader: AnyPool,
    /// `ro_connection_string`'s pool (else `reader`), for listings that may lag a little, as SPIRE
    /// uses it; lookups by key and the events table always read the primary.
    replica: AnyPool,
    dialect: Dialect,
}

/// `path` as the file part of a `sqlite:` URL: sqlx percent-decodes it and stops at `?`.
fn sqlite_url(path: &str) -> String {
    let mut url = String::from("sqlite://");
    for c in path.chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            _ => url.push(c),
        }
    }
    url
}

impl SqlStore {
    /// Opens (creating if missing) the SQLite database at `target`: a file path as in SPIRE's
    /// `connection_string`, a `sqlite:` URL, or `:memory:` / `sqlite::memory:` for a private
    /// in-memory database. Migrates the schema unless `options.disable_migration`.
    pub async fn open(target: &str, options: SqliteOptions) -> Result<Self> {
        install_default_drivers();
        let in_memory = target == ":memory:" || target.starts_with("sqlite::memory:") || target.contains("mode=memory");
        let url = if target == ":memory:" {
            "sqlite::memory:".to_owned()
        } else if target.starts_with("sqlite:") {
            // Created if missing, as a plain path is, unless the URL says otherwise.
            match (target.contains("mode="), target.contains('?')) {
                (true, _) => target.to_owned(),
                (false, true) => format!("{target}&mode=rwc"),
                (false, false) => format!("{target}?mode=rwc"),
            }
        } else {
            format!("{}?mode=rwc", sqlite_url(target))
        };
        let busy_ms = options.busy_timeout.as_millis();
        // Per connection: FULL makes a commit durable before it is acknowledged, even across power
        // loss (NORMAL could forget the last commits, e.g. resurrect a join token already used).
        let pool = |max: u32, min: u32| {
            AnyPoolOptions::new().max_connections(max).min_connections(min).after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute(format!("PRAGMA busy_timeout = {busy_ms}").as_str()).await?;
                    Ok(())
                })
            })
        };
        let unavailable =
            |e: sqlx::Error| DataStoreError::Unavailable(format!("cannot open SQLite database {target:?}: {e}"));
        let writer = pool(1, u32::from(in_memory)).idle_timeout(None).max_lifetime(None).connect(&url).await.map_err(
            |e| match e {
                sqlx::Error::Configuration(_) => {
                    DataStoreError::invalid(format!("SQLite connection string {target:?} is not valid: {e}"))
                }
                e => unavailable(e),
            },
        )?;
        if !in_memory {
            writer.execute("PRAGMA journal_mode = WAL").await.map_err(unavailable)?;
        }
        // An in-memory database lives in its one connection: readers must share it.
        let reader = if in_memory {
            writer.clone()
        } else {
            pool(options.max_read_connections.max(1), 0).connect(&url).await.map_err(unavailable)?
        };
        let store = Self { replica: reader.clone(), writer, reader, dialect: Dialect::Sqlite };
        if options.disable_migration {
            migrate::check(&store.writer, store.dialect).await?;
        } else {
            migrate::run(&store.writer, store.dialect).await?;
        }
        Ok(store)
    }

    /// Connects to the PostgreSQL or MySQL database at `options.url` (`postgres://` or `mysql://`) and
    /// migrates its schema unless `options.disable_migration`. Several servers may share the database:
    /// migrations take the database's advisory lock, and writers lock the rows they read to update.
    pub async fn connect(options: SqlOptions) -> Result<Self> {
        install_default_drivers();
        let dialect = if options.url.starts_with("postgres") {
            Dialect::Postgres
        } else if options.url.starts_with("mysql") || options.url.starts_with("mariadb") {
            Dialect::Mysql
        } else {
            return Err(DataStoreError::invalid(
                "the database URL must start with postgres:// or mysql:// (SQLite databases are opened by path)",
            ));
        };
        let pool = |url: &str| {
            AnyPoolOptions::new()
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if dialect == Dialect::Mysql {
                            // Refuse values that do not fit instead of truncating them, whatever the
                            // server's default mode.
                            conn.execute(
                                "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
                .max_connections(options.max_open_conns.max(1))
                .max_lifetime(options.conn_max_lifetime)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy(url)
                .map_err(|e| DataStoreError::invalid(format!("the {dialect:?} connection string is not valid: {e}")))
        };
        let writer = pool(&options.url)?;
        let replica = match &options.read_only_url {
            Some(url) => pool(url)?,
            None => writer.clone(),
        };
        let store = Self { reader: writer.clone(), writer, replica, dialect };
        // The first connection tells whether the database is there at all.
        if options.disable_migration {
            migrate::check(&store.writer, dialect).await?;
        } else {
            migrate::run(&store.writer, dialect).await?;
        }
        Ok(store)
    }

    /// [`open`](Self::open) for a file path.
    pub async fn open_path(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref();
        let text = path.to_str().ok_or_else(|| {
            DataStoreError::invalid(format!("database path {} is not valid UTF-8: choose another path", path.display()))
        })?;
        Self::open(text, options).await
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        self.replica.close().await;
    }

    /// The database this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A write transaction. On SQLite it holds the database's write lock from its first statement;
    /// elsewhere, rows read for update are locked with [`Dialect::for_update`].
    async fn write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            _ => self.writer.begin().await?,
        })
    }

    /// A read transaction: every query in it sees the same snapshot.
    async fn read(&self) -> Result<Transaction<'static, Any>> {
        Self::snapshot(&self.reader, self.dialect).await
    }

    /// A read transaction on the `ro_connection_string` replica, if one is configured.
    async fn read_stale(&self) -> Result<Transaction<'static, Any>> {
        Self::snapshot(&self.replica, self.dialect).await
    }

    async fn snapshot(pool: &AnyPool, dialect: Dialect) -> Result<Transaction<'static, Any>> {
        Ok(match dialect {
            Dialect::Sqlite => pool.begin().await?,
            Dialect::Postgres => pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
            Dialect::Mysql => pool.begin_with("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await?,
        })
    }
}

#[async_trait]
impl DataStore for SqlStore {
    async fn create_entry(&self, entry: RegistrationEntry) -> Result<RegistrationEntry> {
        entries::create(self, entry).await
    }

    async fn fetch_entry(&self, id: &str) -> Result<Option<RegistrationEntry>> {
        entries::fetch(self, id).await
    }

    async fn fetch_entries(&self, ids: &[String]) -> Result<HashMap<String, RegistrationEntry>> {
        entries::fetch_many(self, ids).await
    }

    async fn list_entries(
        &self,
        filter: &EntryFilter,
        pagination: Option<&Pagination>,
    ) -> Result<Page<RegistrationEntry>> {
        entries::list(self, filter, pagination).await
    }

    async fn count_entries(&self, filter: &EntryFilter) -> Result<u64> {
        entries::count(self, filter).await
    }

    async fn update_entry(&self, entry: RegistrationEntry, mask: &EntryMask) -> Result<RegistrationEntry> {
        entries::update(self, entry, mask).await
    }

    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry> {
        entries::delete(self, id).await
    }

    async fn prune_entries(&self, expires_before: i64) -> Result<u64> {
        entries::prune(self, expires_before).await
    }

    async fn list_entry_events(&self, after_event_id: i64, limit: u32) -> Result<Vec<EntryEvent>> {
        events::list_entry_events(self, after_event_id, limit).await
    }

    async fn list_node_events(&self, after_event_id: i64, limit: u32) -> Result<Vec<NodeEvent>> {
        events::list_node_events(self, after_event_id, limit).await
    }

    async fn latest_entry_event_id(&self) -> Result<i64> {
        events::latest_id(self, "registered_entries_events").await
    }

    async fn latest_node_event_id(&self) -> Result<i64> {
        events::latest_id(self, "attested_node_entries_events").await
    }

    async fn prune_events(&self, older_than: i64) -> Result<u64> {
        events::prune(self, older_than).await
    }

    async fn create_attested_node(&self, node: AttestedNode) -> Result<AttestedNode> {
        nodes::create(self, node).await
    }

    async fn fetch_attested_node(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedNode>> {
        nodes::fetch(self, spiffe_id).await
    }

    async fn list_attested_nodes(
        &self,
        filter: &NodeFilter,
        pagination: Option<&Pagination>,
    ) -> Result<Page<AttestedNode>> {
        nodes::list(self, filter, pagination).await
    }

    async fn count_attested_nodes(&self, filter: &NodeFilter) -> Result<u64> {
        nodes::count(self, filter).await
    }

    async fn update_attested_node(&self, node: AttestedNode, mask: &NodeMask) -> Result<AttestedNode> {
        nodes::update(self, node, mask).await
    }

    async fn delete_attested_node(&self, spiffe_id: &SpiffeId) -> Result<AttestedNode> {
        nodes::delete(self, spiffe_id).await
    }

    async fn set_node_selectors(&self, spiffe_id: &SpiffeId, selectors: Vec<Selector>) -> Result<()> {
        nodes::set_selectors(self, spiffe_id, selectors).await
    }

    async fn get_node_selectors(&self, spiffe_id: &SpiffeId) -> Result<Vec<Selector>> {
        nodes::get_selectors(self, spiffe_id).await
    }

    async fn list_node_selectors(&self, valid_at: Option<i64>) -> Result<BTreeMap<SpiffeId, Vec<Selector>>> {
        nodes::list_selectors(self, valid_at).await
    }

    async fn create_join_token(&self, token: JoinToken) -> Result<()> {
        tokens::create(self, token).await
    }

    async fn fetch_join_token(&self, token: &str) -> Result<Option<JoinToken>> {
        tokens::fetch(self, token).await
    }

    async fn delete_join_token(&self, token: &str) -> Result<bool> {
        tokens::delete(self, token).await
    }

    async fn prune_join_tokens(&self, expires_before: i64) -> Result<u64> {
        tokens::prune(self, expires_before).await
    }

    async fn create_bundle(&self, bundle: StoredBundle) -> Result<StoredBundle> {
        bundles::create(self, bundle).await
    }

    async fn fetch_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<StoredBundle>> {
        bundles::fetch(self, trust_domain).await
    }

    async fn list_bundles(&self, pagination: Option<&Pagination>) -> Result<Page<StoredBundle>> {
        bundles::list(self, pagination).await
    }

    async fn count_bundles(&self) -> Result<u64> {
        bundles::count(self).await
    }

    async fn update_bundle(&self, bundle: StoredBundle, mask: &BundleMask) -> Result<StoredBundle> {
        bundles::update(self, bundle, mask).await
    }

    async fn set_bundle(&self, bundle: StoredBundle) -> Result<StoredBundle> {
        bundles::set(self, bundle).await
    }

    async fn append_bundle(&self, bundle: StoredBundle) -> Result<StoredBundle> {
        bundles::append(self, bundle).await
    }

    async fn delete_bundle(&self, trust_domain: &TrustDomain, mode: DeleteMode) -> Result<()> {
        bundles::delete(self, trust_domain, mode).await
    }

    async fn prune_bundle(&self, trust_domain: &TrustDomain, expires_before: i64) -> Result<bool> {
        bundles::prune(self, trust_domain, expires_before).await
    }

    async fn create_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> Result<FederationRelationship> {
        federation::create(self, relationship).await
    }

    async fn fetch_federation_relationship(
        &self,
        trust_domain: &TrustDomain,
    ) -> Result<Option<FederationRelationship>> {
        federation::fetch(self, trust_domain).await
    }

    async fn list_federation_relationships(
        &self,
        pagination: Option<&Pagination>,
    ) -> Result<Page<FederationRelationship>> {
        federation::list(self, pagination).await
    }

    async fn update_federation_relationship(
        &self,
        relationship: FederationRelationship,
        mask: &FederationRelationshipMask,
    ) -> Result<FederationRelationship> {
        federation::update(self, relationship, mask).await
    }

    async fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<()> {
        federation::delete(self, trust_domain).await
    }

    async fn set_ca_journal(&self, journal: CaJournal) -> Result<CaJournal> {
        ca_journals::set(self, journal).await
    }

    async fn fetch_ca_journal(&self, active_x509_authority_id: &str) -> Result<Option<CaJournal>> {
        ca_journals::fetch(self, active_x509_authority_id).await
    }

    async fn fetch_latest_ca_journal(&self) -> Result<Option<CaJournal>> {
        ca_journals::fetch_latest(self).await
    }

    async fn prune_ca_journals(&self, all_expired_before: i64) -> Result<u64> {
        ca_journals::prune(self, all_expired_before).await
    }
}

/// A boolean column, selected as `CASE WHEN <column> THEN 1 ELSE 0 END`: sqlx's `Any` driver reads
/// neither SQLite's BOOLEAN nor MySQL's TINYINT.
fn flag(row: &sqlx::any::AnyRow, column: &str) -> sqlx::Result<bool> {
    use sqlx::Row;
    row.try_get::<i64, _>(column).map(|v| v != 0)
}

/// Parses an ID read back from the database; a failure means the row was corrupted outside the store.
fn stored_spiffe_id(text: &str, what: &str) -> Result<SpiffeId> {
    SpiffeId::parse(text)
        .map_err(|e| DataStoreError::internal(format!("stored {what} has an invalid SPIFFE ID {text:?}: {e}")))
}

/// Same for trust domains.
fn stored_trust_domain(text: &str, what: &str) -> Result<TrustDomain> {
    TrustDomain::parse(text)
        .map_err(|e| DataStoreError::internal(format!("stored {what} has an invalid trust domain {text:?}: {e}")))
}
