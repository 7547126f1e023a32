//! The single-node [`Store`] on SQLite.
//!
//! # Layout
//! - [`SqliteStore`]: opening a database (settings, migrations, threads) and the
//!   [`Store`] implementation, which only turns each call into a job for the writer or
//!   the readers.
//! - `writer`: the writer thread, its one connection, and group commit.
//! - `readers`: the reader threads and their read-only connections.
//! - `write`: creates, guarded commits, queue promotion, feedback.
//! - `read`: lists, event pages and the engine's scans.
//! - `keys`: organisations and API keys.
//! - `migrate`: the embedded schema scripts under `migrations/` and their runner.
//! - `codec`: rows to records and back; rusqlite errors to [`StoreError`].
//!
//! # Threads
//! SQLite's API is blocking, and a connection is used by one thread at a time, so every
//! connection lives on a thread of its own and async callers talk to it by message: a
//! call sends a job (a closure over the connection) and awaits its answer on a oneshot
//! channel. That is one hop to the thread and one back per call, whatever the job runs:
//! a create's lookup and its three inserts, or a commit's read, guard, event inserts and
//! update, cost one round trip together. (An earlier version used sqlx's SQLite driver,
//! which also runs each connection on a thread but makes a round trip per statement and
//! per result; those thread wake-ups, not SQLite, were nearly all of a create's time.)
//!
//! # Concurrency
//! SQLite has one writer. Every write is a job on the one writer thread, and jobs run
//! one after another, each inside its own savepoint, so the idempotency and quota checks
//! of a create are atomic with its insert without further locking. The thread groups
//! the jobs waiting for it into one `BEGIN IMMEDIATE` transaction and commits once
//! (group commit): under load one commit serves many callers. A job's changes are
//! published to subscribers and its caller answered only after that commit, in job
//! order, so subscribers see a session's changes in commit order and never see what is
//! not committed. Another process writing the same file (the key-management command)
//! waits on SQLite's lock instead of deadlocking.
//!
//! Reads go to a few read-only connections on their own threads and, in WAL mode, never
//! wait for the writer; a read issued after a write was acknowledged sees it. The
//! in-memory store has only the writer's connection (each in-memory connection is a
//! database of its own), so there the writer thread serves reads too.
//!
//! # Cost model
//! A call costs two thread wake-ups (tens of microseconds on a virtual machine) plus its
//! statements. A write alone also pays its own commit, which appends every page it
//! touched to the WAL (a write system call per page; no fsync with `synchronous=NORMAL`):
//! that, not the statements, is most of a lone create's time. Under load, group commit
//! shares one commit and one wake-up among every waiting job, so a create costs a few
//! tens of microseconds of the writer's time. `benches/store.rs` measures both.

mod codec;
mod keys;
mod migrate;
mod queue;
mod read;
mod readers;
mod write;
mod writer;

use std::path::{Path, PathBuf};
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
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::codec::DbResultExt;
use crate::readers::Readers;
use crate::write::{Committed, Created, Written};
use crate::writer::{Done, Writer};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections; reads run in parallel with each other and with the writer.
const READ_CONNECTIONS: usize = 3;
/// Prepared statements each connection keeps: every fixed query of the store fits.
const STATEMENT_CACHE: usize = 64;

/// A [`Store`] in one SQLite file. Cloning is cheap and shares the threads and the feed.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Writer,
    /// `None` for the in-memory store, whose reads go to the writer.
    readers: Option<Readers>,
    feed: Arc<LocalFeed>,
}

/// Settings every connection gets.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// The write connection to the file at `path`, created if missing, schema up to date.
fn open_writer(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).db()?;
    configure(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "sqlite: the database refused WAL mode (journal mode {mode})"
        )));
    }
    // In WAL mode a commit with `NORMAL` survives a crash of the process; only a power
    // loss may take the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL").db()?;
    migrate::migrate(&mut conn, migrate::MIGRATIONS)?;
    Ok(conn)
}

/// A read-only connection to the file at `path`, which the writer has set up.
fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).db()?;
    configure(&conn)?;
    Ok(conn)
}

fn open_memory() -> Result<Connection> {
    let mut conn = Connection::open_in_memory().db()?;
    configure(&conn)?;
    migrate::migrate(&mut conn, migrate::MIGRATIONS)?;
    Ok(conn)
}

/// The record a write answers with, and the change it publishes.
fn publish(written: Written) -> (SessionRecord, Change) {
    let change = Change::new(written.session, written.events);
    (change.session.clone(), change)
}

impl SqliteStore {
    /// Opens the database at `path`, creating it if missing and upgrading its schema.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let feed = Arc::new(LocalFeed::default());
        let path: PathBuf = path.to_owned();
        let writer = {
            let path = path.clone();
            Writer::start(move || open_writer(&path), Arc::clone(&feed)).await?
        };
        let readers = Readers::start(READ_CONNECTIONS, move || open_reader(&path)).await?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                readers: Some(readers),
                feed,
            }),
        })
    }

    /// A private database in memory, gone when the store is dropped. One connection
    /// serves reads and writes, since every in-memory connection is its own database.
    pub async fn open_in_memory() -> Result<SqliteStore> {
        let feed = Arc::new(LocalFeed::default());
        let writer = Writer::start(open_memory, Arc::clone(&feed)).await?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                readers: None,
                feed,
            }),
        })
    }

    /// Finishes the calls already made and closes every connection; after this every
    /// committed write is in the database file, and every call fails.
    pub async fn close(&self) {
        if let Some(readers) = &self.inner.readers {
            readers.stop().await;
        }
        // The writer closes last: as the file's last connection it checkpoints the WAL.
        self.inner.writer.stop().await;
    }

    /// The feed this store publishes to (for metrics: how many sessions are watched).
    pub fn feed(&self) -> &LocalFeed {
        &self.inner.feed
    }

    /// Runs `work` as a write job (see the crate docs).
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Done<T>> + Send + 'static,
    {
        self.inner.writer.run(work).await
    }

    /// Runs `read` on a reader connection, or on the writer's in memory.
    async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        match &self.inner.readers {
            Some(readers) => readers.run(read).await,
            None => {
                self.inner
                    .writer
                    .run(move |conn| read(conn).map(Done::quiet))
                    .await
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_org(&self, name: &str) -> Result<OrgId> {
        let name = name.to_owned();
        self.write(move |conn| keys::ensure_org(conn, &name).map(Done::quiet))
            .await
    }

    async fn insert_api_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<()> {
        let (record, key_hash) = (record.clone(), key_hash.to_owned());
        self.write(move |conn| keys::insert_api_key(conn, &record, &key_hash).map(Done::quiet))
            .await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let key_hash = key_hash.to_owned();
        self.read(move |conn| keys::find_api_key(conn, &key_hash))
            .await
    }

    async fn list_api_keys(&self, org_name: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let org_name = org_name.map(str::to_owned);
        self.read(move |conn| keys::list_api_keys(conn, org_name.as_deref()))
            .await
    }

    async fn revoke_api_key(&self, id_or_prefix: &str) -> Result<bool> {
        let id_or_prefix = id_or_prefix.to_owned();
        self.write(move |conn| keys::revoke_api_key(conn, &id_or_prefix).map(Done::quiet))
            .await
    }

    async fn create_session(
        &self,
        new: NewSession,
        admission: Admission,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<CreateOutcome> {
        self.write(move |conn| {
            Ok(
                match write::create_session(conn, new, admission, idempotency)? {
                    Created::New(written) => {
                        let (session, change) = publish(written);
                        Done {
                            value: CreateOutcome::Created(session),
                            changes: vec![change],
                        }
                    }
                    Created::Unchanged(outcome) => Done::quiet(outcome),
                },
            )
        })
        .await
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        self.read(move |conn| read::fetch_session(conn, &id.to_string()))
            .await
    }

    async fn list_sessions(
        &self,
        org: &OrgId,
        filter: &SessionFilter,
    ) -> Result<(Vec<SessionRecord>, u64)> {
        let (org, filter) = (org.clone(), filter.clone());
        self.read(move |conn| read::list_sessions(conn, &org, &filter))
            .await
    }

    async fn commit(
        &self,
        id: SessionId,
        guard: &Guard,
        update: SessionUpdate,
        events: Vec<NewEvent>,
    ) -> Result<SessionRecord> {
        let guard = guard.clone();
        self.write(move |conn| {
            let session =
                read::fetch_session(conn, &id.to_string())?.ok_or(StoreError::NotFound)?;
            match write::commit(conn, session, &guard, update, events)? {
                Committed::Written(written) => {
                    let (session, change) = publish(written);
                    Ok(Done {
                        value: session,
                        changes: vec![change],
                    })
                }
                Committed::Unchanged(session) => Ok(Done::quiet(session)),
                // Nothing was written; the error rolls the job's savepoint back anyway.
                Committed::Refused(refusal) => Err(refusal.into()),
            }
        })
        .await
    }

    async fn events(
        &self,
        id: SessionId,
        from: u64,
        limit: Option<u64>,
    ) -> Result<Vec<EventRecord>> {
        self.read(move |conn| read::events(conn, id, from, limit))
            .await
    }

    async fn events_page(
        &self,
        id: SessionId,
        query: &EventPageQuery,
    ) -> Result<(Vec<EventRecord>, u64)> {
        let query = query.clone();
        self.read(move |conn| read::events_page(conn, id, &query))
            .await
    }

    async fn set_event_feedback(&self, id: SessionId, index: u64, feedback: Value) -> Result<bool> {
        self.write(move |conn| {
            write::set_event_feedback(conn, &id.to_string(), index, &feedback).map(Done::quiet)
        })
        .await
    }

    async fn sessions_in_status(&self, statuses: &[SessionStatus]) -> Result<Vec<SessionId>> {
        let statuses = statuses.to_vec();
        self.read(move |conn| read::sessions_in_status(conn, &statuses))
            .await
    }

    async fn count_active(&self, org: &OrgId) -> Result<u32> {
        let org = org.clone();
        self.read(move |conn| Ok(read::org_load(conn, &org)?.0))
            .await
    }

    async fn promote_queued(
        &self,
        org: &OrgId,
        slot_limit: u32,
        events: Vec<NewEvent>,
    ) -> Result<Vec<SessionRecord>> {
        let org = org.clone();
        self.write(move |conn| {
            let promoted = write::promote_queued(conn, &org, slot_limit, events)?;
            let (value, changes) = promoted.into_iter().map(publish).unzip();
            Ok(Done { value, changes })
        })
        .await
    }

    async fn orgs_with_queued(&self) -> Result<Vec<OrgId>> {
        self.read(read::orgs_with_queued).await
    }

    async fn next_idle_deadline(&self) -> Result<Option<Millis>> {
        self.read(read::next_idle_deadline).await
    }

    async fn due_idle_sessions(&self, now: Millis) -> Result<Vec<SessionRecord>> {
        self.read(move |conn| read::due_idle_sessions(conn, now))
            .await
    }

    fn subscribe(&self, id: SessionId) -> ChangeReceiver {
        self.inner.feed.subscribe(id)
    }
}
