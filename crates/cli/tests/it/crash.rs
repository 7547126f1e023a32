//! Restart safety: SIGKILL the server while sessions run, start it again on the same
//! data directory, and check that nothing that was readable is lost or changed and that
//! every session carries on from where it was.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Options, Server, agent, answer, script, think};

async fn all_events(server: &Server, id: &str) -> Vec<Value> {
    server.events(id).await
}

#[tokio::test]
async fn a_killed_server_resumes_its_sessions_and_loses_nothing() {
    let mut server = Server::start_with(Options {
        env: vec![("AGENTD_MAX_CONCURRENT_SESSIONS", "3".to_string())],
        ..Default::default()
    })
    .await;
    // The long one: eight slow steps, then an answer.
    let mut long_replies: Vec<Value> = (0..8).map(|_| think(150)).collect();
    long_replies.push(answer("long done"));
    script(&server, "long task", long_replies);
    script(&server, "to pause", vec![think(60_000)]);
    script(
        &server,
        "to idle",
        vec![answer("idle answer"), answer("second turn")],
    );
    script(&server, "queued task", vec![answer("queued done")]);

    let long = server
        .create(json!({"agent": agent("a"), "messages": "long task"}))
        .await;
    let long = long["id"].as_str().unwrap().to_string();
    let paused = server
        .create(json!({"agent": agent("a"), "messages": "to pause"}))
        .await;
    let paused = paused["id"].as_str().unwrap().to_string();
    let idle = server
        .create(json!({"agent": agent("a"), "messages": "to idle", "idle_timeout_s": 600}))
        .await;
    let idle = idle["id"].as_str().unwrap().to_string();
    server.wait_for(&idle, "idle").await;
    server.wait_for(&paused, "running").await;
    let (code, _) = server
        .call("POST", &format!("/api/v2/sessions/{paused}/pause"), None)
        .await;
    assert_eq!(code, 202);
    server.wait_for(&paused, "paused").await;
    // Three slots are held: the fourth session queues.
    let queued = server
        .create(json!({"agent": agent("a"), "messages": "queued task"}))
        .await;
    assert_eq!(queued["status"]["status"], "queued");
    let queued = queued["id"].as_str().unwrap().to_string();

    server
        .wait_status(&long, Duration::from_secs(20), |s| {
            s["steps"].as_u64() >= Some(3)
        })
        .await;
    let mut before = Vec::new();
    for id in [&long, &paused, &idle, &queued] {
        before.push(all_events(&server, id).await);
    }
    let requests_before = server.model.requests().len();

    server.restart().await;

    for (id, events) in [&long, &paused, &idle, &queued].into_iter().zip(&before) {
        let after = all_events(&server, id).await;
        assert!(after.len() >= events.len(), "{id}: events were lost");
        assert_eq!(
            &after[..events.len()],
            &events[..],
            "{id}: an event changed"
        );
    }
    assert_eq!(server.status(&paused).await["status"], "paused");
    assert_eq!(server.status(&idle).await["status"], "idle");

    let done = server.wait_for(&long, "completed").await;
    assert_eq!(done["steps"], 9);
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{long}"), None)
        .await;
    assert_eq!(full["latest_answer"], "long done");
    // The first call after the restart carried every step recorded before it: the
    // session went on from its last recorded step, not from the start.
    let requests = server.model.requests();
    let resumed = requests[requests_before..]
        .iter()
        .find(|r| r.to_string().contains("long task"))
        .expect("the long session called the model again");
    let assistant_turns = resumed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count();
    let recorded_steps = before[0]
        .iter()
        .filter(|e| e["data"]["kind"] == "policy_event")
        .count();
    assert!(
        assistant_turns >= recorded_steps && recorded_steps >= 3,
        "{assistant_turns} < {recorded_steps}"
    );

    // The queued session got the long one's slot once it ended.
    server.wait_for(&queued, "completed").await;
    // Dense indices: the log's total equals the events served from index 0.
    for id in [&long, &paused, &idle, &queued] {
        let events = all_events(&server, id).await;
        assert_eq!(events.len(), server.event_count(id).await, "{id}");
    }
    // The paused and idle sessions still work.
    let (code, _) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{idle}/messages"),
            Some(json!({"message": "again"})),
        )
        .await;
    assert_eq!(code, 202);
    server
        .wait_status(&idle, Duration::from_secs(20), |s| {
            s["status"] == "idle" && s["steps"] == 2
        })
        .await;
    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{paused}"), None)
        .await;
    assert_eq!(code, 204);
}
