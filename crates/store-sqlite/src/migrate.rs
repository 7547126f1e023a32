//! Schema migrations: an ordered list of SQL scripts embedded in the binary, each applied
//! once, in its own transaction, and recorded in `schema_migrations`. Opening a database
//! made by an older build applies the scripts it lacks; opening one made by a newer build
//! is refused rather than guessed at.

use agentd_domain::time::now_ms;
use agentd_store::{Result, StoreError};
use rusqlite::{Connection, TransactionBehavior};

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
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .db()?;

    let mut applied = Vec::new();
    for migration in migrations {
        // Read the version inside the write transaction, so that two processes opening
        // one file at once cannot both apply a script. Dropping the transaction without
        // committing rolls it back.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |row| row.get(0),
            )
            .db()?;
        let newest_known = migrations.last().map_or(0, |m| m.version);
        if current > newest_known {
            return Err(StoreError::Backend(format!(
                "sqlite: database schema version {current} is newer than this build supports ({newest_known})"
            )));
        }
        if migration.version <= current {
            continue;
        }
        tx.execute_batch(migration.sql).map_err(|e| {
            StoreError::Backend(format!(
                "sqlite: migration {} failed: {e}",
                migration.version
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            (migration.version, now_ms()),
        )
        .db()?;
        tx.commit().db()?;
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
    use super::*;

    fn memory() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut statement = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn applies_each_script_once_and_upgrades_older_databases() {
        let mut conn = memory();
        let first = [Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER);",
        }];
        assert_eq!(migrate(&mut conn, &first).unwrap(), vec![1]);
        assert_eq!(migrate(&mut conn, &first).unwrap(), Vec::<i64>::new());

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
        assert_eq!(migrate(&mut conn, &both).unwrap(), vec![2]);
        assert_eq!(tables(&conn), ["a", "b", "schema_migrations"]);
    }

    #[test]
    fn a_failing_script_leaves_no_trace() {
        let mut conn = memory();
        let broken = [Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER); THIS IS NOT SQL;",
        }];
        assert!(migrate(&mut conn, &broken).is_err());
        assert_eq!(tables(&conn), ["schema_migrations"]);
        assert!(
            conn.is_autocommit(),
            "the failed transaction was rolled back"
        );
    }

    #[test]
    fn refuses_a_database_from_a_newer_build() {
        let mut conn = memory();
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
        migrate(&mut conn, &newer).unwrap();
        let older = [Migration {
            version: 1,
            sql: "SELECT 1;",
        }];
        let error = migrate(&mut conn, &older).unwrap_err();
        assert!(error.to_string().contains("newer"), "{error}");
    }

    #[test]
    fn the_embedded_schema_applies() {
        let mut conn = memory();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), vec![1]);
        assert!(tables(&conn).contains(&"sessions".to_owned()));
    }
}
