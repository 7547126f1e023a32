//! Throughput of the SQLite store on a database file, as the server uses it: creates
//! (one caller, then 64 concurrent callers), commits of a typical step, session reads
//! and event-log reads. Prints microseconds per operation and operations per second.
//!
//! Run with `cargo bench -p agentd-store-sqlite`; arguments after `--` keep only the
//! measurements whose name contains one of them. The runtime has two worker threads,
//! like the machine the server is sized for.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_domain::time::now_ms;
use agentd_domain::{NewEvent, OrgId, SessionId, SessionStatus};
use agentd_store::{
    Admission, CreateOutcome, Guard, NewSession, SessionRecord, SessionUpdate, Store,
};
use agentd_store_sqlite::SqliteStore;
use serde_json::json;

/// Admission that never queues nor refuses.
const OPEN: Admission = Admission {
    slot_limit: u32::MAX,
    queue: true,
    max_queued: u32::MAX,
};
/// Callers of the concurrent runs: as many as a busy server has requests in flight.
const CONCURRENCY: usize = 64;
const SEQUENTIAL_CREATES: usize = 2_000;
const CONCURRENT_CREATES: usize = 12_800;
const COMMITS: usize = 2_000;
const CONCURRENT_COMMITS: usize = 12_800;
const READS: usize = 10_000;

fn new_session(org: &OrgId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        org_id: org.clone(),
        created_at: now_ms(),
        request: json!({
            "agent": { "model": "bench-model", "instructions": "Answer briefly." },
            "messages": ["What is the capital of France?"],
        }),
        spec: json!({ "model": "bench-model", "max_steps": 20, "tools": [] }),
        agent_name: Some("bench".to_owned()),
        group_id: None,
        parent_session_id: None,
        first_message: Some(json!("What is the capital of France?")),
        search_text: "What is the capital of France?".to_owned(),
        events: vec![
            NewEvent {
                event_type: "RequestStartEvent",
                data: json!({}),
            },
            NewEvent {
                event_type: "UserMessageEvent",
                data: json!({ "content": ["What is the capital of France?"] }),
            },
        ],
        queued_events: Vec::new(),
    }
}

/// The events and update of one agent step: a model call, a tool call and its result.
fn step(n: u32) -> (SessionUpdate, Vec<NewEvent>) {
    let events = vec![
        NewEvent {
            event_type: "StepStartEvent",
            data: json!({ "step": n }),
        },
        NewEvent {
            event_type: "ModelResponseEvent",
            data: json!({ "content": "Let me look that up.", "tool_calls": [{ "id": "c1", "name": "search" }] }),
        },
        NewEvent {
            event_type: "ToolCallEvent",
            data: json!({ "id": "c1", "name": "search", "arguments": { "q": "capital of France" } }),
        },
        NewEvent {
            event_type: "ToolResultEvent",
            data: json!({ "id": "c1", "content": "Paris is the capital of France." }),
        },
    ];
    let update = SessionUpdate {
        status: Some(SessionStatus::Running),
        steps: Some(n),
        usage: Some(
            json!([{ "model": "bench-model", "input_tokens": 120 * n, "output_tokens": 30 * n }]),
        ),
        loop_state: Some(json!({ "steps": n, "tool_calls": n })),
        ..SessionUpdate::default()
    };
    (update, events)
}

async fn create(store: &SqliteStore, org: &OrgId) -> SessionRecord {
    match store.create_session(new_session(org), OPEN, None).await {
        Ok(CreateOutcome::Created(session)) => session,
        other => panic!("create failed: {other:?}"),
    }
}

/// Whether the command line asks for this measurement (all when it names none).
fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    filters.is_empty() || filters.iter().any(|filter| name.contains(filter.as_str()))
}

fn report(name: &str, operations: usize, elapsed: Duration) {
    let micros = elapsed.as_secs_f64() * 1e6 / operations as f64;
    let per_second = operations as f64 / elapsed.as_secs_f64();
    println!("{name:<40} {operations:>7} ops  {micros:>9.1} µs/op  {per_second:>10.0} ops/s");
}

/// Runs `operation(i)` for `i` in `0..operations`, one at a time.
async fn sequential<F, Fut>(name: &str, operations: usize, operation: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    if !selected(name) {
        return;
    }
    let start = Instant::now();
    for i in 0..operations {
        operation(i).await;
    }
    report(name, operations, start.elapsed());
}

/// Runs `operation(i)` for `i` in `0..operations`, spread over [`CONCURRENCY`] tasks.
async fn concurrent<F, Fut>(name: &str, operations: usize, operation: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    if !selected(name) {
        return;
    }
    let operation = Arc::new(operation);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..CONCURRENCY {
        let operation = Arc::clone(&operation);
        tasks.spawn(async move {
            for i in (task..operations).step_by(CONCURRENCY) {
                operation(i).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a bench task panicked");
    }
    report(name, operations, start.elapsed());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .expect("open the store");
    let org = store.ensure_org("bench").await.expect("organisation");

    // Warm up: caches, the WAL file, the allocator.
    for _ in 0..200 {
        create(&store, &org).await;
    }

    sequential("create_session, sequential", SEQUENTIAL_CREATES, |_| {
        let (store, org) = (&store, &org);
        async move {
            create(store, org).await;
        }
    })
    .await;

    {
        let (store, org) = (store.clone(), org.clone());
        concurrent(
            "create_session, 64 concurrent",
            CONCURRENT_CREATES,
            move |_| {
                let (store, org) = (store.clone(), org.clone());
                async move {
                    create(&store, &org).await;
                }
            },
        )
        .await;
    }

    // Commits: each session advances one step per commit.
    let mut sessions = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        sessions.push(create(&store, &org).await.id);
    }
    let sessions = Arc::new(sessions);
    let steps: Arc<Vec<std::sync::atomic::AtomicU32>> =
        Arc::new((0..CONCURRENCY).map(|_| Default::default()).collect());
    let commit = {
        let (store, sessions, steps) = (store.clone(), Arc::clone(&sessions), Arc::clone(&steps));
        move |i: usize| {
            let (store, sessions, steps) =
                (store.clone(), Arc::clone(&sessions), Arc::clone(&steps));
            async move {
                let slot = i % CONCURRENCY;
                let n = steps[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let (update, events) = step(n);
                store
                    .commit(sessions[slot], &Guard::default(), update, events)
                    .await
                    .expect("commit");
            }
        }
    };
    sequential("commit (4 events + update), sequential", COMMITS, &commit).await;
    concurrent(
        "commit (4 events + update), 64 concurrent",
        CONCURRENT_COMMITS,
        commit,
    )
    .await;

    // Reads of a session that has a log of a typical length.
    let read_session = {
        let session = create(&store, &org).await;
        for n in 1..=5 {
            let (update, events) = step(n);
            store
                .commit(session.id, &Guard::default(), update, events)
                .await
                .expect("commit");
        }
        session.id
    };
    sequential("get_session, sequential", READS, |_| {
        let store = &store;
        async move {
            store
                .get_session(read_session)
                .await
                .expect("get")
                .expect("exists");
        }
    })
    .await;
    {
        let store = store.clone();
        concurrent("get_session, 64 concurrent", READS, move |_| {
            let store = store.clone();
            async move {
                store
                    .get_session(read_session)
                    .await
                    .expect("get")
                    .expect("exists");
            }
        })
        .await;
    }
    sequential("events(id, 0, None) of 22, sequential", READS, |_| {
        let store = &store;
        async move {
            let events = store.events(read_session, 0, None).await.expect("events");
            assert_eq!(events.len(), 22);
        }
    })
    .await;
    {
        let store = store.clone();
        concurrent(
            "events(id, 0, None) of 22, 64 concurrent",
            READS,
            move |_| {
                let store = store.clone();
                async move {
                    let events = store.events(read_session, 0, None).await.expect("events");
                    assert_eq!(events.len(), 22);
                }
            },
        )
        .await;
    }

    store.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}
