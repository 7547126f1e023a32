//! Helpers shared by the API tests beyond what `common` offers: requests whose headers
//! matter, raw requests that no URL library would normalise, and waits on the model.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Server, http_client};

/// A 1×1 transparent PNG, as a data URI.
pub const TINY_PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII=";

/// A response with its headers.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when empty, a JSON string when it is not JSON.
    pub body: Value,
    pub raw: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request with the server's key and extra headers; `body` is sent as is.
pub async fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http_client()
        .request(method, server.url(path))
        .bearer_auth(&server.key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.expect("request reaches agentd");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.text().await.expect("body");
    let body = if raw.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&raw).unwrap_or(Value::String(raw.clone()))
    };
    Reply {
        status,
        headers,
        body,
        raw,
    }
}

/// `send` with a JSON body.
pub async fn send_json(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Reply {
    let bytes = serde_json::to_vec(body).expect("json");
    send(server, method, path, headers, Some(bytes)).await
}

/// A GET whose request target goes on the wire exactly as given (`..` segments and
/// percent escapes included), with `key` if any. Returns the status and the body text.
pub async fn raw_get(server: &Server, target: &str, key: Option<&str>) -> (u16, String) {
    let address = server
        .base
        .strip_prefix("http://")
        .expect("an http base URL");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to agentd");
    let auth = key
        .map(|key| format!("Authorization: Bearer {key}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("agentd answers within 10 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Waits until the model has received at least `count` requests.
pub async fn wait_model_requests(server: &Server, count: usize) {
    assert!(
        server
            .model
            .wait_for_requests(count, Duration::from_secs(20))
            .await,
        "the model never got {count} requests (got {}); log:\n{}",
        server.model.request_count(),
        server.log()
    );
}

/// The session's id in a `Session` body.
pub fn id_of(session: &Value) -> String {
    session["id"].as_str().expect("a session id").to_string()
}

/// Asserts a 422 whose `detail` names `loc`.
pub fn assert_422_at(status: u16, body: &Value, loc: Value) {
    assert_eq!(status, 422, "expected a 422 at {loc}, got {status}: {body}");
    let detail = body["detail"].as_array().expect("a detail list");
    assert!(
        detail.iter().any(|d| d["loc"] == loc),
        "expected loc {loc} in {body}"
    );
    assert!(body["message"].is_string(), "{body}");
}

/// An inline agent with custom tools (names only; each takes an object).
pub fn agent_with_tools(name: &str, tools: &[&str]) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|tool| {
            json!({"name": tool, "description": format!("The {tool} tool."),
                   "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}})
        })
        .collect();
    json!({"name": name, "description": "A test agent.", "environments": [], "tools": tools})
}

/// The log's events of one `AgentEvent` kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "AgentEvent" && e["data"]["kind"] == kind)
        .collect()
}
