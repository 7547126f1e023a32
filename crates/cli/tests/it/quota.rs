//! The concurrency quota: queueing, release in creation order, refusal with 429, the
//! quota endpoint, and cancelling a queued session.

use serde_json::{Value, json};

use crate::common::{Options, Server, answer, script};
use crate::helpers::{agent_with_tools, id_of, send_json};

/// A server with one slot. Every session calls the custom tool `hold` and waits for
/// its result, so it keeps its slot until the test answers.
async fn one_slot_server() -> Server {
    let server = Server::start_with(Options {
        env: vec![("AGENTD_MAX_CONCURRENT_SESSIONS", "1".to_string())],
        ..Default::default()
    })
    .await;
    script(
        &server,
        "hold the slot",
        vec![
            json!({"tool_calls": [{"name": "hold", "arguments": {"q": "x"}, "id": "hold_1"}]}),
            answer("released"),
        ],
    );
    server
}

fn holder() -> Value {
    json!({"agent": agent_with_tools("holder", &["hold"]), "messages": "hold the slot"})
}

async fn release(server: &Server, id: &str) {
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/tool_results"),
            Some(json!({"tool_req": {"tool_name": "hold", "args": {"q": "x"}, "id": "hold_1"}, "result": "ok"})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    server.wait_for(id, "completed").await;
}

async fn quota(server: &Server) -> Value {
    let (code, quota) = server.call("GET", "/api/v2/sessions/quota", None).await;
    assert_eq!(code, 200, "{quota}");
    quota
}

fn delays(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "DelayAgentStartEvent")
        .map(|e| e["data"]["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn started(events: &[Value]) -> bool {
    events.iter().any(|e| e["type"] == "AgentStartedEvent")
}

#[tokio::test]
async fn queued_sessions_start_oldest_first_as_slots_free_up() {
    let server = one_slot_server().await;
    assert_eq!(
        quota(&server).await,
        json!({"scope": "org", "limit": 1, "active": 0, "available": 1})
    );
    let first = id_of(&server.create(holder()).await);
    server.wait_for(&first, "awaiting_tool_results").await;
    assert_eq!(
        quota(&server).await,
        json!({"scope": "org", "limit": 1, "active": 1, "available": 0})
    );

    let second = server.create(holder()).await;
    assert_eq!(second["status"]["status"], "queued");
    let second = id_of(&second);
    let third = server.create(holder()).await;
    assert_eq!(third["status"]["status"], "queued");
    let third = id_of(&third);
    // Queued sessions hold no slot.
    assert_eq!(quota(&server).await["active"], 1);
    let events = server.events(&second).await;
    assert_eq!(delays(&events), ["queued"]);
    assert!(!started(&events));

    release(&server, &first).await;
    // The oldest queued session takes the slot; the other keeps waiting.
    server.wait_for(&second, "awaiting_tool_results").await;
    assert_eq!(server.status(&third).await["status"], "queued");
    assert_eq!(
        delays(&server.events(&second).await),
        ["queued", "released"]
    );
    assert_eq!(quota(&server).await["active"], 1);

    release(&server, &second).await;
    server.wait_for(&third, "awaiting_tool_results").await;
    release(&server, &third).await;
    assert_eq!(
        quota(&server).await,
        json!({"scope": "org", "limit": 1, "active": 0, "available": 1})
    );
    let events = server.events(&third).await;
    assert_eq!(delays(&events), ["queued", "released"]);
    assert!(started(&events));
}

#[tokio::test]
async fn queue_false_at_the_limit_is_a_429_quota_error() {
    let server = one_slot_server().await;
    let first = id_of(&server.create(holder()).await);
    server.wait_for(&first, "awaiting_tool_results").await;

    let mut body = holder();
    body["queue"] = json!(false);
    let reply = send_json(&server, "POST", "/api/v2/sessions", &[], &body).await;
    assert_eq!(reply.status, 429, "{}", reply.raw);
    let retry_after: u64 = reply
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!(retry_after > 0);
    assert_eq!(reply.body["message"], "Concurrent session limit reached");
    let detail = reply.body["detail"].as_array().expect("a detail list");
    assert_eq!(detail.len(), 1);
    assert_eq!(detail[0]["type"], "plan_limit");
    assert_eq!(detail[0]["scope"], "org");
    assert_eq!(detail[0]["message"], "1/1 sessions active");
    // Nothing was created.
    let (_, list) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(list["total"], 1);

    // With the slot free, the same request is created and runs.
    release(&server, &first).await;
    let reply = send_json(&server, "POST", "/api/v2/sessions", &[], &body).await;
    assert_eq!(reply.status, 201, "{}", reply.raw);
    assert_eq!(reply.body["status"]["status"], "pending");
}

#[tokio::test]
async fn a_cancelled_queued_session_is_interrupted_and_never_starts() {
    let server = one_slot_server().await;
    let first = id_of(&server.create(holder()).await);
    server.wait_for(&first, "awaiting_tool_results").await;
    let doomed = id_of(&server.create(holder()).await);
    let next = id_of(&server.create(holder()).await);
    assert_eq!(server.status(&doomed).await["status"], "queued");

    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{doomed}"), None)
        .await;
    assert_eq!(code, 204);
    assert_eq!(server.status(&doomed).await["status"], "interrupted");

    // The slot goes to the next queued session, not to the cancelled one.
    release(&server, &first).await;
    server.wait_for(&next, "awaiting_tool_results").await;
    release(&server, &next).await;
    let status = server.status(&doomed).await;
    assert_eq!(status["status"], "interrupted");
    assert_eq!(status["steps"], 0);
    let events = server.events(&doomed).await;
    assert!(!started(&events), "{events:?}");
    assert_eq!(delays(&events), ["queued"]);
    assert_eq!(events.last().unwrap()["data"]["reason"], "stopped");
    // Two sessions ran, two model calls each.
    assert_eq!(server.model.request_count(), 4);
}

#[tokio::test]
async fn a_full_queue_and_a_restart_without_a_slot_are_429s() {
    let server = Server::start_with(Options {
        env: vec![("AGENTD_MAX_CONCURRENT_SESSIONS", "1".to_string())],
        config: Some("max_queued_sessions = 1\n".to_string()),
    })
    .await;
    script(
        &server,
        "hold the slot",
        vec![json!({"tool_calls": [{"name": "hold", "arguments": {"q": "x"}, "id": "hold_1"}]})],
    );
    script(&server, "quick one", vec![answer("quick")]);
    let done = id_of(
        &server
            .create(json!({"agent": agent_with_tools("q", &["hold"]), "messages": "quick one"}))
            .await,
    );
    server.wait_for(&done, "completed").await;
    let holder_id = id_of(&server.create(holder()).await);
    server.wait_for(&holder_id, "awaiting_tool_results").await;
    let queued = server.create(holder()).await;
    assert_eq!(queued["status"]["status"], "queued");

    // The one queue place is taken.
    let reply = send_json(&server, "POST", "/api/v2/sessions", &[], &holder()).await;
    assert_eq!(reply.status, 429, "{}", reply.raw);
    assert!(reply.header("retry-after").is_some());
    assert_eq!(reply.body["detail"][0]["type"], "queue_full");
    assert_eq!(reply.body["detail"][0]["scope"], "org");
    assert!(reply.body["message"].is_string());

    // Restarting the completed session needs a slot: refused, and the session stays as
    // it was.
    let count = server.event_count(&done).await;
    let reply = send_json(
        &server,
        "POST",
        &format!("/api/v2/sessions/{done}/messages"),
        &[],
        &json!({"message": "again please"}),
    )
    .await;
    assert_eq!(reply.status, 429, "{}", reply.raw);
    assert!(reply.header("retry-after").is_some());
    assert_eq!(reply.body["detail"][0]["type"], "plan_limit");
    assert_eq!(reply.body["detail"][0]["message"], "1/1 sessions active");
    assert_eq!(server.status(&done).await["status"], "completed");
    assert_eq!(server.event_count(&done).await, count);
    let (_, list) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(list["total"], 3);

    // Cancelling the queued session gives its queue place back.
    let (code, _) = server
        .call(
            "DELETE",
            &format!("/api/v2/sessions/{}", id_of(&queued)),
            None,
        )
        .await;
    assert_eq!(code, 204);
    let requeued = server.create(holder()).await;
    assert_eq!(requeued["status"]["status"], "queued");
}

#[tokio::test]
async fn a_message_sent_while_queued_is_in_the_first_model_request() {
    let server = one_slot_server().await;
    let first = id_of(&server.create(holder()).await);
    server.wait_for(&first, "awaiting_tool_results").await;
    let queued = id_of(&server.create(holder()).await);
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{queued}/messages"),
            Some(json!({"message": "also mind the gap"})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(server.status(&queued).await["status"], "queued");
    assert_eq!(server.model.request_count(), 1);

    release(&server, &first).await;
    server.wait_for(&queued, "awaiting_tool_results").await;
    let requests = server.model.requests();
    let first_of_queued = requests[2]["messages"].to_string();
    assert!(
        first_of_queued.contains("hold the slot") && first_of_queued.contains("also mind the gap"),
        "{first_of_queued}"
    );
}
