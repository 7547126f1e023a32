//! `GET /api/v2/sessions`: every filter, the order, paging, and the summary's shape.

use serde_json::{Value, json};

use crate::common::{Options, Server, agent, answer, script, think};
use crate::helpers::{assert_422_at, id_of};

const CONFIG: &str = r#"
[[agents]]
name = "acme/finder"
description = "Finds things."
environments = []
"#;

async fn list(server: &Server, query: &str) -> Value {
    let (code, page) = server
        .call("GET", &format!("/api/v2/sessions?{query}"), None)
        .await;
    assert_eq!(code, 200, "{query}: {page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect()
}

/// Three sessions: `finder` (catalog agent, group g1, completed), `idler` (inline, group
/// g1, idle after answering) and `child` (inline, child of `finder`, interrupted).
struct Fixture {
    server: Server,
    finder: Value,
    idler: Value,
    child: Value,
}

async fn fixture() -> Fixture {
    let server = Server::start_with(Options {
        config: Some(CONFIG.to_string()),
        ..Default::default()
    })
    .await;
    script(&server, "Alpha NEEDLE task", vec![answer("Zebra answer")]);
    script(&server, "beta task", vec![answer("Quokka found")]);
    script(&server, "gamma task", vec![think(20_000)]);
    let finder = server
        .create(json!({"agent": "acme/finder", "messages": "Alpha NEEDLE task", "group_id": "g1"}))
        .await;
    let finder_id = id_of(&finder);
    server.wait_for(&finder_id, "completed").await;
    let idler = server
        .create(
            json!({"agent": agent("inline-idler"), "messages": "beta task",
                       "group_id": "g1", "idle_timeout_s": 600}),
        )
        .await;
    server.wait_for(&id_of(&idler), "idle").await;
    let child = server
        .create(
            json!({"agent": agent("inline-child"), "messages": "gamma task",
                       "parent_session_id": finder_id}),
        )
        .await;
    let (code, _) = server
        .call(
            "DELETE",
            &format!("/api/v2/sessions/{}", id_of(&child)),
            None,
        )
        .await;
    assert_eq!(code, 204);
    server.wait_for(&id_of(&child), "interrupted").await;
    Fixture {
        server,
        finder,
        idler,
        child,
    }
}

#[tokio::test]
async fn the_list_filters_sorts_and_pages() {
    let Fixture {
        server,
        finder,
        idler,
        child,
    } = fixture().await;
    let (finder, idler, child) = (id_of(&finder), id_of(&idler), id_of(&child));
    let (finder, idler, child) = (finder.as_str(), idler.as_str(), child.as_str());

    // Newest first by default; `sort=created_at` is oldest first.
    let all = list(&server, "").await;
    assert_eq!(ids(&all), [child, idler, finder]);
    assert_eq!(all["total"], 3);
    assert_eq!(all["page"], 1);
    let oldest_first = list(&server, "sort=created_at").await;
    assert_eq!(ids(&oldest_first), [finder, idler, child]);
    let explicit_newest = list(&server, "sort=-created_at").await;
    assert_eq!(ids(&explicit_newest), [child, idler, finder]);

    // Status, repeated.
    let settled = list(&server, "status=completed&status=idle").await;
    assert_eq!(ids(&settled), [idler, finder]);
    assert_eq!(settled["total"], 2);
    assert_eq!(ids(&list(&server, "status=interrupted").await), [child]);
    let none = list(&server, "status=running").await;
    assert_eq!(none["total"], 0);
    assert_eq!(none["items"], json!([]));

    // The catalog name the session was created with (repeatable, any of them).
    assert_eq!(ids(&list(&server, "agent=acme/finder").await), [finder]);
    assert_eq!(
        ids(&list(&server, "agent=acme/nobody&agent=acme/finder").await),
        [finder]
    );
    assert_eq!(list(&server, "agent=acme/nobody").await["total"], 0);
    // Inline agents are listed under their name but cannot be filtered by it.
    assert_eq!(list(&server, "agent=inline-idler").await["total"], 0);

    assert_eq!(ids(&list(&server, "group_id=g1").await), [idler, finder]);
    assert_eq!(list(&server, "group_id=g2").await["total"], 0);
    assert_eq!(
        ids(&list(&server, &format!("parent_session_id={finder}")).await),
        [child]
    );
    assert_eq!(
        list(&server, &format!("parent_session_id={child}")).await["total"],
        0
    );

    // Search: the first message or the answer, case-insensitively.
    assert_eq!(ids(&list(&server, "search=needle").await), [finder]);
    assert_eq!(ids(&list(&server, "search=zEBRA").await), [finder]);
    assert_eq!(ids(&list(&server, "search=QUOKKA").await), [idler]);
    assert_eq!(
        ids(&list(&server, "search=task").await),
        [child, idler, finder]
    );
    assert_eq!(list(&server, "search=platypus").await["total"], 0);

    // Filters combine.
    assert_eq!(
        ids(&list(&server, "group_id=g1&status=idle&search=beta").await),
        [idler]
    );
    assert_eq!(
        list(&server, "group_id=g1&status=interrupted").await["total"],
        0
    );

    // Pages: `size` items each, `total` over all of them.
    let first = list(&server, "size=2&sort=created_at").await;
    assert_eq!(ids(&first), [finder, idler]);
    assert_eq!(
        (first["total"].as_u64(), first["page"].as_u64()),
        (Some(3), Some(1))
    );
    let second = list(&server, "size=2&page=2&sort=created_at").await;
    assert_eq!(ids(&second), [child]);
    assert_eq!(
        (second["total"].as_u64(), second["page"].as_u64()),
        (Some(3), Some(2))
    );
    let past_the_end = list(&server, "size=2&page=3").await;
    assert_eq!(past_the_end["items"], json!([]));
    assert_eq!(past_the_end["total"], 3);
    assert_eq!(list(&server, "size=100").await["total"], 3);
}

#[tokio::test]
async fn the_list_filters_on_creation_time() {
    let Fixture {
        server,
        finder,
        idler,
        child,
    } = fixture().await;
    let sessions = [&finder, &idler, &child];
    let created = |s: &Value| s["created_at"].as_str().expect("created_at").to_string();

    // The bounds are strict. Sessions created in the same millisecond share a bound,
    // so the expected lists are computed from the timestamps the server gave.
    for bound in sessions {
        let at = created(bound);
        let after = ids(&list(&server, &format!("created_after={at}&sort=created_at")).await);
        let want_after: Vec<String> = sessions
            .iter()
            .filter(|s| created(s) > at)
            .map(|s| id_of(s))
            .collect();
        assert_eq!(after, want_after, "created_after={at}");
        assert!(!after.contains(&id_of(bound)));

        let before = ids(&list(&server, &format!("created_before={at}&sort=created_at")).await);
        let want_before: Vec<String> = sessions
            .iter()
            .filter(|s| created(s) < at)
            .map(|s| id_of(s))
            .collect();
        assert_eq!(before, want_before, "created_before={at}");
    }
    assert_eq!(
        list(&server, "created_after=2000-01-01T00:00:00Z").await["total"],
        3
    );
    assert_eq!(
        list(&server, "created_before=2000-01-01T00:00:00Z").await["total"],
        0
    );
    // Unix epoch seconds are read too.
    assert_eq!(list(&server, "created_after=946684800").await["total"], 3);
    assert_eq!(list(&server, "created_before=946684800").await["total"], 0);
    // Any offset, its `+` escaped as clients do.
    assert_eq!(
        list(&server, "created_after=2000-01-01T02:00:00%2B02:00").await["total"],
        3
    );
    assert_eq!(
        list(&server, "created_before=2000-01-01T02:00:00%2B02:00").await["total"],
        0
    );

    // Finish times: a session that has not finished has none to compare.
    let finished = ids(&list(&server, "finished_after=946684800&sort=created_at").await);
    assert_eq!(finished, [id_of(&finder), id_of(&child)]);
    assert_eq!(list(&server, "finished_before=946684800").await["total"], 0);
    let child_end = child["finished_at"].clone();
    let (_, child_now) = server
        .call("GET", &format!("/api/v2/sessions/{}", id_of(&child)), None)
        .await;
    assert!(child_end.is_null(), "created before it finished");
    let end = child_now["finished_at"].as_str().expect("finished");
    let before_end = ids(&list(&server, &format!("finished_before={end}")).await);
    assert!(!before_end.contains(&id_of(&child)), "strict bound");
    assert!(!before_end.contains(&id_of(&idler)));
}

#[tokio::test]
async fn a_summary_has_the_sdk_shape() {
    let Fixture { server, finder, .. } = fixture().await;
    let page = list(&server, "agent=acme/finder").await;
    let summary = &page["items"][0];
    let mut keys: Vec<&str> = summary
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "agent",
            "agent_revision",
            "agent_view_url",
            "anonymized_at",
            "created_at",
            "finished_at",
            "first_message",
            "id",
            "last_activity_at",
            "started_at",
            "status",
        ]
    );
    assert_eq!(summary["id"], finder["id"]);
    assert_eq!(summary["agent"], "acme/finder");
    assert_eq!(summary["status"], "completed", "a string, not an object");
    assert_eq!(
        summary["first_message"],
        json!({"type": "user_message", "message": "Alpha NEEDLE task", "images": [], "caller_id": "user"})
    );
    assert_eq!(summary["created_at"], finder["created_at"]);
    for key in [
        "created_at",
        "started_at",
        "finished_at",
        "last_activity_at",
    ] {
        let text = summary[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {summary}"));
        assert!(text.ends_with('Z') && text.contains('T'), "{key}: {text}");
    }
    assert!(summary["finished_at"].as_str() >= summary["started_at"].as_str());
    // An inline agent is listed under its name.
    let page = list(&server, "status=idle").await;
    assert_eq!(page["items"][0]["agent"], "inline-idler");
}

#[tokio::test]
async fn bad_list_queries_are_a_422_naming_the_parameter() {
    let server = Server::start().await;
    let cases = [
        ("size=101", json!(["query", "size"])),
        ("size=0", json!(["query", "size"])),
        ("page=0", json!(["query", "page"])),
        ("status=done", json!(["query", "status", 0])),
        ("status=idle&status=nope", json!(["query", "status", 1])),
        ("sort=name", json!(["query", "sort", 0])),
        (
            "parent_session_id=not-a-uuid",
            json!(["query", "parent_session_id"]),
        ),
        ("created_after=yesterday", json!(["query", "created_after"])),
        ("owner=everyone", json!(["query", "owner"])),
    ];
    for (query, loc) in cases {
        let (code, body) = server
            .call("GET", &format!("/api/v2/sessions?{query}"), None)
            .await;
        assert_422_at(code, &body, loc);
    }
    let (code, _) = server.call("GET", "/api/v2/sessions?size=100", None).await;
    assert_eq!(code, 200);
}
