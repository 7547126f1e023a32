//! How records map to SQLite values and back: the session column list, row decoding,
//! and the translation of rusqlite errors into [`StoreError`] at this crate's boundary.
//!
//! Everything the database hands back is checked while decoding: a row this build
//! cannot read (an unknown status, malformed JSON) is a backend error, never a panic.
//! Columns are read by position (each query selects them in a fixed order) and
//! borrowed where possible, so decoding a row copies only what the record keeps.

use agentd_domain::{ErrorCode, OrgId, Outcome, SessionId, SessionStatus};
use agentd_store::{EventRecord, Result, SessionRecord, StoreError};
use rusqlite::types::ValueRef;
use rusqlite::{Row, Rows};
use serde_json::Value;

/// The columns of a [`SessionRecord`], in the order every session query selects them
/// and [`session_from_row`] reads them. A macro so that queries can be built with
/// `concat!` as `&'static str`.
macro_rules! session_columns {
    () => {
        "id, org_id, status, created_at, started_at, finished_at, last_activity_at, request, \
         spec, agent_name, group_id, parent_session_id, first_message, latest_answer, outcome, \
         error, error_code, steps, usage, subagent_session_ids, pending_tool_calls, event_count, \
         epoch, force_answer, idle_deadline, loop_state, shared, feedback"
    };
}
pub(crate) use session_columns;

/// Maps rusqlite results to store results; the message names what failed, never a value.
pub(crate) trait DbResultExt<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResultExt<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(backend)
    }
}

pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {error}"))
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sqlite: unreadable {what}: {detail}"))
}

/// Decodes every remaining row of `rows` with `decode`.
pub(crate) fn collect<T>(
    mut rows: Rows<'_>,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut decoded = Vec::new();
    while let Some(row) = rows.next().db()? {
        decoded.push(decode(row)?);
    }
    Ok(decoded)
}

/// One column of a row: its position in the query and its name for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Column<'r, 's> {
    row: &'r Row<'s>,
    index: usize,
    name: &'static str,
}

impl<'r, 's> Column<'r, 's> {
    pub(crate) fn new(row: &'r Row<'s>, index: usize, name: &'static str) -> Self {
        Column { row, index, name }
    }

    fn value(self) -> Result<ValueRef<'r>> {
        self.row
            .get_ref(self.index)
            .map_err(|e| corrupt(self.name, e))
    }

    pub(crate) fn text(self) -> Result<&'r str> {
        self.value()?.as_str().map_err(|e| corrupt(self.name, e))
    }

    pub(crate) fn optional_text(self) -> Result<Option<&'r str>> {
        self.value()?
            .as_str_or_null()
            .map_err(|e| corrupt(self.name, e))
    }

    pub(crate) fn string(self) -> Result<String> {
        self.text().map(str::to_owned)
    }

    pub(crate) fn optional_string(self) -> Result<Option<String>> {
        Ok(self.optional_text()?.map(str::to_owned))
    }

    pub(crate) fn integer(self) -> Result<i64> {
        self.value()?.as_i64().map_err(|e| corrupt(self.name, e))
    }

    pub(crate) fn optional_integer(self) -> Result<Option<i64>> {
        self.value()?
            .as_i64_or_null()
            .map_err(|e| corrupt(self.name, e))
    }

    pub(crate) fn flag(self) -> Result<bool> {
        Ok(self.integer()? != 0)
    }

    pub(crate) fn unsigned<T: TryFrom<i64>>(self) -> Result<T> {
        let value = self.integer()?;
        T::try_from(value).map_err(|_| corrupt(self.name, format!("{value} is out of range")))
    }

    pub(crate) fn json(self) -> Result<Value> {
        json(self.name, self.text()?)
    }

    pub(crate) fn optional_json(self) -> Result<Option<Value>> {
        self.optional_text()?
            .map(|text| json(self.name, text))
            .transpose()
    }
}

fn json(column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
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
pub(crate) fn session_from_row(row: &Row<'_>) -> Result<SessionRecord> {
    let column = |index, name| Column::new(row, index, name);
    Ok(SessionRecord {
        id: parse_session_id("id", column(0, "id").text()?)?,
        org_id: OrgId(column(1, "org_id").string()?),
        status: parse_status(column(2, "status").text()?)?,
        created_at: column(3, "created_at").integer()?,
        started_at: column(4, "started_at").optional_integer()?,
        finished_at: column(5, "finished_at").optional_integer()?,
        last_activity_at: column(6, "last_activity_at").integer()?,
        request: column(7, "request").json()?,
        spec: column(8, "spec").json()?,
        agent_name: column(9, "agent_name").optional_string()?,
        group_id: column(10, "group_id").optional_string()?,
        parent_session_id: column(11, "parent_session_id")
            .optional_text()?
            .map(|text| parse_session_id("parent_session_id", text))
            .transpose()?,
        first_message: column(12, "first_message").optional_json()?,
        latest_answer: column(13, "latest_answer").optional_json()?,
        outcome: column(14, "outcome")
            .optional_text()?
            .map(parse_outcome)
            .transpose()?,
        error: column(15, "error").optional_string()?,
        error_code: column(16, "error_code")
            .optional_text()?
            .map(parse_error_code)
            .transpose()?,
        steps: column(17, "steps").unsigned()?,
        usage: column(18, "usage").json()?,
        subagent_session_ids: serde_json::from_str(column(19, "subagent_session_ids").text()?)
            .map_err(|e| corrupt("subagent_session_ids", e))?,
        pending_tool_calls: column(20, "pending_tool_calls").json()?,
        event_count: column(21, "event_count").unsigned()?,
        epoch: column(22, "epoch").unsigned()?,
        force_answer: column(23, "force_answer").flag()?,
        idle_deadline: column(24, "idle_deadline").optional_integer()?,
        loop_state: column(25, "loop_state").json()?,
        shared: column(26, "shared").flag()?,
        feedback: column(27, "feedback").optional_json()?,
    })
}

/// A row of `idx, event_type, data, timestamp`.
pub(crate) fn event_from_row(row: &Row<'_>) -> Result<EventRecord> {
    let column = |index, name| Column::new(row, index, name);
    Ok(EventRecord {
        index: column(0, "idx").unsigned()?,
        event_type: column(1, "event_type").string()?,
        data: column(2, "data").json()?,
        timestamp: column(3, "timestamp").integer()?,
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
