//! Operating the server: health, metrics, graceful shutdown.

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, agent, answer, script, think};

#[tokio::test]
async fn metrics_count_requests_sessions_and_model_calls() {
    let server = Server::start().await;
    script(&server, "metered", vec![answer("ok")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "metered"}))
        .await;
    server
        .wait_for(session["id"].as_str().unwrap(), "completed")
        .await;
    let text = server.metrics().await;
    assert!(text.contains("agentd_sessions_created_total"), "{text}");
    assert!(text.contains("agentd_model_calls_total"), "{text}");
    assert!(text.contains("route=\"/api/v2/sessions\""), "{text}");
    // Routes are labelled by template, never by a concrete id.
    assert!(!text.contains(session["id"].as_str().unwrap()));
}

#[tokio::test]
async fn sigterm_ends_long_polls_and_runners_and_the_sessions_resume_after() {
    let mut server = Server::start().await;
    script(
        &server,
        "slow work",
        vec![think(30_000), answer("after restart")],
    );
    let session = server
        .create(json!({"agent": agent("a"), "messages": "slow work"}))
        .await;
    let id = session["id"].as_str().unwrap().to_string();
    server.wait_for(&id, "running").await;
    assert!(
        server
            .model
            .wait_for_requests(1, Duration::from_secs(20))
            .await
    );
    // A long-poll that would hold for 30 s.
    let poll = {
        let url = server.url(&format!(
            "/api/v2/sessions/{id}/changes?from_index=1000&wait_for_seconds=30"
        ));
        let key = server.key.clone();
        tokio::spawn(async move {
            crate::common::http_client()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let (took, clean) = server.terminate().await;
    assert!(clean, "agentd exited with an error after SIGTERM");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let polled = poll.await.unwrap();
    assert!(matches!(polled, Ok(204) | Err(_)), "{polled:?}");

    // The step that was in flight was not recorded; the session goes on after a start.
    server.model.set_script(
        json!({"rules": [{"match": "slow work", "replies": [answer("after restart")]}]}),
    );
    server.start_again().await;
    server.wait_for(&id, "completed").await;
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "after restart");
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_a_revoked_key_stops_working_at_once() {
    let server = Server::start().await;
    let second = crate::common::create_key(server.data_dir.path(), "test-org").await;
    assert!(second.starts_with("hk-") && second.len() > 40, "{second}");
    let (code, _) = server
        .call_as(Some(&second), "GET", "/api/v2/sessions", None)
        .await;
    assert_eq!(code, 200);

    let list = tokio::process::Command::new(crate::common::BIN)
        .args(["keys", "list", "--org", "test-org", "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .await
        .unwrap();
    assert!(list.status.success());
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(
        !listing.contains(&second),
        "a secret was printed by keys list"
    );
    let prefix = &second[..10];
    assert!(listing.contains(prefix), "{listing}");
    // The database (and its write-ahead log) holds digests only.
    for file in ["agentd.db", "agentd.db-wal"] {
        let bytes = std::fs::read(server.data_dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(second.len()).any(|w| w == second.as_bytes()),
            "{file}"
        );
    }

    let revoke = tokio::process::Command::new(crate::common::BIN)
        .args(["keys", "revoke", prefix, "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let (code, _) = server
        .call_as(Some(&second), "GET", "/api/v2/sessions", None)
        .await;
    assert_eq!(code, 401);
    let (code, _) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(code, 200, "the other key still works");
}
