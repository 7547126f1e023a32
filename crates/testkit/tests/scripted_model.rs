//! Black-box tests of the scripted model server over HTTP on 127.0.0.1, through the library
//! handle and through the `scripted-model` binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use agentd_testkit::ScriptedModel;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(10);

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn chat_body(first_user: &str, assistant_turns: usize) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "be brief"}),
        json!({"role": "user", "content": first_user}),
    ];
    for turn in 0..assistant_turns {
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("c{turn}"), "type": "function", "function": {"name": "think", "arguments": "{}"}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("c{turn}"), "content": "ok"}));
    }
    json!({"model": "test-model", "messages": messages})
}

async fn post_chat(
    client: &reqwest::Client,
    model: &ScriptedModel,
    body: &Value,
) -> reqwest::Response {
    client
        .post(format!("{}/chat/completions", model.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn chat_content(client: &reqwest::Client, model: &ScriptedModel, body: Value) -> Value {
    let response = post_chat(client, model, &body).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    completion["choices"][0]["message"]["content"].clone()
}

#[tokio::test]
async fn rules_match_the_first_user_message_and_replies_follow_the_turn() {
    let model = ScriptedModel::start(json!({
        "rules": [{"match": "What is 6*7", "replies": [{"content": "thinking"}, {"content": "42"}]}],
        "default": [{"content": "default"}]
    }))
    .await
    .unwrap();
    let client = http_client();

    assert_eq!(
        chat_content(&client, &model, chat_body("What is 6*7?", 0)).await,
        "thinking"
    );
    assert_eq!(
        chat_content(&client, &model, chat_body("What is 6*7?", 1)).await,
        "42"
    );
    assert_eq!(
        chat_content(&client, &model, chat_body("What is 6*7?", 5)).await,
        "42"
    );
    assert_eq!(
        chat_content(&client, &model, chat_body("Something else", 0)).await,
        "default"
    );

    let recorded = model.requests();
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[1], chat_body("What is 6*7?", 1));
    let over_http: Value = client
        .get(format!("http://{}/_requests", model.address()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, Value::Array(recorded));
    assert_eq!(model.request_count(), 4);
}

#[tokio::test]
async fn script_is_replaced_over_http_and_a_bad_one_is_refused() {
    let model = ScriptedModel::start(json!({"rules": []})).await.unwrap();
    let client = http_client();
    let script_url = format!("http://{}/_script", model.address());

    let unmatched = post_chat(&client, &model, &chat_body("hi", 0)).await;
    assert_eq!(unmatched.status(), 500);
    let error: Value = unmatched.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no rule"),
        "{error}"
    );

    let refused = client
        .put(&script_url)
        .json(&json!({"default": [{"contnet": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let accepted = client
        .put(&script_url)
        .json(&json!({"default": {"content": "now"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 204);
    assert_eq!(
        chat_content(&client, &model, chat_body("hi", 0)).await,
        "now"
    );

    model.set_script(json!({"default": [{"content": "from the library"}]}));
    assert_eq!(
        chat_content(&client, &model, chat_body("hi", 0)).await,
        "from the library"
    );

    let cleared = client
        .delete(format!("http://{}/_requests", model.address()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn health_and_models_endpoints_answer() {
    let model = ScriptedModel::start(json!({"rules": []})).await.unwrap();
    let client = http_client();
    let health = client
        .get(format!("http://{}/healthz", model.address()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let models: Value = client
        .get(format!("{}/models", model.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "scripted");
}

#[tokio::test]
async fn error_statuses_carry_body_and_retry_after() {
    let model = ScriptedModel::start(
        json!({"default": [{"status": 429, "body": "slow down", "retry_after": 3}]}),
    )
    .await
    .unwrap();
    let client = http_client();
    let response = post_chat(&client, &model, &chat_body("hi", 0)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(response.text().await.unwrap(), "slow down");

    model.set_script(json!({"default": [{"status": 503}]}));
    let response = post_chat(&client, &model, &chat_body("hi", 0)).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn a_delayed_reply_is_in_flight_until_answered() {
    let model = ScriptedModel::start(json!({"default": [{"content": "late", "delay_ms": 300}]}))
        .await
        .unwrap();
    let client = http_client();
    let started = Instant::now();
    let body = chat_body("hi", 0);
    let request = post_chat(&client, &model, &body);
    let watch_in_flight = async {
        assert!(model.wait_for_in_flight(1, DEADLINE).await);
    };
    let (response, ()) = tokio::join!(request, watch_in_flight);
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(model.wait_for_in_flight(0, DEADLINE).await);
}

#[tokio::test]
async fn a_client_that_goes_away_ends_the_delay() {
    let model =
        ScriptedModel::start(json!({"default": [{"content": "never", "delay_ms": 600_000}]}))
            .await
            .unwrap();
    let client = http_client();
    let url = format!("{}/chat/completions", model.base_url());
    let body = chat_body("hi", 0);
    let pending = tokio::spawn(async move { client.post(url).json(&body).send().await });
    assert!(model.wait_for_in_flight(1, DEADLINE).await);
    pending.abort();
    assert!(
        model.wait_for_in_flight(0, DEADLINE).await,
        "the delayed handler outlived its client"
    );
}

#[tokio::test]
async fn dropping_the_server_ends_pending_delays() {
    let model =
        ScriptedModel::start(json!({"default": [{"content": "never", "delay_ms": 600_000}]}))
            .await
            .unwrap();
    let client = http_client();
    let url = format!("{}/chat/completions", model.base_url());
    let body = chat_body("hi", 0);
    let pending = tokio::spawn(async move { client.post(url).json(&body).send().await });
    assert!(model.wait_for_in_flight(1, DEADLINE).await);
    drop(model);
    let outcome = tokio::time::timeout(DEADLINE, pending)
        .await
        .expect("request still pending after shutdown")
        .unwrap();
    // Either the shutdown answer or a closed connection: what matters is that it ended.
    if let Ok(response) = outcome {
        assert_eq!(response.status(), 503);
    }
}

#[tokio::test]
async fn concurrent_sessions_get_their_own_turns() {
    let model = ScriptedModel::start(json!({
        "rules": [
            {"match": "alpha", "replies": [{"content": "a0", "delay_ms": 50}, {"content": "a1"}]},
            {"match": "beta", "replies": [{"content": "b0"}, {"content": "b1", "delay_ms": 50}]}
        ]
    }))
    .await
    .unwrap();
    let client = http_client();
    let (alpha_0, beta_1, alpha_1, beta_0) = tokio::join!(
        chat_content(&client, &model, chat_body("alpha task", 0)),
        chat_content(&client, &model, chat_body("beta task", 1)),
        chat_content(&client, &model, chat_body("alpha task", 1)),
        chat_content(&client, &model, chat_body("beta task", 0)),
    );
    assert_eq!([alpha_0, alpha_1, beta_0, beta_1], ["a0", "a1", "b0", "b1"]);
}

#[tokio::test]
async fn binary_announces_its_address_serves_and_stops_on_sigterm() {
    let script_dir = tempfile::tempdir().unwrap();
    let script_path = script_dir.path().join("script.json");
    std::fs::write(
        &script_path,
        json!({"default": [{"content": "from file"}]}).to_string(),
    )
    .unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scripted-model"))
        .arg("--script")
        .arg(&script_path)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    tokio::time::timeout(DEADLINE, stdout.read_line(&mut first_line))
        .await
        .unwrap()
        .unwrap();
    let base_url = first_line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
        .to_owned();
    assert!(
        base_url.starts_with("http://127.0.0.1:") && base_url.ends_with("/v1"),
        "{base_url}"
    );

    let client = http_client();
    let completion: Value = client
        .post(format!("{base_url}/chat/completions"))
        .json(&chat_body("hi", 0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "from file");

    let pid = child.id().unwrap();
    let signalled = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(signalled.success());
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "the binary printed more than its one line");
}

#[tokio::test]
async fn binary_refuses_a_missing_script_file() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_scripted-model"))
        .args(["--script", "/nonexistent/script.json"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}
