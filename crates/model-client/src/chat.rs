//! The conversation vocabulary the agent loop speaks with this crate: messages, tools, the
//! request and the parsed response. These are provider-neutral; the OpenAI wire shapes
//! live in `wire_request` and `wire_response`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChatMessage {
    System(String),
    User(Vec<ContentPart>),
    /// A previous model reply; `tool_calls` are sent back with the arguments they had.
    Assistant {
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    /// The result of the tool call with id `tool_call_id`.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    /// A user message made of one text part.
    pub fn user_text(text: impl Into<String>) -> ChatMessage {
        ChatMessage::User(vec![ContentPart::Text(text.into())])
    }
}

/// A part of a user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContentPart {
    Text(String),
    /// A `data:` URI or an http(s) URL. Sent as given: the caller decides whether a model
    /// sees images (see [`crate::ModelEndpoint::vision`]).
    ImageUrl(String),
}

/// A function tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolChoice {
    #[default]
    Auto,
    Required,
    /// The model must call this tool.
    Function(String),
}

/// One model call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// When empty, neither `tools` nor `tool_choice` is sent.
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Unique within the conversation; generated (`call_<n>`) when the model gave none.
    pub id: String,
    pub name: String,
    /// Usually an object. Arguments that were not valid JSON are kept verbatim as
    /// `Value::String` so the caller can tell the model what was wrong with them; such a
    /// string is sent back verbatim when the call is replayed in the conversation.
    pub arguments: Value,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The text of the reply, without any tool call that was written in it; `None` when
    /// empty.
    pub content: Option<String>,
    /// The model's reasoning, from `reasoning_content`, `reasoning`, thinking parts or a
    /// leading `<think>` block.
    pub reasoning_content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// As sent by the server (any string); `None` when missing, null or empty.
    pub finish_reason: Option<String>,
    pub usage: Usage,
}

/// Token counts of one call (zeros when the server reports none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Part of `output_tokens` spent on reasoning, when reported.
    pub reasoning_tokens: u64,
    /// Part of `input_tokens` served from the provider's prompt cache, when reported.
    pub cached_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
    }
}
