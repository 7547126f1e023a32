//! The client against the scripted model server on 127.0.0.1: request shape, retries,
//! timeouts and errors as a caller sees them.

use std::time::{Duration, Instant};

use agentd_model_client::{
    ChatMessage, ChatRequest, ModelClient, ModelEndpoint, ModelError, ToolCall, ToolChoice,
    ToolSpec, Usage,
};
use agentd_testkit::ScriptedModel;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(10);

fn endpoint(base_url: String) -> ModelEndpoint {
    ModelEndpoint {
        timeout: Duration::from_secs(5),
        max_retries: 2,
        retry_base: Duration::from_millis(10),
        ..ModelEndpoint::new("default", base_url, "scripted-test")
    }
}

fn tool(name: &str) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: format!("The {name} tool."),
        parameters: json!({"type": "object"}),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::System("You are an agent.".to_owned()),
            ChatMessage::user_text("What is 6*7?"),
        ],
        tools: vec![tool("answer"), tool("think")],
        tool_choice: ToolChoice::Auto,
    }
}

#[tokio::test]
async fn a_scripted_reply_comes_back_parsed_and_the_request_has_the_openai_shape() {
    let model = ScriptedModel::start(json!({"rules": [{"match": "6*7", "replies": [{
        "tool_calls": [{"name": "answer", "arguments": {"answer": "42", "outcome": "success"}}],
        "reasoning_content": "six times seven",
        "usage": {"prompt_tokens": 100, "completion_tokens": 20}
    }]}]}))
    .await
    .unwrap();
    let response = ModelClient::new()
        .chat(&endpoint(model.base_url()), &request())
        .await
        .unwrap();

    assert_eq!(
        response.tool_calls,
        [ToolCall {
            id: "call_0_0".to_owned(),
            name: "answer".to_owned(),
            arguments: json!({"answer": "42", "outcome": "success"})
        }]
    );
    assert_eq!(
        response.reasoning_content.as_deref(),
        Some("six times seven")
    );
    assert_eq!(response.content, None);
    assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 100,
            output_tokens: 20,
            ..Usage::default()
        }
    );

    let sent = model.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["model"], "scripted-test");
    assert_eq!(
        sent[0]["messages"][1],
        json!({"role": "user", "content": "What is 6*7?"})
    );
    assert_eq!(sent[0]["tools"][0]["type"], "function");
    assert_eq!(sent[0]["tools"][1]["function"]["name"], "think");
    assert_eq!(sent[0]["tool_choice"], "auto");
}

#[tokio::test]
async fn the_next_turn_gets_the_next_reply_and_calls_in_text_are_recovered() {
    let model = ScriptedModel::start(json!({"default": [
        {"content": "<tool_call>{\"name\": \"think\", \"arguments\": {\"thought\": \"hmm\"}}</tool_call>"},
        {"echo_user": true}
    ]}))
    .await
    .unwrap();
    let client = ModelClient::new();
    let endpoint = endpoint(model.base_url());
    let mut conversation = request();

    let first = client.chat(&endpoint, &conversation).await.unwrap();
    assert_eq!(first.content, None);
    assert_eq!(first.tool_calls.len(), 1);
    assert_eq!(first.tool_calls[0].name, "think");
    assert_eq!(first.tool_calls[0].id, "call_0");

    conversation.messages.push(ChatMessage::Assistant {
        content: None,
        tool_calls: first.tool_calls.clone(),
    });
    conversation.messages.push(ChatMessage::Tool {
        tool_call_id: "call_0".to_owned(),
        content: "ok".to_owned(),
    });
    conversation
        .messages
        .push(ChatMessage::user_text("Now answer."));
    let second = client.chat(&endpoint, &conversation).await.unwrap();
    assert_eq!(second.tool_calls[0].name, "answer");
    assert_eq!(
        second.tool_calls[0].arguments,
        json!({"answer": "Now answer.", "outcome": "success"})
    );

    let sent = model.requests();
    assert_eq!(
        sent[1]["messages"][2]["tool_calls"][0],
        json!({"id": "call_0", "type": "function", "function": {"name": "think", "arguments": "{\"thought\":\"hmm\"}"}})
    );
}

#[tokio::test]
async fn a_server_error_is_retried_until_the_server_recovers() {
    let model = ScriptedModel::start(json!({"default": [{"status": 500, "body": "boom"}]}))
        .await
        .unwrap();
    let endpoint = ModelEndpoint {
        max_retries: 5,
        retry_base: Duration::from_millis(50),
        ..endpoint(model.base_url())
    };
    let call = tokio::spawn(async move { ModelClient::new().chat(&endpoint, &request()).await });

    assert!(model.wait_for_requests(1, DEADLINE).await);
    model.set_script(json!({"default": [{"content": "recovered"}]}));
    let response = tokio::time::timeout(DEADLINE, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.content.as_deref(), Some("recovered"));
    assert!(model.request_count() >= 2);
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_max_retries() {
    let model = ScriptedModel::start(
        json!({"default": [{"status": 503, "body": "overloaded\nplease wait"}]}),
    )
    .await
    .unwrap();
    let error = ModelClient::new()
        .chat(&endpoint(model.base_url()), &request())
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        "model 'default' answered HTTP 503: overloaded please wait (after 3 attempts)"
    );
    assert!(error.is_retryable());
    assert_eq!(error.http_status(), Some(503));
    assert_eq!(model.request_count(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let model = ScriptedModel::start(json!({"default": [{"status": 400, "body": {"error": {"message": "tool_choice is not supported"}}}]}))
        .await
        .unwrap();
    let error = ModelClient::new()
        .chat(&endpoint(model.base_url()), &request())
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        r#"model 'default' answered HTTP 400: {"error":{"message":"tool_choice is not supported"}}"#
    );
    assert!(!error.is_retryable());
    assert_eq!(model.request_count(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let model = ScriptedModel::start(
        json!({"default": [{"status": 429, "body": "slow down", "retry_after": 1}]}),
    )
    .await
    .unwrap();
    let endpoint = ModelEndpoint {
        max_retries: 1,
        retry_base: Duration::from_millis(1),
        ..endpoint(model.base_url())
    };
    let started = Instant::now();
    let error = ModelClient::new()
        .chat(&endpoint, &request())
        .await
        .unwrap_err();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, ModelError::Http { status: 429, retry_after: Some(wait), attempts: 2, .. } if wait == Duration::from_secs(1))
    );
    assert_eq!(model.request_count(), 2);
}

#[tokio::test]
async fn a_slow_model_times_out_and_the_abandoned_call_ends_on_the_server() {
    let model =
        ScriptedModel::start(json!({"default": [{"content": "late", "delay_ms": 600_000}]}))
            .await
            .unwrap();
    let endpoint = ModelEndpoint {
        timeout: Duration::from_millis(200),
        max_retries: 1,
        ..endpoint(model.base_url())
    };
    let error = ModelClient::new()
        .chat(&endpoint, &request())
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        "model 'default' timed out after 200ms (after 2 attempts)"
    );
    assert!(error.is_retryable());
    assert_eq!(model.request_count(), 2);
    assert!(model.wait_for_in_flight(0, DEADLINE).await);
}

#[tokio::test]
async fn dropping_the_call_abandons_it_at_once() {
    let model =
        ScriptedModel::start(json!({"default": [{"content": "late", "delay_ms": 600_000}]}))
            .await
            .unwrap();
    let endpoint = endpoint(model.base_url());
    let call = tokio::spawn(async move { ModelClient::new().chat(&endpoint, &request()).await });
    assert!(model.wait_for_in_flight(1, DEADLINE).await);
    call.abort();
    assert!(
        model.wait_for_in_flight(0, DEADLINE).await,
        "the server still serves the abandoned call"
    );
}

#[tokio::test]
async fn an_unreachable_model_is_named_with_its_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let error = ModelClient::new()
        .chat(&endpoint(base_url.clone()), &request())
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        format!(
            "model 'default' at {base_url} is unreachable: connection refused (after 3 attempts)"
        )
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_malformed_body_is_an_invalid_response_and_not_retried() {
    let model = ScriptedModel::start(json!({"default": [{"raw": "<html>upstream gone</html>"}]}))
        .await
        .unwrap();
    let error = ModelClient::new()
        .chat(&endpoint(model.base_url()), &request())
        .await
        .unwrap_err();

    assert!(
        error
            .to_string()
            .starts_with("model 'default' sent an invalid response: the body is not JSON"),
        "{error}"
    );
    assert!(
        error.to_string().contains("<html>upstream gone</html>"),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(model.request_count(), 1);
}

#[tokio::test]
async fn a_bad_base_url_is_a_configuration_error() {
    let error = ModelClient::new()
        .chat(&endpoint("not a url".to_owned()), &request())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::InvalidEndpoint { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("model 'default' cannot be called at not a url"),
        "{error}"
    );
    assert!(!error.is_retryable());
}

/// The scripted model does not record headers, so the API key is checked on a one-shot
/// listener that captures the raw request.
#[tokio::test]
async fn the_api_key_is_sent_as_a_bearer_token() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let capture = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read until the head and the whole body (Content-Length) have arrived.
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "connection closed early");
            received.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&received).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length: usize = text[..head_end]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if received.len() >= head_end + 4 + length {
                    break;
                }
            }
        }
        let body = json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})
            .to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8(received).unwrap()
    });

    let endpoint = ModelEndpoint {
        api_key: Some("sk-test-123".to_owned()),
        ..endpoint(base_url)
    };
    let response = ModelClient::new()
        .chat(&endpoint, &request())
        .await
        .unwrap();
    assert_eq!(response.content.as_deref(), Some("hi"));

    let raw_request = tokio::time::timeout(DEADLINE, capture)
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw_request.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{raw_request}"
    );
    assert!(
        raw_request
            .to_ascii_lowercase()
            .contains("\r\nauthorization: bearer sk-test-123\r\n"),
        "{raw_request}"
    );
    let body: Value = serde_json::from_str(raw_request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["model"], "scripted-test");
}
