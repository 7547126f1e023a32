//! The session engine. It owns what a session does over time:
//! - [`Engine`]: the entry points the API calls: create a session, apply a control
//!   (message, pause, resume, force_answer, cancel, tool results), long-poll changes.
//! - [`scheduler`]: which sessions have a runner, recovery after a restart, the idle
//!   timer, and starting queued sessions as slots free.
//! - [`agent_loop`]: one session's runner: observe, ask the model, act, record.
//! - [`conversation`]: the model's context, rebuilt from the session's event log.
//!
//! # How state flows
//! The store is the only state. A control is decided from the session row
//! ([`agentd_domain::status::decide_control`]) and recorded in one guarded commit with
//! its events before the API answers 2xx, so an accepted control survives a crash.
//! Controls that must stop in-flight work bump the session's epoch; a runner commits a
//! step only while the epoch it started with holds, and watches the session's change
//! feed to abandon a model call the moment the epoch moves (pause and cancel act within
//! milliseconds, not at the next step).
//!
//! A runner wakes when the scheduler is asked to run its session (create, resume,
//! message to an idle session, tool results, recovery at start) and exits when the
//! session is no longer runnable (paused, idle, awaiting tool results, ended).

pub mod agent_loop;
pub mod answer_format;
mod config;
mod controls;
pub mod conversation;
mod error;
mod loop_state;
pub mod retention;
pub mod scheduler;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use agentd_domain::time::now_ms;
use agentd_domain::{NewEvent, OrgId, SessionId, SessionSpec, events};
use agentd_environment::Environments;
use agentd_model_client::ModelClient;
use agentd_store::{
    Admission, BlobStore, CreateOutcome, DynStore, EventRecord, IdempotencyKey, NewSession,
    SessionRecord,
};
use serde_json::{Value, json};

pub use config::EngineConfig;
pub use controls::{ToolResultIn, ToolResultOutcome};
pub use error::EngineError;

/// A session to create, already parsed and validated against the wire format.
#[derive(Clone, Debug)]
pub struct CreateSession {
    pub spec: SessionSpec,
    /// The resolved request as `Session.request` echoes it.
    pub request_echo: Value,
    pub agent_name: Option<String>,
    pub group_id: Option<String>,
    pub parent_session_id: Option<SessionId>,
    pub messages: Vec<MessageIn>,
    /// `SessionSummary.first_message`.
    pub first_message: Option<Value>,
    pub queue: bool,
}

/// A message to the agent: who sent it and its content (strings and image objects).
#[derive(Clone, Debug)]
pub struct MessageIn {
    pub caller_id: String,
    pub content: Vec<Value>,
}

impl MessageIn {
    fn event(&self) -> NewEvent {
        events::message(&self.caller_id, self.content.clone())
    }

    fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What `/changes` answers when something is new: the session as of the events'
/// commit (or later) and the events from `first_index`.
#[derive(Debug)]
pub struct ChangesPage {
    pub session: SessionRecord,
    pub first_index: u64,
    pub events: Vec<EventRecord>,
}

/// What a node needs to run `web` environments.
#[derive(Clone)]
pub struct WebParts {
    pub environments: Arc<dyn Environments>,
    /// Where screenshots are stored as session resources.
    pub blobs: Arc<dyn BlobStore>,
    /// The server's public base URL: observations link screenshots by absolute URL.
    pub public_url: String,
}

pub struct Engine {
    store: DynStore,
    config: Arc<EngineConfig>,
    scheduler: scheduler::Scheduler,
}

impl Engine {
    pub fn new(store: DynStore, config: EngineConfig, web: Option<WebParts>) -> Arc<Self> {
        let config = Arc::new(config);
        let scheduler =
            scheduler::Scheduler::new(store.clone(), config.clone(), ModelClient::new(), web);
        Arc::new(Self {
            store,
            config,
            scheduler,
        })
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Resumes what was under way before the last stop and starts the background tasks.
    pub async fn start(&self) -> Result<(), EngineError> {
        self.scheduler.start().await
    }

    /// Stops every runner and background task; in-flight steps are abandoned unrecorded
    /// and redone by the next start.
    pub async fn shutdown(&self) {
        self.scheduler.shutdown().await;
    }

    /// Whether a model with this name is configured.
    pub fn has_model(&self, name: &str) -> bool {
        self.config.model(Some(name)).is_some()
    }

    pub async fn create_session(
        &self,
        org: &OrgId,
        create: CreateSession,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<CreateOutcome, EngineError> {
        let now = now_ms();
        let mut initial = vec![events::request_start()];
        initial.extend(create.messages.iter().map(MessageIn::event));
        let search_text = create
            .messages
            .first()
            .map(MessageIn::text)
            .unwrap_or_default();
        let is_child = create.parent_session_id.is_some();
        let new = NewSession {
            id: SessionId::new(),
            org_id: org.clone(),
            created_at: now,
            request: create.request_echo,
            spec: serde_json::to_value(&create.spec)
                .map_err(|e| EngineError::Store(format!("spec serialization: {e}")))?,
            agent_name: create.agent_name,
            group_id: create.group_id,
            parent_session_id: create.parent_session_id,
            first_message: create.first_message,
            search_text,
            events: initial,
            queued_events: vec![delayed_start("queued")],
        };
        let admission = Admission {
            slot_limit: self.config.slot_limit,
            // Children never queue: a child waiting behind its own parent's slot would
            // wait forever.
            queue: create.queue && !is_child,
            max_queued: self.config.max_queued,
        };
        let outcome = self
            .store
            .create_session(new, admission, idempotency)
            .await?;
        if let CreateOutcome::Created(record) = &outcome {
            metrics::counter!("agentd_sessions_created_total", "status" => record.status.as_str())
                .increment(1);
            tracing::info!(session_id = %record.id, status = record.status.as_str(), "session created");
            if record.status.is_runnable() {
                self.scheduler.ensure_running(record.id);
            }
        }
        Ok(outcome)
    }

    pub async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, EngineError> {
        Ok(self.store.get_session(id).await?)
    }

    /// The long-poll behind `/changes`: answers at once when the log has events past
    /// `from_index`, else waits up to `wait` for one. `None` is "nothing new" (204).
    pub async fn changes(
        &self,
        id: SessionId,
        from_index: u64,
        limit: Option<u64>,
        wait: Duration,
    ) -> Result<Option<ChangesPage>, EngineError> {
        // Subscribe before reading, so an event committed between the read and the wait
        // still wakes this poll.
        let mut feed = self.store.subscribe(id);
        let session = self
            .store
            .get_session(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if session.event_count > from_index {
            return Ok(Some(self.read_changes(id, from_index, limit).await?));
        }
        if session.status.is_terminal() || wait.is_zero() {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + wait.min(self.config.max_long_poll);
        loop {
            tokio::select! {
                changed = feed.changed() => {
                    if changed.is_err() {
                        // The feed closed (store shutting down): answer from the store.
                        return Ok(None);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                // Shutting down: release the poll, the client asks again elsewhere.
                _ = self.scheduler.stopping() => return Ok(None),
            }
            let Some(change) = feed.borrow_and_update().clone() else {
                continue;
            };
            let count = change.session.event_count;
            if count <= from_index {
                continue;
            }
            let first_in_change = count - change.events.len() as u64;
            if first_in_change <= from_index {
                // The commit that woke us carries the events asked for, and the session
                // as of those events: answer without reading the store.
                let skip = (from_index - first_in_change) as usize;
                let take = limit.map_or(usize::MAX, |l| l as usize);
                let events = change
                    .events
                    .iter()
                    .skip(skip)
                    .take(take)
                    .cloned()
                    .collect();
                metrics::histogram!("agentd_changes_wake_seconds")
                    .record(change.published.elapsed().as_secs_f64());
                return Ok(Some(ChangesPage {
                    session: change.session.clone(),
                    first_index: from_index,
                    events,
                }));
            }
            return Ok(Some(self.read_changes(id, from_index, limit).await?));
        }
    }

    /// Events first, then the session: the session read afterwards is at least as new
    /// as the events, so a page that carries the answer event also carries the answer.
    async fn read_changes(
        &self,
        id: SessionId,
        from_index: u64,
        limit: Option<u64>,
    ) -> Result<ChangesPage, EngineError> {
        let events = self.store.events(id, from_index, limit).await?;
        let session = self
            .store
            .get_session(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        Ok(ChangesPage {
            session,
            first_index: from_index,
            events,
        })
    }
}

/// Logged when a session is queued and when it leaves the queue.
fn delayed_start(status: &str) -> NewEvent {
    NewEvent {
        event_type: "DelayAgentStartEvent",
        data: json!({"status": status}),
    }
}
