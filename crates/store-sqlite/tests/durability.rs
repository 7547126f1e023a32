//! What a commit returned `Ok` for is in the file: after closing and reopening the
//! database, and when a second store (another process, such as the key-management CLI)
//! writes to the same file at the same time.

use agentd_domain::time::now_ms;
use agentd_domain::{NewEvent, OrgId, SessionId, SessionStatus};
use agentd_store::{
    Admission, ApiKeyRecord, CreateOutcome, Guard, IdempotencyKey, NewSession, SessionUpdate, Store,
};
use agentd_store_sqlite::SqliteStore;
use serde_json::json;

const OPEN: Admission = Admission {
    slot_limit: 100,
    queue: true,
    max_queued: 100,
};

fn new_session(org: &OrgId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        org_id: org.clone(),
        created_at: now_ms(),
        request: json!({ "messages": ["persist me"] }),
        spec: json!({ "model": "m" }),
        agent_name: Some("durable".to_owned()),
        group_id: None,
        parent_session_id: None,
        first_message: Some(json!("persist me")),
        search_text: "persist me".to_owned(),
        events: vec![NewEvent {
            event_type: "RequestStartEvent",
            data: json!({}),
        }],
        queued_events: Vec::new(),
    }
}

#[tokio::test]
async fn everything_committed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.db");
    let key = IdempotencyKey {
        key: "once".to_owned(),
        request_hash: "h".to_owned(),
    };

    let store = SqliteStore::open(&path).await.unwrap();
    let org = store.ensure_org("acme").await.unwrap();
    let api_key = ApiKeyRecord {
        id: "key-1".to_owned(),
        org_id: org.clone(),
        org_name: "acme".to_owned(),
        prefix: "hk-abc".to_owned(),
        created_at: now_ms(),
        revoked_at: None,
    };
    store.insert_api_key(&api_key, "digest").await.unwrap();
    let CreateOutcome::Created(created) = store
        .create_session(new_session(&org), OPEN, Some(key.clone()))
        .await
        .unwrap()
    else {
        panic!("expected a created session");
    };
    let update = SessionUpdate {
        status: Some(SessionStatus::Idle),
        idle_deadline: Some(Some(now_ms() + 60_000)),
        search_answer: Some("the answer".to_owned()),
        latest_answer: Some(Some(json!("the answer"))),
        ..SessionUpdate::default()
    };
    let events = vec![NewEvent {
        event_type: "AnswerEvent",
        data: json!({ "answer": "the answer" }),
    }];
    let committed = store
        .commit(created.id, &Guard::default(), update, events)
        .await
        .unwrap();
    assert!(
        store
            .set_event_feedback(created.id, 1, json!({ "rating": 1 }))
            .await
            .unwrap()
    );
    let log = store.events(created.id, 0, None).await.unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.ensure_org("acme").await.unwrap(), org);
    assert_eq!(store.find_api_key("digest").await.unwrap(), Some(api_key));
    assert_eq!(
        store.get_session(created.id).await.unwrap(),
        Some(committed.clone())
    );
    assert_eq!(store.events(created.id, 0, None).await.unwrap(), log);
    assert_eq!(store.count_active(&org).await.unwrap(), 1);
    assert_eq!(
        store.next_idle_deadline().await.unwrap(),
        committed.idle_deadline
    );
    match store
        .create_session(new_session(&org), OPEN, Some(key))
        .await
        .unwrap()
    {
        CreateOutcome::Replayed(session) => assert_eq!(session, committed),
        other => panic!("expected Replayed, got {other:?}"),
    }
    let search = agentd_store::SessionFilter {
        search: Some("ANSWER".to_owned()),
        page: 1,
        size: 10,
        ..Default::default()
    };
    let (found, total) = store.list_sessions(&org, &search).await.unwrap();
    assert_eq!((found, total), (vec![committed], 1));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.db");
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    let org = first.ensure_org("shared").await.unwrap();
    assert_eq!(second.ensure_org("shared").await.unwrap(), org);

    let mut tasks = tokio::task::JoinSet::new();
    for store in [first.clone(), second.clone()] {
        let org = org.clone();
        tasks.spawn(async move {
            for _ in 0..50 {
                let outcome = store
                    .create_session(new_session(&org), OPEN, None)
                    .await
                    .unwrap();
                assert!(matches!(outcome, CreateOutcome::Created(_)));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let everything = agentd_store::SessionFilter {
        page: 1,
        size: 1,
        ..Default::default()
    };
    // Both stores see all 100; the slot counter was kept by both writers.
    assert_eq!(first.list_sessions(&org, &everything).await.unwrap().1, 100);
    assert_eq!(
        second.list_sessions(&org, &everything).await.unwrap().1,
        100
    );
    assert_eq!(first.count_active(&org).await.unwrap(), 100);
    first.close().await;
    second.close().await;
}
