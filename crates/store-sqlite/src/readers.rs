//! The reader threads: a few read-only connections, each on its own thread, taking
//! jobs from one shared queue, so a read waits only when every reader is busy. Like the
//! writer, a read is one hop to a thread and one back.
//!
//! In WAL mode a reader never waits for the writer, and each read starts from the last
//! committed state: a read issued after a write was acknowledged sees that write, since
//! the writer acknowledges only after its commit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread;

use agentd_store::{Result, StoreError};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::queue::Queue;
use crate::writer::{guarded, stopped};

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The handle to the reader threads. They end on [`Readers::stop`], or when the handle
/// is dropped, after the reads already queued.
pub(crate) struct Readers {
    jobs: Arc<Queue<ReadJob>>,
    /// One per thread; each resolves when its thread has closed its connection.
    ended: Mutex<Vec<oneshot::Receiver<()>>>,
}

impl Readers {
    /// Starts `count` threads, each opening its connection with `open`; fails if any fails.
    pub(crate) async fn start(
        count: usize,
        open: impl Fn() -> Result<Connection> + Send + Sync + 'static,
    ) -> Result<Readers> {
        let open = Arc::new(open);
        let readers = Readers {
            jobs: Arc::new(Queue::new()),
            ended: Mutex::new(Vec::with_capacity(count)),
        };
        for number in 0..count {
            let (opened, opening) = oneshot::channel();
            let (end, ended) = oneshot::channel();
            let (jobs, open) = (Arc::clone(&readers.jobs), Arc::clone(&open));
            thread::Builder::new()
                .name(format!("sqlite-reader-{number}"))
                .spawn(move || {
                    match open() {
                        Ok(conn) => {
                            let _ = opened.send(Ok(()));
                            serve(conn, &jobs);
                        }
                        Err(error) => {
                            let _ = opened.send(Err(error));
                        }
                    }
                    let _ = end.send(());
                })
                .map_err(|e| StoreError::Backend(format!("sqlite: cannot start a reader: {e}")))?;
            readers
                .ended
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ended);
            // On failure, dropping `readers` ends the threads already started.
            opening.await.map_err(|_| stopped())??;
        }
        Ok(readers)
    }

    /// Runs `read` on the next free reader connection.
    pub(crate) async fn run<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            // A caller that stopped waiting needs no answer.
            let _ = reply.send(guarded(|| read(conn)));
        });
        self.jobs.push(job).map_err(|_| stopped())?;
        // The job is dropped unanswered only if its thread is gone.
        answer.await.map_err(|_| stopped())?
    }

    /// Lets the threads finish the reads queued so far, then waits until each has
    /// closed its connection.
    pub(crate) async fn stop(&self) {
        self.jobs.close();
        let ended = std::mem::take(&mut *self.ended.lock().unwrap_or_else(|e| e.into_inner()));
        for ended in ended {
            // An error means that thread ended without saying so: ended all the same.
            let _ = ended.await;
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        // The threads finish what is queued and end; nobody waits for them.
        self.jobs.close();
    }
}

/// One reader thread's loop.
fn serve(conn: Connection, jobs: &Queue<ReadJob>) {
    let mut next = VecDeque::with_capacity(1);
    // One job at a time, so that the other readers take the rest.
    while jobs.take(1, &mut next) {
        while let Some(read) = next.pop_front() {
            read(&conn);
        }
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "closing a sqlite read connection failed");
    }
}
