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
    /// Minutes after the session's finish at which its screenshots are deleted.
    #[serde(default)]
    pub delete_screenshot_after_min: Option<u64>,
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
    /// The environments the agent acts in, resolved from the request (legacy shapes
    /// normalised, defaults filled). At most one per kind.
    #[serde(default)]
    pub environments: Vec<EnvironmentSpec>,
}

impl AgentSpec {
    /// The agent's browser, if it has one.
    pub fn web(&self) -> Option<&WebSpec> {
        self.environments
            .iter()
            .map(|e| match e {
                EnvironmentSpec::Web(web) => web,
            })
            .next()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvironmentSpec {
    Web(WebSpec),
}

/// A `web` environment: a browser context of the node's Chromium.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebSpec {
    /// The catalog id the request gave (`id`), kept for the logs and the echo.
    pub id: Option<String>,
    /// The first page; `None` opens `about:blank`.
    pub start_url: Option<String>,
    pub headless: bool,
    pub mode: BrowserMode,
    /// Seconds to let the page settle after each page action.
    pub settle_s: Option<f64>,
    /// Provision on first use and skip the initial observation.
    pub lazy: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrowserMode {
    /// Screenshots and coordinate actions in a `width` x `height` CSS-pixel viewport;
    /// `markdown` adds the visible text to each observation.
    Visual {
        width: u32,
        height: u32,
        markdown: bool,
    },
    /// Read-only Markdown of the page, `chunk_size` characters a chunk.
    Text { chunk_size: u32 },
}

impl BrowserMode {
    pub const DEFAULT_WIDTH: u32 = 1280;
    pub const DEFAULT_HEIGHT: u32 = 720;
    pub const DEFAULT_CHUNK_SIZE: u32 = 20_000;

    /// The viewport in CSS pixels; text mode browses at the default size.
    pub fn viewport(&self) -> (u32, u32) {
        match *self {
            BrowserMode::Visual { width, height, .. } => (width, height),
            BrowserMode::Text { .. } => (Self::DEFAULT_WIDTH, Self::DEFAULT_HEIGHT),
        }
    }
}

impl Default for BrowserMode {
    fn default() -> Self {
        BrowserMode::Visual {
            width: Self::DEFAULT_WIDTH,
            height: Self::DEFAULT_HEIGHT,
            markdown: false,
        }
    }
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
