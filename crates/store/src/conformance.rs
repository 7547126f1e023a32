//! The behaviour every [`Store`] backend must have, written once as generic async tests.
//!
//! A backend instantiates the whole suite in one of its test files:
//!
//! ```ignore
//! agentd_store::conformance_suite!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(&dir.path().join("db")).await.unwrap();
//!     (store, dir)
//! });
//! ```
//!
//! The expression is evaluated once per test and must resolve to `(store, guard)`: a
//! fresh, empty store, and whatever must outlive it (a temporary directory, a database
//! handle, or `()`). The guard is dropped after the store. The crate that instantiates the
//! suite needs `tokio` with the `macros` and `rt-multi-thread` features.
//!
//! Each test is a `pub async fn` taking `Arc<S>`, so a backend can also call one on its own.
//! Tests that scan the whole store (recovery, idle deadlines) rely on the store being
//! fresh; the others only look at organisations and sessions they made.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::time::{Millis, now_ms};
use agentd_domain::{ErrorCode, NewEvent, OrgId, Outcome, SessionId, SessionStatus};
use serde_json::json;
use uuid::Uuid;

use crate::{
    Admission, ApiKeyRecord, Change, ChangeReceiver, CreateOutcome, EventPageQuery, EventRecord,
    Guard, IdempotencyKey, NewSession, SessionFilter, SessionRecord, SessionUpdate, Store,
    StoreError,
};

/// Expands to one `#[tokio::test]` per conformance test, each run against a store made
/// by `$constructor` (see the [module docs](crate::conformance)).
#[macro_export]
macro_rules! conformance_suite {
    ($constructor:expr) => {
        $crate::conformance_suite!(@tests ($constructor)
            create_and_get_round_trip_every_field,
            get_unknown_session_is_none,
            events_have_dense_indices_and_windows,
            commit_with_stale_epoch_writes_nothing,
            commit_with_wrong_status_writes_nothing,
            commit_slot_guard_counts_other_sessions,
            commit_unknown_session_is_not_found,
            update_none_keeps_and_some_none_clears,
            bump_epoch_and_add_subagent_accumulate,
            empty_commit_reads_under_the_guard,
            idempotent_create_replays_and_conflicts,
            idempotency_key_expires_after_a_day,
            concurrent_creates_with_one_key_make_one_session,
            concurrent_creates_respect_the_slot_limit,
            admission_starts_queues_and_refuses,
            count_active_counts_slot_holding_statuses,
            promote_queued_is_fifo_and_respects_slots,
            list_filters_all_must_hold,
            list_search_matches_message_or_answer_case_insensitively,
            list_sorting_and_pagination,
            events_page_filters_sorts_and_pages,
            event_feedback_needs_an_existing_event,
            idle_deadlines,
            sessions_in_status_oldest_first,
            ensure_org_is_stable,
            api_keys_lookup_list_and_revoke,
            subscriber_receives_committed_row_and_events,
            refused_commits_publish_nothing,
            creates_and_promotions_are_published,
        );
    };
    (@tests ($constructor:expr) $($test:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let (store, guard) = $constructor.await;
                let store = ::std::sync::Arc::new(store);
                $crate::conformance::$test(::std::sync::Arc::clone(&store)).await;
                drop(store);
                drop(guard);
            }
        )+
    };
}

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);
const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// Admission that never queues nor refuses in these tests.
const OPEN: Admission = Admission {
    slot_limit: 10_000,
    queue: true,
    max_queued: 1000,
};

// ---- helpers

/// A new organisation with a unique name.
async fn new_org<S: Store + ?Sized>(store: &S, label: &str) -> OrgId {
    store
        .ensure_org(&format!("{label}-{}", Uuid::new_v4()))
        .await
        .unwrap()
}

fn event(event_type: &'static str, n: u64) -> NewEvent {
    NewEvent {
        event_type,
        data: json!({ "n": n }),
    }
}

/// A session with two initial events and one event for the queue.
fn new_session(org: &OrgId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        org_id: org.clone(),
        created_at: now_ms(),
        request: json!({ "messages": ["hello"] }),
        spec: json!({ "model": "test-model" }),
        agent_name: None,
        group_id: None,
        parent_session_id: None,
        first_message: Some(json!("hello")),
        search_text: "hello".to_owned(),
        events: vec![event("RequestStartEvent", 0), event("UserMessageEvent", 1)],
        queued_events: vec![event("QueuedEvent", 2)],
    }
}

async fn create_with<S: Store + ?Sized>(
    store: &S,
    new: NewSession,
    admission: Admission,
) -> SessionRecord {
    match store.create_session(new, admission, None).await.unwrap() {
        CreateOutcome::Created(session) => session,
        other => panic!("expected a created session, got {other:?}"),
    }
}

async fn create<S: Store + ?Sized>(store: &S, new: NewSession) -> SessionRecord {
    create_with(store, new, OPEN).await
}

async fn set_status<S: Store + ?Sized>(
    store: &S,
    id: SessionId,
    status: SessionStatus,
) -> SessionRecord {
    let update = SessionUpdate {
        status: Some(status),
        ..SessionUpdate::default()
    };
    store
        .commit(id, &Guard::default(), update, Vec::new())
        .await
        .unwrap()
}

async fn get<S: Store + ?Sized>(store: &S, id: SessionId) -> SessionRecord {
    store
        .get_session(id)
        .await
        .unwrap()
        .expect("session exists")
}

async fn all_events<S: Store + ?Sized>(store: &S, id: SessionId) -> Vec<EventRecord> {
    store.events(id, 0, None).await.unwrap()
}

fn indices(events: &[EventRecord]) -> Vec<u64> {
    events.iter().map(|e| e.index).collect()
}

fn types(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn ids(sessions: &[SessionRecord]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id).collect()
}

fn list_all() -> SessionFilter {
    SessionFilter {
        page: 1,
        size: 100,
        ..SessionFilter::default()
    }
}

async fn listed<S: Store + ?Sized>(
    store: &S,
    org: &OrgId,
    filter: SessionFilter,
) -> (Vec<SessionId>, u64) {
    let (sessions, total) = store.list_sessions(org, &filter).await.unwrap();
    (ids(&sessions), total)
}

fn expect_guard_failed(error: StoreError) -> SessionRecord {
    match error {
        StoreError::GuardFailed { current } => *current,
        other => panic!("expected GuardFailed, got {other:?}"),
    }
}

/// Waits until the receiver has a change it has not seen, and takes it.
async fn next_change(receiver: &mut ChangeReceiver) -> Arc<Change> {
    tokio::time::timeout(WAIT, receiver.changed())
        .await
        .expect("a change is published")
        .expect("the feed is alive");
    receiver
        .borrow_and_update()
        .clone()
        .expect("a published change")
}

// ---- sessions: create, get, commit

pub async fn create_and_get_round_trip_every_field<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "round-trip").await;
    let parent = create(&*store, new_session(&org)).await;

    let mut new = new_session(&org);
    new.created_at = 1_700_000_000_123;
    new.request = json!({ "agent": { "name": "web" }, "messages": ["Find the café"] });
    new.spec = json!({ "model": "m", "tools": [{ "name": "click" }], "max_steps": 3 });
    new.agent_name = Some("web".to_owned());
    new.group_id = Some("group-1".to_owned());
    new.parent_session_id = Some(parent.id);
    new.first_message = Some(json!({ "type": "user_message", "content": ["Find the café"] }));
    new.search_text = "Find the café".to_owned();
    let created = create(&*store, new.clone()).await;

    let expected = SessionRecord {
        id: new.id,
        org_id: org.clone(),
        status: SessionStatus::Pending,
        created_at: 1_700_000_000_123,
        started_at: None,
        finished_at: None,
        last_activity_at: 1_700_000_000_123,
        request: new.request.clone(),
        spec: new.spec.clone(),
        agent_name: Some("web".to_owned()),
        group_id: Some("group-1".to_owned()),
        parent_session_id: Some(parent.id),
        first_message: new.first_message.clone(),
        latest_answer: None,
        outcome: None,
        error: None,
        error_code: None,
        steps: 0,
        usage: json!([]),
        subagent_session_ids: Vec::new(),
        pending_tool_calls: json!([]),
        event_count: 2,
        epoch: 0,
        force_answer: false,
        idle_deadline: None,
        loop_state: json!({}),
        shared: false,
        feedback: None,
    };
    assert_eq!(created, expected);
    assert_eq!(get(&*store, new.id).await, expected);

    let child = SessionId::new();
    let update = SessionUpdate {
        status: Some(SessionStatus::Idle),
        started_at: Some(Some(1_700_000_001_000)),
        finished_at: Some(Some(1_700_000_002_000)),
        latest_answer: Some(Some(json!({ "answer": 42, "text": "forty-two" }))),
        search_answer: Some("forty-two".to_owned()),
        outcome: Some(Some(Outcome::Partial)),
        error: Some(Some("it broke".to_owned())),
        error_code: Some(Some(ErrorCode::AnswerValidation)),
        steps: Some(7),
        usage: Some(json!([{ "model": "m", "input_tokens": 10, "output_tokens": 2 }])),
        add_subagent: Some(child),
        pending_tool_calls: Some(json!([{ "id": "call-1", "name": "lookup" }])),
        bump_epoch: true,
        force_answer: Some(true),
        idle_deadline: Some(Some(1_700_000_003_000)),
        loop_state: Some(json!({ "turns": 2, "nudges": [1, 2] })),
        shared: Some(true),
        feedback: Some(json!({ "rating": 1, "comment": "good" })),
    };
    let committed = store
        .commit(new.id, &Guard::default(), update, Vec::new())
        .await
        .unwrap();
    let expected = SessionRecord {
        status: SessionStatus::Idle,
        started_at: Some(1_700_000_001_000),
        finished_at: Some(1_700_000_002_000),
        latest_answer: Some(json!({ "answer": 42, "text": "forty-two" })),
        outcome: Some(Outcome::Partial),
        error: Some("it broke".to_owned()),
        error_code: Some(ErrorCode::AnswerValidation),
        steps: 7,
        usage: json!([{ "model": "m", "input_tokens": 10, "output_tokens": 2 }]),
        subagent_session_ids: vec![child],
        pending_tool_calls: json!([{ "id": "call-1", "name": "lookup" }]),
        epoch: 1,
        force_answer: true,
        idle_deadline: Some(1_700_000_003_000),
        loop_state: json!({ "turns": 2, "nudges": [1, 2] }),
        shared: true,
        feedback: Some(json!({ "rating": 1, "comment": "good" })),
        ..expected
    };
    assert_eq!(committed, expected);
    assert_eq!(get(&*store, new.id).await, expected);

    for code in [
        ErrorCode::EnvironmentError,
        ErrorCode::NoAnswer,
        ErrorCode::Timeout,
        ErrorCode::InsufficientCredit,
        ErrorCode::Internal,
    ] {
        let update = SessionUpdate {
            error_code: Some(Some(code)),
            ..SessionUpdate::default()
        };
        store
            .commit(new.id, &Guard::default(), update, Vec::new())
            .await
            .unwrap();
        assert_eq!(get(&*store, new.id).await.error_code, Some(code));
    }
    for status in SessionStatus::ALL {
        assert_eq!(set_status(&*store, new.id, status).await.status, status);
        assert_eq!(get(&*store, new.id).await.status, status);
    }
    for outcome in Outcome::ALL {
        let update = SessionUpdate {
            outcome: Some(Some(outcome)),
            ..SessionUpdate::default()
        };
        store
            .commit(new.id, &Guard::default(), update, Vec::new())
            .await
            .unwrap();
        assert_eq!(get(&*store, new.id).await.outcome, Some(outcome));
    }
}

pub async fn get_unknown_session_is_none<S: Store + ?Sized>(store: Arc<S>) {
    assert_eq!(store.get_session(SessionId::new()).await.unwrap(), None);
    assert!(
        store
            .events(SessionId::new(), 0, None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn events_have_dense_indices_and_windows<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "events").await;
    let session = create(&*store, new_session(&org)).await;
    let other = create(&*store, new_session(&org)).await;
    assert_eq!(
        indices(&all_events(&*store, session.id).await),
        [0, 1],
        "initial events start at 0"
    );

    let before = now_ms();
    let committed = store
        .commit(
            session.id,
            &Guard::default(),
            SessionUpdate::default(),
            vec![event("A", 2), event("B", 3), event("C", 4)],
        )
        .await
        .unwrap();
    let after = now_ms();
    assert_eq!(committed.event_count, 5);

    let all = all_events(&*store, session.id).await;
    assert_eq!(indices(&all), [0, 1, 2, 3, 4]);
    assert_eq!(
        types(&all),
        ["RequestStartEvent", "UserMessageEvent", "A", "B", "C"]
    );
    for (n, event) in (0u64..).zip(&all) {
        assert_eq!(event.data, json!({ "n": n }));
    }
    for appended in &all[2..] {
        assert!((before..=after).contains(&appended.timestamp));
        assert_eq!(appended.timestamp, committed.last_activity_at);
    }
    assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    let window = |from, limit| {
        let store = Arc::clone(&store);
        async move { indices(&store.events(session.id, from, limit).await.unwrap()) }
    };
    assert_eq!(window(1, Some(2)).await, [1, 2]);
    assert_eq!(window(3, None).await, [3, 4]);
    assert_eq!(window(4, Some(10)).await, [4]);
    assert_eq!(window(5, None).await, Vec::<u64>::new());
    assert_eq!(window(0, Some(0)).await, Vec::<u64>::new());
    assert_eq!(window(u64::MAX, None).await, Vec::<u64>::new());

    // A second commit continues where the first ended; other logs are untouched.
    let committed = store
        .commit(
            session.id,
            &Guard::default(),
            SessionUpdate::default(),
            vec![event("D", 5)],
        )
        .await
        .unwrap();
    assert_eq!(committed.event_count, 6);
    assert_eq!(window(5, None).await, [5]);
    assert_eq!(indices(&all_events(&*store, other.id).await), [0, 1]);
}

pub async fn commit_with_stale_epoch_writes_nothing<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "epoch").await;
    let session = create(&*store, new_session(&org)).await;
    let bump = SessionUpdate {
        bump_epoch: true,
        ..SessionUpdate::default()
    };
    let bumped = store
        .commit(session.id, &Guard::default(), bump, Vec::new())
        .await
        .unwrap();
    assert_eq!(bumped.epoch, 1);

    let stale = Guard {
        epoch: Some(0),
        ..Guard::default()
    };
    let update = SessionUpdate {
        status: Some(SessionStatus::Running),
        steps: Some(3),
        ..SessionUpdate::default()
    };
    let error = store
        .commit(session.id, &stale, update.clone(), vec![event("Late", 9)])
        .await
        .unwrap_err();
    let current = expect_guard_failed(error);
    assert_eq!(current, bumped, "the current row comes back");
    assert_eq!(
        get(&*store, session.id).await,
        bumped,
        "nothing was written"
    );
    assert_eq!(indices(&all_events(&*store, session.id).await), [0, 1]);

    let fresh = Guard {
        epoch: Some(1),
        ..Guard::default()
    };
    let committed = store
        .commit(session.id, &fresh, update, vec![event("OnTime", 2)])
        .await
        .unwrap();
    assert_eq!(committed.status, SessionStatus::Running);
    assert_eq!(committed.steps, 3);
    assert_eq!(committed.event_count, 3);
}

pub async fn commit_with_wrong_status_writes_nothing<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "status-guard").await;
    let session = create(&*store, new_session(&org)).await;
    let update = SessionUpdate {
        status: Some(SessionStatus::Completed),
        ..SessionUpdate::default()
    };

    let running_or_idle = Guard {
        statuses: Some(vec![SessionStatus::Running, SessionStatus::Idle]),
        ..Guard::default()
    };
    let error = store
        .commit(
            session.id,
            &running_or_idle,
            update.clone(),
            vec![event("X", 2)],
        )
        .await
        .unwrap_err();
    assert_eq!(expect_guard_failed(error), session);

    // Every condition must hold: a right epoch does not save a wrong status.
    let both = Guard {
        epoch: Some(0),
        statuses: Some(vec![SessionStatus::Running]),
        slot_limit: None,
    };
    let error = store
        .commit(session.id, &both, update.clone(), vec![event("X", 2)])
        .await
        .unwrap_err();
    assert_eq!(expect_guard_failed(error), session);
    assert_eq!(get(&*store, session.id).await, session);
    assert_eq!(all_events(&*store, session.id).await.len(), 2);

    let pending = Guard {
        epoch: Some(0),
        statuses: Some(vec![SessionStatus::Pending, SessionStatus::Running]),
        slot_limit: None,
    };
    let committed = store
        .commit(session.id, &pending, update, vec![event("X", 2)])
        .await
        .unwrap();
    assert_eq!(committed.status, SessionStatus::Completed);
    assert_eq!(committed.event_count, 3);
}

pub async fn commit_slot_guard_counts_other_sessions<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "slot-guard").await;
    let holder = create(&*store, new_session(&org)).await;
    let ended = create(&*store, new_session(&org)).await;
    let ended = set_status(&*store, ended.id, SessionStatus::Completed).await;
    let restart = SessionUpdate {
        status: Some(SessionStatus::Pending),
        finished_at: Some(None),
        ..SessionUpdate::default()
    };
    let one_slot = Guard {
        slot_limit: Some(1),
        ..Guard::default()
    };

    // The holder takes the only slot: the ended session may not restart.
    let error = store
        .commit(ended.id, &one_slot, restart.clone(), vec![event("Msg", 2)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::QuotaExceeded {
                active: 1,
                limit: 1
            }
        ),
        "{error:?}"
    );
    assert_eq!(get(&*store, ended.id).await, ended);
    assert_eq!(all_events(&*store, ended.id).await.len(), 2);

    // A session's own slot does not count against it.
    let kept = store
        .commit(
            holder.id,
            &one_slot,
            SessionUpdate::default(),
            vec![event("Msg", 2)],
        )
        .await
        .unwrap();
    assert_eq!(kept.event_count, 3);

    let two_slots = Guard {
        slot_limit: Some(2),
        ..Guard::default()
    };
    let restarted = store
        .commit(ended.id, &two_slots, restart, vec![event("Msg", 2)])
        .await
        .unwrap();
    assert_eq!(restarted.status, SessionStatus::Pending);
    assert_eq!(store.count_active(&org).await.unwrap(), 2);

    // Slots of another organisation do not count.
    let other_org = new_org(&*store, "slot-guard-other").await;
    let other = create(&*store, new_session(&other_org)).await;
    store
        .commit(
            other.id,
            &one_slot,
            SessionUpdate::default(),
            vec![event("Msg", 2)],
        )
        .await
        .unwrap();
}

pub async fn commit_unknown_session_is_not_found<S: Store + ?Sized>(store: Arc<S>) {
    let error = store
        .commit(
            SessionId::new(),
            &Guard::default(),
            SessionUpdate::default(),
            vec![event("X", 0)],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
}

pub async fn update_none_keeps_and_some_none_clears<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "update").await;
    let session = create(&*store, new_session(&org)).await;
    let set = SessionUpdate {
        started_at: Some(Some(10)),
        finished_at: Some(Some(20)),
        latest_answer: Some(Some(json!("answer"))),
        outcome: Some(Some(Outcome::Success)),
        error: Some(Some("error".to_owned())),
        error_code: Some(Some(ErrorCode::Timeout)),
        idle_deadline: Some(Some(30)),
        feedback: Some(json!({ "rating": -1 })),
        ..SessionUpdate::default()
    };
    let with_values = store
        .commit(session.id, &Guard::default(), set, Vec::new())
        .await
        .unwrap();

    let unrelated = SessionUpdate {
        steps: Some(4),
        ..SessionUpdate::default()
    };
    let kept = store
        .commit(session.id, &Guard::default(), unrelated, Vec::new())
        .await
        .unwrap();
    assert_eq!(
        kept,
        SessionRecord {
            steps: 4,
            ..with_values.clone()
        },
        "None leaves every other field as it is"
    );

    let clear = SessionUpdate {
        started_at: Some(None),
        finished_at: Some(None),
        latest_answer: Some(None),
        outcome: Some(None),
        error: Some(None),
        error_code: Some(None),
        idle_deadline: Some(None),
        ..SessionUpdate::default()
    };
    let cleared = store
        .commit(session.id, &Guard::default(), clear, Vec::new())
        .await
        .unwrap();
    assert_eq!(cleared.started_at, None);
    assert_eq!(cleared.finished_at, None);
    assert_eq!(cleared.latest_answer, None);
    assert_eq!(cleared.outcome, None);
    assert_eq!(cleared.error, None);
    assert_eq!(cleared.error_code, None);
    assert_eq!(cleared.idle_deadline, None);
    assert_eq!(cleared.steps, 4);
    assert_eq!(cleared.feedback, Some(json!({ "rating": -1 })));
    assert_eq!(get(&*store, session.id).await, cleared);

    // Events move last_activity_at; updates alone do not.
    assert_eq!(cleared.last_activity_at, session.last_activity_at);
    let before = now_ms();
    let active = store
        .commit(
            session.id,
            &Guard::default(),
            SessionUpdate::default(),
            vec![event("E", 2)],
        )
        .await
        .unwrap();
    assert!(active.last_activity_at >= before);
}

pub async fn bump_epoch_and_add_subagent_accumulate<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "accumulate").await;
    let session = create(&*store, new_session(&org)).await;
    let children = [SessionId::new(), SessionId::new(), SessionId::new()];
    for (n, child) in (1u64..).zip(children) {
        let update = SessionUpdate {
            bump_epoch: true,
            add_subagent: Some(child),
            ..SessionUpdate::default()
        };
        let committed = store
            .commit(session.id, &Guard::default(), update, Vec::new())
            .await
            .unwrap();
        assert_eq!(committed.epoch, n);
    }
    let session = get(&*store, session.id).await;
    assert_eq!(session.epoch, 3);
    assert_eq!(session.subagent_session_ids, children);
}

pub async fn empty_commit_reads_under_the_guard<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "empty-commit").await;
    let session = create(&*store, new_session(&org)).await;
    let guard = Guard {
        epoch: Some(0),
        statuses: Some(vec![SessionStatus::Pending]),
        slot_limit: None,
    };
    let read = store
        .commit(session.id, &guard, SessionUpdate::default(), Vec::new())
        .await
        .unwrap();
    assert_eq!(read, session);
    assert_eq!(get(&*store, session.id).await, session);

    let wrong = Guard {
        statuses: Some(vec![SessionStatus::Running]),
        ..Guard::default()
    };
    let error = store
        .commit(session.id, &wrong, SessionUpdate::default(), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(expect_guard_failed(error), session);
}

// ---- idempotency and admission

pub async fn idempotent_create_replays_and_conflicts<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "idempotency").await;
    let key = IdempotencyKey {
        key: "key-1".to_owned(),
        request_hash: "hash-1".to_owned(),
    };
    let original = match store
        .create_session(new_session(&org), OPEN, Some(key.clone()))
        .await
        .unwrap()
    {
        CreateOutcome::Created(session) => session,
        other => panic!("expected Created, got {other:?}"),
    };
    let progressed = store
        .commit(
            original.id,
            &Guard::default(),
            SessionUpdate {
                steps: Some(3),
                ..SessionUpdate::default()
            },
            vec![event("Step", 2)],
        )
        .await
        .unwrap();

    // Same key, same request: the original session as it is now, even with no slot.
    let retry = new_session(&org);
    let retry_id = retry.id;
    let closed = Admission {
        slot_limit: 0,
        queue: false,
        max_queued: 0,
    };
    match store
        .create_session(retry, closed, Some(key.clone()))
        .await
        .unwrap()
    {
        CreateOutcome::Replayed(session) => assert_eq!(session, progressed),
        other => panic!("expected Replayed, got {other:?}"),
    }
    assert_eq!(store.get_session(retry_id).await.unwrap(), None);

    // Same key, other request: a conflict, and nothing created.
    let conflicting = new_session(&org);
    let conflicting_id = conflicting.id;
    let other_hash = IdempotencyKey {
        key: "key-1".to_owned(),
        request_hash: "hash-2".to_owned(),
    };
    assert!(matches!(
        store
            .create_session(conflicting, OPEN, Some(other_hash))
            .await
            .unwrap(),
        CreateOutcome::KeyConflict
    ));
    assert_eq!(store.get_session(conflicting_id).await.unwrap(), None);

    // Keys belong to one organisation.
    let other_org = new_org(&*store, "idempotency-other").await;
    assert!(matches!(
        store
            .create_session(new_session(&other_org), OPEN, Some(key.clone()))
            .await
            .unwrap(),
        CreateOutcome::Created(_)
    ));

    // A refused create does not bind its key.
    let key_2 = IdempotencyKey {
        key: "key-2".to_owned(),
        request_hash: "hash-a".to_owned(),
    };
    assert!(matches!(
        store
            .create_session(new_session(&org), closed, Some(key_2))
            .await
            .unwrap(),
        CreateOutcome::Refused { .. }
    ));
    let key_2_again = IdempotencyKey {
        key: "key-2".to_owned(),
        request_hash: "hash-b".to_owned(),
    };
    assert!(matches!(
        store
            .create_session(new_session(&org), OPEN, Some(key_2_again))
            .await
            .unwrap(),
        CreateOutcome::Created(_)
    ));
    assert_eq!(listed(&*store, &org, list_all()).await.1, 2);
}

pub async fn idempotency_key_expires_after_a_day<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "idempotency-ttl").await;
    let key = |hash: &str| IdempotencyKey {
        key: "daily".to_owned(),
        request_hash: hash.to_owned(),
    };
    let at = |created_at: Millis| NewSession {
        created_at,
        ..new_session(&org)
    };
    let start = now_ms() - 2 * DAY_MS;

    let first = store
        .create_session(at(start), OPEN, Some(key("h1")))
        .await
        .unwrap();
    assert!(matches!(first, CreateOutcome::Created(_)), "{first:?}");
    let within_a_day = store
        .create_session(at(start + DAY_MS - 1), OPEN, Some(key("h2")))
        .await
        .unwrap();
    assert!(
        matches!(within_a_day, CreateOutcome::KeyConflict),
        "{within_a_day:?}"
    );

    // A day after the session it made, the key is free again and binds anew.
    let renewed = match store
        .create_session(at(now_ms()), OPEN, Some(key("h2")))
        .await
        .unwrap()
    {
        CreateOutcome::Created(session) => session,
        other => panic!("expected Created, got {other:?}"),
    };
    match store
        .create_session(at(now_ms()), OPEN, Some(key("h2")))
        .await
        .unwrap()
    {
        CreateOutcome::Replayed(session) => assert_eq!(session.id, renewed.id),
        other => panic!("expected Replayed, got {other:?}"),
    }
    assert!(matches!(
        store
            .create_session(at(now_ms()), OPEN, Some(key("h1")))
            .await
            .unwrap(),
        CreateOutcome::KeyConflict
    ));
}

pub async fn concurrent_creates_with_one_key_make_one_session<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "idempotency-race").await;
    let key = IdempotencyKey {
        key: "race".to_owned(),
        request_hash: "same".to_owned(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        let new = new_session(&org);
        let key = key.clone();
        tasks.spawn(async move { store.create_session(new, OPEN, Some(key)).await.unwrap() });
    }
    let mut created = Vec::new();
    let mut replayed = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            CreateOutcome::Created(session) => created.push(session.id),
            CreateOutcome::Replayed(session) => replayed.push(session.id),
            other => panic!("expected Created or Replayed, got {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert_eq!(replayed.len(), 19);
    assert!(replayed.iter().all(|id| *id == created[0]));
    assert_eq!(listed(&*store, &org, list_all()).await, (created, 1));
}

pub async fn concurrent_creates_respect_the_slot_limit<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "quota-race").await;
    let admission = Admission {
        slot_limit: 5,
        queue: false,
        max_queued: 0,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        let new = new_session(&org);
        tasks.spawn(async move { store.create_session(new, admission, None).await.unwrap() });
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            CreateOutcome::Created(session) => {
                assert_eq!(session.status, SessionStatus::Pending);
                created += 1;
            }
            CreateOutcome::Refused {
                active: 5,
                limit: 5,
                queue_full: false,
            } => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, refused), (5, 15));
    assert_eq!(store.count_active(&org).await.unwrap(), 5);
}

pub async fn admission_starts_queues_and_refuses<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "admission").await;
    let admission = Admission {
        slot_limit: 2,
        queue: true,
        max_queued: 1,
    };
    let first = create_with(&*store, new_session(&org), admission).await;
    let second = create_with(&*store, new_session(&org), admission).await;
    for started in [&first, &second] {
        assert_eq!(started.status, SessionStatus::Pending);
        assert_eq!(started.event_count, 2, "queued events only when queued");
    }

    let queued = create_with(&*store, new_session(&org), admission).await;
    assert_eq!(queued.status, SessionStatus::Queued);
    assert_eq!(queued.event_count, 3);
    assert_eq!(
        types(&all_events(&*store, queued.id).await),
        ["RequestStartEvent", "UserMessageEvent", "QueuedEvent"]
    );

    let full = new_session(&org);
    let full_id = full.id;
    match store.create_session(full, admission, None).await.unwrap() {
        CreateOutcome::Refused {
            active,
            limit,
            queue_full,
        } => assert_eq!((active, limit, queue_full), (2, 2, true)),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(store.get_session(full_id).await.unwrap(), None);

    let no_queue = Admission {
        queue: false,
        ..admission
    };
    match store
        .create_session(new_session(&org), no_queue, None)
        .await
        .unwrap()
    {
        CreateOutcome::Refused {
            active,
            limit,
            queue_full,
        } => assert_eq!((active, limit, queue_full), (2, 2, false)),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(store.count_active(&org).await.unwrap(), 2);
    assert_eq!(listed(&*store, &org, list_all()).await.1, 3);

    // Another organisation has its own slots.
    let other_org = new_org(&*store, "admission-other").await;
    let elsewhere = create_with(&*store, new_session(&other_org), admission).await;
    assert_eq!(elsewhere.status, SessionStatus::Pending);

    // An ended session frees its slot.
    set_status(&*store, first.id, SessionStatus::Completed).await;
    let next = create_with(&*store, new_session(&org), admission).await;
    assert_eq!(next.status, SessionStatus::Pending);
}

pub async fn count_active_counts_slot_holding_statuses<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "count-active").await;
    assert_eq!(store.count_active(&org).await.unwrap(), 0);
    let mut sessions = Vec::new();
    for status in SessionStatus::ALL {
        let session = create(&*store, new_session(&org)).await;
        set_status(&*store, session.id, status).await;
        sessions.push(session.id);
    }
    let holding = SessionStatus::ALL.iter().filter(|s| s.holds_slot()).count() as u32;
    assert_eq!(holding, 5);
    assert_eq!(store.count_active(&org).await.unwrap(), holding);

    // Ending a session frees its slot; restarting it takes one again.
    set_status(&*store, sessions[1], SessionStatus::Failed).await;
    assert_eq!(store.count_active(&org).await.unwrap(), holding - 1);
    set_status(&*store, sessions[1], SessionStatus::Pending).await;
    assert_eq!(store.count_active(&org).await.unwrap(), holding);
    // Moving between two slot-holding statuses changes nothing.
    set_status(&*store, sessions[1], SessionStatus::Running).await;
    assert_eq!(store.count_active(&org).await.unwrap(), holding);
}

pub async fn promote_queued_is_fifo_and_respects_slots<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "promote").await;
    let one_slot = Admission {
        slot_limit: 1,
        queue: true,
        max_queued: 10,
    };
    let running = create_with(&*store, new_session(&org), one_slot).await;
    let mut queue = Vec::new();
    for _ in 0..3 {
        let queued = create_with(&*store, new_session(&org), one_slot).await;
        assert_eq!(queued.status, SessionStatus::Queued);
        queue.push(queued);
    }
    assert!(store.orgs_with_queued().await.unwrap().contains(&org));

    let promoted_event = || vec![event("PromotedEvent", 7)];
    assert!(
        store
            .promote_queued(&org, 1, promoted_event())
            .await
            .unwrap()
            .is_empty(),
        "no free slot"
    );
    assert_eq!(get(&*store, queue[0].id).await, queue[0]);

    set_status(&*store, running.id, SessionStatus::Completed).await;
    let promoted = store
        .promote_queued(&org, 2, promoted_event())
        .await
        .unwrap();
    assert_eq!(ids(&promoted), [queue[0].id, queue[1].id], "oldest first");
    for (session, before) in promoted.iter().zip(&queue) {
        assert_eq!(session.status, SessionStatus::Pending);
        assert_eq!(session.event_count, before.event_count + 1);
        assert_eq!(get(&*store, session.id).await, *session);
        let appended = store
            .events(session.id, before.event_count, None)
            .await
            .unwrap();
        assert_eq!(types(&appended), ["PromotedEvent"]);
        assert_eq!(appended[0].index, before.event_count);
    }
    assert_eq!(
        get(&*store, queue[2].id).await.status,
        SessionStatus::Queued
    );
    assert_eq!(store.count_active(&org).await.unwrap(), 2);
    assert!(
        store
            .promote_queued(&org, 2, promoted_event())
            .await
            .unwrap()
            .is_empty()
    );

    set_status(&*store, queue[0].id, SessionStatus::Interrupted).await;
    let last = store
        .promote_queued(&org, 2, promoted_event())
        .await
        .unwrap();
    assert_eq!(ids(&last), [queue[2].id]);
    assert!(!store.orgs_with_queued().await.unwrap().contains(&org));
    assert!(
        store
            .promote_queued(&org, 100, promoted_event())
            .await
            .unwrap()
            .is_empty(),
        "nothing left to promote"
    );
}

// ---- listing

pub async fn list_filters_all_must_hold<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "list-filters").await;
    let other_org = new_org(&*store, "list-filters-other").await;
    let base = now_ms() - 100_000;
    let make = |offset: Millis, agent: Option<&str>, group: Option<&str>| NewSession {
        created_at: base + offset,
        agent_name: agent.map(str::to_owned),
        group_id: group.map(str::to_owned),
        ..new_session(&org)
    };
    let s1 = create(&*store, make(1, Some("alpha"), Some("g1"))).await;
    let s2 = create(
        &*store,
        NewSession {
            parent_session_id: Some(s1.id),
            ..make(2, Some("beta"), Some("g1"))
        },
    )
    .await;
    let s3 = create(&*store, make(3, None, None)).await;
    let s4 = create(&*store, make(4, Some("alpha"), None)).await;
    create(
        &*store,
        NewSession {
            created_at: base + 2,
            agent_name: Some("alpha".to_owned()),
            group_id: Some("g1".to_owned()),
            ..new_session(&other_org)
        },
    )
    .await;
    let finish = |status, at: Millis| SessionUpdate {
        status: Some(status),
        finished_at: Some(Some(base + at)),
        ..SessionUpdate::default()
    };
    store
        .commit(
            s3.id,
            &Guard::default(),
            finish(SessionStatus::Failed, 60),
            Vec::new(),
        )
        .await
        .unwrap();
    store
        .commit(
            s4.id,
            &Guard::default(),
            finish(SessionStatus::Completed, 50),
            Vec::new(),
        )
        .await
        .unwrap();

    let check = |filter: SessionFilter, expected: Vec<SessionId>| {
        let store = Arc::clone(&store);
        let org = org.clone();
        async move {
            let total = expected.len() as u64;
            assert_eq!(
                listed(&*store, &org, filter.clone()).await,
                (expected, total),
                "{filter:?}"
            );
        }
    };
    check(list_all(), vec![s1.id, s2.id, s3.id, s4.id]).await;
    check(
        SessionFilter {
            statuses: vec![SessionStatus::Completed],
            ..list_all()
        },
        vec![s4.id],
    )
    .await;
    check(
        SessionFilter {
            statuses: vec![SessionStatus::Failed, SessionStatus::Completed],
            ..list_all()
        },
        vec![s3.id, s4.id],
    )
    .await;
    check(
        SessionFilter {
            agents: vec!["alpha".to_owned()],
            ..list_all()
        },
        vec![s1.id, s4.id],
    )
    .await;
    check(
        SessionFilter {
            agents: vec!["alpha".to_owned(), "beta".to_owned()],
            ..list_all()
        },
        vec![s1.id, s2.id, s4.id],
    )
    .await;
    check(
        SessionFilter {
            group_id: Some("g1".to_owned()),
            ..list_all()
        },
        vec![s1.id, s2.id],
    )
    .await;
    check(
        SessionFilter {
            parent_session_id: Some(s1.id),
            ..list_all()
        },
        vec![s2.id],
    )
    .await;
    check(
        SessionFilter {
            created_before: Some(base + 3),
            ..list_all()
        },
        vec![s1.id, s2.id],
    )
    .await;
    check(
        SessionFilter {
            created_after: Some(base + 3),
            ..list_all()
        },
        vec![s4.id],
    )
    .await;
    check(
        SessionFilter {
            created_after: Some(base + 1),
            created_before: Some(base + 4),
            ..list_all()
        },
        vec![s2.id, s3.id],
    )
    .await;
    check(
        SessionFilter {
            finished_before: Some(base + 60),
            ..list_all()
        },
        vec![s4.id],
    )
    .await;
    check(
        SessionFilter {
            finished_after: Some(base + 50),
            ..list_all()
        },
        vec![s3.id],
    )
    .await;
    check(
        SessionFilter {
            finished_after: Some(base),
            ..list_all()
        },
        vec![s3.id, s4.id],
    )
    .await;
    check(
        SessionFilter {
            agents: vec!["alpha".to_owned()],
            statuses: vec![SessionStatus::Completed, SessionStatus::Pending],
            group_id: Some("g1".to_owned()),
            ..list_all()
        },
        vec![s1.id],
    )
    .await;
    check(
        SessionFilter {
            agents: vec!["gamma".to_owned()],
            ..list_all()
        },
        Vec::new(),
    )
    .await;
}

pub async fn list_search_matches_message_or_answer_case_insensitively<S: Store + ?Sized>(
    store: Arc<S>,
) {
    let org = new_org(&*store, "list-search").await;
    let with_text = |text: &str| NewSession {
        search_text: text.to_owned(),
        first_message: Some(json!(text)),
        ..new_session(&org)
    };
    let flight = create(&*store, with_text("Book a FLIGHT to Zürich")).await;
    let weather = create(&*store, with_text("What is the weather?")).await;
    let answer = |text: &str| SessionUpdate {
        latest_answer: Some(Some(json!(text))),
        search_answer: Some(text.to_owned()),
        ..SessionUpdate::default()
    };
    store
        .commit(
            weather.id,
            &Guard::default(),
            answer("It is SUNNY in Évry"),
            Vec::new(),
        )
        .await
        .unwrap();

    let search = |text: &str| {
        let store = Arc::clone(&store);
        let org = org.clone();
        let filter = SessionFilter {
            search: Some(text.to_owned()),
            ..list_all()
        };
        async move { listed(&*store, &org, filter).await.0 }
    };
    assert_eq!(search("flight").await, [flight.id]);
    assert_eq!(search("ZÜRICH").await, [flight.id]);
    assert_eq!(search("sunny").await, [weather.id]);
    assert_eq!(search("évry").await, [weather.id]);
    assert_eq!(search("WEATHER").await, [weather.id]);
    assert_eq!(search("t").await, [flight.id, weather.id]);
    assert_eq!(search("nowhere").await, Vec::<SessionId>::new());
    assert_eq!(search("%").await, Vec::<SessionId>::new(), "no wildcards");

    // A new answer replaces the old one's text; the first message still matches.
    store
        .commit(weather.id, &Guard::default(), answer("Cloudy"), Vec::new())
        .await
        .unwrap();
    assert_eq!(search("sunny").await, Vec::<SessionId>::new());
    assert_eq!(search("cloudy").await, [weather.id]);
    assert_eq!(search("weather").await, [weather.id]);
}

pub async fn list_sorting_and_pagination<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "list-pages").await;
    let base = now_ms() - 100_000;
    let mut order = Vec::new();
    for offset in [0, 1, 2, 3, 4, 10, 10] {
        let session = create(
            &*store,
            NewSession {
                created_at: base + offset,
                ..new_session(&org)
            },
        )
        .await;
        order.push(session.id);
    }
    let page = |page: u32, size: u32, descending: bool| {
        let store = Arc::clone(&store);
        let org = org.clone();
        let filter = SessionFilter {
            page,
            size,
            descending,
            ..SessionFilter::default()
        };
        async move { listed(&*store, &org, filter).await }
    };
    let o = &order;
    assert_eq!(page(1, 3, false).await, (vec![o[0], o[1], o[2]], 7));
    assert_eq!(page(2, 3, false).await, (vec![o[3], o[4], o[5]], 7));
    assert_eq!(page(3, 3, false).await, (vec![o[6]], 7));
    assert_eq!(page(4, 3, false).await, (vec![], 7));
    assert_eq!(page(1, 3, true).await, (vec![o[6], o[5], o[4]], 7));
    assert_eq!(page(2, 3, true).await, (vec![o[3], o[2], o[1]], 7));
    assert_eq!(page(3, 3, true).await, (vec![o[0]], 7));
    assert_eq!(page(1, 100, false).await, (order.clone(), 7));
    let (sessions, total) = store
        .list_sessions(
            &org,
            &SessionFilter {
                page: 2,
                size: 2,
                descending: true,
                ..SessionFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 7);
    assert_eq!(sessions[0], get(&*store, o[4]).await, "full rows");
}

// ---- events

pub async fn events_page_filters_sorts_and_pages<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "events-page").await;
    let session = create(&*store, new_session(&org)).await;
    store
        .commit(
            session.id,
            &Guard::default(),
            SessionUpdate::default(),
            vec![
                event("A", 2),
                event("B", 3),
                event("A", 4),
                event("B", 5),
                event("A", 6),
            ],
        )
        .await
        .unwrap();
    let page = |event_type: Option<&str>, descending: bool, page: u32, size: u32| {
        let store = Arc::clone(&store);
        let query = EventPageQuery {
            event_type: event_type.map(str::to_owned),
            descending,
            page,
            size,
        };
        async move {
            let (events, total) = store.events_page(session.id, &query).await.unwrap();
            (indices(&events), total)
        }
    };
    assert_eq!(
        page(None, false, 1, 100).await,
        (vec![0, 1, 2, 3, 4, 5, 6], 7)
    );
    assert_eq!(page(None, true, 1, 3).await, (vec![6, 5, 4], 7));
    assert_eq!(page(None, true, 3, 3).await, (vec![0], 7));
    assert_eq!(page(None, false, 10, 3).await, (vec![], 7));
    assert_eq!(page(Some("A"), false, 1, 2).await, (vec![2, 4], 3));
    assert_eq!(page(Some("A"), false, 2, 2).await, (vec![6], 3));
    assert_eq!(page(Some("A"), true, 1, 2).await, (vec![6, 4], 3));
    assert_eq!(page(Some("A"), true, 2, 2).await, (vec![2], 3));
    assert_eq!(page(Some("B"), false, 1, 10).await, (vec![3, 5], 2));
    assert_eq!(page(Some("Nope"), false, 1, 10).await, (vec![], 0));

    let (events, _) = store
        .events_page(
            session.id,
            &EventPageQuery {
                event_type: Some("B".to_owned()),
                descending: false,
                page: 1,
                size: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(events, store.events(session.id, 3, Some(1)).await.unwrap());
}

pub async fn event_feedback_needs_an_existing_event<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "event-feedback").await;
    let session = create(&*store, new_session(&org)).await;
    let set = |index: u64, rating: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .set_event_feedback(session.id, index, json!({ "rating": rating }))
                .await
                .unwrap()
        }
    };
    assert!(set(0, 1).await);
    assert!(set(0, -1).await, "feedback can be given again");
    assert!(set(1, 1).await);
    assert!(!set(2, 1).await, "past the end of the log");
    assert!(!set(u64::MAX, 1).await);
    assert!(
        !store
            .set_event_feedback(SessionId::new(), 0, json!({}))
            .await
            .unwrap(),
        "unknown session"
    );
    assert_eq!(
        get(&*store, session.id).await,
        session,
        "the session is untouched"
    );
}

// ---- engine scans

pub async fn idle_deadlines<S: Store + ?Sized>(store: Arc<S>) {
    assert_eq!(store.next_idle_deadline().await.unwrap(), None);
    let org = new_org(&*store, "idle").await;
    let make = |status, deadline: Option<Millis>| {
        let store = Arc::clone(&store);
        let org = org.clone();
        async move {
            let session = create(&*store, new_session(&org)).await;
            let update = SessionUpdate {
                status: Some(status),
                idle_deadline: Some(deadline),
                ..SessionUpdate::default()
            };
            store
                .commit(session.id, &Guard::default(), update, Vec::new())
                .await
                .unwrap()
        }
    };
    let late = make(SessionStatus::Idle, Some(1_000)).await;
    let early = make(SessionStatus::Idle, Some(500)).await;
    make(SessionStatus::Running, Some(100)).await; // not idle: ignored
    make(SessionStatus::Idle, None).await; // no deadline: ignored

    assert_eq!(store.next_idle_deadline().await.unwrap(), Some(500));
    let due = |now: Millis| {
        let store = Arc::clone(&store);
        async move {
            let due = store.due_idle_sessions(now).await.unwrap();
            due.iter().map(|s| s.id).collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(due(499).await, BTreeSet::new());
    assert_eq!(
        due(500).await,
        BTreeSet::from([early.id]),
        "at the deadline"
    );
    assert_eq!(due(10_000).await, BTreeSet::from([early.id, late.id]));
    let rows = store.due_idle_sessions(500).await.unwrap();
    assert_eq!(rows, vec![early.clone()], "full rows");

    let ended = SessionUpdate {
        status: Some(SessionStatus::Completed),
        idle_deadline: Some(None),
        ..SessionUpdate::default()
    };
    store
        .commit(early.id, &Guard::default(), ended, Vec::new())
        .await
        .unwrap();
    assert_eq!(store.next_idle_deadline().await.unwrap(), Some(1_000));
    set_status(&*store, late.id, SessionStatus::Running).await;
    assert_eq!(store.next_idle_deadline().await.unwrap(), None);
}

pub async fn sessions_in_status_oldest_first<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "in-status").await;
    let mut made = Vec::new();
    for status in [
        SessionStatus::Pending,
        SessionStatus::Running,
        SessionStatus::Completed,
        SessionStatus::Running,
        SessionStatus::AwaitingToolResults,
    ] {
        let session = create(&*store, new_session(&org)).await;
        set_status(&*store, session.id, status).await;
        made.push(session.id);
    }
    let in_status = |statuses: Vec<SessionStatus>| {
        let store = Arc::clone(&store);
        async move { store.sessions_in_status(&statuses).await.unwrap() }
    };
    assert_eq!(
        in_status(vec![SessionStatus::Running]).await,
        [made[1], made[3]]
    );
    assert_eq!(
        in_status(vec![SessionStatus::Running, SessionStatus::Pending]).await,
        [made[0], made[1], made[3]]
    );
    assert_eq!(
        in_status(vec![SessionStatus::AwaitingToolResults]).await,
        [made[4]]
    );
    assert!(in_status(vec![SessionStatus::Paused]).await.is_empty());
    assert!(in_status(Vec::new()).await.is_empty());
}

// ---- organisations and keys

pub async fn ensure_org_is_stable<S: Store + ?Sized>(store: Arc<S>) {
    let name = format!("acme-{}", Uuid::new_v4());
    let first = store.ensure_org(&name).await.unwrap();
    assert_eq!(store.ensure_org(&name).await.unwrap(), first);
    let other = store
        .ensure_org(&format!("other-{}", Uuid::new_v4()))
        .await
        .unwrap();
    assert_ne!(other, first);
    assert!(!first.0.is_empty());
}

pub async fn api_keys_lookup_list_and_revoke<S: Store + ?Sized>(store: Arc<S>) {
    let acme_name = format!("acme-{}", Uuid::new_v4());
    let acme = store.ensure_org(&acme_name).await.unwrap();
    let beta_name = format!("beta-{}", Uuid::new_v4());
    let beta = store.ensure_org(&beta_name).await.unwrap();
    let tag = Uuid::new_v4().simple().to_string();
    let shared_prefix = format!("hk-{}", &tag[..8]);
    let unique_prefix = format!("hk-{}", &tag[8..16]);
    let base = now_ms();
    let key = |org: &OrgId, org_name: &str, prefix: &str, offset: Millis| ApiKeyRecord {
        id: Uuid::new_v4().to_string(),
        org_id: org.clone(),
        org_name: org_name.to_owned(),
        prefix: prefix.to_owned(),
        created_at: base + offset,
        revoked_at: None,
    };
    let k1 = key(&acme, &acme_name, &shared_prefix, 0);
    let k2 = key(&acme, &acme_name, &unique_prefix, 1);
    let k3 = key(&beta, &beta_name, &shared_prefix, 2);
    let hash = |n: u8| format!("{tag}-hash-{n}");
    store.insert_api_key(&k1, &hash(1)).await.unwrap();
    store.insert_api_key(&k2, &hash(2)).await.unwrap();
    store.insert_api_key(&k3, &hash(3)).await.unwrap();

    assert_eq!(
        store.find_api_key(&hash(1)).await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(
        store.find_api_key(&hash(3)).await.unwrap(),
        Some(k3.clone())
    );
    assert_eq!(store.find_api_key(&hash(9)).await.unwrap(), None);
    assert_eq!(
        store.list_api_keys(Some(&acme_name)).await.unwrap(),
        [k1.clone(), k2.clone()]
    );
    let everyone: Vec<_> = store
        .list_api_keys(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| [&k1.id, &k2.id, &k3.id].contains(&&k.id))
        .collect();
    assert_eq!(everyone, [k1.clone(), k2.clone(), k3.clone()]);

    // A prefix two live keys share revokes nothing.
    assert!(!store.revoke_api_key(&shared_prefix).await.unwrap());
    assert!(store.find_api_key(&hash(1)).await.unwrap().is_some());
    assert!(store.find_api_key(&hash(3)).await.unwrap().is_some());

    assert!(store.revoke_api_key(&k1.id).await.unwrap());
    assert_eq!(store.find_api_key(&hash(1)).await.unwrap(), None);
    assert!(
        !store.revoke_api_key(&k1.id).await.unwrap(),
        "already revoked"
    );
    // Now the shared prefix names one live key.
    assert!(store.revoke_api_key(&shared_prefix).await.unwrap());
    assert_eq!(store.find_api_key(&hash(3)).await.unwrap(), None);
    assert!(store.revoke_api_key(&unique_prefix).await.unwrap());
    assert_eq!(store.find_api_key(&hash(2)).await.unwrap(), None);
    assert!(!store.revoke_api_key("hk-no-such-key").await.unwrap());

    let listed = store.list_api_keys(Some(&acme_name)).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| &k.id).collect::<Vec<_>>(),
        [&k1.id, &k2.id],
        "revoked keys stay listed"
    );
    assert!(listed.iter().all(|k| k.revoked_at.is_some()));
    assert_eq!(
        store.list_api_keys(Some(&beta_name)).await.unwrap().len(),
        1
    );
    assert!(
        store
            .list_api_keys(Some("no-such-org"))
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- the change feed

pub async fn subscriber_receives_committed_row_and_events<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "feed").await;
    let session = create(&*store, new_session(&org)).await;
    let mut receiver = store.subscribe(session.id);

    // The waiter reads the store as soon as it wakes: what it was told must be there.
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let change = next_change(&mut receiver).await;
            let read = store.get_session(change.session.id).await.unwrap();
            (change, read, receiver)
        })
    };
    let update = SessionUpdate {
        status: Some(SessionStatus::Running),
        steps: Some(1),
        ..SessionUpdate::default()
    };
    let committed = store
        .commit(
            session.id,
            &Guard::default(),
            update,
            vec![event("A", 2), event("B", 3)],
        )
        .await
        .unwrap();
    let (change, read, mut receiver) = waiter.await.unwrap();
    assert_eq!(change.session, committed);
    assert_eq!(read, Some(committed.clone()), "published after commit");
    assert_eq!(
        change.events,
        store.events(session.id, 2, None).await.unwrap()
    );
    assert_eq!(indices(&change.events), [2, 3]);
    assert_eq!(
        change.events[0].index,
        change.session.event_count - change.events.len() as u64
    );

    // An update without events is published too, with no events.
    let committed = store
        .commit(
            session.id,
            &Guard::default(),
            SessionUpdate {
                steps: Some(2),
                ..SessionUpdate::default()
            },
            Vec::new(),
        )
        .await
        .unwrap();
    let change = next_change(&mut receiver).await;
    assert_eq!(change.session, committed);
    assert!(change.events.is_empty());
}

pub async fn refused_commits_publish_nothing<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "feed-refused").await;
    let session = create(&*store, new_session(&org)).await;
    let blocker = create(&*store, new_session(&org)).await;
    let mut receiver = store.subscribe(session.id);

    let stale = Guard {
        epoch: Some(7),
        ..Guard::default()
    };
    store
        .commit(
            session.id,
            &stale,
            SessionUpdate::default(),
            vec![event("X", 2)],
        )
        .await
        .unwrap_err();
    assert!(
        !receiver.has_changed().unwrap(),
        "a refused commit is silent"
    );
    let full = Guard {
        slot_limit: Some(1),
        ..Guard::default()
    };
    assert!(blocker.status.holds_slot());
    set_status(&*store, session.id, SessionStatus::Completed).await;
    let _ = next_change(&mut receiver).await;
    store
        .commit(
            session.id,
            &full,
            SessionUpdate::default(),
            vec![event("X", 2)],
        )
        .await
        .unwrap_err();
    assert!(
        !receiver.has_changed().unwrap(),
        "a refused commit is silent"
    );

    let committed = store
        .commit(
            session.id,
            &Guard::default(),
            SessionUpdate::default(),
            vec![event("Y", 2)],
        )
        .await
        .unwrap();
    let change = next_change(&mut receiver).await;
    assert_eq!(change.session, committed);
    assert_eq!(types(&change.events), ["Y"]);
}

pub async fn creates_and_promotions_are_published<S: Store + ?Sized>(store: Arc<S>) {
    let org = new_org(&*store, "feed-create").await;
    let one_slot = Admission {
        slot_limit: 1,
        queue: true,
        max_queued: 10,
    };
    let first = new_session(&org);
    let mut first_receiver = store.subscribe(first.id);
    let first = create_with(&*store, first, one_slot).await;
    let change = next_change(&mut first_receiver).await;
    assert_eq!(change.session, first);
    assert_eq!(change.events, all_events(&*store, first.id).await);

    let queued = new_session(&org);
    let mut queued_receiver = store.subscribe(queued.id);
    let queued = create_with(&*store, queued, one_slot).await;
    assert_eq!(queued.status, SessionStatus::Queued);
    let change = next_change(&mut queued_receiver).await;
    assert_eq!(change.session, queued);
    assert_eq!(indices(&change.events), [0, 1, 2]);

    set_status(&*store, first.id, SessionStatus::Completed).await;
    let promoted = store
        .promote_queued(&org, 1, vec![event("PromotedEvent", 3)])
        .await
        .unwrap();
    assert_eq!(ids(&promoted), [queued.id]);
    let change = next_change(&mut queued_receiver).await;
    assert_eq!(change.session, promoted[0]);
    assert_eq!(types(&change.events), ["PromotedEvent"]);
    assert_eq!(indices(&change.events), [3]);
}
