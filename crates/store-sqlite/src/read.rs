//! The read side: queries the store runs on its reader connections, which never write.
//! In WAL mode each read sees the last committed state without waiting for the writer.
//! The two lookups the write side also needs ([`fetch_session`], [`org_load`]) take any
//! executor, so a write transaction runs the same query on its own connection.

use agentd_domain::time::Millis;
use agentd_domain::{OrgId, SessionId, SessionStatus};
use agentd_store::{EventPageQuery, EventRecord, Result, SessionFilter, SessionRecord};
use sqlx::{Connection, Executor, QueryBuilder, Sqlite, SqliteConnection};

use crate::codec::{
    DbResultExt, event_from_row, parse_session_id, session_columns, session_from_row,
};

/// `LIMIT`/`OFFSET` of a 1-based page; page 0 reads as page 1.
fn page_window(page: u32, size: u32) -> (i64, i64) {
    let offset = u64::from(page.saturating_sub(1)) * u64::from(size);
    (i64::from(size), i64::try_from(offset).unwrap_or(i64::MAX))
}

fn to_u64(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// One session by id, on any connection: a reader, or the writer inside a transaction.
pub(crate) async fn fetch_session<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    id: &str,
) -> Result<Option<SessionRecord>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
    .db()?;
    row.as_ref().map(session_from_row).transpose()
}

/// A counter of `org_load`; an organisation without a row has none.
pub(crate) fn load_count(count: Option<i64>) -> u32 {
    u32::try_from(count.unwrap_or(0).max(0)).unwrap_or(u32::MAX)
}

/// Slot-holding and queued sessions of an organisation, as the triggers keep them.
pub(crate) async fn org_load<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    org: &OrgId,
) -> Result<(u32, u32)> {
    let load: Option<(i64, i64)> =
        sqlx::query_as("SELECT active, queued FROM org_load WHERE org_id = ?")
            .bind(&org.0)
            .fetch_optional(executor)
            .await
            .db()?;
    let (active, queued) = load.unzip();
    Ok((load_count(active), load_count(queued)))
}

/// The `WHERE` clause of a session list, binding every given filter.
fn push_list_filter(query: &mut QueryBuilder<Sqlite>, org: &OrgId, filter: &SessionFilter) {
    query.push(" WHERE org_id = ").push_bind(org.0.clone());
    if !filter.statuses.is_empty() {
        query.push(" AND status IN (");
        let mut list = query.separated(", ");
        for status in &filter.statuses {
            list.push_bind(status.as_str());
        }
        query.push(")");
    }
    if !filter.agents.is_empty() {
        query.push(" AND agent_name IN (");
        let mut list = query.separated(", ");
        for agent in &filter.agents {
            list.push_bind(agent.clone());
        }
        query.push(")");
    }
    if let Some(group) = &filter.group_id {
        query.push(" AND group_id = ").push_bind(group.clone());
    }
    if let Some(parent) = filter.parent_session_id {
        query
            .push(" AND parent_session_id = ")
            .push_bind(parent.to_string());
    }
    if let Some(search) = &filter.search {
        // Both texts are stored lowercased, so a lowercased needle makes `instr` a
        // case-insensitive substring test beyond ASCII, with no LIKE escaping.
        let needle = search.to_lowercase();
        query
            .push(" AND (instr(search_text, ")
            .push_bind(needle.clone())
            .push(") > 0 OR instr(search_answer, ")
            .push_bind(needle)
            .push(") > 0)");
    }
    let bounds: [(&str, Option<Millis>); 4] = [
        (" AND created_at < ", filter.created_before),
        (" AND created_at > ", filter.created_after),
        (" AND finished_at < ", filter.finished_before),
        (" AND finished_at > ", filter.finished_after),
    ];
    for (clause, bound) in bounds {
        if let Some(bound) = bound {
            query.push(clause).push_bind(bound);
        }
    }
}

pub(crate) async fn list_sessions(
    conn: &mut SqliteConnection,
    org: &OrgId,
    filter: &SessionFilter,
) -> Result<(Vec<SessionRecord>, u64)> {
    // Page and total from one snapshot, so the total always covers the page.
    let mut tx = conn.begin().await.db()?;

    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM sessions");
    push_list_filter(&mut count, org, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await.db()?;

    let (limit, offset) = page_window(filter.page, filter.size);
    let mut sessions = Vec::new();
    if total > offset && limit > 0 {
        let mut page =
            QueryBuilder::<Sqlite>::new(concat!("SELECT ", session_columns!(), " FROM sessions"));
        push_list_filter(&mut page, org, filter);
        page.push(if filter.descending {
            " ORDER BY created_at DESC, seq DESC"
        } else {
            " ORDER BY created_at ASC, seq ASC"
        });
        page.push(" LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let rows = page.build().fetch_all(&mut *tx).await.db()?;
        sessions = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>>>()?;
    }
    tx.commit().await.db()?;
    Ok((sessions, to_u64(total)))
}

pub(crate) async fn events(
    conn: &mut SqliteConnection,
    id: SessionId,
    from: u64,
    limit: Option<u64>,
) -> Result<Vec<EventRecord>> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    // A negative LIMIT means no limit in SQLite.
    let limit = limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = sqlx::query(
        "SELECT idx, event_type, data, timestamp FROM events \
         WHERE session_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
    )
    .bind(id.to_string())
    .bind(from)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    rows.iter().map(event_from_row).collect()
}

pub(crate) async fn events_page(
    conn: &mut SqliteConnection,
    id: SessionId,
    query: &EventPageQuery,
) -> Result<(Vec<EventRecord>, u64)> {
    let id = id.to_string();
    let event_type = query.event_type.as_deref();
    let mut tx = conn.begin().await.db()?;
    let total: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE session_id = ?1 AND (?2 IS NULL OR event_type = ?2)",
    )
    .bind(&id)
    .bind(event_type)
    .fetch_one(&mut *tx)
    .await
    .db()?;
    let (limit, offset) = page_window(query.page, query.size);
    let mut events = Vec::new();
    if total > offset && limit > 0 {
        let sql = if query.descending {
            "SELECT idx, event_type, data, timestamp FROM events \
             WHERE session_id = ?1 AND (?2 IS NULL OR event_type = ?2) \
             ORDER BY idx DESC LIMIT ?3 OFFSET ?4"
        } else {
            "SELECT idx, event_type, data, timestamp FROM events \
             WHERE session_id = ?1 AND (?2 IS NULL OR event_type = ?2) \
             ORDER BY idx ASC LIMIT ?3 OFFSET ?4"
        };
        let rows = sqlx::query(sql)
            .bind(&id)
            .bind(event_type)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *tx)
            .await
            .db()?;
        events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
    }
    tx.commit().await.db()?;
    Ok((events, to_u64(total)))
}

pub(crate) async fn sessions_in_status(
    conn: &mut SqliteConnection,
    statuses: &[SessionStatus],
) -> Result<Vec<SessionId>> {
    if statuses.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Sqlite>::new("SELECT id FROM sessions WHERE status IN (");
    let mut list = query.separated(", ");
    for status in statuses {
        list.push_bind(status.as_str());
    }
    query.push(") ORDER BY seq");
    let ids: Vec<String> = query
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .db()?;
    ids.iter().map(|id| parse_session_id("id", id)).collect()
}

pub(crate) async fn orgs_with_queued(conn: &mut SqliteConnection) -> Result<Vec<OrgId>> {
    let orgs: Vec<String> =
        sqlx::query_scalar("SELECT org_id FROM org_load WHERE queued > 0 ORDER BY org_id")
            .fetch_all(&mut *conn)
            .await
            .db()?;
    Ok(orgs.into_iter().map(OrgId).collect())
}

pub(crate) async fn next_idle_deadline(conn: &mut SqliteConnection) -> Result<Option<Millis>> {
    sqlx::query_scalar("SELECT MIN(idle_deadline) FROM sessions WHERE status = 'idle'")
        .fetch_one(&mut *conn)
        .await
        .db()
}

pub(crate) async fn due_idle_sessions(
    conn: &mut SqliteConnection,
    now: Millis,
) -> Result<Vec<SessionRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE status = 'idle' AND idle_deadline <= ? ORDER BY idle_deadline, seq"
    ))
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    rows.iter().map(session_from_row).collect()
}
