//! `Server`: one `agentd serve` process with its own data directory and key, and a
//! scripted model. Tests speak HTTP to it exactly as clients do.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentd_testkit::ScriptedModel;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentd");

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub key: String,
    pub data_dir: tempfile::TempDir,
    pub model: ScriptedModel,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    http: reqwest::Client,
    rules: std::sync::Mutex<Vec<Value>>,
}

#[derive(Default)]
pub struct Options {
    /// Extra environment for `agentd serve`.
    pub env: Vec<(&'static str, String)>,
    /// A config file's content.
    pub config: Option<String>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Server {
        let model = ScriptedModel::start(json!({"rules": []}))
            .await
            .expect("scripted model starts");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let key = create_key(data_dir.path(), "test-org").await;
        let mut env = vec![
            ("AGENTD_MODEL_BASE_URL".to_string(), model.base_url()),
            ("AGENTD_MODEL".to_string(), "scripted".to_string()),
            ("AGENTD_MODEL_MAX_RETRIES".to_string(), "1".to_string()),
            ("AGENTD_MODEL_RETRY_BASE_MS".to_string(), "20".to_string()),
            ("AGENTD_LOG".to_string(), "info".to_string()),
        ];
        for (k, v) in options.env {
            env.retain(|(existing, _)| existing != k);
            env.push((k.to_string(), v));
        }
        if let Some(config) = options.config {
            let path = data_dir.path().join("agentd.toml");
            std::fs::write(&path, config).expect("write config");
            env.push(("AGENTD_CONFIG".to_string(), path.display().to_string()));
        }
        let log_path = data_dir.path().join("server.log");
        let mut server = Server {
            child: None,
            base: String::new(),
            key,
            data_dir,
            model,
            env,
            log_path,
            http: http_client(),
            rules: std::sync::Mutex::new(Vec::new()),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("agentd starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("agentd did not report listening; log:\n{}", self.log()))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("agentd exited; log:\n{}", self.log()));
        let base = line
            .strip_prefix("agentd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        self.base = base;
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no shutdown path runs.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill agentd");
        }
    }

    /// SIGTERM, then waits for the process to exit; returns how long it took and
    /// whether it exited successfully.
    pub async fn terminate(&mut self) -> (Duration, bool) {
        let mut child = self.child.take().expect("a running server");
        let pid = child.id().expect("pid").to_string();
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill -TERM");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("agentd exits after SIGTERM")
            .expect("wait");
        (started.elapsed(), exit.success())
    }

    /// Starts the server again on the same data directory.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn().await;
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with this server's key.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(&self.key), method, path, body).await
    }

    pub async fn call_as(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches agentd");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn create(&self, body: Value) -> Value {
        let (status, session) = self.call("POST", "/api/v2/sessions", Some(body)).await;
        assert_eq!(
            status,
            201,
            "create failed: {session}\nlog:\n{}",
            self.log()
        );
        session
    }

    pub async fn status(&self, id: &str) -> Value {
        let (code, status) = self
            .call("GET", &format!("/api/v2/sessions/{id}/status"), None)
            .await;
        assert_eq!(code, 200, "{status}");
        status
    }

    /// Polls `/status` until `done` holds, or fails after `within`.
    pub async fn wait_status(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            // Counted before the status is read, so a transition between the two reads
            // wakes the long-poll below at once instead of being waited past.
            let count = self.event_count(id).await;
            let status = self.status(id).await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} never reached the expected status; last: {status}\nlog:\n{}",
                self.log()
            );
            // Long-poll on the log instead of spinning: wakes on the next event.
            let _ = self
                .call(
                    "GET",
                    &format!("/api/v2/sessions/{id}/changes?from_index={count}&wait_for_seconds=1&include_events=false"),
                    None,
                )
                .await;
        }
    }

    pub async fn wait_for(&self, id: &str, status: &str) -> Value {
        self.wait_status(id, Duration::from_secs(20), |s| s["status"] == status)
            .await
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (code, changes) = self
            .call(
                "GET",
                &format!("/api/v2/sessions/{id}/changes?from_index=0"),
                None,
            )
            .await;
        assert_eq!(code, 200, "{changes}");
        changes["new_events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The Prometheus exposition at `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await;
        response
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub async fn event_count(&self, id: &str) -> usize {
        let (code, page) = self
            .call("GET", &format!("/api/v2/sessions/{id}/events?size=1"), None)
            .await;
        assert_eq!(code, 200, "{page}");
        page["total"].as_u64().unwrap_or(0) as usize
    }
}

pub async fn create_key(data_dir: &std::path::Path, org: &str) -> String {
    let output = Command::new(BIN)
        .args(["keys", "create", "--org", org, "--data-dir"])
        .arg(data_dir)
        .output()
        .await
        .expect("agentd keys create runs");
    assert!(
        output.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    stdout
        .lines()
        .last()
        .expect("a key line")
        .trim()
        .to_string()
}

/// An inline agent with no environment.
pub fn agent(name: &str) -> Value {
    json!({"name": name, "description": "A test agent.", "environments": []})
}

pub fn answer(text: &str) -> Value {
    json!({"tool_calls": [{"name": "answer", "arguments": {"answer": text, "outcome": "success"}}]})
}

pub fn think(delay_ms: u64) -> Value {
    json!({"tool_calls": [{"name": "think", "arguments": {"thought": "hmm"}}], "delay_ms": delay_ms})
}

/// Adds one rule to the scripted model: requests whose first user message contains
/// `marker` get `replies` (the k-th reply after k assistant messages).
pub fn script(server: &Server, marker: &str, replies: Vec<Value>) {
    let mut rules = server.rules.lock().expect("rules");
    rules.push(json!({"match": marker, "replies": replies}));
    server.model.set_script(json!({"rules": rules.clone()}));
}

/// An HTTP client for tests (plain HTTP to loopback; a TLS provider is still required
/// to build one).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
