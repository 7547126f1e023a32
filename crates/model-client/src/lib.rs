//! The model client: calls an OpenAI-compatible Chat Completions endpoint for the agent
//! loop and turns whatever the server answers into a [`ChatResponse`].
//!
//! It owns the wire format (no other crate builds or reads Chat Completions JSON), the
//! tolerance for "OpenAI-compatible" servers that differ in the details (vLLM, Ollama,
//! llama.cpp, LM Studio, gateways), and the call policy: a timeout per attempt and bounded
//! retries with backoff on transient failures. Failures come back as [`ModelError`]s whose
//! message names the model and the cause, fit to show a user.
//!
//! # Layout
//! - [`chat`]: the provider-neutral vocabulary: [`ChatMessage`], [`ChatRequest`],
//!   [`ChatResponse`], [`ToolCall`], [`Usage`].
//! - [`endpoint`]: [`ModelEndpoint`], where a model lives and how patiently to call it.
//! - `client`: [`ModelClient`], the HTTP calls and retry loop.
//! - `wire_request` / `wire_response`: the request body and the lenient response reader.
//! - `tool_calls`: argument normalisation, tool calls written in the text, unique ids.
//! - `retry`: backoff delays and `Retry-After`.
//! - [`error`]: [`ModelError`], with the retryable/permanent split.
//!
//! Architecture invariant: this crate knows nothing of sessions, steps or the tools'
//! meaning; it neither decides which tools are offered nor whether a model sees images.
//! The API key never reaches a log line or a `Debug` output.

pub mod chat;
mod client;
pub mod endpoint;
pub mod error;
mod retry;
mod tool_calls;
mod wire_request;
mod wire_response;

pub use chat::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, ToolCall, ToolChoice, ToolSpec, Usage,
};
pub use client::ModelClient;
pub use endpoint::ModelEndpoint;
pub use error::ModelError;
