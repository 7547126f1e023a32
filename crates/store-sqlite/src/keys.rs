//! Organisations and API keys. Keys are stored by the digest of their secret; lookups on
//! the request path (`find_api_key`) are one indexed read.
//!
//! The writing functions run as write jobs: inside the writer's transaction, so their
//! read-then-write steps are atomic without a transaction of their own.

use agentd_domain::OrgId;
use agentd_domain::time::now_ms;
use agentd_store::{ApiKeyRecord, Result};
use rusqlite::{Connection, Row};

use crate::codec::{Column, DbResultExt, collect};

/// The columns [`key_from_row`] reads, in its order, joined from `api_keys k` and
/// `orgs o`. A macro so that queries are `&'static str` built with `concat!`.
macro_rules! key_columns {
    () => {
        "k.id, k.org_id, o.name AS org_name, k.prefix, k.created_at, k.revoked_at"
    };
}

fn key_from_row(row: &Row<'_>) -> Result<ApiKeyRecord> {
    let column = |index, name| Column::new(row, index, name);
    Ok(ApiKeyRecord {
        id: column(0, "id").string()?,
        org_id: OrgId(column(1, "org_id").string()?),
        org_name: column(2, "org_name").string()?,
        prefix: column(3, "prefix").string()?,
        created_at: column(4, "created_at").integer()?,
        revoked_at: column(5, "revoked_at").optional_integer()?,
    })
}

pub(crate) fn ensure_org(conn: &Connection, name: &str) -> Result<OrgId> {
    let mut find = conn
        .prepare_cached("SELECT id FROM orgs WHERE name = ?")
        .db()?;
    let existing = collect(find.query([name]).db()?, |row| {
        Column::new(row, 0, "id").string()
    })?;
    if let Some(id) = existing.into_iter().next() {
        return Ok(OrgId(id));
    }
    let id = uuid::Uuid::new_v4().to_string();
    conn.prepare_cached("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)")
        .db()?
        .execute((&id, name, now_ms()))
        .db()?;
    Ok(OrgId(id))
}

pub(crate) fn insert_api_key(
    conn: &Connection,
    record: &ApiKeyRecord,
    key_hash: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO api_keys (id, org_id, prefix, key_hash, created_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .db()?
    .execute((
        &record.id,
        &record.org_id.0,
        &record.prefix,
        key_hash,
        record.created_at,
        record.revoked_at,
    ))
    .db()?;
    Ok(())
}

pub(crate) fn find_api_key(conn: &Connection, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k JOIN orgs o ON o.id = k.org_id \
             WHERE k.key_hash = ? AND k.revoked_at IS NULL"
        ))
        .db()?;
    let mut rows = statement.query([key_hash]).db()?;
    rows.next().db()?.map(key_from_row).transpose()
}

pub(crate) fn list_api_keys(
    conn: &Connection,
    org_name: Option<&str>,
) -> Result<Vec<ApiKeyRecord>> {
    match org_name {
        Some(name) => {
            let mut statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys k JOIN orgs o ON o.id = k.org_id \
                     WHERE o.name = ? ORDER BY k.created_at, k.rowid"
                ))
                .db()?;
            collect(statement.query([name]).db()?, key_from_row)
        }
        None => {
            let mut statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys k JOIN orgs o ON o.id = k.org_id \
                     ORDER BY k.created_at, k.rowid"
                ))
                .db()?;
            collect(statement.query([]).db()?, key_from_row)
        }
    }
}

/// Revokes the unrevoked key with this id or, failing that, the one unrevoked key with
/// this prefix. A prefix shared by several unrevoked keys revokes nothing.
pub(crate) fn revoke_api_key(conn: &Connection, id_or_prefix: &str) -> Result<bool> {
    let now = now_ms();
    let by_id = conn
        .prepare_cached("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .db()?
        .execute((now, id_or_prefix))
        .db()?;
    if by_id > 0 {
        return Ok(true);
    }
    let mut find = conn
        .prepare_cached("SELECT id FROM api_keys WHERE prefix = ? AND revoked_at IS NULL")
        .db()?;
    let matches = collect(find.query([id_or_prefix]).db()?, |row| {
        Column::new(row, 0, "id").string()
    })?;
    let [id] = matches.as_slice() else {
        return Ok(false);
    };
    conn.prepare_cached("UPDATE api_keys SET revoked_at = ? WHERE id = ?")
        .db()?
        .execute((now, id))
        .db()?;
    Ok(true)
}
