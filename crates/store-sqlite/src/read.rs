//! The read side: queries the store runs on its reader connections, which never write.
//! In WAL mode each read sees the last committed state without waiting for the writer.
//! The two lookups the write side also needs ([`fetch_session`], [`org_load`]) run on
//! whatever connection they are given, so a write job runs the same query inside its
//! transaction.

use agentd_domain::time::Millis;
use agentd_domain::{OrgId, SessionId, SessionStatus};
use agentd_store::{EventPageQuery, EventRecord, Result, SessionFilter, SessionRecord};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use crate::codec::{
    Column, DbResultExt, collect, event_from_row, parse_session_id, session_columns,
    session_from_row,
};

/// `LIMIT`/`OFFSET` of a 1-based page; page 0 reads as page 1.
fn page_window(page: u32, size: u32) -> (i64, i64) {
    let offset = u64::from(page.saturating_sub(1)) * u64::from(size);
    (i64::from(size), i64::try_from(offset).unwrap_or(i64::MAX))
}

fn to_u64(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// SQL text built piece by piece with its parameters, for queries whose shape depends
/// on the filters given. Such statements are prepared each time rather than cached:
/// their variants are many and would push the fixed queries out of the cache.
#[derive(Default)]
struct DynamicSql {
    text: String,
    params: Vec<SqlValue>,
}

impl DynamicSql {
    fn new(text: &str) -> Self {
        DynamicSql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.text.push('?');
        self.params.push(value.into());
        self
    }

    /// `?, ?, …` binding each value.
    fn bind_list<V: Into<SqlValue>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self
    }
}

/// One session by id, on any connection: a reader, or the writer inside a transaction.
pub(crate) fn fetch_session(conn: &Connection, id: &str) -> Result<Option<SessionRecord>> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = ?"
        ))
        .db()?;
    let mut rows = statement.query([id]).db()?;
    rows.next().db()?.map(session_from_row).transpose()
}

/// A counter of `org_load`; an organisation without a row has none.
pub(crate) fn load_count(count: Option<i64>) -> u32 {
    u32::try_from(count.unwrap_or(0).max(0)).unwrap_or(u32::MAX)
}

/// Slot-holding and queued sessions of an organisation, as the triggers keep them.
pub(crate) fn org_load(conn: &Connection, org: &OrgId) -> Result<(u32, u32)> {
    let mut statement = conn
        .prepare_cached("SELECT active, queued FROM org_load WHERE org_id = ?")
        .db()?;
    let mut rows = statement.query([&org.0]).db()?;
    let Some(row) = rows.next().db()? else {
        return Ok((0, 0));
    };
    let active = Column::new(row, 0, "active").integer()?;
    let queued = Column::new(row, 1, "queued").integer()?;
    Ok((load_count(Some(active)), load_count(Some(queued))))
}

/// The `WHERE` clause of a session list, binding every given filter.
fn push_list_filter(query: &mut DynamicSql, org: &OrgId, filter: &SessionFilter) {
    query.push(" WHERE org_id = ").bind(org.0.clone());
    if !filter.statuses.is_empty() {
        query
            .push(" AND status IN (")
            .bind_list(filter.statuses.iter().map(|s| s.as_str().to_owned()))
            .push(")");
    }
    if !filter.agents.is_empty() {
        query
            .push(" AND agent_name IN (")
            .bind_list(filter.agents.iter().cloned())
            .push(")");
    }
    if let Some(group) = &filter.group_id {
        query.push(" AND group_id = ").bind(group.clone());
    }
    if let Some(parent) = filter.parent_session_id {
        query
            .push(" AND parent_session_id = ")
            .bind(parent.to_string());
    }
    if let Some(search) = &filter.search {
        // Both texts are stored lowercased, so a lowercased needle makes `instr` a
        // case-insensitive substring test beyond ASCII, with no LIKE escaping.
        let needle = search.to_lowercase();
        query
            .push(" AND (instr(search_text, ")
            .bind(needle.clone())
            .push(") > 0 OR instr(search_answer, ")
            .bind(needle)
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
            query.push(clause).bind(bound);
        }
    }
}

/// Runs `read` on one snapshot of the database. A savepoint rather than `BEGIN`: on a
/// reader it opens a read transaction, and inside the writer's transaction (the in-memory
/// store reads there) it nests instead of failing.
fn in_snapshot<T>(conn: &Connection, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.prepare_cached("SAVEPOINT snapshot")
        .and_then(|mut begin| begin.execute([]))
        .db()?;
    let result = read(conn);
    // Nothing was written, so releasing is right whether the read succeeded or not.
    let released = conn
        .prepare_cached("RELEASE snapshot")
        .and_then(|mut release| release.execute([]))
        .db();
    let value = result?;
    released?;
    Ok(value)
}

pub(crate) fn list_sessions(
    conn: &Connection,
    org: &OrgId,
    filter: &SessionFilter,
) -> Result<(Vec<SessionRecord>, u64)> {
    // Page and total from one snapshot, so the total always covers the page.
    in_snapshot(conn, |conn| {
        let mut count = DynamicSql::new("SELECT COUNT(*) FROM sessions");
        push_list_filter(&mut count, org, filter);
        let total: i64 = conn
            .query_row(&count.text, params_from_iter(&count.params), |row| {
                row.get(0)
            })
            .db()?;

        let (limit, offset) = page_window(filter.page, filter.size);
        let mut sessions = Vec::new();
        if total > offset && limit > 0 {
            let mut page =
                DynamicSql::new(concat!("SELECT ", session_columns!(), " FROM sessions"));
            push_list_filter(&mut page, org, filter);
            page.push(if filter.descending {
                " ORDER BY created_at DESC, seq DESC"
            } else {
                " ORDER BY created_at ASC, seq ASC"
            });
            page.push(" LIMIT ")
                .bind(limit)
                .push(" OFFSET ")
                .bind(offset);
            let mut statement = conn.prepare(&page.text).db()?;
            let rows = statement.query(params_from_iter(&page.params)).db()?;
            sessions = collect(rows, session_from_row)?;
        }
        Ok((sessions, to_u64(total)))
    })
}

pub(crate) fn events(
    conn: &Connection,
    id: SessionId,
    from: u64,
    limit: Option<u64>,
) -> Result<Vec<EventRecord>> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    // A negative LIMIT means no limit in SQLite.
    let limit = limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let mut statement = conn
        .prepare_cached(
            "SELECT idx, event_type, data, timestamp FROM events \
             WHERE session_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
        )
        .db()?;
    let rows = statement.query((id.to_string(), from, limit)).db()?;
    collect(rows, event_from_row)
}

pub(crate) fn events_page(
    conn: &Connection,
    id: SessionId,
    query: &EventPageQuery,
) -> Result<(Vec<EventRecord>, u64)> {
    let id = id.to_string();
    let event_type = query.event_type.as_deref();
    in_snapshot(conn, |conn| {
        let total: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM events \
                 WHERE session_id = ?1 AND (?2 IS NULL OR event_type = ?2)",
            )
            .db()?
            .query_row((&id, event_type), |row| row.get(0))
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
            let mut statement = conn.prepare_cached(sql).db()?;
            let rows = statement.query((&id, event_type, limit, offset)).db()?;
            events = collect(rows, event_from_row)?;
        }
        Ok((events, to_u64(total)))
    })
}

pub(crate) fn sessions_in_status(
    conn: &Connection,
    statuses: &[SessionStatus],
) -> Result<Vec<SessionId>> {
    if statuses.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = DynamicSql::new("SELECT id FROM sessions WHERE status IN (");
    query
        .bind_list(statuses.iter().map(|s| s.as_str().to_owned()))
        .push(") ORDER BY seq");
    let mut statement = conn.prepare(&query.text).db()?;
    let rows = statement.query(params_from_iter(&query.params)).db()?;
    collect(rows, |row| {
        parse_session_id("id", Column::new(row, 0, "id").text()?)
    })
}

pub(crate) fn orgs_with_queued(conn: &Connection) -> Result<Vec<OrgId>> {
    let mut statement = conn
        .prepare_cached("SELECT org_id FROM org_load WHERE queued > 0 ORDER BY org_id")
        .db()?;
    let rows = statement.query([]).db()?;
    collect(rows, |row| {
        Ok(OrgId(Column::new(row, 0, "org_id").string()?))
    })
}

pub(crate) fn next_idle_deadline(conn: &Connection) -> Result<Option<Millis>> {
    let mut statement = conn
        .prepare_cached("SELECT MIN(idle_deadline) FROM sessions WHERE status = 'idle'")
        .db()?;
    let mut rows = statement.query([]).db()?;
    match rows.next().db()? {
        Some(row) => Column::new(row, 0, "idle_deadline").optional_integer(),
        None => Ok(None),
    }
}

pub(crate) fn due_idle_sessions(conn: &Connection, now: Millis) -> Result<Vec<SessionRecord>> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE status = 'idle' AND idle_deadline <= ? ORDER BY idle_deadline, seq"
        ))
        .db()?;
    let rows = statement.query([now]).db()?;
    collect(rows, session_from_row)
}
