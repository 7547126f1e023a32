//! The contract between the agent loop and an environment (`agent-harness.md` §3–§5).
//!
//! The engine knows environments only through [`Environments`]: which tools a spec
//! offers the model, what the agent perceives before each step, and how a tool call is
//! carried out. The browser crate implements it; the engine never sees the protocol
//! behind it. Live environments are keyed by session and outlive a runner (a paused or
//! idle session keeps its browser), while everything needed to rebuild one after a
//! restart (the last URL) is in the session's event log, not in the environment.

use agentd_domain::{SessionId, WebSpec};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// A tool the environment offers the model, as an OpenAI function tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// What the agent perceives at the start of a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `observation_event.type`: `web` or `textual_web`.
    pub kind: &'static str,
    pub screenshot: Option<Screenshot>,
    /// Shown to the model as text: the URL, title, tabs, and Markdown when asked for.
    pub text: String,
    /// `observation_event.metadata`.
    pub metadata: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Screenshot {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

/// How [`Environments::open`] found the session's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// It was live already.
    Live,
    /// It was provisioned for the first time, at the spec's start URL.
    Fresh,
    /// The live one was gone (a restart of the server or of the browser); a new one
    /// was opened at the session's last URL, and the model must be told.
    Restored { url: String },
}

/// The result of one tool call: what goes back to the model.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionResult {
    Done(Value),
    /// The action failed in a way the model can act on (no element, a refused
    /// address, a navigation error). It never fails the session by itself.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// The environment cannot be provided at all (the browser does not start).
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Environments: Send + Sync + 'static {
    /// The tools a web environment of this spec offers, besides the engine's own.
    fn web_tools(&self, spec: &WebSpec) -> Vec<ToolSpec>;

    /// Makes sure the session has a live environment. `last_url` is where the event log
    /// says the session's browser last was, used when the live one is gone.
    async fn open(
        &self,
        session: SessionId,
        spec: &WebSpec,
        last_url: Option<&str>,
    ) -> Result<Opened, EnvironmentError>;

    /// What the session's environment shows now. Opens it first if needed.
    async fn observe(&self, session: SessionId) -> Result<Observation, EnvironmentError>;

    /// Carries out one tool call of [`Environments::web_tools`].
    async fn act(
        &self,
        session: SessionId,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<ActionResult, EnvironmentError>;

    /// The address the session's browser shows now, if it has a live one.
    async fn location(&self, session: SessionId) -> Option<String>;

    /// Releases the session's environment; a no-op when it has none.
    async fn close(&self, session: SessionId);
}
