//! Organisations and API keys. Keys are stored by the digest of their secret; lookups on
//! the request path (`find_api_key`) are one indexed read.

use agentd_domain::OrgId;
use agentd_domain::time::{Millis, now_ms};
use agentd_store::{ApiKeyRecord, Result, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqliteConnection};

use crate::codec::DbResultExt;

fn key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord> {
    let read = |e: sqlx::Error| StoreError::Backend(format!("sqlite: unreadable api key: {e}"));
    Ok(ApiKeyRecord {
        id: row.try_get("id").map_err(read)?,
        org_id: OrgId(row.try_get("org_id").map_err(read)?),
        org_name: row.try_get("org_name").map_err(read)?,
        prefix: row.try_get("prefix").map_err(read)?,
        created_at: row.try_get("created_at").map_err(read)?,
        revoked_at: row
            .try_get::<Option<Millis>, _>("revoked_at")
            .map_err(read)?,
    })
}

pub(crate) async fn ensure_org(conn: &mut SqliteConnection, name: &str) -> Result<OrgId> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.db()?;
    let existing: Option<String> = sqlx::query_scalar("SELECT id FROM orgs WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
    let id = match existing {
        Some(id) => id,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)")
                .bind(&id)
                .bind(name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .db()?;
            id
        }
    };
    tx.commit().await.db()?;
    Ok(OrgId(id))
}

pub(crate) async fn insert_api_key(
    conn: &mut SqliteConnection,
    record: &ApiKeyRecord,
    key_hash: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, prefix, key_hash, created_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&record.id)
    .bind(&record.org_id.0)
    .bind(&record.prefix)
    .bind(key_hash)
    .bind(record.created_at)
    .bind(record.revoked_at)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

pub(crate) async fn find_api_key(
    conn: &mut SqliteConnection,
    key_hash: &str,
) -> Result<Option<ApiKeyRecord>> {
    let row = sqlx::query(
        "SELECT k.id, k.org_id, o.name AS org_name, k.prefix, k.created_at, k.revoked_at \
         FROM api_keys k JOIN orgs o ON o.id = k.org_id \
         WHERE k.key_hash = ? AND k.revoked_at IS NULL",
    )
    .bind(key_hash)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    row.as_ref().map(key_from_row).transpose()
}

pub(crate) async fn list_api_keys(
    conn: &mut SqliteConnection,
    org_name: Option<&str>,
) -> Result<Vec<ApiKeyRecord>> {
    let rows =
        match org_name {
            Some(name) => sqlx::query(
                "SELECT k.id, k.org_id, o.name AS org_name, k.prefix, k.created_at, k.revoked_at \
                 FROM api_keys k JOIN orgs o ON o.id = k.org_id \
                 WHERE o.name = ? ORDER BY k.created_at, k.rowid",
            )
            .bind(name)
            .fetch_all(&mut *conn)
            .await,
            None => sqlx::query(
                "SELECT k.id, k.org_id, o.name AS org_name, k.prefix, k.created_at, k.revoked_at \
                 FROM api_keys k JOIN orgs o ON o.id = k.org_id \
                 ORDER BY k.created_at, k.rowid",
            )
            .fetch_all(&mut *conn)
            .await,
        }
        .db()?;
    rows.iter().map(key_from_row).collect()
}

/// Revokes the unrevoked key with this id or, failing that, the one unrevoked key with
/// this prefix. A prefix shared by several unrevoked keys revokes nothing.
pub(crate) async fn revoke_api_key(
    conn: &mut SqliteConnection,
    id_or_prefix: &str,
) -> Result<bool> {
    let now = now_ms();
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.db()?;
    let by_id =
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id_or_prefix)
            .execute(&mut *tx)
            .await
            .db()?;
    let revoked = if by_id.rows_affected() > 0 {
        true
    } else {
        let matches: Vec<String> =
            sqlx::query_scalar("SELECT id FROM api_keys WHERE prefix = ? AND revoked_at IS NULL")
                .bind(id_or_prefix)
                .fetch_all(&mut *tx)
                .await
                .db()?;
        match matches.as_slice() {
            [id] => {
                sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                true
            }
            _ => false,
        }
    };
    tx.commit().await.db()?;
    Ok(revoked)
}
