//! The store's connections: a fixed set of SQLite connections, each behind an async
//! mutex. The store keeps two sets: one writer (SQLite has one writer; a single
//! connection also serialises write transactions in arrival order) and a few readers.
//!
//! Why not sqlx's `Pool`: every connection a `Pool` takes back is pinged first, and with
//! SQLite a ping is a round trip to the connection's thread. Measured on the store's
//! queries, that release ping made a one-statement read ten times as expensive in CPU.
//! Connections here are opened once, never expire, and go back by dropping a guard.
//!
//! A future dropped in the middle of a transaction leaves no trace: sqlx queues the
//! rollback on the connection, and the connection runs it before the next statement of
//! whoever locks it next.

use std::sync::atomic::{AtomicUsize, Ordering};

use agentd_store::{Result, StoreError};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

/// A connection in use; dropping it hands the connection back.
pub(crate) type Conn<'a> = MappedMutexGuard<'a, SqliteConnection>;

pub(crate) struct Connections {
    /// `None` once closed.
    slots: Box<[Mutex<Option<SqliteConnection>>]>,
    /// Where the next caller starts looking for a free connection, so that waiting
    /// callers spread over the set instead of queueing on the first connection.
    next: AtomicUsize,
}

impl Connections {
    pub(crate) fn new(connections: Vec<SqliteConnection>) -> Self {
        Connections {
            slots: connections
                .into_iter()
                .map(|c| Mutex::new(Some(c)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A free connection if there is one, else the next to become free in turn.
    pub(crate) async fn get(&self) -> Result<Conn<'_>> {
        let count = self.slots.len();
        if count == 0 {
            return Err(closed());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let free = (0..count).find_map(|i| self.slots[(start + i) % count].try_lock().ok());
        let guard = match free {
            Some(guard) => guard,
            None => self.slots[start].lock().await,
        };
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| closed())
    }

    /// Waits for every connection to be handed back, then closes it.
    pub(crate) async fn close(&self) {
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.take()
                && let Err(error) = conn.close().await
            {
                tracing::warn!(%error, "closing a sqlite connection failed");
            }
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("sqlite: the store is closed".to_owned())
}
