//! Schema migrations: an ordered list of SQL scripts embedded in the binary, each applied
//! once, in its own transaction, and recorded in `schema_migrations`. Opening a database
//! made by an older build applies the scripts it lacks; opening one made by a newer build
//! is refused rather than guessed at.

use agentd_domain::time::now_ms;
use agentd_store::{Result, StoreError};
use sqlx::{Connection, SqliteConnection};

use crate::codec::DbResultExt;

/// One schema version: applied when the database's version is below `version`.
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// Every migration of this backend, oldest first. Append only: a released script never
/// changes, a change of schema is a new script.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("../migrations/0001_init.sql"),
}];

/// Brings the database up to the newest version in `migrations`; returns the versions applied.
pub(crate) async fn migrate(
    conn: &mut SqliteConnection,
    migrations: &[Migration],
) -> Result<Vec<i64>> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .execute(&mut *conn)
    .await
    .db()?;

    let mut applied = Vec::new();
    for migration in migrations {
        // Read the version inside the write transaction, so that two processes opening
        // one file at once cannot both apply a script.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.db()?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await
                .db()?;
        let newest_known = migrations.last().map_or(0, |m| m.version);
        if current > newest_known {
            return Err(StoreError::Backend(format!(
                "sqlite: database schema version {current} is newer than this build supports ({newest_known})"
            )));
        }
        if migration.version <= current {
            tx.rollback().await.db()?;
            continue;
        }
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "sqlite: migration {} failed: {e}",
                    migration.version
                ))
            })?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(migration.version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        tracing::info!(
            version = migration.version,
            "applied sqlite schema migration"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    async fn memory() -> SqliteConnection {
        SqliteConnection::connect("sqlite::memory:").await.unwrap()
    }

    async fn tables(conn: &mut SqliteConnection) -> Vec<String> {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn applies_each_script_once_and_upgrades_older_databases() {
        let mut conn = memory().await;
        let first = [Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER);",
        }];
        assert_eq!(migrate(&mut conn, &first).await.unwrap(), vec![1]);
        assert_eq!(migrate(&mut conn, &first).await.unwrap(), Vec::<i64>::new());

        let both = [
            Migration {
                version: 1,
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                version: 2,
                sql: "CREATE TABLE b (y INTEGER); INSERT INTO b VALUES (1);",
            },
        ];
        assert_eq!(migrate(&mut conn, &both).await.unwrap(), vec![2]);
        assert_eq!(tables(&mut conn).await, ["a", "b", "schema_migrations"]);
    }

    #[tokio::test]
    async fn a_failing_script_leaves_no_trace() {
        let mut conn = memory().await;
        let broken = [Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER); THIS IS NOT SQL;",
        }];
        assert!(migrate(&mut conn, &broken).await.is_err());
        assert_eq!(tables(&mut conn).await, ["schema_migrations"]);
    }

    #[tokio::test]
    async fn refuses_a_database_from_a_newer_build() {
        let mut conn = memory().await;
        let newer = [
            Migration {
                version: 1,
                sql: "SELECT 1;",
            },
            Migration {
                version: 2,
                sql: "SELECT 1;",
            },
        ];
        migrate(&mut conn, &newer).await.unwrap();
        let older = [Migration {
            version: 1,
            sql: "SELECT 1;",
        }];
        let error = migrate(&mut conn, &older).await.unwrap_err();
        assert!(error.to_string().contains("newer"), "{error}");
    }

    #[tokio::test]
    async fn the_embedded_schema_applies() {
        let mut conn = memory().await;
        assert_eq!(migrate(&mut conn, MIGRATIONS).await.unwrap(), vec![1]);
        assert!(tables(&mut conn).await.contains(&"sessions".to_owned()));
    }
}
