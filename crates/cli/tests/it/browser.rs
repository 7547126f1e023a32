//! The browser environment end to end: the real server drives a real Chromium on the test
//! site of the test kit (127.0.0.1, allowed explicitly), and the tests assert on what the
//! site's server saw.

use std::time::Duration;

use agentd_testkit::site::layout;
use agentd_testkit::{Effect, TestSite};
use serde_json::{Value, json};

use crate::common::{Options, Server, script};

const DEADLINE: Duration = Duration::from_secs(30);

/// A server whose browser may reach 127.0.0.1 (the test site) and nothing else internal.
pub async fn web_server() -> Server {
    Server::start_with(Options {
        env: vec![("AGENTD_BROWSER_ALLOW_HOSTS", "127.0.0.1".to_string())],
        ..Default::default()
    })
    .await
}

pub fn web_agent(start_url: &str) -> Value {
    json!({
        "name": "surfer",
        "description": "A test agent with a browser.",
        "environments": [{"kind": "web", "id": "web", "start_url": start_url}],
    })
}

pub fn call(name: &str, arguments: Value) -> Value {
    json!({"tool_calls": [{"name": name, "arguments": arguments}]})
}

pub fn answer(text: &str) -> Value {
    call("answer", json!({"answer": text, "outcome": "success"}))
}

#[tokio::test]
async fn a_click_by_coordinates_reaches_the_page() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::BUTTON.center();
    script(
        &server,
        "click the button",
        vec![
            call("click_web", json!({"x": x, "y": y})),
            answer("clicked"),
        ],
    );
    let session = server
        .create(json!({"agent": web_agent(&site.url("/")), "messages": "click the button"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let click = seen(&site, "click").await;
    assert_eq!(click.detail["button"], "left");
    let (x, y) = effect_point(&click);
    assert!(layout::BUTTON.contains(x, y), "{click:?}");
    server.wait_for(id, "completed").await;
}

/// Creates a web session on `start_url` whose task is `task`, scripts the model with
/// `replies` for it, and waits for it to complete.
async fn run_web(server: &Server, start_url: &str, task: &str, replies: Vec<Value>) -> String {
    script(server, task, replies);
    let session = server
        .create(json!({"agent": web_agent(start_url), "messages": task}))
        .await;
    let id = session["id"].as_str().unwrap().to_string();
    server.wait_for(&id, "completed").await;
    id
}

/// The model requests of the session whose task is `task`, in order.
fn requests_for(server: &Server, task: &str) -> Vec<Value> {
    server
        .model
        .requests()
        .into_iter()
        .filter(|r| {
            r["messages"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["role"] == "user"))
                .is_some_and(|m| m["content"].to_string().contains(task))
        })
        .collect()
}

/// What the model was told about its last tool call before its `k`-th reply: the content
/// of the last `tool` message of the request made after `k` assistant messages.
fn tool_result_seen(server: &Server, task: &str, k: usize) -> String {
    let requests = requests_for(server, task);
    let request = requests
        .iter()
        .find(|r| {
            r["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "assistant")
                .count()
                == k
        })
        .unwrap_or_else(|| panic!("no request after {k} replies: {requests:?}"));
    let last_tool = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .expect("a tool message");
    last_tool["content"].to_string()
}

/// The first effect of `kind` the site recorded, waited for.
async fn seen(site: &TestSite, kind: &str) -> Effect {
    seen_where(site, |e| e.kind == kind).await
}

/// Waits for the site to report that `path` loaded.
async fn loaded(site: &TestSite, path: &str) -> Effect {
    seen_where(site, |e| e.kind == "loaded" && e.detail["path"] == path).await
}

async fn seen_where(site: &TestSite, pred: impl Fn(&Effect) -> bool) -> Effect {
    site.wait_for_effect(pred, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn effect_point(effect: &Effect) -> (f64, f64) {
    (
        effect.detail["x"].as_f64().unwrap(),
        effect.detail["y"].as_f64().unwrap(),
    )
}

/// The width and height in a JPEG's start-of-frame header.
fn jpeg_size(bytes: &[u8]) -> (u16, u16) {
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "not a JPEG");
    let mut i = 2;
    while i + 9 < bytes.len() {
        assert_eq!(bytes[i], 0xFF, "bad JPEG marker at {i}");
        let marker = bytes[i + 1];
        let length = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if (0xC0..=0xC3).contains(&marker) {
            let height = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let width = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return (width, height);
        }
        i += 2 + length;
    }
    panic!("no start-of-frame in the JPEG");
}

async fn get_bytes(url: &str, key: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut request = crate::common::http_client().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn observations(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["data"]["kind"] == "observation_event")
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test]
async fn screenshots_are_jpegs_of_the_viewport_served_as_resources() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    script(
        &server,
        "look at it",
        vec![call("wait_web", json!({"seconds": 0})), answer("seen")],
    );
    let agent = json!({
        "name": "surfer", "description": "A test agent with a browser.",
        "environments": [{"kind": "web", "start_url": site.url("/"),
                          "mode": {"type": "visual", "width": 800, "height": 600}}],
    });
    let session = server
        .create(json!({"agent": agent, "messages": "look at it"}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let seen = observations(&server.events(id).await);
    assert_eq!(seen.len(), 2, "one observation per step: {seen:?}");
    for observation in &seen {
        let url = observation["image"]["source"].as_str().unwrap();
        assert!(
            url.starts_with(&server.base),
            "absolute URL on this server: {url}"
        );
        assert!(url.contains(&format!("/api/v2/sessions/{id}/resources/screenshots/")));
        let (status, content_type, bytes) = get_bytes(url, Some(&server.key)).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "image/jpeg");
        assert_eq!(jpeg_size(&bytes), (800, 600));
        let (status, _, _) = get_bytes(url, None).await;
        assert_eq!(status, 401, "a screenshot needs the key while unshared");
        assert_eq!(observation["metadata"]["url"], site.url("/"));
        assert_eq!(observation["metadata"]["title"], "Test site");
    }
    // Shared, the screenshot is public.
    let (status, _) = server
        .call("POST", &format!("/api/v2/sessions/{id}/share"), None)
        .await;
    assert!(status < 300);
    let url = seen[0]["image"]["source"].as_str().unwrap();
    let (status, _, bytes) = get_bytes(url, None).await;
    assert_eq!(status, 200);
    assert_eq!(jpeg_size(&bytes), (800, 600));
}

#[tokio::test]
async fn the_default_viewport_is_1280_by_720() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let id = run_web(
        &server,
        &site.url("/"),
        "default viewport",
        vec![answer("ok")],
    )
    .await;
    let seen = observations(&server.events(&id).await);
    let url = seen[0]["image"]["source"].as_str().unwrap();
    let (_, _, bytes) = get_bytes(url, Some(&server.key)).await;
    assert_eq!(
        jpeg_size(&bytes),
        (
            layout::VIEWPORT_WIDTH as u16,
            layout::VIEWPORT_HEIGHT as u16
        )
    );
}

#[tokio::test]
async fn typing_into_a_field_and_pressing_enter_submits_the_form() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::NAME_INPUT.center();
    run_web(
        &server,
        &site.url("/"),
        "fill the form",
        vec![
            call(
                "write",
                json!({"text": "Ada Lovelace", "x": x, "y": y, "enter": true}),
            ),
            answer("submitted"),
        ],
    )
    .await;
    let submitted = seen(&site, "submit").await;
    assert_eq!(submitted.detail["name"], "Ada Lovelace");
}

#[tokio::test]
async fn a_key_chord_arrives_as_real_key_events() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    run_web(
        &server,
        &site.url("/"),
        "press keys",
        vec![
            call("press_keys_web", json!({"keys": ["ctrl", "k"]})),
            call("press_keys_web", json!({"keys": ["Tab"]})),
            answer("pressed"),
        ],
    )
    .await;
    let chord = seen_where(&site, |e| e.kind == "keydown" && e.detail["key"] == "k").await;
    assert_eq!(chord.detail["ctrl"], true);
    assert_eq!(chord.detail["shift"], false);
    seen_where(&site, |e| e.kind == "keydown" && e.detail["key"] == "Tab").await;
}

#[tokio::test]
async fn scrolling_moves_the_page_and_the_next_observation_says_so() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let id = run_web(
        &server,
        &site.url("/"),
        "scroll down",
        vec![
            call("scroll_web", json!({"direction": "down", "amount": 500})),
            answer("scrolled"),
        ],
    )
    .await;
    let scrolled = seen(&site, "scroll").await;
    assert_eq!(
        scrolled.detail["y"].as_f64().unwrap(),
        500.0,
        "{scrolled:?}"
    );
    let seen = observations(&server.events(&id).await);
    assert_eq!(
        seen[1]["metadata"]["scroll_position"],
        json!([0, 500]),
        "{:?}",
        seen[1]
    );
}

#[tokio::test]
async fn an_option_of_a_native_select_is_picked_by_its_label() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::COLOR_SELECT.center();
    let (value, label) = layout::COLOR_OPTIONS[2];
    run_web(
        &server,
        &site.url("/"),
        "pick a colour",
        vec![
            call("select_option", json!({"x": x, "y": y, "option": label})),
            answer("picked"),
        ],
    )
    .await;
    let picked = seen(&site, "select").await;
    assert_eq!(picked.detail["value"], value);
}

#[tokio::test]
async fn a_link_to_a_new_tab_opens_a_tab_the_agent_sees() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::TAB_LINK.center();
    let id = run_web(
        &server,
        &site.url("/"),
        "open the tab",
        vec![call("click_web", json!({"x": x, "y": y})), answer("opened")],
    )
    .await;
    seen(&site, "tab_opened").await;
    let seen = observations(&server.events(&id).await);
    let metadata = &seen[1]["metadata"];
    assert_eq!(metadata["tabs"].as_array().unwrap().len(), 2, "{metadata}");
    assert_eq!(
        metadata["url"],
        site.url("/tab"),
        "the new tab is active: {metadata}"
    );
}

#[tokio::test]
async fn hovering_ctrl_f_and_reader_mode_work_on_the_page() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::HOVER.center();
    run_web(
        &server,
        &site.url("/"),
        "hover and find",
        vec![
            call("move_mouse_web", json!({"x": x, "y": y})),
            call("ctrl_f_web", json!({"query": layout::NEEDLE_TEXT})),
            call("go_to_web", json!({"url": site.url("/article")})),
            call("reader_mode", json!({})),
            answer("done"),
        ],
    )
    .await;
    seen(&site, "hover").await;
    let found = seen(&site, "scroll").await;
    let y = found.detail["y"].as_f64().unwrap();
    assert!(
        y > 0.0 && y <= f64::from(layout::NEEDLE.y),
        "the needle is scrolled into view: {found:?}"
    );
    let read = tool_result_seen(&server, "hover and find", 4);
    assert!(
        read.contains("# How lighthouses work") && read.contains("Fresnel lens"),
        "reader mode gives the article as Markdown: {read}"
    );
    assert!(
        !read.contains("Advertisement") && !read.contains("Sign in"),
        "without the page's clutter: {read}"
    );
}

#[tokio::test]
async fn a_clicked_point_outside_the_viewport_is_a_tool_error_and_the_session_goes_on() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let id = run_web(
        &server,
        &site.url("/"),
        "click nowhere",
        vec![
            call("click_web", json!({"x": 5000, "y": 5000})),
            answer("recovered"),
        ],
    )
    .await;
    let told = tool_result_seen(&server, "click nowhere", 1);
    assert!(told.to_lowercase().contains("viewport"), "{told}");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "recovered");
}

#[tokio::test]
async fn text_mode_shows_the_page_as_text_chunks() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    script(
        &server,
        "read as text",
        vec![
            call("find_in_page", json!({"query": layout::NEEDLE_TEXT})),
            answer("read"),
        ],
    );
    let agent = json!({
        "name": "reader", "description": "A text-mode agent.",
        "environments": [{"kind": "web", "start_url": site.url("/"),
                          "mode": {"type": "text", "chunk_size": 200}}],
    });
    let session = server
        .create(json!({"agent": agent, "messages": "read as text"}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let seen = observations(&server.events(id).await);
    assert!(
        seen.iter().all(|o| o["image"].is_null()),
        "no screenshots in text mode"
    );
    assert!(
        seen[0]["text"].as_str().unwrap().contains("Test site"),
        "{:?}",
        seen[0]
    );
    let tools: Vec<String> = requests_for(&server, "read as text")[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        tools.contains(&"switch_chunk".to_string()) && !tools.contains(&"click_web".to_string()),
        "{tools:?}"
    );
    assert!(
        seen[1]["text"]
            .as_str()
            .unwrap()
            .contains(layout::NEEDLE_TEXT),
        "{:?}",
        seen[1]
    );
}

/// A second loopback host, off the allowlist of [`web_server`] (which allows 127.0.0.1).
async fn refused_site() -> TestSite {
    TestSite::start_on(std::net::Ipv4Addr::new(127, 0, 0, 2))
        .await
        .unwrap()
}

fn assert_refused(told: &str, host: &str) {
    assert!(
        told.contains("not allowed") && told.contains(host),
        "the model is told the address is not allowed: {told}"
    );
}

#[tokio::test]
async fn a_host_off_the_allowlist_is_refused_and_never_reached() {
    let site = TestSite::start().await.unwrap();
    let other = refused_site().await;
    let server = web_server().await;
    run_web(
        &server,
        &site.url("/"),
        "go elsewhere",
        vec![
            call("go_to_web", json!({"url": other.url("/")})),
            answer("refused"),
        ],
    )
    .await;
    assert_refused(&tool_result_seen(&server, "go elsewhere", 1), "127.0.0.2");
    assert!(other.hits().is_empty(), "{:?}", other.hits());
    assert!(
        server.log().contains("127.0.0.2"),
        "the log shows the refusal:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn loopback_is_refused_without_an_allowlist() {
    let site = TestSite::start().await.unwrap();
    let server = Server::start().await;
    let url = format!("http://localhost:{}/", site.addr().port());
    run_web(
        &server,
        "about:blank",
        "go to localhost",
        vec![call("go_to_web", json!({"url": url})), answer("refused")],
    )
    .await;
    assert_refused(
        &tool_result_seen(&server, "go to localhost", 1),
        "localhost",
    );
    assert!(site.hits().is_empty(), "{:?}", site.hits());
}

#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_a_refused_one_is_refused() {
    let site = TestSite::start().await.unwrap();
    let other = refused_site().await;
    let server = web_server().await;
    let redirect = site.url(&format!("/redirect?to={}", other.url("/")));
    run_web(
        &server,
        "about:blank",
        "follow the redirect",
        vec![
            call("go_to_web", json!({"url": redirect})),
            answer("refused"),
        ],
    )
    .await;
    assert_refused(
        &tool_result_seen(&server, "follow the redirect", 1),
        "127.0.0.2",
    );
    assert!(site.hits().iter().any(|h| h.path.starts_with("/redirect")));
    assert!(other.hits().is_empty(), "{:?}", other.hits());
}

#[tokio::test]
async fn a_subresource_on_a_refused_host_is_not_fetched() {
    let site = TestSite::start().await.unwrap();
    let other = refused_site().await;
    let server = web_server().await;
    let page = site.url(&format!("/embed?src={}", other.url("/picture.png")));
    run_web(&server, &page, "embed", vec![answer("looked")]).await;
    seen(&site, "embed_failed").await;
    assert!(other.hits().is_empty(), "{:?}", other.hits());
}

#[tokio::test]
async fn the_server_itself_is_refused_even_on_an_allowed_address() {
    let server = web_server().await;
    let own = server.url("/healthz");
    run_web(
        &server,
        "about:blank",
        "visit the server",
        vec![call("go_to_web", json!({"url": own})), answer("refused")],
    )
    .await;
    assert_refused(
        &tool_result_seen(&server, "visit the server", 1),
        "127.0.0.1",
    );
}

#[tokio::test]
async fn a_refused_start_url_is_explained_in_the_first_observation() {
    let other = refused_site().await;
    let server = web_server().await;
    let id = run_web(
        &server,
        &other.url("/"),
        "refused start",
        vec![answer("could not go")],
    )
    .await;
    assert!(other.hits().is_empty(), "{:?}", other.hits());
    let seen = observations(&server.events(&id).await);
    assert!(
        seen[0]["text"].as_str().unwrap().contains("not allowed"),
        "the first observation says why: {:?}",
        seen[0]
    );
}

fn think(delay_ms: u64) -> Value {
    json!({"tool_calls": [{"name": "think", "arguments": {"thought": "hmm"}}], "delay_ms": delay_ms})
}

/// The pid of the server's Chromium, from the pid file it keeps in its data directory.
fn chromium_pid(server: &Server) -> Option<i32> {
    let path = server.data_dir.path().join("browser").join("chromium.pid");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Live (non-zombie) processes in process group `group`.
fn processes_in_group(group: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string() {
            found.push(pid);
        }
    }
    found
}

/// Waits until no process of `group` is alive; panics with what is left after `within`.
async fn wait_group_gone(group: i32, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = processes_in_group(group);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Chromium processes left in group {group}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = server.metrics().await;
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_metric(server: &Server, name: &str, value: f64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let now = metric(server, name).await;
        if now == Some(value) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is {now:?}, not {value}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn eight_web_sessions_at_once_all_complete() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::BUTTON.center();
    script(
        &server,
        "together",
        vec![
            call("click_web", json!({"x": x, "y": y})),
            answer("clicked"),
        ],
    );
    let mut ids = Vec::new();
    for i in 0..8 {
        let session = server
            .create(
                json!({"agent": web_agent(&site.url("/")), "messages": format!("together {i}")}),
            )
            .await;
        ids.push(session["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        server
            .wait_status(id, Duration::from_secs(90), |s| s["status"] == "completed")
            .await;
    }
    let clicks = site.effects().iter().filter(|e| e.kind == "click").count();
    assert_eq!(clicks, 8, "{:?}", site.effects());
}

#[tokio::test]
async fn cancelling_a_web_session_closes_its_browser_context() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    script(&server, "cancel me", vec![think(30_000)]);
    let session = server
        .create(json!({"agent": web_agent(&site.url("/")), "messages": "cancel me"}))
        .await;
    let id = session["id"].as_str().unwrap();
    assert!(server.model.wait_for_in_flight(1, DEADLINE).await);
    assert_eq!(metric(&server, "agentd_browser_contexts").await, Some(1.0));
    let (status, body) = server
        .call("DELETE", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert!(status < 300, "{status} {body}");
    wait_metric(
        &server,
        "agentd_browser_contexts",
        0.0,
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test]
async fn a_paused_web_session_keeps_its_page() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::NAME_INPUT.center();
    let replies = |delay_ms| {
        vec![
            call("write", json!({"text": "kept", "x": x, "y": y})),
            think(delay_ms),
            call("press_keys_web", json!({"keys": ["Enter"]})),
            answer("done"),
        ]
    };
    script(&server, "pause me", replies(30_000));
    let session = server
        .create(json!({"agent": web_agent(&site.url("/")), "messages": "pause me"}))
        .await;
    let id = session["id"].as_str().unwrap();
    assert!(server.model.wait_for_requests(2, DEADLINE).await);
    let (status, _) = server
        .call("POST", &format!("/api/v2/sessions/{id}/pause"), None)
        .await;
    assert!(status < 300);
    server.wait_for(id, "paused").await;
    assert_eq!(metric(&server, "agentd_browser_contexts").await, Some(1.0));
    // Resumed with the model answering at once, the typed text is still in the field.
    server
        .model
        .set_script(json!({"rules": [{"match": "pause me", "replies": replies(0)}]}));
    let (status, _) = server
        .call("POST", &format!("/api/v2/sessions/{id}/resume"), None)
        .await;
    assert!(status < 300);
    server.wait_for(id, "completed").await;
    let submitted = seen(&site, "submit").await;
    assert_eq!(submitted.detail["name"], "kept");
}

#[tokio::test]
async fn a_crashed_browser_is_restarted_and_the_session_restored_at_its_last_page() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::PAGE2_LINK.center();
    script(
        &server,
        "survive a crash",
        vec![
            call("click_web", json!({"x": x, "y": y})),
            think(2_000),
            answer("survived"),
        ],
    );
    let session = server
        .create(json!({"agent": web_agent(&site.url("/")), "messages": "survive a crash"}))
        .await;
    let id = session["id"].as_str().unwrap();
    loaded(&site, "/page2").await;
    assert!(server.model.wait_for_requests(2, DEADLINE).await);
    assert!(server.model.wait_for_in_flight(1, DEADLINE).await);
    let crashed = chromium_pid(&server).expect("a browser runs");
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(crashed).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    site.clear_effects();
    server.wait_for(id, "completed").await;
    // The page was opened again in a new browser, and the model was told.
    loaded(&site, "/page2").await;
    let last = requests_for(&server, "survive a crash").pop().unwrap();
    assert!(last["messages"].to_string().contains("restored"), "{last}");
    assert_ne!(chromium_pid(&server), Some(crashed));
    wait_group_gone(crashed, DEADLINE).await;
}

#[tokio::test]
async fn no_chromium_outlives_a_sigterm() {
    let site = TestSite::start().await.unwrap();
    let mut server = web_server().await;
    run_web(&server, &site.url("/"), "then stop", vec![answer("ok")]).await;
    let group = chromium_pid(&server).expect("a browser runs");
    assert!(!processes_in_group(group).is_empty());
    let (_, clean) = server.terminate().await;
    assert!(clean);
    // Checked at once: the server stopped its browser before exiting.
    let left = processes_in_group(group);
    assert!(
        left.is_empty(),
        "Chromium processes left after SIGTERM: {left:?}"
    );
}

#[tokio::test]
async fn a_sigkill_of_agentd_takes_its_chromium_with_it() {
    let site = TestSite::start().await.unwrap();
    let mut server = web_server().await;
    run_web(&server, &site.url("/"), "then crash", vec![answer("ok")]).await;
    let group = chromium_pid(&server).expect("a browser runs");
    server.kill().await;
    // No restart: the kernel ends the browser with the server.
    wait_group_gone(group, DEADLINE).await;
}

/// A stand-in for a browser an earlier run left behind: a process group whose command
/// line names a profile under `browser_dir` when `ours`, or names none.
fn leftover(browser_dir: &std::path::Path, ours: bool) -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    let marker = match ours {
        true => format!(
            "--user-data-dir={}/agentd-chromium-profile-1",
            browser_dir.display()
        ),
        false => "--user-data-dir=/elsewhere".to_string(),
    };
    std::process::Command::new("sh")
        .args(["-c", "sleep 600", &marker])
        .process_group(0)
        .spawn()
        .expect("sh starts")
}

#[tokio::test]
async fn a_browser_left_by_an_earlier_run_is_stopped_at_the_next_start_and_nothing_else() {
    let mut server = web_server().await;
    let (_, clean) = server.terminate().await;
    assert!(clean);
    let browser_dir = server.data_dir.path().join("browser");
    std::fs::create_dir_all(&browser_dir).unwrap();
    let pid_file = browser_dir.join("chromium.pid");

    // A pid that is not a browser of this data directory (reused by another program).
    let mut stranger = leftover(&browser_dir, false);
    std::fs::write(&pid_file, stranger.id().to_string()).unwrap();
    server.start_again().await;
    assert!(!pid_file.exists(), "the stale pid file is removed");
    assert!(
        !processes_in_group(stranger.id() as i32).is_empty(),
        "an unrelated process is never touched"
    );
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(stranger.id() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    stranger.wait().unwrap();
    wait_group_gone(stranger.id() as i32, DEADLINE).await;
    let (_, clean) = server.terminate().await;
    assert!(clean);

    // A browser of this data directory, left by a run that died.
    let mut stale = leftover(&browser_dir, true);
    std::fs::write(&pid_file, stale.id().to_string()).unwrap();
    server.start_again().await;
    stale.wait().unwrap();
    wait_group_gone(stale.id() as i32, DEADLINE).await;
}

#[tokio::test]
async fn a_session_resumed_after_a_server_crash_gets_its_last_page_back() {
    let site = TestSite::start().await.unwrap();
    let mut server = web_server().await;
    let (x, y) = layout::PAGE2_LINK.center();
    let replies = |delay_ms| {
        vec![
            call("click_web", json!({"x": x, "y": y})),
            think(delay_ms),
            answer("back"),
        ]
    };
    script(&server, "crash the server", replies(30_000));
    let session = server
        .create(json!({"agent": web_agent(&site.url("/")), "messages": "crash the server"}))
        .await;
    let id = session["id"].as_str().unwrap().to_string();
    loaded(&site, "/page2").await;
    assert!(server.model.wait_for_requests(2, DEADLINE).await);
    server.kill().await;
    server
        .model
        .set_script(json!({"rules": [{"match": "crash the server", "replies": replies(0)}]}));
    site.clear_effects();
    server.start_again().await;
    server.wait_for(&id, "completed").await;
    loaded(&site, "/page2").await;
    let last = requests_for(&server, "crash the server").pop().unwrap();
    assert!(last["messages"].to_string().contains("restored"), "{last}");
}

#[tokio::test]
async fn a_browser_that_cannot_start_fails_the_session_with_an_environment_error() {
    let server = Server::start_with(Options {
        env: vec![(
            "AGENTD_BROWSER_CHROMIUM",
            "/nonexistent/chromium".to_string(),
        )],
        ..Default::default()
    })
    .await;
    script(&server, "no browser", vec![answer("unreachable")]);
    let session = server
        .create(json!({"agent": web_agent("about:blank"), "messages": "no browser"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let status = server.wait_for(id, "failed").await;
    assert_eq!(status["error_code"], "environment_error", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/chromium"),
        "{status}"
    );
    assert_eq!(server.model.request_count(), 0, "the model is never asked");
}

#[tokio::test]
async fn environment_fields_not_served_yet_are_a_422_naming_the_field() {
    let server = web_server().await;
    for (field, value) in [
        ("host", json!("user_device")),
        ("vault_id", json!("v1")),
        ("browser_profile_id", json!("p1")),
        ("network", json!({"proxy": "x"})),
    ] {
        let mut environment = json!({"kind": "web", "start_url": "about:blank"});
        environment[field] = value;
        let agent = json!({"name": "a", "description": "d", "environments": [environment]});
        let (status, body) = server
            .call(
                "POST",
                "/api/v2/sessions",
                Some(json!({"agent": agent, "messages": "hi"})),
            )
            .await;
        assert_eq!(status, 422, "{field}: {body}");
        let loc = body["detail"][0]["loc"].to_string();
        assert!(loc.contains(field), "{field}: {body}");
    }
    // The server goes on serving.
    let (status, _) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn screenshots_are_deleted_when_delete_screenshot_after_min_says() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    script(&server, "forget the pictures", vec![answer("done")]);
    let session = server
        .create(
            json!({"agent": web_agent(&site.url("/")), "messages": "forget the pictures",
                       "delete_screenshot_after_min": 0, "idle_timeout_s": null}),
        )
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let seen = observations(&server.events(id).await);
    let url = seen[0]["image"]["source"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (status, _, _) = get_bytes(&url, Some(&server.key)).await;
        if status == 404 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the screenshot was kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The events stay; only the pictures went.
    assert_eq!(observations(&server.events(id).await).len(), seen.len());
}

#[tokio::test]
async fn a_lazy_browser_opens_at_the_first_web_tool() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    script(
        &server,
        "lazy start",
        vec![
            call("go_to_web", json!({"url": site.url("/page2")})),
            answer("went"),
        ],
    );
    let agent = json!({
        "name": "lazy", "description": "A lazy browser.",
        "environments": [{"kind": "web", "start_url": site.url("/"), "lazy": true}],
    });
    let session = server
        .create(json!({"agent": agent, "messages": "lazy start"}))
        .await;
    let id = session["id"].as_str().unwrap();
    server.wait_for(id, "completed").await;
    let seen = observations(&server.events(id).await);
    assert_eq!(seen.len(), 1, "no observation at step 0: {seen:?}");
    assert_eq!(seen[0]["metadata"]["url"], site.url("/page2"));
    let first = &requests_for(&server, "lazy start")[0];
    assert!(
        !first["messages"].to_string().contains("Observation:"),
        "{first}"
    );
}

#[tokio::test]
async fn back_refresh_and_tabs_move_between_pages() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let id = run_web(
        &server,
        &site.url("/"),
        "move around",
        vec![
            call("go_to_web", json!({"url": site.url("/page2")})),
            call("go_back_web", json!({})),
            call("refresh_web", json!({})),
            call("switch_tab_web", json!({"url": site.url("/tab")})),
            call("close_tab_web", json!({})),
            answer("moved"),
        ],
    )
    .await;
    let loads: Vec<String> = site
        .effects()
        .iter()
        .filter(|e| e.kind == "loaded")
        .map(|e| e.detail["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        loads,
        ["/", "/page2", "/", "/", "/tab"],
        "{:?}",
        site.effects()
    );
    let seen = observations(&server.events(&id).await);
    let urls: Vec<&str> = seen
        .iter()
        .map(|o| o["metadata"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            site.url("/"),
            site.url("/page2"),
            site.url("/"),
            site.url("/"),
            site.url("/tab"),
            site.url("/")
        ],
    );
    let tabs: Vec<usize> = seen
        .iter()
        .map(|o| o["metadata"]["tabs"].as_array().unwrap().len())
        .collect();
    assert_eq!(tabs, [1, 1, 1, 1, 2, 1]);
}

#[tokio::test]
async fn double_right_and_middle_clicks_and_scrolling_an_inner_box() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let (x, y) = layout::BUTTON.center();
    let (bx, by) = layout::BOX.center();
    run_web(
        &server,
        &site.url("/"),
        "click variants",
        vec![
            call("click_web", json!({"x": x, "y": y, "clicks": 2})),
            call("click_web", json!({"x": x, "y": y, "button": "right"})),
            call("click_web", json!({"x": x, "y": y, "button": "middle"})),
            call(
                "scroll_web",
                json!({"direction": "down", "x": bx, "y": by, "amount": 300}),
            ),
            answer("clicked"),
        ],
    )
    .await;
    seen(&site, "dblclick").await;
    let right = seen(&site, "contextmenu").await;
    assert_eq!(right.detail["button"], "right");
    let middle = seen_where(&site, |e| {
        e.kind == "click" && e.detail["button"] == "middle"
    })
    .await;
    let (mx, my) = effect_point(&middle);
    assert!(layout::BUTTON.contains(mx, my));
    let boxed = seen(&site, "box_scroll").await;
    assert_eq!(boxed.detail["y"].as_f64().unwrap(), 300.0, "{boxed:?}");
    assert!(
        !site.effects().iter().any(|e| e.kind == "scroll"),
        "the page itself did not scroll: {:?}",
        site.effects()
    );
}

#[tokio::test]
async fn force_answer_lets_an_in_flight_browser_action_finish_first() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    script(
        &server,
        "slow page then answer",
        vec![
            call("go_to_web", json!({"url": site.url("/slow?ms=1500")})),
            answer("forced"),
        ],
    );
    let session = server
        .create(json!({"agent": web_agent(&site.url("/")), "messages": "slow page then answer"}))
        .await;
    let id = session["id"].as_str().unwrap();
    // The page is being fetched: the action is in flight.
    let deadline = std::time::Instant::now() + DEADLINE;
    while !site.hits().iter().any(|h| h.path.starts_with("/slow")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow page was never asked for"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = server
        .call("POST", &format!("/api/v2/sessions/{id}/force_answer"), None)
        .await;
    assert!(status < 300, "{status} {body}");
    server.wait_for(id, "completed").await;
    loaded(&site, "/slow").await;
    let events = server.events(id).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| e["data"]["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    let forced = events
        .iter()
        .position(|e| e["data"]["kind"] == "flow_event" && e["data"]["flow"] == "force_answer")
        .unwrap_or_else(|| panic!("{kinds:?}"));
    let went = events
        .iter()
        .position(|e| {
            e["data"]["kind"] == "tool_result" && e["data"]["tool_req"]["tool_name"] == "go_to_web"
        })
        .unwrap_or_else(|| panic!("the action was recorded: {kinds:?}"));
    assert!(forced < went, "{kinds:?}");
    let last = requests_for(&server, "slow page then answer")
        .pop()
        .unwrap();
    assert_eq!(
        last["tools"].as_array().unwrap().len(),
        1,
        "only answer is offered: {last}"
    );
}

/// The port of the server's Chromium DevTools endpoint, from the file Chromium writes in
/// its profile.
fn devtools_port(server: &Server) -> u16 {
    let dir = server.data_dir.path().join("browser");
    let profile = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().join("DevToolsActivePort").exists())
        .expect("a running browser's profile");
    let text = std::fs::read_to_string(profile.path().join("DevToolsActivePort")).unwrap();
    text.lines().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_browser_cannot_reach_its_own_devtools_endpoint() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    // A first session starts the browser.
    run_web(
        &server,
        &site.url("/"),
        "start the browser",
        vec![answer("ok")],
    )
    .await;
    let port = devtools_port(&server);
    let url = format!("http://127.0.0.1:{port}/json/version");
    run_web(
        &server,
        "about:blank",
        "reach devtools",
        vec![call("go_to_web", json!({"url": url})), answer("refused")],
    )
    .await;
    let told = tool_result_seen(&server, "reach devtools", 1);
    assert!(
        told.contains("not allowed") && told.contains("DevTools"),
        "{told}"
    );
}

#[tokio::test]
async fn an_unreachable_or_missing_page_is_a_tool_error_naming_the_cause() {
    let site = TestSite::start().await.unwrap();
    let server = web_server().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let id = run_web(
        &server,
        &site.url("/"),
        "bad pages",
        vec![
            call(
                "go_to_web",
                json!({"url": format!("http://127.0.0.1:{closed}/")}),
            ),
            call("go_to_web", json!({"url": site.url("/nowhere")})),
            answer("handled"),
        ],
    )
    .await;
    let unreachable = tool_result_seen(&server, "bad pages", 1);
    assert!(
        unreachable.contains("HTTP 502") && unreachable.contains("cannot connect"),
        "{unreachable}"
    );
    let missing = tool_result_seen(&server, "bad pages", 2);
    assert!(missing.contains("HTTP 404"), "{missing}");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], "handled");
}

#[tokio::test]
async fn a_bad_allowlist_entry_stops_the_server_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(crate::common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AGENTD_BROWSER_ALLOW_HOSTS", "intranet.example,10.0.0.0/99")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AGENTD_BROWSER_ALLOW_HOSTS") && stderr.contains("10.0.0.0/99"),
        "{stderr}"
    );
}
