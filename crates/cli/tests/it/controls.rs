//! Cells of the control matrix (`docs/lifecycle.md`) through HTTP: conflicts, no-ops and
//! the message that resumes a paused session.

use serde_json::{Value, json};

use crate::common::{Options, Server, agent, answer, script, think};
use crate::helpers::{agent_with_tools, id_of, wait_model_requests};

async fn control(server: &Server, id: &str, name: &str) -> (u16, Value) {
    server
        .call("POST", &format!("/api/v2/sessions/{id}/{name}"), None)
        .await
}

fn assert_conflict(code: u16, body: &Value, what: &str) {
    assert_eq!(code, 409, "{what}: {body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(!message.is_empty(), "{what}");
}

#[tokio::test]
async fn a_queued_session_refuses_pause_and_resume_and_buffers_the_rest() {
    let server = Server::start_with(Options {
        env: vec![("AGENTD_MAX_CONCURRENT_SESSIONS", "1".to_string())],
        ..Default::default()
    })
    .await;
    script(
        &server,
        "hold",
        vec![json!({"tool_calls": [{"name": "hold", "arguments": {}, "id": "h"}]})],
    );
    let body = json!({"agent": agent_with_tools("h", &["hold"]), "messages": "hold"});
    let holder = id_of(&server.create(body.clone()).await);
    server.wait_for(&holder, "awaiting_tool_results").await;
    let queued = server.create(body).await;
    assert_eq!(queued["status"]["status"], "queued");
    let queued = id_of(&queued);
    let count = server.event_count(&queued).await;

    for name in ["pause", "resume"] {
        let (code, body) = control(&server, &queued, name).await;
        assert_conflict(code, &body, name);
    }
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{queued}/tool_results"),
            Some(json!({"tool_req": {"tool_name": "hold", "args": {}, "id": "h"}})),
        )
        .await;
    assert_conflict(code, &body, "tool_results");
    // force_answer on a queued session changes nothing.
    let (code, body) = control(&server, &queued, "force_answer").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(server.event_count(&queued).await, count);
    // A message waits with it.
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{queued}/messages"),
            Some(json!({"message": "for later"})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(server.event_count(&queued).await, count + 1);
    assert_eq!(server.status(&queued).await["status"], "queued");
}

#[tokio::test]
async fn no_op_controls_answer_202_and_change_nothing() {
    let server = Server::start().await;
    script(&server, "long thought", vec![think(20_000)]);
    script(&server, "quick answer", vec![answer("resting")]);
    let running = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "long thought"}))
            .await,
    );
    let idle = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "quick answer", "idle_timeout_s": 600}))
            .await,
    );
    server.wait_for(&idle, "idle").await;
    wait_model_requests(&server, 2).await;
    server.wait_for(&running, "running").await;

    // The running session is inside its 20-second model call: nothing else is written.
    let count = server.event_count(&running).await;
    let (code, body) = control(&server, &running, "resume").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(server.event_count(&running).await, count);
    assert_eq!(server.status(&running).await["status"], "running");

    let count = server.event_count(&idle).await;
    for name in ["force_answer", "pause", "resume"] {
        let (code, body) = control(&server, &idle, name).await;
        assert_eq!(code, 202, "{name}: {body}");
    }
    assert_eq!(server.event_count(&idle).await, count);
    let status = server.status(&idle).await;
    assert_eq!(status["status"], "idle");
    assert_eq!(status["steps"], 1);

    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{running}"), None)
        .await;
    assert_eq!(code, 204);
}

#[tokio::test]
async fn a_message_to_a_paused_session_resumes_it_and_is_delivered() {
    let server = Server::start().await;
    script(&server, "pause and talk", vec![think(20_000)]);
    let id = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "pause and talk"}))
            .await,
    );
    wait_model_requests(&server, 1).await;
    let (code, _) = control(&server, &id, "pause").await;
    assert_eq!(code, 202);
    server.wait_for(&id, "paused").await;
    // From the redone call on, the model answers.
    server.model.set_script(
        json!({"rules": [{"match": "pause and talk", "replies": [answer("heard you")]}]}),
    );

    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/messages"),
            Some(json!({"type": "user_message", "message": "here is more"})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_ne!(server.status(&id).await["status"], "paused");
    server.wait_for(&id, "completed").await;

    let events = server.events(&id).await;
    let resume = events
        .iter()
        .position(|e| e["data"]["kind"] == "flow_event" && e["data"]["flow"] == "resume")
        .expect("a resume flow event");
    assert_eq!(events[resume]["data"]["origin"], "user");
    let after: Vec<&Value> = events[resume..].iter().collect();
    assert!(
        after
            .iter()
            .any(|e| e["type"] == "AgentRunStatusChangeEvent" && e["data"]["status"] == "running"),
        "{after:?}"
    );
    assert!(
        after.iter().any(|e| e["data"]["kind"] == "message_event"
            && e["data"]["content"] == json!(["here is more"])),
        "{after:?}"
    );
    let last = server.model.requests().last().unwrap()["messages"].to_string();
    assert!(last.contains("here is more"), "{last}");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "heard you");
}

#[tokio::test]
async fn every_conflict_is_a_409_with_a_json_message() {
    let server = Server::start().await;
    script(&server, "finish", vec![answer("finished")]);
    script(&server, "rest", vec![answer("resting")]);
    let done = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "finish"}))
            .await,
    );
    let idle = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "rest", "idle_timeout_s": 600}))
            .await,
    );
    server.wait_for(&done, "completed").await;
    server.wait_for(&idle, "idle").await;
    for name in ["pause", "resume", "force_answer"] {
        let (code, body) = control(&server, &done, name).await;
        assert_conflict(code, &body, name);
    }
    let result = json!({"tool_req": {"tool_name": "t", "args": {}, "id": "c"}, "result": 1});
    for id in [&done, &idle] {
        let (code, body) = server
            .call(
                "POST",
                &format!("/api/v2/sessions/{id}/tool_results"),
                Some(result.clone()),
            )
            .await;
        assert_conflict(code, &body, "tool_results");
    }
    assert_eq!(server.status(&done).await["status"], "completed");
    assert_eq!(server.status(&idle).await["status"], "idle");
}

/// A session waiting on the custom call `lookup` (id `call_1`); its next reply answers.
async fn awaiting_lookup(server: &Server, marker: &str) -> String {
    script(
        server,
        marker,
        vec![
            json!({"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}, "id": "call_1"}]}),
            answer("after lookup"),
        ],
    );
    let id = id_of(
        &server
            .create(json!({"agent": agent_with_tools("t", &["lookup"]), "messages": marker}))
            .await,
    );
    server.wait_for(&id, "awaiting_tool_results").await;
    id
}

#[tokio::test]
async fn a_paused_session_keeps_its_calls_takes_results_and_resumes() {
    let server = Server::start().await;
    let id = awaiting_lookup(&server, "pause while waiting").await;
    let (code, _) = control(&server, &id, "pause").await;
    assert_eq!(code, 202);
    let status = server.wait_for(&id, "paused").await;
    assert_eq!(status["pending_tool_calls"][0]["id"], "call_1", "{status}");

    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/tool_results"),
            Some(json!({"tool_req": {"tool_name": "lookup", "args": {"q": "x"}, "id": "call_1"}, "result": "found"})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let status = server.status(&id).await;
    assert_eq!(status["status"], "paused", "results do not unpause");
    assert_eq!(status["pending_tool_calls"], json!([]));
    assert_eq!(
        server.model.request_count(),
        1,
        "no model call while paused"
    );

    let (code, _) = control(&server, &id, "resume").await;
    assert_eq!(code, 202);
    let status = server.wait_for(&id, "completed").await;
    assert_eq!(status["steps"], 2);
    let second = server.model.requests()[1]["messages"].to_string();
    assert!(second.contains("found"), "{second}");
}

#[tokio::test]
async fn force_answer_while_awaiting_fails_the_open_calls_and_forces_the_answer() {
    let server = Server::start().await;
    let id = awaiting_lookup(&server, "force while waiting").await;
    let (code, body) = control(&server, &id, "force_answer").await;
    assert_eq!(code, 202, "{body}");
    let status = server
        .wait_status(&id, std::time::Duration::from_secs(20), |s| {
            s["status"] != "awaiting_tool_results" && s["status"] != "running"
        })
        .await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["pending_tool_calls"], json!([]));
    let events = server.events(&id).await;
    assert!(
        events
            .iter()
            .any(|e| e["data"]["kind"] == "error_event" && e["data"]["tool_req"]["id"] == "call_1"),
        "the open call failed visibly"
    );
    let last = server.model.requests().last().unwrap().clone();
    assert_eq!(last["tool_choice"]["function"]["name"], "answer");
    // Results for the abandoned call now conflict.
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/tool_results"),
            Some(json!({"tool_req": {"tool_name": "lookup", "args": {"q": "x"}, "id": "call_1"}, "result": "late"})),
        )
        .await;
    assert_conflict(code, &body, "late result");
}
