//! Feedback on a session and on one event, and session resources: who may read them and
//! that a key cannot climb out of its session's folder.

use serde_json::json;

use crate::common::{Server, agent, answer, create_key, script};
use crate::helpers::{assert_422_at, id_of, raw_get};

#[tokio::test]
async fn feedback_is_accepted_on_the_session_and_on_an_existing_event() {
    let server = Server::start().await;
    script(&server, "rate me", vec![answer("rated")]);
    let id = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "rate me"}))
            .await,
    );
    server.wait_for(&id, "completed").await;
    let count = server.event_count(&id).await;

    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/feedback"),
            Some(json!({"success": true, "message": "Exactly right."})),
        )
        .await;
    assert_eq!(code, 204, "{body}");
    assert_eq!(body, serde_json::Value::Null);
    let (code, body) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/feedback"),
            Some(json!({"success": false})),
        )
        .await;
    assert_eq!(code, 204, "{body}");

    for index in [0, count - 1] {
        let (code, body) = server
            .call(
                "PUT",
                &format!("/api/v2/sessions/{id}/events/{index}/feedback"),
                Some(json!({"success": false, "message": "Not this step."})),
            )
            .await;
        assert_eq!(code, 204, "event {index}: {body}");
    }
    for index in [count, 9999] {
        let (code, body) = server
            .call(
                "PUT",
                &format!("/api/v2/sessions/{id}/events/{index}/feedback"),
                Some(json!({"success": true})),
            )
            .await;
        assert_eq!(code, 404, "event {index}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }

    // Feedback is not an event: the log is unchanged.
    assert_eq!(server.event_count(&id).await, count);

    let bad = [
        (json!({"message": "no verdict"}), json!(["body", "success"])),
        (json!({"success": "yes"}), json!(["body", "success"])),
        (
            json!({"success": true, "message": 5}),
            json!(["body", "message"]),
        ),
        (json!([true]), json!(["body"])),
    ];
    for (body, loc) in bad {
        let (code, error) = server
            .call(
                "POST",
                &format!("/api/v2/sessions/{id}/feedback"),
                Some(body.clone()),
            )
            .await;
        assert_422_at(code, &error, loc.clone());
        let (code, error) = server
            .call(
                "PUT",
                &format!("/api/v2/sessions/{id}/events/0/feedback"),
                Some(body),
            )
            .await;
        assert_422_at(code, &error, loc);
    }
    let (code, error) = server
        .call(
            "PUT",
            &format!("/api/v2/sessions/{id}/events/first/feedback"),
            Some(json!({"success": true})),
        )
        .await;
    assert_422_at(code, &error, json!(["path", "event_index"]));

    // Another organisation cannot leave feedback.
    let other = create_key(server.data_dir.path(), "other-org").await;
    let (code, _) = server
        .call_as(
            Some(&other),
            "POST",
            &format!("/api/v2/sessions/{id}/feedback"),
            Some(json!({"success": true})),
        )
        .await;
    assert_eq!(code, 404);
}

/// Writes a resource where the server's file store keeps it:
/// `<data dir>/resources/<session>/<bucket>/<key>`, its content type beside it.
fn put_resource(server: &Server, session: &str, bucket: &str, key: &str, bytes: &[u8]) {
    let dir = server
        .data_dir
        .path()
        .join("resources")
        .join(session)
        .join(bucket);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(key);
    std::fs::write(&path, bytes).unwrap();
    std::fs::write(path.with_extension("content-type"), "image/jpeg").unwrap();
}

#[tokio::test]
async fn resources_are_confined_to_their_session_and_organisation() {
    let server = Server::start().await;
    script(&server, "pictures", vec![answer("done")]);
    let mine = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "pictures"}))
            .await,
    );
    let bare = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "pictures"}))
            .await,
    );
    let other_key = create_key(server.data_dir.path(), "other-org").await;
    let (code, theirs) = server
        .call_as(
            Some(&other_key),
            "POST",
            "/api/v2/sessions",
            Some(json!({"agent": agent("b"), "messages": "pictures"})),
        )
        .await;
    assert_eq!(code, 201, "{theirs}");
    let theirs = id_of(&theirs);
    put_resource(&server, &mine, "screenshots", "x.jpg", b"MINE-JPEG");
    put_resource(&server, &theirs, "screenshots", "x.jpg", b"THEIR-JPEG");

    // The owner reads its own resource.
    let response = crate::common::http_client()
        .get(server.url(&format!(
            "/api/v2/sessions/{mine}/resources/screenshots/x.jpg"
        )))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "image/jpeg"
    );
    assert_eq!(&response.bytes().await.unwrap()[..], b"MINE-JPEG");

    // A session without it: 404 JSON.
    let (code, body) = server
        .call(
            "GET",
            &format!("/api/v2/sessions/{bare}/resources/screenshots/x.jpg"),
            None,
        )
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(body["message"].is_string(), "{body}");

    // Another organisation's resource: 404, whoever asks from the wrong side.
    let path = format!("/api/v2/sessions/{theirs}/resources/screenshots/x.jpg");
    let (code, body) = server.call("GET", &path, None).await;
    assert_eq!(code, 404, "{body}");
    assert!(body["message"].is_string());
    let (code, _) = server
        .call_as(
            Some(&other_key),
            "GET",
            &format!("/api/v2/sessions/{mine}/resources/screenshots/x.jpg"),
            None,
        )
        .await;
    assert_eq!(code, 404);

    // `..`, plain or escaped, never leaves the session's folder: not to a sibling
    // session, not to the data directory (which holds the database and the log).
    let base = format!("/api/v2/sessions/{mine}/resources");
    let attempts = [
        format!("{base}/screenshots/../../{theirs}/screenshots/x.jpg"),
        format!("{base}/screenshots/..%2F..%2F{theirs}%2Fscreenshots%2Fx.jpg"),
        format!("{base}/screenshots/%2E%2E/%2E%2E/{theirs}/screenshots/x.jpg"),
        format!("{base}/../{theirs}/screenshots/x.jpg"),
        format!("{base}/..%2F..%2F{theirs}%2Fscreenshots/x.jpg"),
        format!("{base}/screenshots/../../../agentd.db"),
        format!("{base}/screenshots/..%2F..%2F..%2Fserver.log"),
        format!("{base}/screenshots/%2Fetc%2Fpasswd"),
        // Would name a real resource once normalised: the server never normalises.
        format!("{base}/screenshots/../screenshots/x.jpg"),
    ];
    for target in attempts {
        let (code, body) = raw_get(&server, &target, Some(&server.key)).await;
        assert_eq!(code, 404, "{target}: {body}");
        assert!(
            !body.contains("THEIR-JPEG") && !body.contains("SQLite") && !body.contains("serving"),
            "{target} leaked: {body}"
        );
    }
    // The server still serves the legitimate path.
    let (code, body) = raw_get(
        &server,
        &format!("{base}/screenshots/x.jpg"),
        Some(&server.key),
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("MINE-JPEG"));
}
