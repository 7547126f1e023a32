//! The sessions endpoints over raw HTTP: shapes, errors, isolation, idempotency.

use serde_json::json;

use crate::common::{Server, agent, answer, create_key, script};

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let server = Server::start().await;
    let (code, body) = server.call_as(None, "GET", "/api/v2/sessions", None).await;
    assert_eq!(code, 401, "{body}");
    let (code, _) = server
        .call_as(Some("hk-wrong"), "GET", "/api/v2/sessions", None)
        .await;
    assert_eq!(code, 401);
    let (code, _) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn another_organisations_session_is_not_found() {
    let server = Server::start().await;
    script(&server, "mine", vec![answer("ok")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "mine"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let other = create_key(server.data_dir.path(), "other-org").await;
    for (method, path) in [
        ("GET", format!("/api/v2/sessions/{id}")),
        ("GET", format!("/api/v2/sessions/{id}/status")),
        ("GET", format!("/api/v2/sessions/{id}/changes")),
        ("GET", format!("/api/v2/sessions/{id}/events")),
        ("DELETE", format!("/api/v2/sessions/{id}")),
        ("POST", format!("/api/v2/sessions/{id}/pause")),
    ] {
        let (code, body) = server.call_as(Some(&other), method, &path, None).await;
        assert_eq!(code, 404, "{method} {path}: {body}");
    }
    let (_, list) = server
        .call_as(Some(&other), "GET", "/api/v2/sessions", None)
        .await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn bad_create_bodies_get_a_422_naming_the_field_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let cases = [
        (json!({}), json!(["body", "agent"])),
        (
            json!({"agent": agent("a"), "max_steps": 0}),
            json!(["body", "max_steps"]),
        ),
        (
            json!({"agent": agent("a"), "max_steps": "ten"}),
            json!(["body", "max_steps"]),
        ),
        (
            json!({"agent": agent("a"), "idle_timeout_s": -1}),
            json!(["body", "idle_timeout_s"]),
        ),
        (
            json!({"agent": agent("a"), "messages": [{"text": "no message key"}]}),
            json!(["body", "messages", 0, "message"]),
        ),
        (
            json!({"agent": agent("a"), "parent_session_id": "not-a-uuid"}),
            json!(["body", "parent_session_id"]),
        ),
        (
            json!({"agent": {"name": "a", "description": "d", "environments": [], "tools": [{"name": "answer", "description": "clash"}]}}),
            json!(["body", "agent", "tools", 0, "name"]),
        ),
        (
            json!({"agent": {"name": "a", "description": "d", "environments": [], "answer_format": {"$ref": "http://127.0.0.1:9/x"}}}),
            json!(["body", "agent", "answer_format"]),
        ),
        (
            json!({"agent": {"name": "a", "description": "d", "environments": [], "model": "nope"}}),
            json!(["body", "agent", "model"]),
        ),
    ];
    for (body, loc) in cases {
        let (code, error) = server
            .call("POST", "/api/v2/sessions", Some(body.clone()))
            .await;
        assert_eq!(code, 422, "{body} -> {error}");
        let detail = error["detail"].as_array().expect("detail list");
        assert!(
            detail.iter().any(|d| d["loc"] == loc),
            "{body}: expected loc {loc}, got {error}"
        );
        assert!(error["message"].is_string());
    }
    let (code, _) = server.call("GET", "/healthz", None).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn an_unknown_catalog_agent_is_a_404() {
    let server = Server::start().await;
    let (code, body) = server
        .call(
            "POST",
            "/api/v2/sessions",
            Some(json!({"agent": "acme/nobody", "messages": "hi"})),
        )
        .await;
    assert_eq!(code, 404, "{body}");
}

#[tokio::test]
async fn twenty_concurrent_retries_with_one_idempotency_key_make_one_session() {
    let server = std::sync::Arc::new(Server::start().await);
    script(&server, "idem", vec![answer("ok")]);
    let client = crate::common::http_client();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        let url = server.url("/api/v2/sessions");
        let key = server.key.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "nightly-1")
                .json(&json!({"agent": agent("a"), "messages": "idem"}))
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (code, body["id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (code, id) = task.await.unwrap();
        assert_eq!(code, 201);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (_, list) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(list["total"], 1);
    // The same key with another body is refused.
    let response = client
        .post(server.url("/api/v2/sessions"))
        .bearer_auth(&server.key)
        .header("Idempotency-Key", "nightly-1")
        .json(&json!({"agent": agent("b"), "messages": "idem"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
}

#[tokio::test]
async fn a_shared_session_is_readable_without_a_key_and_never_writable() {
    let server = Server::start().await;
    script(&server, "share", vec![answer("shared answer")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "share"}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let path = format!("/api/v2/sessions/{id}");
    let (code, _) = server.call_as(None, "GET", &path, None).await;
    assert_eq!(code, 401);
    let (code, link) = server.call("POST", &format!("{path}/share"), None).await;
    assert_eq!(code, 200);
    assert!(link["share_url"].as_str().unwrap().contains(id));
    let (code, body) = server.call_as(None, "GET", &path, None).await;
    assert_eq!(code, 200);
    assert_eq!(body["latest_answer"], "shared answer");
    let (code, _) = server
        .call_as(None, "GET", &format!("{path}/events"), None)
        .await;
    assert_eq!(code, 200);
    let (code, _) = server.call_as(None, "DELETE", &path, None).await;
    assert_eq!(code, 401);
    let (code, _) = server
        .call_as(
            None,
            "POST",
            &format!("{path}/messages"),
            Some(json!({"message": "x"})),
        )
        .await;
    assert_eq!(code, 401);
    let (code, _) = server.call("DELETE", &format!("{path}/share"), None).await;
    assert_eq!(code, 204);
    let (code, _) = server.call_as(None, "GET", &path, None).await;
    assert_eq!(code, 401);
}
