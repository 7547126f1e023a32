//! Constructors for the events the engine appends to a session's log. An event is a
//! `type` and a `data` object; the store adds the index and the timestamp when it
//! commits. Every status transition has its event, so a long-poll wakes on it.

use serde_json::{Value, json};

use crate::status::{ErrorCode, Outcome};

#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub data: Value,
}

impl NewEvent {
    fn new(event_type: &'static str, data: Value) -> Self {
        Self { event_type, data }
    }
}

pub fn request_start() -> NewEvent {
    NewEvent::new("RequestStartEvent", json!({}))
}

pub fn request_start_dispatched() -> NewEvent {
    NewEvent::new(
        "RequestStartDispatchedEvent",
        json!({"status": "dispatched"}),
    )
}

pub fn agent_started() -> NewEvent {
    NewEvent::new("AgentStartedEvent", json!({}))
}

/// A message to the agent; `content` items are strings or ImageContent objects.
pub fn message(caller_id: &str, content: Vec<Value>) -> NewEvent {
    agent_event(json!({"kind": "message_event", "caller_id": caller_id, "content": content}))
}

pub fn policy(
    content: Option<&str>,
    reasoning_content: Option<&str>,
    tool_reqs: Vec<Value>,
    validation_errors: Vec<String>,
) -> NewEvent {
    agent_event(json!({
        "kind": "policy_event",
        "content": content,
        "reasoning_content": reasoning_content,
        "tool_reqs": tool_reqs,
        "validation_errors": validation_errors,
    }))
}

pub fn tool_result(tool_req: Value, result: Value) -> NewEvent {
    agent_event(json!({"kind": "tool_result", "tool_req": tool_req, "result": result}))
}

pub fn error_event(error: &str, origin: &str, tool_req: Option<Value>) -> NewEvent {
    agent_event(
        json!({"kind": "error_event", "error": error, "origin": origin, "tool_req": tool_req}),
    )
}

pub fn flow(flow: &str, origin: &str) -> NewEvent {
    agent_event(json!({"kind": "flow_event", "flow": flow, "origin": origin}))
}

pub fn answer(answer: Value, outcome: Outcome) -> NewEvent {
    agent_event(json!({"kind": "answer_event", "answer": answer, "outcome": outcome.as_str()}))
}

pub fn active_state(state: &str, pending_tool_calls: Option<Value>) -> NewEvent {
    let mut data = json!({"state": state});
    if let Some(calls) = pending_tool_calls {
        data["pending_tool_calls"] = calls;
    }
    NewEvent::new("ActiveStateChangeEvent", data)
}

pub fn run_status(status: &str) -> NewEvent {
    NewEvent::new("AgentRunStatusChangeEvent", json!({"status": status}))
}

pub fn completion(reason: &str) -> NewEvent {
    NewEvent::new("AgentCompletionEvent", json!({"reason": reason}))
}

pub fn agent_error(error: &str, code: ErrorCode) -> NewEvent {
    NewEvent::new(
        "AgentErrorEvent",
        json!({"error": error, "trace": "", "info": {"error_code": code.as_str()}}),
    )
}

pub fn metrics(metrics: Value) -> NewEvent {
    NewEvent::new("MetricsUpdateEvent", json!({"metrics": metrics}))
}

fn agent_event(data: Value) -> NewEvent {
    NewEvent::new("AgentEvent", data)
}

/// What the agent perceived at the start of a step; `image` is the screenshot's
/// absolute resource URL.
pub fn observation(kind: &str, text: &str, image: Option<&str>, metadata: Value) -> NewEvent {
    let image = image.map(|url| json!({"type": "url", "source": url, "media_type": "image/jpeg"}));
    agent_event(json!({
        "kind": "observation_event",
        "type": kind,
        "text": text,
        "image": image,
        "metadata": metadata,
    }))
}
