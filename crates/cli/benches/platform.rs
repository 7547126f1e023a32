//! The session platform's figures, each beside its baseline measured in the same run:
//!
//! 1. sessions created per second over HTTP, beside `GET /healthz` requests per second
//!    (the HTTP floor of the same server and client);
//! 2. a 10-step session with no environment, from create to `completed`, beside ten
//!    direct calls to the same scripted model (the model floor), and the engine's
//!    overhead per step;
//! 3. long-poll wake latency with 1,000 waiters, from the control that commits an
//!    event to the waiting client's read, beside a bare loopback round trip;
//! 4. memory: the server's RSS at rest, and per idle session with 10,000 of them.
//!
//! Run: `cargo bench -p agentd --bench platform` (release build of the real binary;
//! everything on 127.0.0.1). `BENCH_QUICK=1` shrinks every count for a smoke run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_testkit::ScriptedModel;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

mod common;

use common::Agentd;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()
        .unwrap()
}

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn scaled(n: usize) -> usize {
    if quick() { (n / 20).max(10) } else { n }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `total` requests with `concurrency` in flight; returns requests per second.
async fn throughput<F, Fut>(total: usize, concurrency: usize, make: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let fut = make(i);
        tasks.push(tokio::spawn(async move {
            let ok = fut.await;
            drop(permit);
            ok
        }));
    }
    let mut failures = 0;
    for task in tasks {
        if !task.await.unwrap() {
            failures += 1;
        }
    }
    assert_eq!(failures, 0, "requests failed");
    total as f64 / started.elapsed().as_secs_f64()
}

async fn bench_creates(model: &ScriptedModel) {
    // One slot and a deep queue: every session but the first waits queued, so the
    // figure is the cost of creating a session (validation, idempotency, quota check,
    // one transaction, the response), not of running it.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "max_concurrent_sessions = 1\nmax_queued_sessions = 1000000\n",
    )
    .unwrap();
    let path = config.path().display().to_string();
    let server = Agentd::start(model, &[("AGENTD_CONFIG", path.as_str())]).await;
    let http = client();
    let total = scaled(20_000);
    let concurrency = 64;

    let url = format!("{}/healthz", server.base);
    let h = http.clone();
    let floor = throughput(total, concurrency, move |_| {
        let (h, url) = (h.clone(), url.clone());
        async move {
            h.get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;

    let url = format!("{}/api/v2/sessions", server.base);
    let key = server.key.clone();
    let body = json!({"agent": {"name": "bench", "description": "d", "environments": []}, "messages": "bench create"});
    let h = http.clone();
    let creates = throughput(total, concurrency, move |_| {
        let (h, url, key, body) = (h.clone(), url.clone(), key.clone(), body.clone());
        async move {
            h.post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16() == 201)
                .unwrap_or(false)
        }
    })
    .await;
    println!("creates: {total} sessions, {concurrency} in flight over HTTP/1.1 keep-alive");
    println!("  baseline GET /healthz      {floor:>10.0} req/s");
    println!("  POST /api/v2/sessions      {creates:>10.0} sessions/s   (target >= 3000)");
}

async fn bench_ten_steps(model: &ScriptedModel) {
    let server = Agentd::start(model, &[]).await;
    let http = client();
    let runs = scaled(200);
    let mut replies: Vec<Value> = (0..9)
        .map(|_| json!({"tool_calls": [{"name": "think", "arguments": {"thought": "step"}}]}))
        .collect();
    replies.push(json!({"tool_calls": [{"name": "answer", "arguments": {"answer": "done", "outcome": "success"}}]}));
    model.set_script(json!({"rules": [{"match": "ten steps", "replies": replies}]}));

    // Floor: the same ten model calls, made directly and in sequence, with the same
    // growing conversation the agent would send.
    let mut floor = Vec::with_capacity(runs);
    let chat_url = format!("{}/chat/completions", model.base_url());
    for _ in 0..runs {
        let mut messages = vec![
            json!({"role": "system", "content": "bench"}),
            json!({"role": "user", "content": "ten steps"}),
        ];
        let started = Instant::now();
        for step in 0..10 {
            let reply: Value = http
                .post(&chat_url)
                .json(&json!({"model": "scripted", "messages": messages, "tools": []}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let call_id = reply["choices"][0]["message"]["tool_calls"][0]["id"].clone();
            messages.push(reply["choices"][0]["message"].clone());
            messages.push(
                json!({"role": "tool", "tool_call_id": call_id, "content": format!("step {step}")}),
            );
        }
        floor.push(started.elapsed());
    }

    let mut totals = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let session: Value = http
            .post(format!("{}/api/v2/sessions", server.base))
            .bearer_auth(&server.key)
            .json(&json!({"agent": {"name": "bench", "description": "d", "environments": []}, "messages": "ten steps"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["id"].as_str().unwrap().to_string();
        let mut from = 0u64;
        loop {
            let response = http
                .get(format!(
                    "{}/api/v2/sessions/{id}/changes?from_index={from}&wait_for_seconds=10",
                    server.base
                ))
                .bearer_auth(&server.key)
                .send()
                .await
                .unwrap();
            if response.status().as_u16() == 204 {
                continue;
            }
            let changes: Value = response.json().await.unwrap();
            from += changes["new_events"]
                .as_array()
                .map_or(0, |e| e.len() as u64);
            if changes["status"] == "completed" {
                break;
            }
            assert!(changes["status"] != "failed", "{changes}");
        }
        totals.push(started.elapsed());
    }
    floor.sort();
    totals.sort();
    let median = percentile(&totals, 0.5);
    let floor_median = percentile(&floor, 0.5);
    let overhead = median.saturating_sub(floor_median) / 10;
    println!("10-step session, create to completed, {runs} runs in sequence");
    println!(
        "  baseline: 10 direct model calls  median {}",
        ms(floor_median)
    );
    println!(
        "  agentd session                   median {}  p90 {}   (target <= 50 ms)",
        ms(median),
        ms(percentile(&totals, 0.9))
    );
    println!(
        "  engine overhead per step         {}   (target <= 2 ms)",
        ms(overhead)
    );
}

async fn bench_wake_latency(model: &ScriptedModel) {
    let config = tempfile::NamedTempFile::new().unwrap();
    // Every session waits in the queue: nothing but the bench's own messages writes.
    std::fs::write(
        config.path(),
        "max_concurrent_sessions = 0\nmax_queued_sessions = 1000000\n",
    )
    .unwrap();
    let path = config.path().display().to_string();
    let server = Agentd::start(model, &[("AGENTD_CONFIG", path.as_str())]).await;
    let http = client();
    let waiters = scaled(1000);
    let rounds = if quick() { 2 } else { 5 };

    let mut ids = Vec::with_capacity(waiters);
    for _ in 0..waiters {
        let session: Value = http
            .post(format!("{}/api/v2/sessions", server.base))
            .bearer_auth(&server.key)
            .json(&json!({"agent": {"name": "bench", "description": "d", "environments": []}, "messages": "waiting"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(session["id"].as_str().unwrap().to_string());
    }

    // Floor: one loopback HTTP round trip to the same server.
    let mut floor = Vec::new();
    for _ in 0..1000 {
        let started = Instant::now();
        http.get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        floor.push(started.elapsed());
    }

    let mut latencies = Vec::new();
    let mut lower_bounds = Vec::new();
    for _ in 0..rounds {
        // Every session gets a waiter; then messages are sent one at a time, and each
        // waiter's wake is timed from the moment its message was acknowledged (the
        // event was committed before the acknowledgement left the server).
        let mut handles = Vec::with_capacity(waiters);
        for id in &ids {
            let count: Value = http
                .get(format!(
                    "{}/api/v2/sessions/{id}/events?size=1",
                    server.base
                ))
                .bearer_auth(&server.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let from = count["total"].as_u64().unwrap();
            let (h, base, key, id) = (
                http.clone(),
                server.base.clone(),
                server.key.clone(),
                id.clone(),
            );
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
            handles.push((
                ready_rx,
                tokio::spawn(async move {
                    let request = h
                        .get(format!("{base}/api/v2/sessions/{id}/changes?from_index={from}&wait_for_seconds=30"))
                        .bearer_auth(key)
                        .send();
                    let _ = ready_tx.send(());
                    let response = request.await.unwrap();
                    response.bytes().await.unwrap();
                    Instant::now()
                }),
            ));
        }
        let mut joins = Vec::new();
        for (ready, join) in handles {
            ready.await.ok();
            joins.push(join);
        }
        // Let every poll reach the server and park.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (id, join) in ids.iter().zip(joins) {
            let sending = Instant::now();
            let sent = http
                .post(format!("{}/api/v2/sessions/{id}/messages", server.base))
                .bearer_auth(&server.key)
                .json(&json!({"type": "user_message", "message": "wake"}))
                .send()
                .await
                .unwrap();
            assert_eq!(sent.status().as_u16(), 202);
            let acked = Instant::now();
            let read = join.await.unwrap();
            // The commit happened between sending the message and its acknowledgement:
            // from the send is an upper bound on commit-to-read, from the ack a lower one.
            latencies.push(read.saturating_duration_since(sending));
            lower_bounds.push(read.saturating_duration_since(acked));
        }
    }
    floor.sort();
    latencies.sort();
    lower_bounds.sort();
    println!(
        "long-poll wake, {waiters} concurrent waiters, {} wakes",
        latencies.len()
    );
    println!(
        "  baseline loopback round trip   p50 {}  p99 {}",
        ms(percentile(&floor, 0.5)),
        ms(percentile(&floor, 0.99))
    );
    println!(
        "  commit -> waiter's read, at most   p50 {}  p99 {}   (target p99 <= 1 ms; from sending the message)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "  commit -> waiter's read, at least  p50 {}  p99 {}   (from its acknowledgement)",
        ms(percentile(&lower_bounds, 0.5)),
        ms(percentile(&lower_bounds, 0.99))
    );
    // The server's own view: from the commit's publication to the poll's answer being
    // ready to write; the write and the client's read add a one-way loopback trip.
    let mut quantiles = Vec::new();
    for q in ["0.5", "0.99"] {
        let line = format!("agentd_changes_wake_seconds{{quantile=\"{q}\"}} ");
        let value = server.metric(&line).await;
        quantiles.push(value.map_or("n/a".to_string(), |s| ms(Duration::from_secs_f64(s))));
    }
    println!(
        "  commit -> answer ready, server    p50 {}  p99 {}   (+ half a loopback round trip to the read)",
        quantiles[0], quantiles[1]
    );
}

async fn bench_memory(model: &ScriptedModel) {
    let server = Agentd::start(model, &[("AGENTD_MAX_CONCURRENT_SESSIONS", "100000")]).await;
    let http = client();
    model.set_script(json!({"rules": [{"match": "idle", "replies": [{"tool_calls": [{"name": "answer", "arguments": {"answer": "ok", "outcome": "success"}}]}]}]}));
    // Let the server settle, then read its resident memory at rest.
    http.get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_rest = server.rss_kib();
    let sessions = scaled(10_000);
    let url = format!("{}/api/v2/sessions", server.base);
    let key = server.key.clone();
    let body = json!({"agent": {"name": "bench", "description": "d", "environments": []}, "messages": "idle", "idle_timeout_s": 3600});
    let h = http.clone();
    throughput(sessions, 32, move |_| {
        let (h, url, key, body) = (h.clone(), url.clone(), key.clone(), body.clone());
        async move {
            h.post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16() == 201)
                .unwrap_or(false)
        }
    })
    .await;
    // Wait until every session has answered and gone idle.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let page: Value = http
            .get(format!(
                "{}/api/v2/sessions?status=idle&size=1",
                server.base
            ))
            .bearer_auth(&server.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["total"].as_u64() == Some(sessions as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "sessions did not all go idle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = server.rss_kib();
    let per_session = (loaded.saturating_sub(at_rest)) as f64 * 1024.0 / sessions as f64;
    println!("memory (VmRSS of the agentd process)");
    println!(
        "  at rest                        {:.1} MiB   (target <= 50 MB)",
        at_rest as f64 / 1024.0
    );
    println!(
        "  with {sessions} idle sessions    {:.1} MiB",
        loaded as f64 / 1024.0
    );
    println!(
        "  per idle session               {:.1} KiB   (target <= 20 KiB)",
        per_session / 1024.0
    );
}

#[tokio::main]
async fn main() {
    let model = ScriptedModel::start(json!({"rules": []}))
        .await
        .expect("scripted model");
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if want("creates") {
        bench_creates(&model).await;
    }
    if want("steps") {
        bench_ten_steps(&model).await;
    }
    if want("wake") {
        bench_wake_latency(&model).await;
    }
    if want("memory") {
        bench_memory(&model).await;
    }
}
