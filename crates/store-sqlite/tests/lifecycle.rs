//! The store's threads: closing refuses later calls, and dropping the last handle
//! without closing ends every connection thread, without hanging the caller.

use std::time::{Duration, Instant};

use agentd_domain::SessionId;
use agentd_store::Store;
use agentd_store_sqlite::SqliteStore;

const WAIT: Duration = Duration::from_secs(10);

/// Threads of this process whose name says they serve a SQLite connection.
fn connection_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("sqlite-"))
        .count()
}

#[tokio::test]
async fn calls_after_close_fail() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        SqliteStore::open(&dir.path().join("agentd.db"))
            .await
            .unwrap(),
        SqliteStore::open_in_memory().await.unwrap(),
    ] {
        let org = store.ensure_org("closing").await.unwrap();
        store.close().await;
        let write = store.ensure_org("after").await.unwrap_err();
        assert!(write.to_string().contains("closed"), "{write}");
        let read = store.count_active(&org).await.unwrap_err();
        assert!(read.to_string().contains("closed"), "{read}");
        // Closing twice is harmless.
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_ends_every_connection_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("agentd.db"))
        .await
        .unwrap();
    assert!(connection_threads() >= 2, "a writer and readers run");
    let clone = store.clone();
    let org = clone.ensure_org("dropped").await.unwrap();
    assert_eq!(store.count_active(&org).await.unwrap(), 0);
    assert_eq!(store.get_session(SessionId::new()).await.unwrap(), None);
    drop(store);
    drop(clone);

    // Other tests of this file close their stores, so every such thread ends.
    let deadline = Instant::now() + WAIT;
    while connection_threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "connection threads still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
