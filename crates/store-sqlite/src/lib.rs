//! The single-node [`Store`] on SQLite.
//!
//! # Layout
//! - [`SqliteStore`]: opening a database (settings, migrations, connections) and the
//!   [`Store`] implementation, which only routes each call to the write or the read side.
//! - `write`: creates, guarded commits, queue promotion, feedback; one transaction each.
//! - `read`: lists, event pages and the engine's scans.
//! - `keys`: organisations and API keys.
//! - `migrate`: the embedded schema scripts under `migrations/` and their runner.
//! - `connections`: the writer and the readers, handed out without sqlx's pool.
//! - `codec`: rows to records and back; sqlx errors to [`StoreError`].
//!
//! # Concurrency
//! SQLite has one writer. Every write goes through one connection, in a
//! `BEGIN IMMEDIATE` transaction, so write transactions run one after another: the
//! idempotency and quota checks of a create are atomic with its insert without any
//! further locking, and another process writing the same file (the key-management
//! command) waits on SQLite's lock instead of deadlocking. Reads use a few other
//! connections and, in WAL mode, never wait for the writer. A commit publishes its
//! [`Change`](agentd_store::Change) after its transaction committed and before the write
//! connection is handed back, so subscribers of a session see its changes in commit order.
//!
//! # Cost model
//! sqlx runs each SQLite connection on its own thread; every statement is a round trip
//! to that thread, which costs far more than the statement itself. So a create is four
//! round trips (begin, one lookup, one multi-statement write, commit), a commit the same,
//! and a read of a session or of an event window is one.

mod codec;
mod connections;
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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use crate::codec::DbResultExt;
use crate::connections::{Conn, Connections};
use crate::write::{Committed, Created, Written};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections; reads run in parallel with each other and with the writer.
const READ_CONNECTIONS: usize = 4;

/// A [`Store`] in one SQLite file. Cloning is cheap and shares the connections and the feed.
#[derive(Clone)]
pub struct SqliteStore {
    /// The one connection every write goes through.
    writer: Arc<Connections>,
    /// Connections for everything that only reads.
    readers: Arc<Connections>,
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
        let mut writer = options.connect().await.db()?;
        migrate::migrate(&mut writer, migrate::MIGRATIONS).await?;
        let read_options = options.create_if_missing(false);
        let mut readers = Vec::with_capacity(READ_CONNECTIONS);
        for _ in 0..READ_CONNECTIONS {
            readers.push(read_options.connect().await.db()?);
        }
        Ok(SqliteStore {
            writer: Arc::new(Connections::new(vec![writer])),
            readers: Arc::new(Connections::new(readers)),
            feed: Arc::default(),
        })
    }

    /// A private database in memory, gone when the store is dropped. One connection
    /// serves reads and writes, since every in-memory connection is its own database.
    pub async fn open_in_memory() -> Result<SqliteStore> {
        let mut conn = SqliteConnectOptions::from_str("sqlite::memory:")
            .db()?
            .foreign_keys(true)
            .connect()
            .await
            .db()?;
        migrate::migrate(&mut conn, migrate::MIGRATIONS).await?;
        let only = Arc::new(Connections::new(vec![conn]));
        Ok(SqliteStore {
            writer: Arc::clone(&only),
            readers: only,
            feed: Arc::default(),
        })
    }

    /// Closes every connection once it is free; after this every committed write is in
    /// the database file, and every call fails.
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }

    /// The feed this store publishes to (for metrics: how many sessions are watched).
    pub fn feed(&self) -> &LocalFeed {
        &self.feed
    }

    async fn writer(&self) -> Result<Conn<'_>> {
        self.writer.get().await
    }

    async fn reader(&self) -> Result<Conn<'_>> {
        self.readers.get().await
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

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_org(&self, name: &str) -> Result<OrgId> {
        keys::ensure_org(&mut *self.writer().await?, name).await
    }

    async fn insert_api_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<()> {
        keys::insert_api_key(&mut *self.writer().await?, record, key_hash).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        keys::find_api_key(&mut *self.reader().await?, key_hash).await
    }

    async fn list_api_keys(&self, org_name: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        keys::list_api_keys(&mut *self.reader().await?, org_name).await
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
        read::fetch_session(&mut *self.reader().await?, &id.to_string()).await
    }

    async fn list_sessions(
        &self,
        org: &OrgId,
        filter: &SessionFilter,
    ) -> Result<(Vec<SessionRecord>, u64)> {
        read::list_sessions(&mut *self.reader().await?, org, filter).await
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
        let session = read::fetch_session(&mut *tx, &id.to_string())
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
        read::events(&mut *self.reader().await?, id, from, limit).await
    }

    async fn events_page(
        &self,
        id: SessionId,
        query: &EventPageQuery,
    ) -> Result<(Vec<EventRecord>, u64)> {
        read::events_page(&mut *self.reader().await?, id, query).await
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
        read::sessions_in_status(&mut *self.reader().await?, statuses).await
    }

    async fn count_active(&self, org: &OrgId) -> Result<u32> {
        Ok(read::org_load(&mut *self.reader().await?, org).await?.0)
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
        read::orgs_with_queued(&mut *self.reader().await?).await
    }

    async fn next_idle_deadline(&self) -> Result<Option<Millis>> {
        read::next_idle_deadline(&mut *self.reader().await?).await
    }

    async fn due_idle_sessions(&self, now: Millis) -> Result<Vec<SessionRecord>> {
        read::due_idle_sessions(&mut *self.reader().await?, now).await
    }

    fn subscribe(&self, id: SessionId) -> ChangeReceiver {
        self.feed.subscribe(id)
    }
}
