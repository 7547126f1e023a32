//! The HTTP side of the scripted model: the axum router, the shared state behind it and the
//! [`ScriptedModel`] handle that owns the listening task.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::script::{Answer, Script};

/// Requests carry screenshots as base64 data URIs; axum's 2 MB default is too small for a
/// conversation holding several of them.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// A running scripted model server bound to 127.0.0.1. Dropping it stops the server: it
/// stops accepting connections and every reply still waiting out a `delay_ms` ends at once.
pub struct ScriptedModel {
    shared: Arc<Shared>,
    address: SocketAddr,
}

/// State shared by the handle and every request handler.
struct Shared {
    /// The current script, or why the last one set could not be used (answered as a 500
    /// to every chat request, so a broken script is visible in the test that uses it).
    script: Mutex<Result<Script, String>>,
    /// Every chat request body received, in arrival order.
    requests: Mutex<Vec<Value>>,
    /// Number of chat requests received so far; a watch so tests can wait on it.
    received: watch::Sender<usize>,
    /// Number of chat requests being answered right now (delays included). Decremented by
    /// a drop guard, so a request whose client went away stops counting when its handler
    /// is dropped.
    in_flight: watch::Sender<usize>,
    /// Set to true once when the handle is dropped; ends pending delays.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Result<Script, String>> {
        // A panic while holding the lock cannot leave a half-written script or request
        // list behind (each is replaced or pushed in one step), so poisoning is ignored.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn requests(&self) -> MutexGuard<'_, Vec<Value>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ScriptedModel {
    /// Starts a server on a free port of 127.0.0.1 with `script`.
    pub async fn start(script: Value) -> io::Result<ScriptedModel> {
        ScriptedModel::bind(script, 0).await
    }

    /// Starts a server on `port` of 127.0.0.1 (0 picks a free port). A script that does
    /// not parse is refused with [`io::ErrorKind::InvalidInput`].
    pub async fn bind(script: Value, port: u16) -> io::Result<ScriptedModel> {
        let parsed = Script::parse(&script)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script: Mutex::new(Ok(parsed)),
            requests: Mutex::new(Vec::new()),
            received: watch::Sender::new(0),
            in_flight: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        });
        let mut shutdown = shared.shutdown.subscribe();
        let serving =
            axum::serve(listener, router(Arc::clone(&shared))).with_graceful_shutdown(async move {
                // An error means the sender is gone, which is a shutdown as well.
                let _ = shutdown.wait_for(|stopped| *stopped).await;
            });
        tokio::spawn(async move {
            // Accept errors are retried inside axum; serve only returns once shut down.
            let _ = serving.await;
        });
        Ok(ScriptedModel { shared, address })
    }

    /// The OpenAI-style base URL, `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Replaces the script. A script that does not parse makes every chat request answer
    /// 500 with the reason, until a valid one is set.
    pub fn set_script(&self, script: Value) {
        *self.shared.script() = Script::parse(&script);
    }

    /// Every chat request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests().clone()
    }

    /// Forgets the requests received so far (the count used by [`Self::wait_for_requests`]
    /// is not reset: it counts every request since start).
    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }

    /// Number of chat requests received since start.
    pub fn request_count(&self) -> usize {
        *self.shared.received.borrow()
    }

    /// Waits until at least `count` chat requests have been received since start; false if
    /// `timeout` passed first.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        let mut received = self.shared.received.subscribe();
        tokio::time::timeout(timeout, received.wait_for(|seen| *seen >= count))
            .await
            .is_ok_and(|outcome| outcome.is_ok())
    }

    /// Number of chat requests being answered right now (for example waiting out a delay).
    pub fn in_flight(&self) -> usize {
        *self.shared.in_flight.borrow()
    }

    /// Waits until exactly `count` chat requests are in flight; false if `timeout` passed
    /// first. `1` catches a model call in flight, `0` sees it end (answered or abandoned).
    pub async fn wait_for_in_flight(&self, count: usize, timeout: Duration) -> bool {
        let mut in_flight = self.shared.in_flight.subscribe();
        tokio::time::timeout(timeout, in_flight.wait_for(|current| *current == count))
            .await
            .is_ok_and(|outcome| outcome.is_ok())
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScriptedModel")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/_requests", get(list_requests).delete(clear_requests))
        .route("/_script", put(replace_script))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared)
}

/// Counts a request as in flight for as long as its handler lives.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        shared.in_flight.send_modify(|count| *count += 1);
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "scripted_model_error"}})),
    )
        .into_response()
}

async fn chat_completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("The request body is not JSON: {error}."),
            );
        }
    };
    // The reply is chosen before the request is counted, so a test that waits for the
    // request and then replaces the script knows the new script applies to the next one.
    let selection = match &*shared.script() {
        Ok(script) => script.select(&request),
        Err(reason) => Err(reason.clone()),
    };
    shared.requests().push(request.clone());
    shared.received.send_modify(|count| *count += 1);
    let _in_flight = InFlight::enter(&shared);
    let selected = match selection {
        Ok(selected) => selected,
        Err(reason) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &reason),
    };

    if selected.reply.delay_ms > 0 {
        let mut shutdown = shared.shutdown.subscribe();
        // If the client disconnects, the server drops this future, which ends the wait too.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(selected.reply.delay_ms)) => {}
            _ = shutdown.wait_for(|stopped| *stopped) => {
                return error_response(StatusCode::SERVICE_UNAVAILABLE, "The scripted model is shutting down.");
            }
        }
    }
    answer_response(selected.answer(&request))
}

fn answer_response(answer: Answer) -> Response {
    let Ok(status) = StatusCode::from_u16(answer.status) else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "The script asks for HTTP status {}, which is not a valid status code.",
                answer.status
            ),
        );
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if let Some(retry_after) = answer.retry_after {
        match HeaderValue::from_str(&retry_after) {
            Ok(value) => {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Err(_) => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "The script's retry_after {retry_after:?} is not a valid header value."
                    ),
                );
            }
        }
    }
    response
}

async fn models() -> axum::Json<Value> {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "agentd-testkit"}]
    }))
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(Value::Array(shared.requests().clone()))
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.requests().clear();
    StatusCode::NO_CONTENT
}

async fn replace_script(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("The script is not JSON: {error}."),
            );
        }
    };
    match Script::parse(&document) {
        Ok(script) => {
            *shared.script() = Ok(script);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(reason) => error_response(StatusCode::BAD_REQUEST, &reason),
    }
}
