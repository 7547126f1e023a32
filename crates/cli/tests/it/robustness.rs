//! Bad requests of every kind get a JSON 4xx and leave the server serving; concurrent
//! clients never see a 5xx.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{Server, agent, answer, script};
use crate::helpers::{assert_422_at, id_of, send, send_json};

#[tokio::test]
async fn a_body_over_10_mib_is_a_413_and_the_server_keeps_serving() {
    let server = Server::start().await;
    script(&server, "big", vec![answer("ok")]);
    let id = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "big", "idle_timeout_s": 600}))
            .await,
    );
    server.wait_for(&id, "idle").await;

    // Valid JSON, one byte over the limit.
    let limit = 10 * 1024 * 1024;
    let prefix = br#"{"message": ""#;
    let suffix = br#""}"#;
    let mut body = Vec::with_capacity(limit + 1);
    body.extend_from_slice(prefix);
    body.resize(limit + 1 - suffix.len(), b'a');
    body.extend_from_slice(suffix);
    assert_eq!(body.len(), limit + 1);
    for path in [
        "/api/v2/sessions".to_string(),
        format!("/api/v2/sessions/{id}/messages"),
    ] {
        let reply = send(&server, "POST", &path, &[], Some(body.clone())).await;
        assert_eq!(
            reply.status,
            413,
            "{path}: {}",
            &reply.raw[..reply.raw.len().min(300)]
        );
        assert!(reply.body["message"].is_string(), "{}", reply.raw);
    }
    // Just under the limit is read (and judged on its content).
    let mut under = Vec::new();
    under.extend_from_slice(br#"{"type": "note", "message": ""#);
    under.resize(limit - suffix.len(), b'a');
    under.extend_from_slice(suffix);
    let reply = send(
        &server,
        "POST",
        &format!("/api/v2/sessions/{id}/messages"),
        &[],
        Some(under),
    )
    .await;
    assert_422_at(reply.status, &reply.body, json!(["body", "type"]));

    let (code, _) = server.call("GET", "/healthz", None).await;
    assert_eq!(code, 200);
    assert_eq!(server.status(&id).await["status"], "idle");
    let (_, list) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn malformed_requests_are_json_errors() {
    let server = Server::start().await;
    script(&server, "target", vec![answer("ok")]);
    let id = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "target"}))
            .await,
    );

    for path in [
        "/api/v2/sessions".to_string(),
        format!("/api/v2/sessions/{id}/messages"),
        format!("/api/v2/sessions/{id}/tool_results"),
        format!("/api/v2/sessions/{id}/feedback"),
    ] {
        let reply = send(
            &server,
            "POST",
            &path,
            &[],
            Some(br#"{"agent": "a", "#.to_vec()),
        )
        .await;
        assert_422_at(reply.status, &reply.body, json!(["body"]));
        assert_eq!(reply.body["detail"][0]["type"], "json_invalid", "{path}");
    }

    for (method, path) in [
        ("GET", "/api/v2/sessions/not-a-uuid"),
        ("GET", "/api/v2/sessions/not-a-uuid/status"),
        ("GET", "/api/v2/sessions/1234/events"),
        ("DELETE", "/api/v2/sessions/not-a-uuid"),
        ("POST", "/api/v2/sessions/not-a-uuid/pause"),
    ] {
        let (code, body) = server.call(method, path, None).await;
        assert_422_at(code, &body, json!(["path", "session_id"]));
    }
    // A well-formed id nobody has.
    let (code, body) = server
        .call(
            "GET",
            "/api/v2/sessions/0196a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b",
            None,
        )
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(body["message"].is_string());

    for path in ["/api/v2/nothing-here", "/api/v3/sessions", "/"] {
        let (code, body) = server.call("GET", path, None).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn idempotency_keys_must_be_non_blank_and_short() {
    let server = Server::start().await;
    script(&server, "idem", vec![answer("ok")]);
    let body = json!({"agent": agent("a"), "messages": "idem"});
    let too_long = "k".repeat(256);
    for key in ["", "   ", too_long.as_str()] {
        let reply = send_json(
            &server,
            "POST",
            "/api/v2/sessions",
            &[("Idempotency-Key", key)],
            &body,
        )
        .await;
        assert_422_at(
            reply.status,
            &reply.body,
            json!(["header", "Idempotency-Key"]),
        );
    }
    let (_, list) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(list["total"], 0, "a refused key created nothing");

    let longest = "k".repeat(255);
    let first = send_json(
        &server,
        "POST",
        "/api/v2/sessions",
        &[("Idempotency-Key", &longest)],
        &body,
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.raw);
    let again = send_json(
        &server,
        "POST",
        "/api/v2/sessions",
        &[("Idempotency-Key", &longest)],
        &body,
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_eq!(again.body["id"], first.body["id"]);
}

#[tokio::test]
async fn twenty_parallel_clients_creating_and_reading_never_see_a_5xx() {
    let server = Arc::new(Server::start().await);
    script(&server, "parallel", vec![answer("ok")]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes: Vec<(String, u16)> = Vec::new();
            let (code, session) = server
                .call(
                    "POST",
                    "/api/v2/sessions",
                    Some(json!({"agent": agent("a"), "messages": format!("parallel {i}"), "group_id": "par"})),
                )
                .await;
            codes.push(("create".into(), code));
            let id = session["id"].as_str().unwrap_or_default().to_string();
            for path in [
                format!("/api/v2/sessions/{id}"),
                format!("/api/v2/sessions/{id}/status"),
                format!("/api/v2/sessions/{id}/events"),
                format!("/api/v2/sessions/{id}/changes?from_index=0"),
                "/api/v2/sessions?group_id=par&size=100".to_string(),
                "/api/v2/sessions/quota".to_string(),
            ] {
                let (code, _) = server.call("GET", &path, None).await;
                codes.push((path, code));
            }
            (id, codes)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (id, codes) = task.await.unwrap();
        for (what, code) in &codes {
            assert!(*code < 500, "{what}: {code}\nlog:\n{}", server.log());
        }
        assert_eq!(codes[0].1, 201, "create");
        assert!(
            codes.iter().all(|(_, code)| (200..300).contains(code)),
            "{codes:?}"
        );
        ids.push(id);
    }
    for id in &ids {
        server.wait_for(id, "completed").await;
    }
    let (_, list) = server
        .call("GET", "/api/v2/sessions?group_id=par&size=100", None)
        .await;
    assert_eq!(list["total"], 20);
    let listed: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item: &Value| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 20);
    assert!(ids.iter().all(|id| listed.contains(id.as_str())));
}
