//! How records map to SQLite values and back: the session column list, row decoding,
//! and the translation of sqlx errors into [`StoreError`] at this crate's boundary.
//!
//! Everything the database hands back is checked while decoding: a row this build
//! cannot read (an unknown status, malformed JSON) is a backend error, never a panic.

use agentd_domain::{ErrorCode, OrgId, Outcome, SessionId, SessionStatus};
use agentd_store::{EventRecord, Result, SessionRecord, StoreError};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

/// The columns of a [`SessionRecord`], in the order every session query selects them.
/// A macro so that queries can be built with `concat!` as `&'static str`.
macro_rules! session_columns {
    () => {
        "id, org_id, status, created_at, started_at, finished_at, last_activity_at, request, \
         spec, agent_name, group_id, parent_session_id, first_message, latest_answer, outcome, \
         error, error_code, steps, usage, subagent_session_ids, pending_tool_calls, event_count, \
         epoch, force_answer, idle_deadline, loop_state, shared, feedback"
    };
}
pub(crate) use session_columns;

/// Maps sqlx results to store results; the message names what failed, never a value.
pub(crate) trait DbResultExt<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn db(self) -> Result<T> {
        self.map_err(backend)
    }
}

pub(crate) fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {error}"))
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sqlite: unreadable {what}: {detail}"))
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(|e| corrupt(column, e))
}

fn json(column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

fn json_column(row: &SqliteRow, column: &str) -> Result<Value> {
    let text: &str = get(row, column)?;
    json(column, text)
}

fn optional_json_column(row: &SqliteRow, column: &str) -> Result<Option<Value>> {
    let text: Option<&str> = get(row, column)?;
    text.map(|text| json(column, text)).transpose()
}

fn unsigned<T: TryFrom<i64>>(row: &SqliteRow, column: &str) -> Result<T> {
    let value: i64 = get(row, column)?;
    T::try_from(value).map_err(|_| corrupt(column, format!("{value} is out of range")))
}

pub(crate) fn parse_session_id(column: &str, text: &str) -> Result<SessionId> {
    text.parse().map_err(|e| corrupt(column, e))
}

fn parse_status(text: &str) -> Result<SessionStatus> {
    SessionStatus::parse(text).ok_or_else(|| corrupt("status", format!("unknown status {text:?}")))
}

fn parse_outcome(text: &str) -> Result<Outcome> {
    Outcome::parse(text).ok_or_else(|| corrupt("outcome", format!("unknown outcome {text:?}")))
}

fn parse_error_code(text: &str) -> Result<ErrorCode> {
    // The domain spells error codes through serde only; go through it rather than
    // keeping a second list here.
    serde_json::from_value(Value::String(text.to_owned())).map_err(|e| corrupt("error_code", e))
}

/// A row selected with [`session_columns!`].
pub(crate) fn session_from_row(row: &SqliteRow) -> Result<SessionRecord> {
    let subagents: &str = get(row, "subagent_session_ids")?;
    Ok(SessionRecord {
        id: parse_session_id("id", get(row, "id")?)?,
        org_id: OrgId(get(row, "org_id")?),
        status: parse_status(get(row, "status")?)?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        last_activity_at: get(row, "last_activity_at")?,
        request: json_column(row, "request")?,
        spec: json_column(row, "spec")?,
        agent_name: get(row, "agent_name")?,
        group_id: get(row, "group_id")?,
        parent_session_id: get::<Option<&str>>(row, "parent_session_id")?
            .map(|text| parse_session_id("parent_session_id", text))
            .transpose()?,
        first_message: optional_json_column(row, "first_message")?,
        latest_answer: optional_json_column(row, "latest_answer")?,
        outcome: get::<Option<&str>>(row, "outcome")?
            .map(parse_outcome)
            .transpose()?,
        error: get(row, "error")?,
        error_code: get::<Option<&str>>(row, "error_code")?
            .map(parse_error_code)
            .transpose()?,
        steps: unsigned(row, "steps")?,
        usage: json_column(row, "usage")?,
        subagent_session_ids: serde_json::from_str(subagents)
            .map_err(|e| corrupt("subagent_session_ids", e))?,
        pending_tool_calls: json_column(row, "pending_tool_calls")?,
        event_count: unsigned(row, "event_count")?,
        epoch: unsigned(row, "epoch")?,
        force_answer: get(row, "force_answer")?,
        idle_deadline: get(row, "idle_deadline")?,
        loop_state: json_column(row, "loop_state")?,
        shared: get(row, "shared")?,
        feedback: optional_json_column(row, "feedback")?,
    })
}

/// A row of `idx, event_type, data, timestamp`.
pub(crate) fn event_from_row(row: &SqliteRow) -> Result<EventRecord> {
    Ok(EventRecord {
        index: unsigned(row, "idx")?,
        event_type: get(row, "event_type")?,
        data: json_column(row, "data")?,
        timestamp: get(row, "timestamp")?,
    })
}

/// Counters and indices are `u64` in records and `INTEGER` (signed 64-bit) in SQLite.
pub(crate) fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("sqlite: {value} does not fit an integer column")))
}

pub(crate) fn subagents_json(ids: &[SessionId]) -> String {
    // A list of ids always serializes; the fallback only keeps this function total.
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn optional_json(value: Option<&Value>) -> Option<String> {
    value.map(Value::to_string)
}
