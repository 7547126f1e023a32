//! `POST .../tool_results`: batches, partial results, duplicates, and what is refused.

use serde_json::{Value, json};

use crate::common::{Server, answer, script, think};
use crate::helpers::{agent_with_tools, assert_422_at, id_of, of_kind, wait_model_requests};

/// A session whose agent called `lookup` (id `call_a`) and `fetch` (id `call_b`) and
/// waits for both results.
async fn two_pending_calls(marker: &str) -> (Server, String) {
    let server = Server::start().await;
    script(
        &server,
        marker,
        vec![
            json!({"tool_calls": [
                {"name": "lookup", "arguments": {"q": "first"}, "id": "call_a"},
                {"name": "fetch", "arguments": {"q": "second"}, "id": "call_b"},
            ]}),
            answer("both answered"),
        ],
    );
    let session = server
        .create(
            json!({"agent": agent_with_tools("tooler", &["lookup", "fetch"]), "messages": marker}),
        )
        .await;
    let id = id_of(&session);
    let status = server.wait_for(&id, "awaiting_tool_results").await;
    let pending: Vec<&str> = status["pending_tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| call["id"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["call_a", "call_b"], "{status}");
    (server, id)
}

fn result(tool: &str, q: &str, id: &str, value: Value) -> Value {
    json!({"kind": "tool_result", "tool_req": {"tool_name": tool, "args": {"q": q}, "id": id}, "result": value})
}

async fn post_results(server: &Server, id: &str, body: Value) -> (u16, Value) {
    server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/tool_results"),
            Some(body),
        )
        .await
}

fn results_for(events: &[Value], call_id: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["type"] == "AgentEvent"
                && matches!(
                    e["data"]["kind"].as_str(),
                    Some("tool_result" | "error_event")
                )
                && e["data"]["tool_req"]["id"] == call_id
        })
        .count()
}

#[tokio::test]
async fn a_batch_answers_both_pending_calls() {
    let (server, id) = two_pending_calls("batch both").await;
    let (code, body) = post_results(
        &server,
        &id,
        json!({"type": "batch", "results": [
            result("lookup", "first", "call_a", json!({"found": 1})),
            {"kind": "error_event", "error": "fetch is down", "origin": "client",
             "tool_req": {"tool_name": "fetch", "args": {"q": "second"}, "id": "call_b"}},
        ]}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let status = server.wait_for(&id, "completed").await;
    assert_eq!(status["pending_tool_calls"], json!([]));
    let events = server.events(&id).await;
    let results = of_kind(&events, "tool_result");
    let custom: Vec<&&Value> = results
        .iter()
        .filter(|e| e["data"]["tool_req"]["id"] == "call_a")
        .collect();
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0]["data"]["result"], json!({"found": 1}));
    let errors = of_kind(&events, "error_event");
    assert!(
        errors
            .iter()
            .any(|e| e["data"]["error"] == "fetch is down"
                && e["data"]["tool_req"]["id"] == "call_b"),
        "{errors:?}"
    );
    let second = server.model.requests()[1]["messages"].to_string();
    assert!(
        second.contains("\"tool_call_id\":\"call_a\"")
            && second.contains("\"tool_call_id\":\"call_b\""),
        "{second}"
    );
    assert!(second.contains("fetch is down"), "{second}");
}

#[tokio::test]
async fn one_result_of_two_leaves_the_other_pending_and_duplicates_count_once() {
    let (server, id) = two_pending_calls("one of two").await;
    let first = result("lookup", "first", "call_a", json!("A"));
    let (code, body) = post_results(&server, &id, first.clone()).await;
    assert_eq!(code, 202, "{body}");
    let status = server.status(&id).await;
    assert_eq!(status["status"], "awaiting_tool_results");
    assert_eq!(status["pending_tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(status["pending_tool_calls"][0]["id"], "call_b");
    // The SDK replaces its list of open calls with the latest awaiting event's.
    let events = server.events(&id).await;
    let latest = events
        .iter()
        .rev()
        .find(|e| e["type"] == "ActiveStateChangeEvent")
        .unwrap();
    assert_eq!(latest["data"]["state"], "awaiting_tool_results");
    let remaining = latest["data"]["pending_tool_calls"].as_array().unwrap();
    assert_eq!(remaining.len(), 1, "{latest}");
    assert_eq!(remaining[0]["id"], "call_b");
    assert_eq!(remaining[0]["tool_name"], "fetch");

    // Posted again (a retry): accepted, not recorded twice, nothing else moves.
    let count = server.event_count(&id).await;
    let (code, body) = post_results(&server, &id, first).await;
    assert!((200..300).contains(&code), "{code}: {body}");
    assert_eq!(server.event_count(&id).await, count);
    assert_eq!(results_for(&server.events(&id).await, "call_a"), 1);
    assert_eq!(server.status(&id).await["status"], "awaiting_tool_results");

    // A call nobody made.
    let (code, body) = post_results(
        &server,
        &id,
        result("fetch", "second", "call_zzz", json!("?")),
    )
    .await;
    assert_422_at(code, &body, json!(["body", "tool_req"]));
    // In a batch, the bad item is named and none of the batch is taken.
    let (code, body) = post_results(
        &server,
        &id,
        json!({"results": [
            result("fetch", "second", "call_b", json!("B")),
            result("fetch", "second", "call_zzz", json!("?")),
        ]}),
    )
    .await;
    assert_422_at(code, &body, json!(["body", "results", 1, "tool_req"]));
    assert_eq!(server.event_count(&id).await, count);
    assert_eq!(
        server.status(&id).await["pending_tool_calls"][0]["id"],
        "call_b"
    );

    let (code, body) = post_results(
        &server,
        &id,
        result("fetch", "second", "call_b", json!("B")),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    server.wait_for(&id, "completed").await;
    let events = server.events(&id).await;
    assert_eq!(results_for(&events, "call_a"), 1);
    assert_eq!(results_for(&events, "call_b"), 1);
}

#[tokio::test]
async fn malformed_tool_results_are_a_422_naming_the_field() {
    let (server, id) = two_pending_calls("malformed results").await;
    let count = server.event_count(&id).await;
    let cases = [
        (json!({"kind": "tool_result"}), json!(["body", "tool_req"])),
        (
            json!({"kind": "tool_result", "tool_req": {"args": {}}}),
            json!(["body", "tool_req", "tool_name"]),
        ),
        (
            json!({"kind": "tool_result", "tool_req": {"tool_name": "lookup", "args": [1]}}),
            json!(["body", "tool_req", "args"]),
        ),
        (
            json!({"kind": "finished", "tool_req": {"tool_name": "lookup"}}),
            json!(["body", "kind"]),
        ),
        (
            json!({"kind": "error_event", "origin": "client", "tool_req": {"tool_name": "lookup"}}),
            json!(["body", "error"]),
        ),
        (
            json!({"type": "batch", "results": []}),
            json!(["body", "results"]),
        ),
        (json!({"type": "batch"}), json!(["body", "results"])),
        (
            json!({"results": [{"tool_req": {"tool_name": 7}}]}),
            json!(["body", "results", 0, "tool_req", "tool_name"]),
        ),
        (json!("a string"), json!(["body"])),
    ];
    for (body, loc) in cases {
        let (code, error) = post_results(&server, &id, body).await;
        assert_422_at(code, &error, loc);
    }
    assert_eq!(server.event_count(&id).await, count);
    assert_eq!(
        server.status(&id).await["pending_tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn results_to_a_running_session_with_nothing_pending_conflict() {
    let server = Server::start().await;
    script(&server, "busy thinking", vec![think(20_000)]);
    let session = server
        .create(json!({"agent": agent_with_tools("t", &["lookup"]), "messages": "busy thinking"}))
        .await;
    let id = id_of(&session);
    wait_model_requests(&server, 1).await;
    assert_eq!(server.status(&id).await["status"], "running");
    let (code, body) = post_results(
        &server,
        &id,
        result("lookup", "x", "call_0_0", json!("unasked")),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(code, 204);
}
