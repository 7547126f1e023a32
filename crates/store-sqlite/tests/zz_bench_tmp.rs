use agentd_domain::time::now_ms;
use agentd_domain::{NewEvent, SessionId};
use agentd_store::{
    Admission, CreateOutcome, Guard, IdempotencyKey, NewSession, SessionUpdate, Store,
};
use agentd_store_sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("a.db")).await.unwrap());
    let org = store.ensure_org("o").await.unwrap();
    let adm = Admission {
        slot_limit: 100_000,
        queue: true,
        max_queued: 1000,
    };
    let n = 20_000;
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..64 {
        let store = store.clone();
        let org = org.clone();
        tasks.spawn(async move {
            for i in 0..n/64 {
                let new = NewSession { id: SessionId::new(), org_id: org.clone(), created_at: now_ms(),
                    request: json!({"messages": ["hello there, please find flights"], "agent": {"model": "x"}}),
                    spec: json!({"model": "m", "tools": [], "max_steps": 30, "system": "You are a helpful agent"}),
                    agent_name: None, group_id: None, parent_session_id: None, first_message: Some(json!("hello")),
                    search_text: "hello there".into(),
                    events: vec![NewEvent{event_type: "RequestStartEvent", data: json!({})}, NewEvent{event_type: "UserMessageEvent", data: json!({"content": ["hello"]})}],
                    queued_events: vec![] };
                let key = IdempotencyKey { key: format!("k{w}-{i}"), request_hash: "h".into() };
                match store.create_session(new, adm, Some(key)).await.unwrap() { CreateOutcome::Created(_) => {}, o => panic!("{o:?}") }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let el = start.elapsed();
    eprintln!(
        "creates: {} in {:?} = {:.0}/s",
        n,
        el,
        n as f64 / el.as_secs_f64()
    );
    let ids = store
        .sessions_in_status(&[agentd_domain::SessionStatus::Pending])
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ids.chunks(ids.len() / 64 + 1) {
        let store = store.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for id in chunk {
                store
                    .commit(
                        id,
                        &Guard {
                            epoch: Some(0),
                            ..Default::default()
                        },
                        SessionUpdate {
                            steps: Some(1),
                            ..Default::default()
                        },
                        vec![NewEvent {
                            event_type: "X",
                            data: json!({"a": 1}),
                        }],
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let el = start.elapsed();
    eprintln!(
        "commits: {} in {:?} = {:.0}/s",
        ids.len(),
        el,
        ids.len() as f64 / el.as_secs_f64()
    );
    let start = std::time::Instant::now();
    for id in &ids[..5000] {
        store.get_session(*id).await.unwrap().unwrap();
    }
    let el = start.elapsed();
    eprintln!("gets: 5000 in {:?}", el);
}
