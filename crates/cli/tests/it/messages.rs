//! `POST .../messages`: images, delivery to a running agent, validation, and restarting
//! an ended session.

use serde_json::{Value, json};

use crate::common::{Server, agent, answer, script, think};
use crate::helpers::{TINY_PNG, assert_422_at, id_of, of_kind, wait_model_requests};

async fn post_message(server: &Server, id: &str, body: Value) -> (u16, Value) {
    server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/messages"),
            Some(body),
        )
        .await
}

/// The text of every message of a model request, joined.
fn request_text(request: &Value) -> String {
    request["messages"].to_string()
}

#[tokio::test]
async fn a_batch_with_an_image_is_logged_with_its_image_content() {
    let server = Server::start().await;
    script(&server, "picture host", vec![json!({"echo_user": true})]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "picture host", "idle_timeout_s": 600}))
        .await;
    let id = id_of(&session);
    server.wait_for(&id, "idle").await;
    let requests_before = server.model.request_count();

    let (code, body) = post_message(
        &server,
        &id,
        json!({"type": "batch", "messages": [
            {"type": "user_message", "message": "look at this", "images": [TINY_PNG]},
            {"message": "and then this", "caller_id": "ops-bot"},
        ]}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    // The batch started a new turn synchronously: idle again means it was answered.
    server.wait_for(&id, "idle").await;
    wait_model_requests(&server, requests_before + 1).await;

    let events = server.events(&id).await;
    let messages = of_kind(&events, "message_event");
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[1]["data"]["caller_id"], "user");
    assert_eq!(
        messages[1]["data"]["content"],
        json!(["look at this", {"type": "base64", "source": TINY_PNG, "media_type": "image/png"}])
    );
    assert_eq!(messages[2]["data"]["caller_id"], "ops-bot");
    assert_eq!(messages[2]["data"]["content"], json!(["and then this"]));
    // In order, and both reach the model's next request.
    let last = request_text(server.model.requests().last().unwrap());
    let (look, then) = (
        last.find("look at this").expect("first message sent"),
        last.find("and then this").expect("second message sent"),
    );
    assert!(look < then, "{last}");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    let answer = full["latest_answer"].as_str().expect("a text answer");
    assert!(answer.contains("and then this"), "{answer}");
}

#[tokio::test]
async fn a_message_to_a_running_session_reaches_the_next_model_request() {
    let server = Server::start().await;
    script(
        &server,
        "working hard",
        vec![think(800), answer("took the hint")],
    );
    let session = server
        .create(json!({"agent": agent("a"), "messages": "working hard"}))
        .await;
    let id = id_of(&session);
    wait_model_requests(&server, 1).await;
    let (code, body) = post_message(
        &server,
        &id,
        json!({"type": "user_message", "message": "a hint while you think"}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let status = server.wait_for(&id, "completed").await;
    assert_eq!(status["steps"], 2);
    let requests = server.model.requests();
    assert!(
        !request_text(&requests[0]).contains("a hint while you think"),
        "the first call was made before the message"
    );
    let second = request_text(&requests[1]);
    assert!(second.contains("a hint while you think"), "{second}");
    let events = server.events(&id).await;
    assert_eq!(of_kind(&events, "message_event").len(), 2);
}

#[tokio::test]
async fn malformed_message_bodies_are_a_422_naming_the_field() {
    let server = Server::start().await;
    script(&server, "target", vec![answer("ok")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "target", "idle_timeout_s": 600}))
        .await;
    let id = id_of(&session);
    server.wait_for(&id, "idle").await;
    let count = server.event_count(&id).await;
    let cases = [
        (json!({"type": "user_message"}), json!(["body", "message"])),
        (json!({}), json!(["body", "message"])),
        (json!({"message": 42}), json!(["body", "message"])),
        (
            json!({"type": "note", "message": "x"}),
            json!(["body", "type"]),
        ),
        (
            json!({"message": "x", "images": ["data:image/png;base64,***not base64***"]}),
            json!(["body", "images", 0]),
        ),
        (
            json!({"message": "x", "images": [TINY_PNG, "https://example.com/cat.png"]}),
            json!(["body", "images", 1]),
        ),
        (
            json!({"message": "x", "images": ["data:text/plain;base64,aGk="]}),
            json!(["body", "images", 0]),
        ),
        (
            json!({"type": "batch", "messages": []}),
            json!(["body", "messages"]),
        ),
        (
            json!({"type": "batch", "messages": [{"message": "ok"}, {"text": "no message"}]}),
            json!(["body", "messages", 1, "message"]),
        ),
        (json!(["a list"]), json!(["body"])),
    ];
    for (body, loc) in cases {
        let (code, error) = post_message(&server, &id, body.clone()).await;
        assert_422_at(code, &error, loc);
    }
    // Nothing of a refused body was recorded, and the session did not move.
    assert_eq!(server.event_count(&id).await, count);
    assert_eq!(server.status(&id).await["status"], "idle");
}

#[tokio::test]
async fn a_message_to_a_completed_session_restarts_it() {
    let server = Server::start().await;
    let mut second = answer("second answer");
    second["delay_ms"] = json!(1_000);
    script(&server, "restartable", vec![answer("first answer"), second]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "restartable"}))
        .await;
    let id = id_of(&session);
    server.wait_for(&id, "completed").await;

    let (code, body) = post_message(&server, &id, json!({"message": "one more thing"})).await;
    assert_eq!(code, 202, "{body}");
    // The next answer takes a second: the session is live again meanwhile.
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    let live = full["status"]["status"].as_str().unwrap();
    assert!(live == "pending" || live == "running", "{full}");
    assert!(full["finished_at"].is_null(), "{full}");
    assert_eq!(full["latest_answer"], "first answer");

    let status = server.wait_for(&id, "completed").await;
    assert_eq!(status["outcome"], "success");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "second answer");
    assert!(full["finished_at"].is_string());
    let events = server.events(&id).await;
    let restart = events
        .iter()
        .position(|e| e["data"]["kind"] == "flow_event" && e["data"]["flow"] == "restart")
        .expect("a restart flow event");
    assert_eq!(events[restart + 1]["data"]["kind"], "message_event");
    assert_eq!(of_kind(&events, "answer_event").len(), 2);
    let completions = events
        .iter()
        .filter(|e| e["type"] == "AgentCompletionEvent")
        .count();
    assert_eq!(completions, 2);
    // The model saw the first turn again.
    let last = request_text(server.model.requests().last().unwrap());
    assert!(
        last.contains("restartable") && last.contains("one more thing"),
        "{last}"
    );
}
