//! The write side: creating sessions, guarded commits and queue promotion. Every
//! function here runs inside one `BEGIN IMMEDIATE` transaction on the single write
//! connection, so its reads and checks see exactly the state it writes over.
//!
//! These functions only write; publishing to subscribers is the caller's job, after the
//! transaction committed.

use agentd_domain::time::{Millis, now_ms};
use agentd_domain::{NewEvent, OrgId, SessionStatus};
use agentd_store::{
    Admission, CreateOutcome, EventRecord, Guard, IdempotencyKey, NewSession, Result,
    SessionRecord, SessionUpdate, StoreError,
};
use serde_json::{Value, json};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::codec::{
    DbResultExt, optional_json, session_columns, session_from_row, subagents_json, to_i64,
};
use crate::read::{fetch_session, load_count, org_load};

/// How long an idempotency key stays bound to the session it created, measured from that
/// session's `created_at` to the `created_at` of the request that reuses the key.
pub(crate) const IDEMPOTENCY_TTL_MS: Millis = 24 * 60 * 60 * 1000;

/// A session row as committed and the events the same transaction appended.
pub(crate) struct Written {
    pub session: SessionRecord,
    pub events: Vec<EventRecord>,
}

pub(crate) enum Created {
    /// A new session; publish it.
    New(Written),
    /// Nothing was written.
    Unchanged(CreateOutcome),
}

/// `active, queued, request_hash, session_id, created_at` of a create's first read.
type CreateLookup = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Millis>,
);

/// Events per `INSERT` statement: five parameters each, well under SQLite's limit.
const EVENTS_PER_STATEMENT: usize = 500;

/// Records of `events` appended to a log from index `first`, all stamped `timestamp`.
fn event_records(first: u64, timestamp: Millis, events: Vec<NewEvent>) -> Vec<EventRecord> {
    (first..)
        .zip(events)
        .map(|(index, event)| EventRecord {
            index,
            event_type: event.event_type.to_owned(),
            data: event.data,
            timestamp,
        })
        .collect()
}

/// Adds the `INSERT` statements of `events` to a multi-statement write.
fn push_events(
    write: &mut QueryBuilder<Sqlite>,
    session_id: &str,
    events: &[EventRecord],
) -> Result<()> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for event in chunk {
            rows.push((to_i64(event.index)?, event));
        }
        write.push("INSERT INTO events (session_id, idx, event_type, data, timestamp) ");
        write.push_values(rows, |mut row, (index, event)| {
            row.push_bind(session_id.to_owned())
                .push_bind(index)
                .push_bind(event.event_type.clone())
                .push_bind(event.data.to_string())
                .push_bind(event.timestamp);
        });
        write.push("; ");
    }
    Ok(())
}

pub(crate) async fn create_session(
    conn: &mut SqliteConnection,
    new: NewSession,
    admission: Admission,
    idempotency: Option<IdempotencyKey>,
) -> Result<Created> {
    // The key's binding and the organisation's load in one round trip: always one row.
    let (active, queued, request_hash, bound_session, bound_at): CreateLookup = sqlx::query_as(
        "SELECT l.active, l.queued, k.request_hash, k.session_id, k.created_at \
         FROM (SELECT ?1 AS org_id, ?2 AS key) AS q \
         LEFT JOIN org_load l ON l.org_id = q.org_id \
         LEFT JOIN idempotency_keys k ON k.org_id = q.org_id AND k.key = q.key",
    )
    .bind(&new.org_id.0)
    .bind(idempotency.as_ref().map(|key| key.key.as_str()))
    .fetch_one(&mut *conn)
    .await
    .db()?;

    if let (Some(key), Some(request_hash), Some(session_id), Some(bound_at)) =
        (&idempotency, request_hash, bound_session, bound_at)
        && new.created_at - bound_at < IDEMPOTENCY_TTL_MS
    {
        if request_hash != key.request_hash {
            return Ok(Created::Unchanged(CreateOutcome::KeyConflict));
        }
        let session = fetch_session(&mut *conn, &session_id)
            .await?
            .ok_or_else(|| {
                StoreError::Backend("sqlite: idempotency key names a missing session".to_owned())
            })?;
        return Ok(Created::Unchanged(CreateOutcome::Replayed(session)));
    }

    let (active, queued) = (load_count(active), load_count(queued));
    let status = if active < admission.slot_limit {
        SessionStatus::Pending
    } else if admission.queue && queued < admission.max_queued {
        SessionStatus::Queued
    } else {
        return Ok(Created::Unchanged(CreateOutcome::Refused {
            active,
            limit: admission.slot_limit,
            queue_full: admission.queue,
        }));
    };

    let NewSession {
        id,
        org_id,
        created_at,
        request,
        spec,
        agent_name,
        group_id,
        parent_session_id,
        first_message,
        search_text,
        mut events,
        queued_events,
    } = new;
    if status == SessionStatus::Queued {
        events.extend(queued_events);
    }
    let id_text = id.to_string();
    let event_count = events.len() as u64;
    let session = SessionRecord {
        id,
        org_id,
        status,
        created_at,
        started_at: None,
        finished_at: None,
        last_activity_at: created_at,
        request,
        spec,
        agent_name,
        group_id,
        parent_session_id,
        first_message,
        latest_answer: None,
        outcome: None,
        error: None,
        error_code: None,
        steps: 0,
        usage: json!([]),
        subagent_session_ids: Vec::new(),
        pending_tool_calls: json!([]),
        event_count,
        epoch: 0,
        force_answer: false,
        idle_deadline: None,
        loop_state: json!({}),
        shared: false,
        feedback: None,
    };

    // The row, its events and the key binding go to SQLite as one multi-statement
    // write: one round trip to the connection's thread instead of one per statement.
    let mut write = QueryBuilder::<Sqlite>::new(
        "INSERT INTO sessions (id, org_id, status, created_at, last_activity_at, request, spec, \
         agent_name, group_id, parent_session_id, first_message, steps, usage, \
         subagent_session_ids, pending_tool_calls, event_count, epoch, force_answer, loop_state, \
         shared, search_text) VALUES (",
    );
    write
        .separated(", ")
        .push_bind(id_text.clone())
        .push_bind(session.org_id.0.clone())
        .push_bind(status.as_str())
        .push_bind(created_at)
        .push_bind(created_at)
        .push_bind(session.request.to_string())
        .push_bind(session.spec.to_string())
        .push_bind(session.agent_name.clone())
        .push_bind(session.group_id.clone())
        .push_bind(session.parent_session_id.map(|p| p.to_string()))
        .push_bind(optional_json(session.first_message.as_ref()))
        .push_unseparated(", 0, '[]', '[]', '[]', ")
        .push_bind_unseparated(to_i64(event_count)?)
        .push_unseparated(", 0, 0, '{}', 0, ")
        .push_bind_unseparated(search_text.to_lowercase());
    write.push("); ");
    let events = event_records(0, created_at, events);
    push_events(&mut write, &id_text, &events)?;
    if let Some(key) = idempotency {
        // An expired row for the key is replaced: the key is free again.
        write
            .push(
                "INSERT INTO idempotency_keys (org_id, key, request_hash, session_id, created_at) \
                 VALUES (",
            )
            .separated(", ")
            .push_bind(session.org_id.0.clone())
            .push_bind(key.key)
            .push_bind(key.request_hash)
            .push_bind(id_text)
            .push_bind(created_at);
        write.push(
            ") ON CONFLICT (org_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             session_id = excluded.session_id, created_at = excluded.created_at",
        );
    }
    write.build().execute(&mut *conn).await.db()?;

    Ok(Created::New(Written { session, events }))
}

/// Why a guarded commit wrote nothing.
pub(crate) enum Refusal {
    Guard(Box<SessionRecord>),
    Quota { active: u32, limit: u32 },
}

impl From<Refusal> for StoreError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Guard(current) => StoreError::GuardFailed { current },
            Refusal::Quota { active, limit } => StoreError::QuotaExceeded { active, limit },
        }
    }
}

pub(crate) enum Committed {
    Written(Written),
    /// The guard held but there was nothing to write: the session as it is.
    Unchanged(SessionRecord),
    Refused(Refusal),
}

/// True when applying `update` changes nothing. Destructured in full so that a new
/// field of [`SessionUpdate`] cannot be forgotten here.
fn is_noop(update: &SessionUpdate) -> bool {
    let SessionUpdate {
        status,
        started_at,
        finished_at,
        latest_answer,
        search_answer,
        outcome,
        error,
        error_code,
        steps,
        usage,
        add_subagent,
        pending_tool_calls,
        bump_epoch,
        force_answer,
        idle_deadline,
        loop_state,
        shared,
        feedback,
    } = update;
    status.is_none()
        && started_at.is_none()
        && finished_at.is_none()
        && latest_answer.is_none()
        && search_answer.is_none()
        && outcome.is_none()
        && error.is_none()
        && error_code.is_none()
        && steps.is_none()
        && usage.is_none()
        && add_subagent.is_none()
        && pending_tool_calls.is_none()
        && !bump_epoch
        && force_answer.is_none()
        && idle_deadline.is_none()
        && loop_state.is_none()
        && shared.is_none()
        && feedback.is_none()
}

/// Applies `update` to the record; returns the new answer search text, if any.
fn apply(session: &mut SessionRecord, update: SessionUpdate) -> Option<String> {
    let SessionUpdate {
        status,
        started_at,
        finished_at,
        latest_answer,
        search_answer,
        outcome,
        error,
        error_code,
        steps,
        usage,
        add_subagent,
        pending_tool_calls,
        bump_epoch,
        force_answer,
        idle_deadline,
        loop_state,
        shared,
        feedback,
    } = update;
    fn set<T>(field: &mut T, value: Option<T>) {
        if let Some(value) = value {
            *field = value;
        }
    }
    set(&mut session.status, status);
    set(&mut session.started_at, started_at);
    set(&mut session.finished_at, finished_at);
    set(&mut session.latest_answer, latest_answer);
    set(&mut session.outcome, outcome);
    set(&mut session.error, error);
    set(&mut session.error_code, error_code);
    set(&mut session.steps, steps);
    set(&mut session.usage, usage);
    session.subagent_session_ids.extend(add_subagent);
    set(&mut session.pending_tool_calls, pending_tool_calls);
    if bump_epoch {
        session.epoch += 1;
    }
    set(&mut session.force_answer, force_answer);
    set(&mut session.idle_deadline, idle_deadline);
    set(&mut session.loop_state, loop_state);
    set(&mut session.shared, shared);
    if feedback.is_some() {
        session.feedback = feedback;
    }
    search_answer.map(|text| text.to_lowercase())
}

/// Appends `events` to `session` and applies `update`, writing the row back.
async fn write_session(
    conn: &mut SqliteConnection,
    mut session: SessionRecord,
    update: SessionUpdate,
    events: Vec<NewEvent>,
) -> Result<Written> {
    let id_text = session.id.to_string();
    let now = now_ms();
    let events = event_records(session.event_count, now, events);
    if !events.is_empty() {
        session.event_count += events.len() as u64;
        session.last_activity_at = now;
    }
    let search_answer = apply(&mut session, update);

    // Events and row in one multi-statement write (one round trip). Immutable columns
    // (ids, request, spec, creation data) are never rewritten.
    let mut write = QueryBuilder::<Sqlite>::new("");
    push_events(&mut write, &id_text, &events)?;
    write
        .push("UPDATE sessions SET status = ")
        .push_bind(session.status.as_str())
        .push(", started_at = ")
        .push_bind(session.started_at)
        .push(", finished_at = ")
        .push_bind(session.finished_at)
        .push(", last_activity_at = ")
        .push_bind(session.last_activity_at)
        .push(", latest_answer = ")
        .push_bind(optional_json(session.latest_answer.as_ref()))
        .push(", outcome = ")
        .push_bind(session.outcome.map(|o| o.as_str()))
        .push(", error = ")
        .push_bind(session.error.clone())
        .push(", error_code = ")
        .push_bind(session.error_code.map(|c| c.as_str()))
        .push(", steps = ")
        .push_bind(i64::from(session.steps))
        .push(", usage = ")
        .push_bind(session.usage.to_string())
        .push(", subagent_session_ids = ")
        .push_bind(subagents_json(&session.subagent_session_ids))
        .push(", pending_tool_calls = ")
        .push_bind(session.pending_tool_calls.to_string())
        .push(", event_count = ")
        .push_bind(to_i64(session.event_count)?)
        .push(", epoch = ")
        .push_bind(to_i64(session.epoch)?)
        .push(", force_answer = ")
        .push_bind(session.force_answer)
        .push(", idle_deadline = ")
        .push_bind(session.idle_deadline)
        .push(", loop_state = ")
        .push_bind(session.loop_state.to_string())
        .push(", shared = ")
        .push_bind(session.shared)
        .push(", feedback = ")
        .push_bind(optional_json(session.feedback.as_ref()))
        .push(", search_answer = COALESCE(")
        .push_bind(search_answer)
        .push(", search_answer) WHERE id = ")
        .push_bind(id_text);
    write.build().execute(&mut *conn).await.db()?;

    Ok(Written { session, events })
}

pub(crate) async fn commit(
    conn: &mut SqliteConnection,
    session: SessionRecord,
    guard: &Guard,
    update: SessionUpdate,
    events: Vec<NewEvent>,
) -> Result<Committed> {
    if guard.epoch.is_some_and(|epoch| epoch != session.epoch)
        || guard
            .statuses
            .as_ref()
            .is_some_and(|statuses| !statuses.contains(&session.status))
    {
        return Ok(Committed::Refused(Refusal::Guard(Box::new(session))));
    }
    if let Some(limit) = guard.slot_limit {
        let (active, _) = org_load(&mut *conn, &session.org_id).await?;
        let others = active.saturating_sub(u32::from(session.status.holds_slot()));
        if others >= limit {
            return Ok(Committed::Refused(Refusal::Quota {
                active: others,
                limit,
            }));
        }
    }
    if events.is_empty() && is_noop(&update) {
        return Ok(Committed::Unchanged(session));
    }
    Ok(Committed::Written(
        write_session(conn, session, update, events).await?,
    ))
}

/// Moves up to the free slots' worth of the organisation's oldest queued sessions to
/// `pending`, appending `events` to each.
pub(crate) async fn promote_queued(
    conn: &mut SqliteConnection,
    org: &OrgId,
    slot_limit: u32,
    events: Vec<NewEvent>,
) -> Result<Vec<Written>> {
    let (active, queued) = org_load(&mut *conn, org).await?;
    let free = slot_limit.saturating_sub(active).min(queued);
    if free == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE org_id = ? AND status = 'queued' ORDER BY seq LIMIT ?"
    ))
    .bind(&org.0)
    .bind(i64::from(free))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let queued = rows
        .iter()
        .map(session_from_row)
        .collect::<Result<Vec<_>>>()?;
    let mut promoted = Vec::with_capacity(queued.len());
    for session in queued {
        let update = SessionUpdate {
            status: Some(SessionStatus::Pending),
            ..SessionUpdate::default()
        };
        promoted.push(write_session(conn, session, update, events.clone()).await?);
    }
    Ok(promoted)
}

/// Records feedback on an existing event; false when the session has no such event.
pub(crate) async fn set_event_feedback(
    conn: &mut SqliteConnection,
    session_id: &str,
    index: u64,
    feedback: &Value,
) -> Result<bool> {
    let Ok(index) = i64::try_from(index) else {
        return Ok(false);
    };
    let done = sqlx::query(
        "INSERT INTO event_feedback (session_id, idx, data) \
         SELECT session_id, idx, ? FROM events WHERE session_id = ? AND idx = ? \
         ON CONFLICT (session_id, idx) DO UPDATE SET data = excluded.data",
    )
    .bind(feedback.to_string())
    .bind(session_id)
    .bind(index)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(done.rows_affected() > 0)
}
