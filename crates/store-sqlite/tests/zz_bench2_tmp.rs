use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw() {
    let dir = tempfile::tempdir().unwrap();
    let o = SqliteConnectOptions::new()
        .filename(dir.path().join("a.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(o)
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let n = 5000;
    let s = std::time::Instant::now();
    for _ in 0..n {
        let _: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    eprintln!("select1 pool: {:?}/op", s.elapsed() / n);
    let mut conn = pool.acquire().await.unwrap();
    let s = std::time::Instant::now();
    for _ in 0..n {
        let _: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    }
    eprintln!("select1 conn: {:?}/op", s.elapsed() / n);
    let s = std::time::Instant::now();
    for i in 0..n {
        sqlx::query("INSERT INTO t (b) VALUES (?)")
            .bind(format!("x{i}"))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    eprintln!("insert autocommit: {:?}/op", s.elapsed() / n);
    let s = std::time::Instant::now();
    for i in 0..n {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t (b) VALUES (?)")
            .bind(format!("x{i}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    eprintln!("tx insert: {:?}/op", s.elapsed() / n);
}
