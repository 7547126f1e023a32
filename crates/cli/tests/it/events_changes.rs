//! Reading the event log: `GET .../events` (pages) and `GET .../changes` (the SDK's
//! long-poll).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, agent, answer, script, think};
use crate::helpers::{assert_422_at, id_of, send, wait_model_requests};

async fn events_page(server: &Server, id: &str, query: &str) -> Value {
    let (code, page) = server
        .call(
            "GET",
            &format!("/api/v2/sessions/{id}/events?{query}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{query}: {page}");
    page
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn events_page_sort_and_filter_by_type() {
    let server = Server::start().await;
    script(&server, "many messages", vec![answer("read them all")]);
    // 60 initial messages: 61 events before the agent even starts.
    let messages: Vec<Value> = (0..60)
        .map(|i| json!({"message": format!("many messages {i}")}))
        .collect();
    let session = server
        .create(json!({"agent": agent("a"), "messages": messages}))
        .await;
    let id = id_of(&session);
    server.wait_for(&id, "completed").await;

    let everything = events_page(&server, &id, "size=200").await;
    let all = items(&everything);
    let total = everything["total"].as_u64().unwrap() as usize;
    assert_eq!(all.len(), total);
    assert!(total > 61, "{total}");
    for event in &all {
        let mut keys: Vec<&String> = event.as_object().expect("an object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["data", "timestamp", "type"], "{event}");
        assert!(event["type"].is_string() && event["timestamp"].is_string());
    }
    assert_eq!(all[0]["type"], "RequestStartEvent");
    assert_eq!(all[1]["data"]["content"], json!(["many messages 0"]));
    assert_eq!(all.last().unwrap()["type"], "AgentCompletionEvent");

    // The default page is 50 events.
    let first = events_page(&server, &id, "").await;
    assert_eq!(items(&first), all[..50]);
    assert_eq!(first["page"], 1);
    assert_eq!(first["total"].as_u64(), Some(total as u64));
    let second = events_page(&server, &id, "page=2").await;
    assert_eq!(items(&second), all[50..]);
    assert_eq!(second["page"], 2);
    let small = events_page(&server, &id, "size=3&page=4").await;
    assert_eq!(items(&small), all[9..12]);
    let beyond = events_page(&server, &id, "size=50&page=9").await;
    assert_eq!(items(&beyond), Vec::<Value>::new());
    assert_eq!(beyond["total"].as_u64(), Some(total as u64));

    // Newest first.
    let descending = items(&events_page(&server, &id, "size=200&sort=-timestamp").await);
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(descending, reversed);
    let newest_two = items(&events_page(&server, &id, "size=2&sort=-timestamp").await);
    assert_eq!(newest_two, reversed[..2]);
    let ascending = items(&events_page(&server, &id, "size=200&sort=timestamp").await);
    assert_eq!(ascending, all);

    // By type: exactly the events of that type, in log order, counted in `total`.
    let agent_events = events_page(&server, &id, "size=200&type=AgentEvent").await;
    let want: Vec<Value> = all
        .iter()
        .filter(|e| e["type"] == "AgentEvent")
        .cloned()
        .collect();
    assert_eq!(items(&agent_events), want);
    assert_eq!(agent_events["total"].as_u64(), Some(want.len() as u64));
    let completion = events_page(&server, &id, "type=AgentCompletionEvent").await;
    assert_eq!(completion["total"], 1);
    assert_eq!(completion["items"][0]["data"]["reason"], "finished");
    assert_eq!(
        events_page(&server, &id, "type=NoSuchEvent").await["total"],
        0
    );

    for (query, loc) in [
        ("size=201", json!(["query", "size"])),
        ("size=0", json!(["query", "size"])),
        ("page=0", json!(["query", "page"])),
        ("sort=created_at", json!(["query", "sort", 0])),
    ] {
        let (code, body) = server
            .call(
                "GET",
                &format!("/api/v2/sessions/{id}/events?{query}"),
                None,
            )
            .await;
        assert_422_at(code, &body, loc);
    }
}

#[tokio::test]
async fn changes_answers_204_with_an_etag_when_nothing_is_new() {
    let server = Server::start().await;
    script(&server, "go idle", vec![answer("resting")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "go idle", "idle_timeout_s": 600}))
        .await;
    let id = id_of(&session);
    server.wait_for(&id, "idle").await;
    let count = server.event_count(&id).await;

    // An idle session writes nothing: the poll waits its full second, then 204.
    let asked = Instant::now();
    let reply = send(
        &server,
        "GET",
        &format!("/api/v2/sessions/{id}/changes?from_index={count}&wait_for_seconds=1"),
        &[],
        None,
    )
    .await;
    let waited = asked.elapsed();
    assert_eq!(reply.status, 204, "{}", reply.raw);
    assert_eq!(reply.raw, "");
    assert_eq!(reply.header("etag"), Some(count.to_string().as_str()));
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // Without a wait it answers at once.
    let reply = send(
        &server,
        "GET",
        &format!("/api/v2/sessions/{id}/changes?from_index={count}"),
        &[],
        None,
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("etag"), Some(count.to_string().as_str()));

    // A terminal session read to its end: no reason to wait, 204 at once.
    let (code, _) = server
        .call("DELETE", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(code, 204);
    server.wait_for(&id, "interrupted").await;
    let count = server.event_count(&id).await;
    for from in [count, count + 5] {
        let asked = Instant::now();
        let reply = send(
            &server,
            "GET",
            &format!("/api/v2/sessions/{id}/changes?from_index={from}&wait_for_seconds=30"),
            &[],
            None,
        )
        .await;
        assert_eq!(reply.status, 204, "{}", reply.raw);
        assert_eq!(reply.raw, "");
        assert_eq!(reply.header("etag"), Some(from.to_string().as_str()));
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
    }
}

#[tokio::test]
async fn changes_limit_first_index_and_include_events() {
    let server = Server::start().await;
    script(&server, "short", vec![answer("done")]);
    let session = server
        .create(json!({"agent": agent("a"), "messages": "short"}))
        .await;
    let id = id_of(&session);
    server.wait_for(&id, "completed").await;
    let all = server.events(&id).await;
    assert!(all.len() >= 5, "{all:?}");

    let path = |query: &str| format!("/api/v2/sessions/{id}/changes?{query}");
    let (code, changes) = server
        .call("GET", &path("from_index=1&limit=2"), None)
        .await;
    assert_eq!(code, 200, "{changes}");
    assert_eq!(changes["new_events"], json!(all[1..3]));
    assert_eq!(changes["first_index"], 1);
    assert_eq!(changes["status"], "completed");
    assert_eq!(changes["answer"], "done");

    let (_, tail) = server
        .call("GET", &path(&format!("from_index={}", all.len() - 2)), None)
        .await;
    assert_eq!(tail["new_events"], json!(all[all.len() - 2..]));
    assert_eq!(tail["first_index"].as_u64(), Some(all.len() as u64 - 2));

    // Negative indexes read from the start.
    let (_, from_start) = server
        .call("GET", &path("from_index=-3&limit=1"), None)
        .await;
    assert_eq!(from_start["new_events"], json!(all[..1]));
    assert_eq!(from_start["first_index"], 0);

    // Without the events: still 200 (there is something new), and the rest of the body.
    let (code, bare) = server
        .call("GET", &path("from_index=0&include_events=false"), None)
        .await;
    assert_eq!(code, 200, "{bare}");
    assert_eq!(bare["new_events"], json!([]));
    assert_eq!(bare["first_index"], 0);
    assert_eq!(bare["status"], "completed");
    assert_eq!(bare["answer"], "done");
    assert_eq!(bare["outcome"], "success");
    assert_eq!(bare["metrics"]["steps"], 1);
    assert!(bare["finished_at"].is_string());

    for (query, loc) in [
        ("wait_for_seconds=61", json!(["query", "wait_for_seconds"])),
        ("wait_for_seconds=-1", json!(["query", "wait_for_seconds"])),
        ("limit=-1", json!(["query", "limit"])),
        ("from_index=x", json!(["query", "from_index"])),
        ("include_events=maybe", json!(["query", "include_events"])),
    ] {
        let (code, body) = server.call("GET", &path(query), None).await;
        assert_422_at(code, &body, loc);
    }
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_next_event_is_committed() {
    let server = Server::start().await;
    script(
        &server,
        "slow step",
        vec![think(1_500), answer("after the wait")],
    );
    let session = server
        .create(json!({"agent": agent("a"), "messages": "slow step"}))
        .await;
    let id = id_of(&session);
    // The model is answering (slowly): nothing is committed until it replies.
    wait_model_requests(&server, 1).await;
    let count = server.event_count(&id).await;

    let asked = Instant::now();
    let (code, changes) = server
        .call(
            "GET",
            &format!("/api/v2/sessions/{id}/changes?from_index={count}&wait_for_seconds=30"),
            None,
        )
        .await;
    let waited = asked.elapsed();
    assert_eq!(code, 200, "{changes}");
    assert!(
        waited < Duration::from_secs(10),
        "the poll held on after the event: {waited:?}"
    );
    assert_eq!(changes["first_index"].as_u64(), Some(count as u64));
    let new_events = changes["new_events"].as_array().expect("new events");
    assert!(!new_events.is_empty());
    // What it returned is what the log holds at those indexes.
    let all = server.events(&id).await;
    assert_eq!(new_events[..], all[count..count + new_events.len()]);
    server.wait_for(&id, "completed").await;
}

#[tokio::test]
async fn a_long_poll_on_an_idle_session_wakes_on_a_posted_message() {
    let server = std::sync::Arc::new(Server::start().await);
    script(&server, "wake me", vec![answer("first"), answer("second")]);
    let id = id_of(
        &server
            .create(json!({"agent": agent("a"), "messages": "wake me", "idle_timeout_s": 600}))
            .await,
    );
    server.wait_for(&id, "idle").await;
    let count = server.event_count(&id).await;
    let poll = {
        let server = server.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let asked = Instant::now();
            let reply = server
                .call(
                    "GET",
                    &format!(
                        "/api/v2/sessions/{id}/changes?from_index={count}&wait_for_seconds=30"
                    ),
                    None,
                )
                .await;
            (reply, asked.elapsed())
        })
    };
    let (code, _) = server
        .call(
            "POST",
            &format!("/api/v2/sessions/{id}/messages"),
            Some(json!({"message": "are you there"})),
        )
        .await;
    assert_eq!(code, 202);
    let ((code, changes), waited) = poll.await.unwrap();
    assert_eq!(code, 200, "{changes}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(changes["first_index"].as_u64(), Some(count as u64));
    let first = &changes["new_events"][0];
    assert_eq!(first["data"]["kind"], "message_event", "{changes}");
    assert_eq!(first["data"]["content"], json!(["are you there"]));
}
