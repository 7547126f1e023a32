//! The resolved request a session runs: built once at create time (catalog agent
//! expanded, overrides applied, model name checked) and stored with the session, so a
//! later change to the catalog or the config never changes a running session.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    pub agent: AgentSpec,
    /// Cap on steps (model calls) per session; `None` is no cap.
    pub max_steps: Option<u32>,
    /// Working-time budget per turn, in seconds; `None` is no budget.
    pub max_time_s: Option<f64>,
    /// How long an answered session waits idle for a follow-up; `None` ends it at its answer.
    pub idle_timeout_s: Option<u64>,
    /// IANA zone the agent is told it lives in.
    pub timezone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub name: String,
    pub description: String,
    pub instructions: Option<String>,
    /// The configured model name the agent runs on; `None` is the server's default model.
    pub model: Option<String>,
    /// JSON Schema the final answer must satisfy; `None` is free text.
    pub answer_format: Option<Value>,
    /// Tools the API client runs (`awaiting_tool_results`).
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    /// Environments as given (wire form, kind defaulted). The browser issue gives them
    /// a typed form; until then an agent with a `web` environment is refused at create.
    #[serde(default)]
    pub environments: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: Option<Value>,
}

/// Names the engine offers to every model; a client tool may not take one.
pub const BUILTIN_TOOL_NAMES: &[&str] = &["answer", "think"];
