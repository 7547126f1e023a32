//! The writer thread: the one connection every write goes through, and group commit.
//!
//! Async callers hand the thread a job, a closure over the write connection, and await
//! its answer on a oneshot channel: one hop to the thread and one back per call, however
//! many statements the job runs. The thread takes every job that is waiting (up to
//! [`MAX_BATCH`]), opens one `BEGIN IMMEDIATE` transaction for all of them, runs each
//! inside its own savepoint, and commits once. A job that fails (or refuses: a guard
//! that does not hold, a full quota) is rolled back to its savepoint alone; the others
//! stay in the batch. Only after the commit does the thread publish each job's changes,
//! in job order, and answer the callers. So nothing is seen or acknowledged before it is
//! committed, subscribers see a session's changes in commit order, and under load one
//! commit (one WAL append) serves many callers.
//!
//! Jobs run one after another on one connection, so a job's reads and checks see exactly
//! the state it writes over, including earlier jobs of the same batch: the idempotency
//! and quota checks of a create are atomic with its insert without any further locking.
//! Another process writing the same file (the key-management command) waits on SQLite's
//! lock, up to the busy timeout, instead of deadlocking.
//!
//! A job whose caller stopped waiting still runs: whether an unacknowledged write
//! happened is unknown to its caller either way, and the log stays consistent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread;

use agentd_store::{Change, LocalFeed, Result, StoreError};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::codec::DbResultExt;
use crate::queue::Queue;

/// Jobs one transaction takes at most: enough to amortise the commit under any load
/// this server sees, small enough that the first caller of a batch is not kept long.
const MAX_BATCH: usize = 256;

/// What a write job produced: its answer, and the changes to publish once committed.
pub(crate) struct Done<T> {
    pub value: T,
    pub changes: Vec<Change>,
}

impl<T> Done<T> {
    /// An answer with nothing to publish.
    pub(crate) fn quiet(value: T) -> Self {
        Done {
            value,
            changes: Vec::new(),
        }
    }
}

/// A job with its answer channel, as the thread sees it.
trait Job: Send {
    /// Runs the job's work on the write connection; true when it succeeded and its
    /// writes are to be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// After the batch: `committed` tells whether the batch's transaction committed.
    /// Publishes the job's changes and answers its caller.
    fn finish(self: Box<Self>, committed: &Result<(), String>, feed: &LocalFeed);
}

struct PendingJob<T, F> {
    work: Option<F>,
    outcome: Option<Result<Done<T>>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for PendingJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<Done<T>> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = match self.work.take() {
            Some(work) => guarded(|| work(conn)),
            None => Err(StoreError::Backend(
                "sqlite: a write job ran twice".to_owned(),
            )),
        };
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, committed: &Result<(), String>, feed: &LocalFeed) {
        let answer = match (committed, self.outcome) {
            // A refusal reads state that the failed commit may have lost too: every job
            // of a batch that did not commit gets the batch's error.
            (Err(error), _) => Err(StoreError::Backend(error.clone())),
            (Ok(()), Some(Ok(done))) => {
                for change in done.changes {
                    feed.publish(change);
                }
                Ok(done.value)
            }
            (Ok(()), Some(Err(error))) => Err(error),
            (Ok(()), None) => Err(StoreError::Backend(
                "sqlite: a write job did not run".to_owned(),
            )),
        };
        // A caller that stopped waiting needs no answer.
        let _ = self.reply.send(answer);
    }
}

/// The handle to the writer thread. The thread ends when [`Writer::stop`] is called or
/// the handle is dropped; either way it first runs the jobs already queued.
pub(crate) struct Writer {
    jobs: Arc<Queue<Box<dyn Job>>>,
    /// Resolves when the thread has closed its connection and ended.
    ended: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    /// Starts the thread, which opens its connection with `open` and reports how that went.
    pub(crate) async fn start(
        open: impl FnOnce() -> Result<Connection> + Send + 'static,
        feed: Arc<LocalFeed>,
    ) -> Result<Writer> {
        let jobs = Arc::new(Queue::new());
        let (opened, opening) = oneshot::channel();
        let (end, ended) = oneshot::channel();
        let queue = Arc::clone(&jobs);
        thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || {
                match open() {
                    Ok(conn) => {
                        let _ = opened.send(Ok(()));
                        serve(conn, &queue, &feed);
                    }
                    Err(error) => {
                        let _ = opened.send(Err(error));
                    }
                }
                let _ = end.send(());
            })
            .map_err(|e| StoreError::Backend(format!("sqlite: cannot start the writer: {e}")))?;
        let writer = Writer {
            jobs,
            ended: Mutex::new(Some(ended)),
        };
        // On failure, dropping `writer` lets the thread end.
        opening.await.map_err(|_| stopped())??;
        Ok(writer)
    }

    /// Runs `work` in the next batch; its answer comes once the batch committed.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Done<T>> + Send + 'static,
    {
        self.submit(work)?.await
    }

    /// Queues `work` now; the answer resolves once its batch committed (or failed).
    fn submit<T, F>(&self, work: F) -> Result<impl Future<Output = Result<T>> + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Done<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = PendingJob {
            work: Some(work),
            outcome: None,
            reply,
        };
        self.jobs.push(Box::new(job)).map_err(|_| stopped())?;
        // The sender is dropped unanswered only if the thread died.
        Ok(async move { answer.await.map_err(|_| stopped())? })
    }

    /// Lets the thread finish the jobs queued so far, then waits until it has closed
    /// the connection.
    pub(crate) async fn stop(&self) {
        self.jobs.close();
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(ended) = ended {
            // An error means the thread ended without saying so: ended all the same.
            let _ = ended.await;
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The thread finishes what is queued and ends; nobody waits for it.
        self.jobs.close();
    }
}

/// Runs a job's work so that a panic in it fails that job alone: the thread, and the
/// callers queued behind it, carry on.
pub(crate) fn guarded<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(StoreError::Backend(
            "sqlite: a store operation panicked".to_owned(),
        ))
    })
}

/// The answer of a call that reached no running thread.
pub(crate) fn stopped() -> StoreError {
    StoreError::Backend("sqlite: the store is closed".to_owned())
}

/// The thread's loop: batches of queued jobs until the queue is closed and empty.
fn serve(conn: Connection, jobs: &Queue<Box<dyn Job>>, feed: &LocalFeed) {
    let mut batch = VecDeque::with_capacity(MAX_BATCH);
    while jobs.take(MAX_BATCH, &mut batch) {
        while !batch.is_empty() {
            run_batch(&conn, &mut batch, feed);
        }
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "closing the sqlite write connection failed");
    }
}

/// One transaction over the front of `batch`. Normally that is every job; if the
/// transaction breaks under a job (SQLite rolled it back, say on a full disk), the jobs
/// run so far get the error and the rest stay queued for the next transaction.
fn run_batch(conn: &Connection, batch: &mut VecDeque<Box<dyn Job>>, feed: &LocalFeed) {
    if let Err(error) = execute(conn, "BEGIN IMMEDIATE") {
        // Typically another process held the write lock past the busy timeout: these
        // callers get the error, later ones try again.
        let failed = Err(message(error));
        for job in batch.drain(..) {
            job.finish(&failed, feed);
        }
        return;
    }
    let mut ran = Vec::with_capacity(batch.len());
    let mut broken = None;
    while let Some(mut job) = batch.pop_front() {
        if let Err(error) = execute(conn, "SAVEPOINT job") {
            ran.push(job);
            broken = Some(error);
            break;
        }
        let kept = job.run(conn);
        ran.push(job);
        let settled = if kept {
            execute(conn, "RELEASE job")
        } else {
            execute(conn, "ROLLBACK TO job").and_then(|()| execute(conn, "RELEASE job"))
        };
        if let Err(error) = settled {
            broken = Some(error);
            break;
        }
        if conn.is_autocommit() {
            broken = Some(StoreError::Backend(
                "sqlite: the write transaction was rolled back".to_owned(),
            ));
            break;
        }
    }
    let committed = match broken {
        Some(error) => Err(error),
        None => execute(conn, "COMMIT"),
    };
    if committed.is_err()
        && !conn.is_autocommit()
        && let Err(error) = execute(conn, "ROLLBACK")
    {
        tracing::error!(%error, "rolling back a failed sqlite write batch failed");
    }
    let committed = committed.map_err(message);
    for job in ran {
        job.finish(&committed, feed);
    }
}

/// The text of a backend error, to hand to every job of a failed batch.
fn message(error: StoreError) -> String {
    match error {
        StoreError::Backend(message) => message,
        other => other.to_string(),
    }
}

/// Runs one fixed statement, prepared once per connection.
fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .db()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use agentd_domain::{OrgId, SessionId, SessionStatus};
    use agentd_store::SessionRecord;
    use serde_json::json;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    /// A writer on a private in-memory database. Rows of `t` must name an existing
    /// `parent` by commit time (a deferred foreign key), so a job can make the batch's
    /// COMMIT itself fail.
    async fn writer(feed: Arc<LocalFeed>) -> Writer {
        let open = || {
            let conn = Connection::open_in_memory().db()?;
            conn.execute_batch(
                "PRAGMA foreign_keys = ON;
                 CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE t (
                     x      INTEGER NOT NULL,
                     parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
                 );",
            )
            .db()?;
            Ok(conn)
        };
        Writer::start(open, feed).await.unwrap()
    }

    fn insert(x: i64) -> impl FnOnce(&Connection) -> Result<Done<()>> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (x) VALUES (?)", [x]).db()?;
            Ok(Done::quiet(()))
        }
    }

    async fn rows(writer: &Writer) -> Vec<i64> {
        writer
            .run(|conn| {
                let mut statement = conn.prepare("SELECT x FROM t ORDER BY x").db()?;
                let rows = statement.query_map([], |row| row.get(0)).db()?;
                Ok(Done::quiet(rows.collect::<rusqlite::Result<_>>().db()?))
            })
            .await
            .unwrap()
    }

    /// Keeps the writer thread busy in a job of its own until `release` is sent, so
    /// that the jobs queued meanwhile form the next batch together.
    async fn hold(writer: &Writer) -> (std::sync::mpsc::Sender<()>, impl Future<Output = ()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let held = writer
            .submit(move |_| {
                let _ = started.send(());
                let _ = released.recv();
                Ok(Done::quiet(()))
            })
            .unwrap();
        tokio::time::timeout(WAIT, running).await.unwrap().unwrap();
        (release, async move { held.await.unwrap() })
    }

    fn session(id: SessionId, steps: u32) -> SessionRecord {
        SessionRecord {
            id,
            org_id: OrgId("org".to_owned()),
            status: SessionStatus::Running,
            created_at: 1,
            started_at: None,
            finished_at: None,
            last_activity_at: 1,
            request: json!({}),
            spec: json!({}),
            agent_name: None,
            group_id: None,
            parent_session_id: None,
            first_message: None,
            latest_answer: None,
            outcome: None,
            error: None,
            error_code: None,
            steps,
            usage: json!([]),
            subagent_session_ids: Vec::new(),
            pending_tool_calls: json!([]),
            event_count: 0,
            epoch: 0,
            force_answer: false,
            idle_deadline: None,
            loop_state: json!({}),
            shared: false,
            feedback: None,
        }
    }

    /// A job that inserts `x` and announces `steps` for session `id`.
    fn announce(
        x: i64,
        id: SessionId,
        steps: u32,
    ) -> impl FnOnce(&Connection) -> Result<Done<()>> + Send + 'static {
        move |conn| {
            insert(x)(conn)?;
            Ok(Done {
                value: (),
                changes: vec![Change::new(session(id, steps), Vec::new())],
            })
        }
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_alone() {
        let writer = writer(Arc::default()).await;
        let (release, held) = hold(&writer).await;
        let first = writer.submit(insert(1)).unwrap();
        let failing = writer
            .submit(|conn| {
                insert(2)(conn)?;
                Err::<Done<()>, _>(StoreError::Backend("refused".to_owned()))
            })
            .unwrap();
        let third = writer.submit(insert(3)).unwrap();
        release.send(()).unwrap();
        held.await;

        first.await.unwrap();
        assert!(matches!(failing.await, Err(StoreError::Backend(m)) if m == "refused"));
        third.await.unwrap();
        assert_eq!(rows(&writer).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_goes_on() {
        let writer = writer(Arc::default()).await;
        let (release, held) = hold(&writer).await;
        let first = writer.submit(insert(1)).unwrap();
        let panicking = writer
            .submit(|conn| -> Result<Done<()>> {
                insert(2)(conn)?;
                panic!("a bug in a job")
            })
            .unwrap();
        let third = writer.submit(insert(3)).unwrap();
        release.send(()).unwrap();
        held.await;

        first.await.unwrap();
        let error = panicking.await.unwrap_err();
        assert!(error.to_string().contains("panicked"), "{error}");
        third.await.unwrap();
        assert_eq!(rows(&writer).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_job_of_the_batch_and_publishes_nothing() {
        let feed = Arc::new(LocalFeed::default());
        let writer = writer(Arc::clone(&feed)).await;
        let id = SessionId::new();
        let mut receiver = feed.subscribe(id);

        let (release, held) = hold(&writer).await;
        let first = writer.submit(announce(1, id, 1)).unwrap();
        // Passes its own statement; the deferred key fails only at COMMIT.
        let orphan = writer
            .submit(|conn| {
                conn.execute("INSERT INTO t (x, parent) VALUES (2, 99)", [])
                    .db()?;
                Ok(Done::quiet(()))
            })
            .unwrap();
        release.send(()).unwrap();
        held.await;

        for answer in [first.await, orphan.await] {
            let error = answer.unwrap_err();
            assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
        }
        assert!(!receiver.has_changed().unwrap(), "nothing published");
        assert_eq!(rows(&writer).await, Vec::<i64>::new());

        // The writer goes on with the next batch.
        writer.run(announce(3, id, 2)).await.unwrap();
        assert_eq!(rows(&writer).await, [3]);
        let change = receiver.borrow_and_update().clone().unwrap();
        assert_eq!(change.session.steps, 2);
    }

    #[tokio::test]
    async fn changes_are_published_in_job_order_before_the_answer() {
        let feed = Arc::new(LocalFeed::default());
        let writer = writer(Arc::clone(&feed)).await;
        let id = SessionId::new();
        let mut receiver = feed.subscribe(id);

        let (release, held) = hold(&writer).await;
        let answers: Vec<_> = (1..=3)
            .map(|steps| {
                writer
                    .submit(announce(i64::from(steps), id, steps))
                    .unwrap()
            })
            .collect();
        release.send(()).unwrap();
        held.await;
        for answer in answers {
            answer.await.unwrap();
        }
        // One batch, published in order: the last change is the one that remains.
        let change = receiver.borrow_and_update().clone().unwrap();
        assert_eq!(change.session.steps, 3);

        writer.run(announce(4, id, 4)).await.unwrap();
        assert!(
            receiver.has_changed().unwrap(),
            "published before answering"
        );
        assert_eq!(
            receiver.borrow_and_update().as_ref().unwrap().session.steps,
            4
        );
    }

    #[tokio::test]
    async fn stop_finishes_queued_jobs_then_refuses_new_ones() {
        let writer = writer(Arc::default()).await;
        let (release, held) = hold(&writer).await;
        let queued = writer.submit(insert(1)).unwrap();
        release.send(()).unwrap();
        tokio::time::timeout(WAIT, writer.stop()).await.unwrap();
        held.await;
        queued.await.unwrap();
        let refused = writer.run(insert(2)).await.unwrap_err();
        assert!(refused.to_string().contains("closed"), "{refused}");
    }

    #[tokio::test]
    async fn dropping_the_handle_ends_the_thread_after_its_jobs() {
        let writer = writer(Arc::default()).await;
        let queued = writer.submit(insert(1)).unwrap();
        let ended = writer.ended.lock().unwrap().take().unwrap();
        drop(writer);
        queued.await.unwrap();
        tokio::time::timeout(WAIT, ended).await.unwrap().unwrap();
    }
}
