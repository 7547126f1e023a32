//! The single-node [`Store`] on SQLite.
//!
//! # Layout
//! - [`SqliteStore`]: opening a database (settings, migrations, the two pools) and the
//!   [`Store`] implementation, which only routes each call to the write or the read side.
//! - `write`: creates, guarded commits, queue promotion, feedback; one transaction each.
//! - `read`: lists, event pages and the engine's scans.
//! - `keys`: organisations and API keys.
//! - `migrate`: the embedded schema scripts under `migrations/` and their runner.
//! - `codec`: rows to records and back; sqlx errors to [`StoreError`].
//!
//! # Concurrency
//! SQLite has one writer. Every write goes through a pool of exactly one connection, in
//! a `BEGIN IMMEDIATE` transaction, so write transactions run one after another: the
//! idempotency and quota checks of a create are atomic with its insert without any
//! further locking. Reads use a separate small pool and, in WAL mode, never wait for the
//! writer. A commit publishes its [`Change`](agentd_store::Change) after its transaction
//! committed and before the write connection is released, so subscribers of a session
//! see its changes in commit order.

mod codec;
mod keys;
mod migrate;
mod read;
mod write;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::time::Millis;
use agentd_domain::{NewEvent, OrgId, SessionId, SessionStatus};
use agentd_store::{
    Admission, ApiKeyRecord, Change, ChangeReceiver, CreateOutcome, EventPageQuery, EventRecord,
    Guard, IdempotencyKey, LocalFeed, NewSession, Result, SessionFilter, SessionRecord,
    SessionUpdate, Store, StoreError,
};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqlitePool};

use crate::codec::DbResultExt;
use crate::write::{Committed, Created, Written};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
// Pools skip the liveness ping before handing out a connection (sqlx's default): a
// local file does not drop connections, and the ping would double the round trips of
// every one-statement read.

/// Read connections; reads run in parallel with each other and with the writer.
const READ_CONNECTIONS: u32 = 4;

/// A [`Store`] in one SQLite file. Cloning is cheap and shares the pools and the feed.
#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    feed: Arc<LocalFeed>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it if missing and upgrading its schema.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let write = single_connection_pool(options.clone()).await?;
        Self::migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options.create_if_missing(false))
            .await
            .db()?;
        Ok(SqliteStore {
            write,
            read,
            feed: Arc::default(),
        })
    }

    /// A private database in memory, gone when the store is dropped. One connection
    /// serves reads and writes, since every in-memory connection is its own database.
    pub async fn open_in_memory() -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .db()?
            .foreign_keys(true);
        let pool = single_connection_pool(options).await?;
        Self::migrate(&pool).await?;
        Ok(SqliteStore {
            write: pool.clone(),
            read: pool,
            feed: Arc::default(),
        })
    }

    async fn migrate(pool: &SqlitePool) -> Result<()> {
        let mut conn = pool.acquire().await.db()?;
        migrate::migrate(&mut conn, migrate::MIGRATIONS).await?;
        Ok(())
    }

    /// Closes both pools, waiting for their connections to finish; after this every
    /// committed write is in the database file.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// The feed this store publishes to (for metrics: how many sessions are watched).
    pub fn feed(&self) -> &LocalFeed {
        &self.feed
    }

    async fn writer(&self) -> Result<PoolConnection<Sqlite>> {
        self.write.acquire().await.db()
    }

    fn publish(&self, written: Written) -> SessionRecord {
        let session = written.session.clone();
        self.feed.publish(Change {
            session: written.session,
            events: written.events,
        });
        session
    }
}

/// A pool that keeps exactly one connection open for its whole life: the writer (or, in
/// memory, the database itself, which a closed connection would lose).
async fn single_connection_pool(options: SqliteConnectOptions) -> Result<SqlitePool> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .db()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_org(&self, name: &str) -> Result<OrgId> {
        keys::ensure_org(&mut *self.writer().await?, name).await
    }

    async fn insert_api_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<()> {
        keys::insert_api_key(&mut *self.writer().await?, record, key_hash).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        keys::find_api_key(&self.read, key_hash).await
    }

    async fn list_api_keys(&self, org_name: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        keys::list_api_keys(&self.read, org_name).await
    }

    async fn revoke_api_key(&self, id_or_prefix: &str) -> Result<bool> {
        keys::revoke_api_key(&mut *self.writer().await?, id_or_prefix).await
    }

    async fn create_session(
        &self,
        new: NewSession,
        admission: Admission,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<CreateOutcome> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.db()?;
        match write::create_session(&mut tx, new, admission, idempotency).await? {
            Created::New(written) => {
                tx.commit().await.db()?;
                Ok(CreateOutcome::Created(self.publish(written)))
            }
            Created::Unchanged(outcome) => {
                tx.rollback().await.db()?;
                Ok(outcome)
            }
        }
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        read::get_session(&self.read, id).await
    }

    async fn list_sessions(
        &self,
        org: &OrgId,
        filter: &SessionFilter,
    ) -> Result<(Vec<SessionRecord>, u64)> {
        read::list_sessions(&self.read, org, filter).await
    }

    async fn commit(
        &self,
        id: SessionId,
        guard: &Guard,
        update: SessionUpdate,
        events: Vec<NewEvent>,
    ) -> Result<SessionRecord> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.db()?;
        let session = write::fetch_session(&mut tx, &id.to_string())
            .await?
            .ok_or(StoreError::NotFound)?;
        match write::commit(&mut tx, session, guard, update, events).await? {
            Committed::Written(written) => {
                tx.commit().await.db()?;
                Ok(self.publish(written))
            }
            Committed::Unchanged(session) => {
                tx.rollback().await.db()?;
                Ok(session)
            }
            Committed::Refused(refusal) => {
                tx.rollback().await.db()?;
                Err(refusal.into())
            }
        }
    }

    async fn events(
        &self,
        id: SessionId,
        from: u64,
        limit: Option<u64>,
    ) -> Result<Vec<EventRecord>> {
        read::events(&self.read, id, from, limit).await
    }

    async fn events_page(
        &self,
        id: SessionId,
        query: &EventPageQuery,
    ) -> Result<(Vec<EventRecord>, u64)> {
        read::events_page(&self.read, id, query).await
    }

    async fn set_event_feedback(&self, id: SessionId, index: u64, feedback: Value) -> Result<bool> {
        write::set_event_feedback(
            &mut *self.writer().await?,
            &id.to_string(),
            index,
            &feedback,
        )
        .await
    }

    async fn sessions_in_status(&self, statuses: &[SessionStatus]) -> Result<Vec<SessionId>> {
        read::sessions_in_status(&self.read, statuses).await
    }

    async fn count_active(&self, org: &OrgId) -> Result<u32> {
        let mut conn = self.read.acquire().await.db()?;
        write::count_active(&mut conn, org).await
    }

    async fn promote_queued(
        &self,
        org: &OrgId,
        slot_limit: u32,
        events: Vec<NewEvent>,
    ) -> Result<Vec<SessionRecord>> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.db()?;
        let promoted = write::promote_queued(&mut tx, org, slot_limit, events).await?;
        if promoted.is_empty() {
            tx.rollback().await.db()?;
            return Ok(Vec::new());
        }
        tx.commit().await.db()?;
        Ok(promoted
            .into_iter()
            .map(|written| self.publish(written))
            .collect())
    }

    async fn orgs_with_queued(&self) -> Result<Vec<OrgId>> {
        read::orgs_with_queued(&self.read).await
    }

    async fn next_idle_deadline(&self) -> Result<Option<Millis>> {
        read::next_idle_deadline(&self.read).await
    }

    async fn due_idle_sessions(&self, now: Millis) -> Result<Vec<SessionRecord>> {
        read::due_idle_sessions(&self.read, now).await
    }

    fn subscribe(&self, id: SessionId) -> ChangeReceiver {
        self.feed.subscribe(id)
    }
}
