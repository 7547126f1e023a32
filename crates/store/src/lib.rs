//! The store: everything a session is, durably. The engine and the HTTP layer see only
//! the [`Store`] trait; `agentd-store-sqlite` implements it for one node, and a
//! PostgreSQL backend implements the same trait for several nodes.
//!
//! # Model
//! - A session is one row ([`SessionRecord`]) plus an append-only event log with dense
//!   0-based indices ([`EventRecord`]).
//! - Every change to a session goes through [`Store::commit`]: a guarded, atomic
//!   "append these events and apply this update". The events of a transition are
//!   readable in the same instant as the status they lead to: never before, never after.
//! - Callers own the meaning of the opaque JSON documents (`request`, `spec`, `usage`,
//!   `pending_tool_calls`, `loop_state`); the store keeps them verbatim.
//! - After each commit the store publishes a [`Change`] to the session's subscribers
//!   ([`Store::subscribe`]). A change is a wake-up with the data that caused it, never
//!   the source of truth: a subscriber that misses one reads the store.
//!
//! Architecture invariant: no backend keeps session state only in memory. A process may
//! die at any instruction; whatever a commit returned `Ok` for survives it.

pub mod blobs;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod feed;

use std::sync::Arc;

use agentd_domain::time::Millis;
use agentd_domain::{ErrorCode, NewEvent, OrgId, Outcome, SessionId, SessionStatus};
use async_trait::async_trait;
use serde_json::Value;

pub use blobs::{Blob, BlobStore, FsBlobStore};
pub use feed::{Change, ChangeReceiver, LocalFeed};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session not found")]
    NotFound,
    /// The commit's guard did not hold; nothing was written. `current` is the session as
    /// it is now, so the caller can decide again without another read.
    #[error("session changed concurrently")]
    GuardFailed { current: Box<SessionRecord> },
    /// The organisation has no free concurrency slot; nothing was written.
    #[error("concurrent session limit reached ({active}/{limit})")]
    QuotaExceeded { active: u32, limit: u32 },
    #[error("store unavailable: {0}")]
    Backend(String),
}

/// One session row.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub org_id: OrgId,
    pub status: SessionStatus,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// When the newest event was committed.
    pub last_activity_at: Millis,
    /// The resolved request as the API echoes it (`Session.request`).
    pub request: Value,
    /// The engine's `SessionSpec`, serialized.
    pub spec: Value,
    /// Catalog name of the agent, for the `agent` list filter; `None` for inline agents.
    pub agent_name: Option<String>,
    pub group_id: Option<String>,
    pub parent_session_id: Option<SessionId>,
    /// The first user message as the API lists it (`SessionSummary.first_message`).
    pub first_message: Option<Value>,
    pub latest_answer: Option<Value>,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub steps: u32,
    /// Token usage per model (engine-owned JSON array).
    pub usage: Value,
    pub subagent_session_ids: Vec<SessionId>,
    /// The custom tool calls the session waits on (engine-owned JSON array).
    pub pending_tool_calls: Value,
    /// Number of events in the log; the next event's index.
    pub event_count: u64,
    /// Run generation. Controls that must stop in-flight work (pause, cancel,
    /// force_answer) bump it; a runner commits its step only if the epoch it started
    /// with still holds, so work overtaken by a control is never recorded.
    pub epoch: u64,
    /// A force_answer is pending: the next model call must answer.
    pub force_answer: bool,
    /// When an idle session ends if no message comes.
    pub idle_deadline: Option<Millis>,
    /// The engine's loop counters (engine-owned JSON object).
    pub loop_state: Value,
    /// Readable without a key.
    pub shared: bool,
    /// Session-level feedback (`Feedback` as sent).
    pub feedback: Option<Value>,
}

/// One event of a session's log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub index: u64,
    pub event_type: String,
    pub data: Value,
    pub timestamp: Millis,
}

/// A new session and the events it starts with.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub org_id: OrgId,
    pub created_at: Millis,
    pub request: Value,
    pub spec: Value,
    pub agent_name: Option<String>,
    pub group_id: Option<String>,
    pub parent_session_id: Option<SessionId>,
    pub first_message: Option<Value>,
    /// Text the `search` list filter matches (first message); the answer's text is
    /// added by commits that set `search_answer`.
    pub search_text: String,
    /// Events of the session's first moment, appended at indices 0.. in order.
    pub events: Vec<NewEvent>,
    /// Appended after `events` when the session is queued instead of started.
    pub queued_events: Vec<NewEvent>,
}

/// How create decides between starting, queueing and refusing a session.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    /// Concurrent slot-holding sessions the organisation may have.
    pub slot_limit: u32,
    /// Queue at the limit (true) or refuse (false).
    pub queue: bool,
    /// Queued sessions the organisation may have; beyond it, refuse.
    pub max_queued: u32,
}

/// An idempotency key of one organisation. A key stays bound to the session it created
/// for 24 hours, measured from that session's `created_at` to the `created_at` of the
/// request that reuses it; after that the key is free and binds anew.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub key: String,
    /// Digest of the canonical request; the same key with another digest is a conflict.
    pub request_hash: String,
}

#[derive(Clone, Debug)]
pub enum CreateOutcome {
    Created(SessionRecord),
    /// The idempotency key was seen with the same request: the original session.
    Replayed(SessionRecord),
    /// The idempotency key was seen with another request.
    KeyConflict,
    /// No slot and no queueing (or the queue is full).
    Refused {
        active: u32,
        limit: u32,
        queue_full: bool,
    },
}

/// Fields a commit may change. `None` leaves a field as it is; for nullable fields,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct SessionUpdate {
    pub status: Option<SessionStatus>,
    pub started_at: Option<Option<Millis>>,
    pub finished_at: Option<Option<Millis>>,
    pub latest_answer: Option<Option<Value>>,
    /// Text of the answer, for the `search` filter.
    pub search_answer: Option<String>,
    pub outcome: Option<Option<Outcome>>,
    pub error: Option<Option<String>>,
    pub error_code: Option<Option<ErrorCode>>,
    pub steps: Option<u32>,
    pub usage: Option<Value>,
    pub add_subagent: Option<SessionId>,
    pub pending_tool_calls: Option<Value>,
    /// Increment the epoch by one.
    pub bump_epoch: bool,
    pub force_answer: Option<bool>,
    pub idle_deadline: Option<Option<Millis>>,
    pub loop_state: Option<Value>,
    pub shared: Option<bool>,
    pub feedback: Option<Value>,
}

/// Conditions a commit needs; when one fails nothing is written.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// The session's epoch must equal this.
    pub epoch: Option<u64>,
    /// The session's status must be one of these.
    pub statuses: Option<Vec<SessionStatus>>,
    /// The session's organisation must hold fewer than this many slots, not counting
    /// this session (used when a message restarts an ended session).
    pub slot_limit: Option<u32>,
}

/// Filters of the session list; every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub statuses: Vec<SessionStatus>,
    pub agents: Vec<String>,
    pub group_id: Option<String>,
    pub parent_session_id: Option<SessionId>,
    /// Case-insensitive substring of the first message or the answer.
    pub search: Option<String>,
    pub created_before: Option<Millis>,
    pub created_after: Option<Millis>,
    pub finished_before: Option<Millis>,
    pub finished_after: Option<Millis>,
    /// Newest first when true.
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub size: u32,
}

#[derive(Clone, Debug)]
pub struct EventPageQuery {
    pub event_type: Option<String>,
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub size: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub org_id: OrgId,
    pub org_name: String,
    /// The first characters of the key, enough to recognise it in a list.
    pub prefix: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- organisations and API keys

    /// The organisation with this name, created if new.
    async fn ensure_org(&self, name: &str) -> Result<OrgId>;
    /// Stores a key by the SHA-256 hex digest of its secret; the secret itself is never stored.
    async fn insert_api_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<()>;
    /// The unrevoked key with this digest.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    /// Keys of one organisation (by name), or of all, oldest first; revoked ones included.
    async fn list_api_keys(&self, org_name: Option<&str>) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes by id or by prefix; false when no unrevoked key matched.
    async fn revoke_api_key(&self, id_or_prefix: &str) -> Result<bool>;

    // ---- sessions

    /// Creates a session under the organisation's quota and an optional idempotency
    /// key, atomically: of any number of concurrent creates with one key, one creates
    /// and the others replay it.
    async fn create_session(
        &self,
        new: NewSession,
        admission: Admission,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<CreateOutcome>;

    async fn get_session(&self, id: SessionId) -> Result<Option<SessionRecord>>;

    /// One page of an organisation's sessions, and the total that match.
    async fn list_sessions(
        &self,
        org: &OrgId,
        filter: &SessionFilter,
    ) -> Result<(Vec<SessionRecord>, u64)>;

    /// Appends `events` (dense indices from `event_count`) and applies `update`,
    /// atomically, if `guard` holds. Returns the session as committed and publishes the
    /// change to subscribers.
    async fn commit(
        &self,
        id: SessionId,
        guard: &Guard,
        update: SessionUpdate,
        events: Vec<NewEvent>,
    ) -> Result<SessionRecord>;

    /// Events `[from, from + limit)` of a session, in index order.
    async fn events(
        &self,
        id: SessionId,
        from: u64,
        limit: Option<u64>,
    ) -> Result<Vec<EventRecord>>;

    /// One page of a session's events and the total that match.
    async fn events_page(
        &self,
        id: SessionId,
        query: &EventPageQuery,
    ) -> Result<(Vec<EventRecord>, u64)>;

    /// Records feedback on one event; false when the index is past the log's end.
    async fn set_event_feedback(&self, id: SessionId, index: u64, feedback: Value) -> Result<bool>;

    /// Ids of all sessions in these statuses, oldest first (recovery after a restart).
    async fn sessions_in_status(&self, statuses: &[SessionStatus]) -> Result<Vec<SessionId>>;

    /// Slot-holding sessions of an organisation.
    async fn count_active(&self, org: &OrgId) -> Result<u32>;

    /// Moves the organisation's oldest queued sessions to `pending` while it has free
    /// slots, appending `events` to each; returns the sessions moved.
    async fn promote_queued(
        &self,
        org: &OrgId,
        slot_limit: u32,
        events: Vec<NewEvent>,
    ) -> Result<Vec<SessionRecord>>;

    /// Organisations that have queued sessions.
    async fn orgs_with_queued(&self) -> Result<Vec<OrgId>>;

    /// The earliest idle deadline of any idle session.
    async fn next_idle_deadline(&self) -> Result<Option<Millis>>;

    /// Idle sessions whose deadline is at or before `now`.
    async fn due_idle_sessions(&self, now: Millis) -> Result<Vec<SessionRecord>>;

    /// A receiver of the session's changes from now on.
    fn subscribe(&self, id: SessionId) -> ChangeReceiver;
}

/// Shared handle to a store.
pub type DynStore = Arc<dyn Store>;
