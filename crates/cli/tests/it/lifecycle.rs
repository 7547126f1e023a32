//! The session lifecycle through the real server: turns, controls and their bounds,
//! custom tools, caps, and failures of the model.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Options, Server, agent, answer, script, think};

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["data"]["kind"].as_str() {
            Some(kind) => format!("{}:{kind}", e["type"].as_str().unwrap_or("?")),
            None => e["type"].as_str().unwrap_or("?").to_string(),
        })
        .collect()
}

async fn wait_model_requests(server: &Server, count: usize) {
    assert!(
        server
            .model
            .wait_for_requests(count, Duration::from_secs(20))
            .await,
        "the model never got {count} requests"
    );
}

#[tokio::test]
async fn a_one_shot_session_answers_and_completes() {
    let server = Server::start().await;
    script(&server, "oneshot 6*7", vec![answer("42")]);
    let session = server
        .create(json!({"agent": agent("calc"), "messages": "oneshot 6*7"}))
        .await;
    assert_eq!(session["status"]["status"], "pending");
    let id = session["id"].as_str().unwrap();
    let status = server.wait_for(id, "completed").await;
    assert_eq!(status["outcome"], "success");
    assert_eq!(status["steps"], 1);
    assert_eq!(status["usage_per_model"][0]["name"], "default");

    let events = server.events(id).await;
    let kinds = kinds(&events);
    assert_eq!(kinds[0], "RequestStartEvent");
    assert!(
        kinds.contains(&"AgentEvent:message_event".to_string()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"AgentStartedEvent".to_string()));
    assert!(kinds.contains(&"AgentEvent:answer_event".to_string()));
    assert_eq!(kinds.last().unwrap(), "AgentCompletionEvent");

    let (_, changes) = server
        .call(
            "GET",
            &format!("/api/v2/sessions/{id}/changes?from_index=0&include_events=false"),
            None,
        )
        .await;
    assert_eq!(changes["answer"], "42");
    assert_eq!(changes["new_events"], json!([]));
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "42");
    assert!(full["finished_at"].is_string());
}

#[tokio::test]
async fn pause_acts_within_a_second_while_the_model_is_thinking_and_resume_redoes_the_call() {
    let server = Server::start().await;
    script(&server, "pause me", vec![think(1500), answer("done")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "pause me"}))
        .await;
    let id = session["id"].as_str().unwrap();
    wait_model_requests(&server, 1).await;

    let asked = Instant::now();
    let (code, _) = server
        .call("POST", &format!("/api/v2/sessions/{id}/pause"), None)
        .await;
    assert_eq!(code, 202);
    let status = server
        .wait_status(id, Duration::from_secs(1), |s| s["status"] == "paused")
        .await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(status["steps"], 0, "the abandoned call left no step");
    let kinds = kinds(&server.events(id).await);
    assert!(kinds.contains(&"AgentRunStatusChangeEvent".to_string()));
    assert!(
        !kinds.contains(&"AgentEvent:policy_event".to_string()),
        "{kinds:?}"
    );

    let (code, _) = server
        .call("POST", &format!("/api/v2/sessions/{id}/resume"), None)
        .await;
    assert_eq!(code, 202);
    server.wait_for(id, "completed").await;
    assert!(
        server.model.requests().len() >= 3,
        "the dropped call was made again"
    );
}

#[tokio::test]
async fn cancel_interrupts_within_a_second_whatever_is_in_flight() {
    let server = Server::start().await;
    script(&server, "cancel me", vec![think(20_000)]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "cancel me"}))
        .await;
    let id = session["id"].as_str().unwrap();
    wait_model_requests(&server, 1).await;
    let asked = Instant::now();
    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(code, 204);
    server
        .wait_status(id, Duration::from_secs(1), |s| s["status"] == "interrupted")
        .await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    let events = server.events(id).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "AgentCompletionEvent");
    assert_eq!(last["data"]["reason"], "stopped");
    // Controls on an ended session: cancel is a no-op, the others conflict.
    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(code, 204);
    let (code, body) = server
        .call("POST", &format!("/api/v2/sessions/{id}/pause"), None)
        .await;
    assert_eq!(code, 409, "{body}");
}

#[tokio::test]
async fn an_idle_session_keeps_its_context_across_turns() {
    let server = Server::start().await;
    script(&server, "turn one", vec![json!({"echo_user": true})]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "turn one", "idle_timeout_s": 60}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "idle").await;
    let (code, _) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/messages"),
            Some(json!({"type": "user_message", "message": "turn two"})),
        )
        .await;
    assert_eq!(code, 202);
    // The second turn has answered when the session is idle again after two steps.
    server
        .wait_status(id, Duration::from_secs(20), |s| {
            s["status"] == "idle" && s["steps"] == 2
        })
        .await;
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "turn two");
    let requests = server.model.requests();
    let last = requests.last().unwrap().to_string();
    assert!(
        last.contains("turn one") && last.contains("turn two"),
        "{last}"
    );
}

#[tokio::test]
async fn custom_tools_wait_for_client_results() {
    let server = Server::start().await;
    script(
        &server,
        "add numbers",
        vec![
            json!({"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "call_1"}]}),
            answer("5"),
        ],
    );
    let mut tool_agent = agent("adder");
    tool_agent["tools"] = json!([{"name": "add", "description": "Adds two numbers.",
        "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}]);
    let session = server
        .create(json!({"agent": tool_agent, "messages": "add numbers"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let status = server.wait_for(id, "awaiting_tool_results").await;
    assert_eq!(status["pending_tool_calls"][0]["tool_name"], "add");
    let events = server.events(id).await;
    let waiting = events
        .iter()
        .rev()
        .find(|e| e["type"] == "ActiveStateChangeEvent")
        .unwrap();
    assert_eq!(waiting["data"]["state"], "awaiting_tool_results");
    assert_eq!(waiting["data"]["pending_tool_calls"][0]["id"], "call_1");

    let result = json!({"kind": "tool_result", "tool_req": {"tool_name": "add", "args": {"a": 2, "b": 3}, "id": "call_1"}, "result": 5});
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/tool_results"),
            Some(result.clone()),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let status = server.wait_for(id, "completed").await;
    assert_eq!(status["outcome"], "success");
    let second = server.model.requests()[1].to_string();
    assert!(second.contains("\"tool_call_id\":\"call_1\""), "{second}");
    // After the session settled, results are a conflict.
    let (code, _) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/tool_results"),
            Some(result),
        )
        .await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn a_model_that_never_calls_a_tool_fails_no_answer() {
    let server = Server::start().await;
    script(
        &server,
        "chatty",
        vec![json!({"content": "I would rather chat."})],
    );
    let session = server
        .create(json!({"agent": agent("a"), "messages": "chatty"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let status = server.wait_for(id, "failed").await;
    assert_eq!(status["error_code"], "no_answer");
    assert_eq!(status["steps"], 3);
}

#[tokio::test]
async fn the_step_cap_forces_one_last_answer() {
    let server = Server::start().await;
    script(
        &server,
        "capped",
        vec![think(0), think(0), answer("best effort")],
    );
    let session = server
        .create(json!({"agent": agent("a"), "messages": "capped", "max_steps": 2}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let requests = server.model.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2]["tool_choice"]["function"]["name"], "answer");
    let events = server.events(id).await;
    assert!(
        events
            .iter()
            .any(|e| e["data"]["kind"] == "flow_event" && e["data"]["origin"] == "max_steps")
    );
}

#[tokio::test]
async fn an_answer_failing_its_format_goes_back_to_the_model() {
    let server = Server::start().await;
    let format =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    script(
        &server,
        "which city",
        vec![
            json!({"tool_calls": [{"name": "answer", "arguments": {"answer": {"town": "Paris"}, "outcome": "success"}}]}),
            json!({"tool_calls": [{"name": "answer", "arguments": {"answer": {"city": "Paris"}, "outcome": "success"}}]}),
        ],
    );
    let mut a = agent("a");
    a["answer_format"] = format;
    let session = server
        .create(json!({"agent": a, "messages": "which city"}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let (_, changes) = server
        .call(
            "GET",
            &format!("/api/v2/sessions/{id}/changes?from_index=0"),
            None,
        )
        .await;
    assert_eq!(changes["answer"], json!({"city": "Paris"}));
    let events = changes["new_events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["data"]["kind"] == "error_event"));
}

#[tokio::test]
async fn an_unreachable_model_fails_the_session_naming_the_model() {
    // A port that was bound and released: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = Server::start_with(Options {
        env: vec![(
            "AGENTD_MODEL_BASE_URL",
            format!("http://127.0.0.1:{port}/v1"),
        )],
        ..Default::default()
    })
    .await;
    let session = server
        .create(json!({"agent": agent("a"), "messages": "hello"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let status = server.wait_for(id, "failed").await;
    assert_eq!(status["error_code"], "internal");
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains("default") && error.contains(&port.to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn the_time_budget_drops_the_call_and_forces_an_answer() {
    let server = Server::start().await;
    let rule = json!({"match": "slow thinker", "replies": [think(20_000)],
                      "forced": {"tool_calls": [{"name": "answer", "arguments": {"answer": "out of time", "outcome": "partial"}}]}});
    server.model.set_script(json!({"rules": [rule]}));
    let started = Instant::now();
    let session = server
        .create(json!({"agent": agent("a"), "messages": "slow thinker", "max_time_s": 1}))
        .await;
    let id = session["id"].as_str().unwrap();
    let status = server.wait_for(id, "completed").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the budget did not cut the 20 s call"
    );
    assert_eq!(status["outcome"], "partial");
    let events = server.events(id).await;
    assert!(
        events
            .iter()
            .any(|e| e["data"]["kind"] == "flow_event" && e["data"]["origin"] == "max_time_s")
    );
}

#[tokio::test]
async fn force_answer_gets_the_answer_from_the_forced_call() {
    let server = Server::start().await;
    let rule = json!({"match": "forced answer", "replies": [think(20_000)],
                      "forced": {"tool_calls": [{"name": "answer", "arguments": {"answer": "what I have", "outcome": "partial"}}]}});
    server.model.set_script(json!({"rules": [rule]}));
    let session = server
        .create(json!({"agent": agent("a"), "messages": "forced answer"}))
        .await;
    let id = session["id"].as_str().unwrap();
    wait_model_requests(&server, 1).await;
    let (code, _) = server
        .call("POST", &format!("/api/v2/sessions/{id}/force_answer"), None)
        .await;
    assert_eq!(code, 202);
    let status = server
        .wait_status(id, Duration::from_secs(5), |s| s["status"] == "completed")
        .await;
    assert_eq!(status["outcome"], "partial");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "what I have");
}

#[tokio::test]
async fn an_idle_session_whose_window_lapses_completes() {
    let server = Server::start().await;
    script(&server, "short idle", vec![answer("first")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "short idle", "idle_timeout_s": 1}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "idle").await;
    server
        .wait_status(id, Duration::from_secs(10), |s| s["status"] == "completed")
        .await;
    let events = server.events(id).await;
    assert_eq!(events.last().unwrap()["data"]["reason"], "finished");
}

#[tokio::test]
async fn a_tool_call_written_as_json_in_the_content_is_understood() {
    let server = Server::start().await;
    script(
        &server,
        "json in content",
        vec![
            json!({"content": "{\"name\": \"answer\", \"arguments\": {\"answer\": \"from content\", \"outcome\": \"success\"}}", "finish_reason": "eos"}),
        ],
    );
    let session = server
        .create(json!({"agent": agent("a"), "messages": "json in content"}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "from content");
}
