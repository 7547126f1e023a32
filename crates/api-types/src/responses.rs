//! Response bodies, written from store records. Every key the SDK's models know is
//! present, `null` when there is no value: a missing required key makes the SDK raise
//! `ParsingError`, and the spec asks for nullable fields to be serialized.

use agentd_store::{EventRecord, SessionRecord};
use serde_json::{Value, json};

pub use crate::time::{format_time, parse_time};

/// `Session`: the full session object (`POST /sessions`, `GET /sessions/{id}`).
pub fn session_json(rec: &SessionRecord) -> Value {
    json!({
        "id": rec.id.to_string(),
        "request": rec.request,
        "status": status_json(rec),
        "agent_revision": null,
        "agent_view_url": null,
        "latest_answer": rec.latest_answer,
        "created_at": format_time(rec.created_at),
        "started_at": rec.started_at.map(format_time),
        "finished_at": rec.finished_at.map(format_time),
    })
}

/// `SessionStatus`: the `/status` body and `Session.status`.
pub fn status_json(rec: &SessionRecord) -> Value {
    json!({
        "status": rec.status.as_str(),
        "error": rec.error,
        "error_code": rec.error_code.map(|code| code.as_str()),
        "outcome": rec.outcome.map(|outcome| outcome.as_str()),
        "steps": rec.steps,
        "usage_per_model": list_or_empty(&rec.usage),
        "subagent_session_ids": rec.subagent_session_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "pending_tool_calls": list_or_empty(&rec.pending_tool_calls),
    })
}

/// `SessionSummary`: one item of the session list.
pub fn summary_json(rec: &SessionRecord) -> Value {
    let agent = rec
        .agent_name
        .clone()
        .or_else(|| agent_name_of_request(&rec.request));
    json!({
        "id": rec.id.to_string(),
        "agent": agent,
        "agent_revision": null,
        "status": rec.status.as_str(),
        "agent_view_url": null,
        "first_message": rec.first_message,
        "created_at": format_time(rec.created_at),
        "started_at": rec.started_at.map(format_time),
        "finished_at": rec.finished_at.map(format_time),
        "last_activity_at": format_time(rec.last_activity_at),
        "anonymized_at": null,
    })
}

/// The agent's name in a `SessionRequest`: the string, or the inline object's `name`.
fn agent_name_of_request(request: &Value) -> Option<String> {
    match request.get("agent")? {
        Value::String(name) => Some(name.clone()),
        agent => agent.get("name")?.as_str().map(str::to_owned),
    }
}

/// `SessionEvent`: `{type, timestamp, data}`.
pub fn event_json(ev: &EventRecord) -> Value {
    json!({
        "type": ev.event_type,
        "timestamp": format_time(ev.timestamp),
        "data": ev.data,
    })
}

/// `SessionChanges`: the 200 body of `/changes`. `events` start at log index
/// `first_index`; with `include_events` false they are left out (`new_events: []`).
pub fn changes_json(
    rec: &SessionRecord,
    events: &[EventRecord],
    first_index: u64,
    include_events: bool,
) -> Value {
    let new_events: Vec<Value> = if include_events {
        events.iter().map(event_json).collect()
    } else {
        Vec::new()
    };
    json!({
        "status": rec.status.as_str(),
        "started_at": rec.started_at.map(format_time),
        "finished_at": rec.finished_at.map(format_time),
        "error": rec.error,
        "error_code": rec.error_code.map(|code| code.as_str()),
        "new_events": new_events,
        "first_index": first_index,
        "answer": rec.latest_answer.as_ref().map(answer_for_changes),
        "outcome": rec.outcome.map(|outcome| outcome.as_str()),
        "metrics": metrics_json(rec),
        "pending_tool_calls": list_or_empty(&rec.pending_tool_calls),
    })
}

/// `SessionChanges.answer` must be a string or an object: the SDK fails to parse an
/// array or a scalar there, so those travel as their JSON text (which the SDK's
/// `answer_schema` validation reads as JSON anyway).
pub fn answer_for_changes(answer: &Value) -> Value {
    match answer {
        Value::String(_) | Value::Object(_) | Value::Null => answer.clone(),
        other => Value::String(other.to_string()),
    }
}

/// `Metrics`: steps and per-model usage. This server knows no prices, so every cost is
/// null (the spec's "unpriced").
fn metrics_json(rec: &SessionRecord) -> Value {
    let cost_per_model: Vec<Value> = list_or_empty(&rec.usage)
        .into_iter()
        .map(|mut usage| {
            if let Value::Object(fields) = &mut usage {
                for key in ["input_cost", "output_cost", "reasoning_cost", "total_cost"] {
                    fields.entry(key).or_insert(Value::Null);
                }
            }
            usage
        })
        .collect();
    json!({
        "steps": rec.steps,
        "cost_per_model": cost_per_model,
        "input_cost": null,
        "output_cost": null,
        "reasoning_cost": null,
        "total_cost": null,
    })
}

/// An engine-owned JSON list, or `[]` when the engine has not written one yet.
fn list_or_empty(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

/// `Page<T>`: `{items, total, page}`.
pub fn page_json(items: Vec<Value>, total: u64, page: u32) -> Value {
    json!({"items": items, "total": total, "page": page})
}

/// `QuotaStatus` for `GET /sessions/quota`: slots are counted per organisation.
pub fn quota_status_json(active: u32, limit: u32) -> Value {
    json!({
        "scope": "org",
        "limit": limit,
        "active": active,
        "available": limit.saturating_sub(active),
    })
}

#[cfg(test)]
mod tests {
    use agentd_domain::{ErrorCode, OrgId, Outcome, SessionId, SessionStatus};

    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            id: "0196a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            org_id: OrgId("acme".into()),
            status: SessionStatus::Running,
            created_at: 1_778_164_202_123,
            started_at: Some(1_778_164_203_000),
            finished_at: None,
            last_activity_at: 1_778_164_204_500,
            request: json!({"agent": {"name": "inline", "description": "d", "environments": []}}),
            spec: json!({}),
            agent_name: None,
            group_id: None,
            parent_session_id: None,
            first_message: Some(
                json!({"type": "user_message", "message": "hi", "images": [], "caller_id": "user"}),
            ),
            latest_answer: None,
            outcome: None,
            error: None,
            error_code: None,
            steps: 2,
            usage: json!([{"name": "m", "input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 0}]),
            subagent_session_ids: vec![],
            pending_tool_calls: Value::Null,
            event_count: 3,
            epoch: 0,
            force_answer: false,
            idle_deadline: None,
            loop_state: json!({}),
            shared: false,
            feedback: None,
        }
    }

    #[test]
    fn session_has_every_key() {
        let rec = record();
        assert_eq!(
            session_json(&rec),
            json!({
                "id": "0196a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b",
                "request": rec.request,
                "status": {
                    "status": "running", "error": null, "error_code": null, "outcome": null, "steps": 2,
                    "usage_per_model": [{"name": "m", "input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 0}],
                    "subagent_session_ids": [], "pending_tool_calls": [],
                },
                "agent_revision": null,
                "agent_view_url": null,
                "latest_answer": null,
                "created_at": "2026-05-07T14:30:02.123Z",
                "started_at": "2026-05-07T14:30:03.000Z",
                "finished_at": null,
            })
        );
    }

    #[test]
    fn failed_status_carries_its_error() {
        let child = SessionId::new();
        let mut rec = record();
        rec.status = SessionStatus::Failed;
        rec.error = Some("The agent stopped without an answer.".into());
        rec.error_code = Some(ErrorCode::NoAnswer);
        rec.subagent_session_ids = vec![child];
        rec.pending_tool_calls = json!([{"tool_name": "t", "args": {}, "id": "1"}]);
        let status = status_json(&rec);
        assert_eq!(status["status"], "failed");
        assert_eq!(status["error_code"], "no_answer");
        assert_eq!(status["error"], "The agent stopped without an answer.");
        assert_eq!(status["subagent_session_ids"], json!([child.to_string()]));
        assert_eq!(status["pending_tool_calls"][0]["id"], "1");
    }

    #[test]
    fn summary_names_the_agent() {
        let mut rec = record();
        let summary = summary_json(&rec);
        assert_eq!(summary["agent"], "inline");
        assert_eq!(summary["status"], "running");
        assert_eq!(summary["first_message"]["message"], "hi");
        assert_eq!(summary["last_activity_at"], "2026-05-07T14:30:04.500Z");
        for key in [
            "agent_revision",
            "agent_view_url",
            "finished_at",
            "anonymized_at",
        ] {
            assert_eq!(summary[key], Value::Null, "{key}");
            assert!(summary.get(key).is_some(), "{key} present");
        }
        rec.agent_name = Some("h/web-surfer".into());
        assert_eq!(summary_json(&rec)["agent"], "h/web-surfer");
        rec.agent_name = None;
        rec.request = json!({"agent": "h/x"});
        assert_eq!(summary_json(&rec)["agent"], "h/x");
    }

    #[test]
    fn events_have_type_timestamp_and_data() {
        let ev = EventRecord {
            index: 0,
            event_type: "RequestStartEvent".into(),
            data: json!({}),
            timestamp: 0,
        };
        assert_eq!(
            event_json(&ev),
            json!({"type": "RequestStartEvent", "timestamp": "1970-01-01T00:00:00.000Z", "data": {}})
        );
    }

    #[test]
    fn changes_carry_events_answer_and_metrics() {
        let mut rec = record();
        rec.status = SessionStatus::Completed;
        rec.finished_at = Some(1_778_164_205_000);
        rec.latest_answer = Some(json!({"city": "Paris"}));
        rec.outcome = Some(Outcome::Success);
        let events = [
            EventRecord {
                index: 2,
                event_type: "AgentEvent".into(),
                data: json!({"kind": "answer_event"}),
                timestamp: 1,
            },
            EventRecord {
                index: 3,
                event_type: "AgentCompletionEvent".into(),
                data: json!({"reason": "finished"}),
                timestamp: 2,
            },
        ];
        let changes = changes_json(&rec, &events, 2, true);
        assert_eq!(changes["status"], "completed");
        assert_eq!(changes["first_index"], 2);
        assert_eq!(changes["new_events"].as_array().unwrap().len(), 2);
        assert_eq!(changes["new_events"][1]["type"], "AgentCompletionEvent");
        assert_eq!(changes["answer"], json!({"city": "Paris"}));
        assert_eq!(changes["outcome"], "success");
        assert_eq!(changes["finished_at"], "2026-05-07T14:30:05.000Z");
        assert_eq!(changes["pending_tool_calls"], json!([]));
        assert_eq!(
            changes["metrics"],
            json!({
                "steps": 2,
                "cost_per_model": [{"name": "m", "input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 0,
                    "input_cost": null, "output_cost": null, "reasoning_cost": null, "total_cost": null}],
                "input_cost": null, "output_cost": null, "reasoning_cost": null, "total_cost": null,
            })
        );
        for key in ["error", "error_code"] {
            assert_eq!(changes.get(key), Some(&Value::Null), "{key}");
        }

        let without = changes_json(&rec, &events, 0, false);
        assert_eq!(without["new_events"], json!([]));
        assert_eq!(without["first_index"], 0);
        assert_eq!(without["answer"], json!({"city": "Paris"}));
    }

    #[test]
    fn answers_that_are_not_strings_or_objects_travel_as_json_text() {
        let cases = [
            (json!("42"), json!("42")),
            (json!({"a": 1}), json!({"a": 1})),
            (json!([1, 2]), json!("[1,2]")),
            (json!(42), json!("42")),
            (json!(1.5), json!("1.5")),
            (json!(true), json!("true")),
            (Value::Null, Value::Null),
        ];
        for (answer, sent) in cases {
            assert_eq!(answer_for_changes(&answer), sent, "{answer}");
            let mut rec = record();
            rec.latest_answer = Some(answer.clone());
            assert_eq!(changes_json(&rec, &[], 0, false)["answer"], sent);
            // Session.latest_answer keeps the answer as it is.
            assert_eq!(session_json(&rec)["latest_answer"], answer);
        }
    }

    #[test]
    fn pages_and_quota() {
        assert_eq!(
            page_json(vec![json!(1)], 7, 2),
            json!({"items": [1], "total": 7, "page": 2})
        );
        assert_eq!(
            quota_status_json(3, 10),
            json!({"scope": "org", "limit": 10, "active": 3, "available": 7})
        );
        assert_eq!(quota_status_json(4, 3)["available"], 0);
    }
}
