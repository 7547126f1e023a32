//! The browser environment's figures, each beside its floor measured in the same run on
//! the same Chromium binary:
//!
//! 1. floor: a click, a read of the page and a JPEG screenshot over raw CDP, and a new
//!    context with its page, in a browser this bench launches itself;
//! 2. a web step through agentd (observe, model call, act, commit) on the test site's
//!    page with a model that answers at once: one session, then 10 at once;
//! 3. session start: opening a session's browser from the warm pool and without it
//!    (agentd's own `agentd_browser_open_seconds` summary);
//! 4. memory: PSS of the whole Chromium process group per concurrent session, beside a
//!    separate browser with one page.
//!
//! Run: `cargo bench -p agentd --bench browser` (release build of the real binary, Debian's
//! `chromium`; everything on 127.0.0.1). `BENCH_QUICK=1` shrinks the counts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_browser::cdp::Cdp;
use agentd_browser::policy::NetworkPolicy;
use agentd_browser::process::{ChromiumProcess, find_chromium};
use agentd_browser::proxy::PolicyProxy;
use agentd_testkit::site::layout;
use agentd_testkit::{ScriptedModel, TestSite};
use serde_json::{Value, json};

mod common;

use common::Agentd;

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// PSS in KiB of every live process of group `pgid`.
fn group_pss_kib(pgid: u32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" || fields[2] != pgid.to_string() {
            continue;
        }
        let rollup = std::fs::read_to_string(entry.path().join("smaps_rollup")).unwrap_or_default();
        total += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------
// The floor: raw CDP on a browser of our own.

struct RawPage {
    cdp: Cdp,
    session: String,
}

impl RawPage {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp
            .call(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn eval(&self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )
        .await["result"]["value"]
            .clone()
    }
}

async fn new_page(cdp: &Cdp, url: &str) -> (String, RawPage) {
    let context = cdp
        .call(
            None,
            "Target.createBrowserContext",
            json!({"disposeOnDetach": true}),
        )
        .await
        .unwrap()["browserContextId"]
        .as_str()
        .unwrap()
        .to_string();
    let target = cdp
        .call(
            None,
            "Target.createTarget",
            json!({"url": url, "browserContextId": context}),
        )
        .await
        .unwrap()["targetId"]
        .as_str()
        .unwrap()
        .to_string();
    let session = cdp
        .call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )
        .await
        .unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let page = RawPage {
        cdp: cdp.clone(),
        session,
    };
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": layout::VIEWPORT_WIDTH, "height": layout::VIEWPORT_HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    (context, page)
}

async fn bench_floor(site: &TestSite, dir: &Path) -> (Duration, Duration, u64) {
    let binary = find_chromium(None).expect("chromium on PATH");
    let policy = Arc::new(NetworkPolicy::from_allow_list("127.0.0.1").unwrap());
    let proxy = PolicyProxy::start(policy).await.unwrap();
    let mut process = ChromiumProcess::launch(&binary, dir, &proxy.url())
        .await
        .unwrap();
    let cdp = Cdp::connect(&process.ws_url).await.unwrap();
    let (_, page) = new_page(&cdp, &site.url("/")).await;
    while page.eval("document.readyState").await != "complete" {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (x, y) = layout::HEADING.center();
    let rounds = if quick() { 10 } else { 50 };
    let mut actions = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for kind in ["mousePressed", "mouseReleased"] {
            page.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
        let _ = page
            .eval("JSON.stringify({t: document.title, u: location.href, n: document.body.innerText.length})")
            .await;
        let shot = page
            .call(
                "Page.captureScreenshot",
                json!({"format": "jpeg", "quality": 75, "optimizeForSpeed": true}),
            )
            .await;
        assert!(shot["data"].as_str().is_some_and(|d| !d.is_empty()));
        actions.push(started.elapsed());
    }
    let one_page_pss = group_pss_kib(process.pid());
    let mut opens = Vec::new();
    for _ in 0..rounds / 2 {
        let started = Instant::now();
        let (context, _page) = new_page(&cdp, "about:blank").await;
        opens.push(started.elapsed());
        cdp.call(
            None,
            "Target.disposeBrowserContext",
            json!({"browserContextId": context}),
        )
        .await
        .unwrap();
    }
    process.kill();
    (median(actions), median(opens), one_page_pss)
}

// ---------------------------------------------------------------------------------------
// Through agentd.

/// A server whose browser may reach the test site, with an HTTP client.
struct Web {
    agentd: Agentd,
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Web {
    async fn start(model: &ScriptedModel, warm: usize) -> Web {
        let warm = warm.to_string();
        let agentd = Agentd::start(
            model,
            &[
                ("AGENTD_BROWSER_ALLOW_HOSTS", "127.0.0.1"),
                ("AGENTD_BROWSER_WARM_CONTEXTS", warm.as_str()),
                ("AGENTD_MAX_CONCURRENT_SESSIONS", "100"),
            ],
        )
        .await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        Web {
            base: agentd.base.clone(),
            key: agentd.key.clone(),
            agentd,
            http: reqwest::Client::new(),
        }
    }

    async fn create(&self, start_url: &str, task: &str) -> String {
        let body = json!({
            "agent": {"name": "bench", "description": "d",
                      "environments": [{"kind": "web", "start_url": start_url}]},
            "messages": task,
        });
        let response: Value = self
            .http
            .post(format!("{}/api/v2/sessions", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["id"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let now = self.get(&format!("/api/v2/sessions/{id}/status")).await;
            if now["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline && now["status"] != "failed",
                "{id}: {now}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The time between consecutive steps' commits (each step commits its observation
    /// with the rest of its events).
    async fn step_times(&self, id: &str) -> Vec<Duration> {
        let changes = self
            .get(&format!("/api/v2/sessions/{id}/changes?from_index=0"))
            .await;
        let times: Vec<i64> = changes["new_events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["kind"] == "observation_event")
            .map(|e| parse_ms(e["timestamp"].as_str().unwrap()))
            .collect();
        times
            .windows(2)
            .map(|w| Duration::from_millis((w[1] - w[0]).max(0) as u64))
            .collect()
    }

    async fn metric(&self, line_prefix: &str) -> Option<f64> {
        self.agentd.metric(line_prefix).await
    }

    fn browser_pid(&self) -> u32 {
        self.agentd.browser_pid()
    }
}

/// Milliseconds of an RFC 3339 UTC timestamp's time of day (enough for differences
/// within a run that does not cross midnight).
fn parse_ms(ts: &str) -> i64 {
    let time = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let m: i64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    (h * 3600 + m * 60) * 1000 + (s * 1000.0).round() as i64
}

fn clicks(steps: usize) -> Vec<Value> {
    let (x, y) = layout::HEADING.center();
    let mut replies: Vec<Value> = (0..steps - 1)
        .map(|_| json!({"tool_calls": [{"name": "click_web", "arguments": {"x": x, "y": y}}]}))
        .collect();
    replies.push(json!({"tool_calls": [{"name": "answer", "arguments": {"answer": "done", "outcome": "success"}}]}));
    replies
}

#[tokio::main]
async fn main() {
    let site = TestSite::start().await.unwrap();
    let steps = if quick() { 6 } else { 21 };
    let model = ScriptedModel::start(json!({"rules": [
        {"match": "bench steps", "replies": clicks(steps)},
        {"match": "bench hold", "replies": [
            {"tool_calls": [{"name": "click_web", "arguments": {"x": 10, "y": 10}}]},
            {"tool_calls": [{"name": "think", "arguments": {"thought": "hold"}}], "delay_ms": 600_000}]},
        {"match": "bench start", "replies": clicks(1)},
    ]}))
    .await
    .unwrap();

    let floor_dir = tempfile::tempdir().unwrap();
    let (action_floor, open_floor, one_page_pss) = bench_floor(&site, floor_dir.path()).await;
    println!("floor (raw CDP, same Chromium):");
    println!("  click + read + JPEG screenshot   {}", ms(action_floor));
    println!("  new context + page               {}", ms(open_floor));
    println!(
        "  a separate browser, one page     {} PSS",
        mib(one_page_pss)
    );

    // Steps: one session, then 10 at once.
    let server = Web::start(&model, 2).await;
    let id = server.create(&site.url("/"), "bench steps solo").await;
    server.wait_status(&id, "completed").await;
    let solo = median(server.step_times(&id).await);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            server
                .create(&site.url("/"), &format!("bench steps {i}"))
                .await,
        );
    }
    let mut all = Vec::new();
    for id in &ids {
        server.wait_status(id, "completed").await;
        all.extend(server.step_times(id).await);
    }
    let ten = median(all);
    println!(
        "web steps ({} steps a session, model answering at once):",
        steps - 1
    );
    println!(
        "  1 session        median {}   (target <= 120 ms)",
        ms(solo)
    );
    println!("  10 at once       median {}   (target <= 400 ms)", ms(ten));

    // Session start, read from agentd's own histogram.
    let starts = if quick() { 5 } else { 20 };
    for i in 0..starts {
        let id = server
            .create(&site.url("/"), &format!("bench start {i}"))
            .await;
        server.wait_status(&id, "completed").await;
    }
    let pooled = server
        .metric("agentd_browser_open_seconds{pooled=\"yes\",quantile=\"0.5\"}")
        .await;
    let page_load = server
        .metric("agentd_browser_start_page_seconds{quantile=\"0.5\"}")
        .await;
    drop(server);
    let cold = Web::start(&model, 0).await;
    for i in 0..starts {
        let id = cold
            .create(&site.url("/"), &format!("bench start cold {i}"))
            .await;
        cold.wait_status(&id, "completed").await;
    }
    let unpooled = cold
        .metric("agentd_browser_open_seconds{pooled=\"no\",quantile=\"0.5\"}")
        .await;
    drop(cold);
    let secs = |v: Option<f64>| v.map_or("n/a".to_string(), |s| ms(Duration::from_secs_f64(s)));
    println!("session start, to a context ready to navigate (agentd_browser_open_seconds p50):");
    println!(
        "  from the warm pool      {}   (target <= 50 ms)",
        secs(pooled)
    );
    println!(
        "  new context (no pool)   {}   (target <= 250 ms; floor above)",
        secs(unpooled)
    );
    println!("  then the start page loads in {} (p50)", secs(page_load));

    // Memory: 10 sessions holding their pages.
    let server = Web::start(&model, 0).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            server
                .create(&site.url("/"), &format!("bench hold {i}"))
                .await,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while model.in_flight() < 10 {
        assert!(
            Instant::now() < deadline,
            "sessions did not reach their second step"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = group_pss_kib(server.browser_pid());
    println!("memory (PSS of the whole Chromium group, 10 sessions on the test page):");
    println!(
        "  total {}, per session {}   (target <= 100 MiB; a separate browser: {})",
        mib(total),
        mib(total / 10),
        mib(one_page_pss)
    );
}
