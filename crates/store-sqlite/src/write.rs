//! The write side: creating sessions, guarded commits and queue promotion. Every
//! function here runs as a write job on the writer thread, inside the batch's
//! `BEGIN IMMEDIATE` transaction and the job's own savepoint, so its reads and checks see
//! exactly the state it writes over, and an error undoes all it wrote.
//!
//! These functions only write; publishing to subscribers is the writer's job, after the
//! transaction committed.

use agentd_domain::time::{Millis, now_ms};
use agentd_domain::{NewEvent, OrgId, SessionStatus};
use agentd_store::{
    Admission, CreateOutcome, EventRecord, Guard, IdempotencyKey, NewSession, Result,
    SessionRecord, SessionUpdate, StoreError,
};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::codec::{
    Column, DbResultExt, collect, optional_json, session_columns, session_from_row, subagents_json,
    to_i64,
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

/// Appends `events` to the session's log: one cached single-row statement per event,
/// which inside the writer costs less than building a multi-row statement each time.
fn insert_events(conn: &Connection, session_id: &str, events: &[EventRecord]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (session_id, idx, event_type, data, timestamp) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .db()?;
    for event in events {
        insert
            .execute((
                session_id,
                to_i64(event.index)?,
                &event.event_type,
                event.data.to_string(),
                event.timestamp,
            ))
            .db()?;
    }
    Ok(())
}

pub(crate) fn create_session(
    conn: &Connection,
    new: NewSession,
    admission: Admission,
    idempotency: Option<IdempotencyKey>,
) -> Result<Created> {
    // The key's binding and the organisation's load in one read: always one row.
    let mut lookup = conn
        .prepare_cached(
            "SELECT l.active, l.queued, k.request_hash, k.session_id, k.created_at \
             FROM (SELECT ?1 AS org_id, ?2 AS key) AS q \
             LEFT JOIN org_load l ON l.org_id = q.org_id \
             LEFT JOIN idempotency_keys k ON k.org_id = q.org_id AND k.key = q.key",
        )
        .db()?;
    let mut rows = lookup
        .query((
            &new.org_id.0,
            idempotency.as_ref().map(|key| key.key.as_str()),
        ))
        .db()?;
    let row = rows.next().db()?.ok_or_else(|| {
        StoreError::Backend("sqlite: the admission lookup returned no row".to_owned())
    })?;
    let active = Column::new(row, 0, "active").optional_integer()?;
    let queued = Column::new(row, 1, "queued").optional_integer()?;
    let request_hash = Column::new(row, 2, "request_hash").optional_string()?;
    let bound_session = Column::new(row, 3, "session_id").optional_string()?;
    let bound_at = Column::new(row, 4, "created_at").optional_integer()?;
    // Reset the lookup's statement before this job writes.
    drop(rows);
    drop(lookup);

    if let (Some(key), Some(request_hash), Some(session_id), Some(bound_at)) =
        (&idempotency, request_hash, bound_session, bound_at)
        && new.created_at - bound_at < IDEMPOTENCY_TTL_MS
    {
        if request_hash != key.request_hash {
            return Ok(Created::Unchanged(CreateOutcome::KeyConflict));
        }
        let session = fetch_session(conn, &session_id)?.ok_or_else(|| {
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

    conn.prepare_cached(
        "INSERT INTO sessions (id, org_id, status, created_at, last_activity_at, request, spec, \
         agent_name, group_id, parent_session_id, first_message, steps, usage, \
         subagent_session_ids, pending_tool_calls, event_count, epoch, force_answer, loop_state, \
         shared, search_text) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '[]', '[]', '[]', ?, 0, 0, '{}', 0, ?)",
    )
    .db()?
    .execute(rusqlite::params![
        id_text,
        session.org_id.0,
        status.as_str(),
        created_at,
        created_at,
        session.request.to_string(),
        session.spec.to_string(),
        session.agent_name,
        session.group_id,
        session.parent_session_id.map(|p| p.to_string()),
        optional_json(session.first_message.as_ref()),
        to_i64(event_count)?,
        search_text.to_lowercase(),
    ])
    .db()?;
    let events = event_records(0, created_at, events);
    insert_events(conn, &id_text, &events)?;
    if let Some(key) = idempotency {
        // An expired row for the key is replaced: the key is free again.
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (org_id, key, request_hash, session_id, created_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (org_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             session_id = excluded.session_id, created_at = excluded.created_at",
        )
        .db()?
        .execute((
            &session.org_id.0,
            key.key,
            key.request_hash,
            &id_text,
            created_at,
        ))
        .db()?;
    }

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
fn write_session(
    conn: &Connection,
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

    insert_events(conn, &id_text, &events)?;
    // Immutable columns (ids, request, spec, creation data) are never rewritten.
    conn.prepare_cached(
        "UPDATE sessions SET status = ?, started_at = ?, finished_at = ?, \
         last_activity_at = ?, latest_answer = ?, outcome = ?, error = ?, error_code = ?, \
         steps = ?, usage = ?, subagent_session_ids = ?, pending_tool_calls = ?, \
         event_count = ?, epoch = ?, force_answer = ?, idle_deadline = ?, loop_state = ?, \
         shared = ?, feedback = ?, search_answer = COALESCE(?, search_answer) WHERE id = ?",
    )
    .db()?
    .execute(rusqlite::params![
        session.status.as_str(),
        session.started_at,
        session.finished_at,
        session.last_activity_at,
        optional_json(session.latest_answer.as_ref()),
        session.outcome.map(|o| o.as_str()),
        session.error,
        session.error_code.map(|c| c.as_str()),
        i64::from(session.steps),
        session.usage.to_string(),
        subagents_json(&session.subagent_session_ids),
        session.pending_tool_calls.to_string(),
        to_i64(session.event_count)?,
        to_i64(session.epoch)?,
        session.force_answer,
        session.idle_deadline,
        session.loop_state.to_string(),
        session.shared,
        optional_json(session.feedback.as_ref()),
        search_answer,
        id_text,
    ])
    .db()?;

    Ok(Written { session, events })
}

pub(crate) fn commit(
    conn: &Connection,
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
        let (active, _) = org_load(conn, &session.org_id)?;
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
    Ok(Committed::Written(write_session(
        conn, session, update, events,
    )?))
}

/// Moves up to the free slots' worth of the organisation's oldest queued sessions to
/// `pending`, appending `events` to each.
pub(crate) fn promote_queued(
    conn: &Connection,
    org: &OrgId,
    slot_limit: u32,
    events: Vec<NewEvent>,
) -> Result<Vec<Written>> {
    let (active, queued) = org_load(conn, org)?;
    let free = slot_limit.saturating_sub(active).min(queued);
    if free == 0 {
        return Ok(Vec::new());
    }
    let queued = {
        let mut statement = conn
            .prepare_cached(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE org_id = ? AND status = 'queued' ORDER BY seq LIMIT ?"
            ))
            .db()?;
        collect(
            statement.query((&org.0, i64::from(free))).db()?,
            session_from_row,
        )?
    };
    let mut promoted = Vec::with_capacity(queued.len());
    for session in queued {
        let update = SessionUpdate {
            status: Some(SessionStatus::Pending),
            ..SessionUpdate::default()
        };
        promoted.push(write_session(conn, session, update, events.clone())?);
    }
    Ok(promoted)
}

/// Records feedback on an existing event; false when the session has no such event.
pub(crate) fn set_event_feedback(
    conn: &Connection,
    session_id: &str,
    index: u64,
    feedback: &Value,
) -> Result<bool> {
    let Ok(index) = i64::try_from(index) else {
        return Ok(false);
    };
    let written = conn
        .prepare_cached(
            "INSERT INTO event_feedback (session_id, idx, data) \
             SELECT session_id, idx, ? FROM events WHERE session_id = ? AND idx = ? \
             ON CONFLICT (session_id, idx) DO UPDATE SET data = excluded.data",
        )
        .db()?
        .execute((feedback.to_string(), session_id, index))
        .db()?;
    Ok(written > 0)
}
