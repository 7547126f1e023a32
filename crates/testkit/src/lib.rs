//! Test infrastructure: a scripted, OpenAI-compatible model server that stands in for a
//! model vendor in tests. It is used as a library by Rust integration tests
//! ([`ScriptedModel`]) and as the `scripted-model` binary by the Python SDK tests. It
//! listens on 127.0.0.1 only and is never part of a production build, which is why it may
//! use axum directly; it depends on no other agentd crate.
//!
//! Tests wait on conditions rather than sleeping: [`ScriptedModel::wait_for_requests`]
//! (a request has arrived) and [`ScriptedModel::wait_for_in_flight`] (a model call is being
//! answered, or no longer is, e.g. after the client abandoned it).
//!
//! # Endpoints
//! - `POST /v1/chat/completions` (also `/chat/completions`): answers from the script.
//! - `GET /v1/models`: one model, `scripted`.
//! - `GET /_requests`: JSON array of every chat request body received, in order;
//!   `DELETE /_requests` forgets them.
//! - `PUT /_script`: replaces the script (400 with the reason if it does not parse).
//! - `GET /healthz`: `ok`.
//!
//! # Script format
//! ```json
//! {"rules": [{"match": "What is 6*7", "replies": [{"tool_calls": [{"name": "answer", "arguments": {"answer": "42", "outcome": "success"}}]}]}],
//!  "default": [{"content": "I don't know"}]}
//! ```
//! A request matches the first rule whose `match` is a substring of the text of the
//! request's **first user message** (text parts joined with newlines); otherwise `default`
//! applies, and without a default the answer is a 500 saying no rule matched. The reply
//! used is `replies[k]` where **k is the number of assistant messages in the request**;
//! past the end the last reply repeats. The script is therefore stateless: it works for
//! concurrent sessions and across restarts of the agent server. `replies` and `default`
//! may also be a single reply object.
//!
//! A reply is an object with any of (unknown fields are refused):
//! - `tool_calls`: list of `{"name", "arguments": <object or string>, "id"?}`. A string is
//!   sent verbatim as the arguments (so malformed arguments can be scripted); ids default
//!   to `call_<k>_<i>`.
//! - `content`, `reasoning_content`: strings.
//! - `finish_reason`: any string; default `tool_calls` when there are tool calls, else `stop`.
//! - `usage`: `{"prompt_tokens", "completion_tokens", ...}`, default 10 and 5; other fields
//!   are passed through and `total_tokens` is filled in.
//! - `delay_ms`: wait before answering. The wait ends early when the client disconnects
//!   or the server stops.
//! - `status`: answer with this HTTP status instead, with `body` as the raw response body
//!   (a string verbatim, anything else as JSON) and an optional `retry_after` header.
//! - `raw`: a body sent as is with status 200 (a string verbatim, anything else as JSON).
//! - `echo_user: true`: an `answer` tool call whose `answer` is the text of the last user
//!   message and whose `outcome` is `success`.

mod script;
mod server;
pub mod site;

pub use server::ScriptedModel;
pub use site::{Effect, Hit, TestSite};
