//! The Agents API v2 wire format, and the only crate that knows it: request bodies and
//! query strings parsed into the engine's types (with FastAPI-shaped validation
//! errors), and store records written as the JSON the SDK parses.
//!
//! # Layout
//! - [`errors`]: `FieldError` and the 422, 429 and generic error bodies.
//! - [`create`]: the `POST /sessions` body (`SessionRequest`) → `SessionSpec`, the
//!   `Session.request` echo, and the options create acts on. Agent overrides live in a
//!   private module beside it.
//! - [`bodies`]: the messages, tool-results and feedback bodies.
//! - [`queries`]: the query strings of `/changes`, `/events` and the session list.
//! - [`responses`]: `Session`, `SessionStatus`, `SessionSummary`, `SessionChanges`,
//!   events and pages, from store records; RFC 3339 times.
//!
//! Architecture invariant: no IO, no HTTP framework, no database. Everything here is a
//! pure function of its input (and, at create, of the [`create::Catalog`] the caller
//! supplies), so every wire rule is testable in isolation.

pub mod bodies;
pub mod create;
mod environments;
pub mod errors;
mod overrides;
pub mod queries;
pub mod responses;
mod time;
mod validate;

pub use bodies::{
    ToolOutcome, ToolRequestWire, ToolResultInput, parse_feedback, parse_messages_body,
    parse_tool_results,
};
pub use create::{Catalog, CreateError, ParsedCreate, UserMessage, canonical_json, parse_create};
pub use errors::{FieldError, LocItem, error_body, quota_error_body, validation_error_body};
pub use queries::{
    ChangesQuery, ListQuery, parse_changes_query, parse_events_query, parse_list_query,
};
pub use responses::{
    answer_for_changes, changes_json, event_json, page_json, quota_status_json, session_json,
    status_json, summary_json,
};
pub use time::{format_time, parse_time};
