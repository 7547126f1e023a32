//! The engine's own vocabulary, shared by every other crate: identifiers, the ten
//! session statuses and the rules that move a session between them, the resolved
//! agent spec a session runs, and the payloads of the events it logs.
//!
//! # Layout
//! - [`ids`]: `SessionId`, `OrgId`: newtypes over UUIDs so one cannot stand for the other.
//! - [`status`]: `SessionStatus` and the control matrix ([`status::decide_control`]),
//!   a pure function of (status, control) that the engine and its tests share.
//! - [`spec`]: `SessionSpec`, the resolved, validated request a session runs.
//! - [`events`]: constructors for every event the engine appends.
//!
//! Architecture invariant: this crate does no IO and knows no wire format beyond the
//! names of statuses and events, which are also what the store persists.

pub mod events;
pub mod ids;
pub mod spec;
pub mod status;
pub mod time;

pub use events::NewEvent;
pub use ids::{OrgId, SessionId};
pub use spec::{AgentSpec, BrowserMode, EnvironmentSpec, SessionSpec, ToolDef, WebSpec};
pub use status::{Control, ControlDecision, ErrorCode, Outcome, SessionStatus};
