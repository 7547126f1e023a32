//! The HTTP side: one reused connection pool, one attempt at a time, retries with backoff.

use std::sync::Once;
use std::time::Duration;

use serde_json::Value;

use crate::chat::{ChatRequest, ChatResponse};
use crate::endpoint::ModelEndpoint;
use crate::error::{ModelError, body_excerpt};
use crate::retry::{backoff_delay, parse_retry_after};
use crate::wire_request::request_body;
use crate::wire_response::parse_chat_response;

/// Largest completion body read; a server sending more is broken, not verbose.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Largest error body read (only its start is shown).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// How much of an error body goes into the error message.
const ERROR_EXCERPT_CHARS: usize = 300;

/// Calls OpenAI-compatible Chat Completions endpoints. Cheap to share: one value holds
/// one connection pool used for every endpoint, so keep one per process.
#[derive(Debug, Clone)]
pub struct ModelClient {
    /// The pool, or why it could not be built (reported by every call rather than
    /// panicking at start-up).
    http: Result<reqwest::Client, String>,
}

impl Default for ModelClient {
    fn default() -> Self {
        ModelClient::new()
    }
}

/// Installs rustls' ring provider as the process default once; reqwest is built without
/// a provider of its own. A provider installed earlier by someone else is kept.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// What went wrong in one attempt, before it becomes a [`ModelError`].
enum AttemptFailure {
    Transport(reqwest::Error),
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    TooLarge,
}

impl ModelClient {
    pub fn new() -> ModelClient {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("agentd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| error_chain(&error));
        ModelClient { http }
    }

    /// Sends `request` to `endpoint`, retrying transient failures (HTTP 408, 429 and 5xx,
    /// connection errors, timeouts) up to `endpoint.max_retries` times with backoff.
    /// Dropping the returned future abandons the call at once.
    #[tracing::instrument(name = "model_call", skip_all, fields(model = %endpoint.name))]
    pub async fn chat(
        &self,
        endpoint: &ModelEndpoint,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ModelError> {
        let http = self
            .http
            .as_ref()
            .map_err(|cause| ModelError::ClientUnavailable {
                model: endpoint.name.clone(),
                cause: cause.clone(),
            })?;
        let url = endpoint.chat_completions_url();
        let body = request_body(&endpoint.model, request);
        let max_attempts = endpoint.max_retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            let failure = match send_once(http, endpoint, &url, &body).await {
                Ok(response_body) => {
                    let response =
                        parse_chat_response(&response_body, request).map_err(|detail| {
                            ModelError::InvalidResponse {
                                model: endpoint.name.clone(),
                                detail,
                            }
                        })?;
                    tracing::debug!(
                        attempt,
                        tool_calls = response.tool_calls.len(),
                        input_tokens = response.usage.input_tokens,
                        output_tokens = response.usage.output_tokens,
                        "model answered"
                    );
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            let retry_after = match &failure {
                AttemptFailure::Status { retry_after, .. } => *retry_after,
                AttemptFailure::Transport(_) | AttemptFailure::TooLarge => None,
            };
            let error = into_model_error(failure, endpoint, attempt);
            if !error.is_retryable() || attempt >= max_attempts {
                return Err(error);
            }
            let delay = backoff_delay(endpoint.retry_base, attempt, retry_after);
            tracing::warn!(attempt, max_attempts, delay_ms = delay.as_millis() as u64, %error, "model call failed, retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// One attempt: the body of a 2xx answer, or why there is none.
async fn send_once(
    http: &reqwest::Client,
    endpoint: &ModelEndpoint,
    url: &str,
    body: &Value,
) -> Result<Vec<u8>, AttemptFailure> {
    let mut builder = http
        .post(url)
        .timeout(endpoint.timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .json(body);
    if let Some(api_key) = endpoint.api_key.as_deref().filter(|key| !key.is_empty()) {
        builder = builder.bearer_auth(api_key);
    }
    let mut response = builder.send().await.map_err(AttemptFailure::Transport)?;
    let status = response.status();
    if status.is_success() {
        return read_limited(&mut response, MAX_RESPONSE_BYTES)
            .await?
            .ok_or(AttemptFailure::TooLarge);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    // The error body only feeds the message; a failure to read it must not hide the status.
    let body_bytes = match read_limited(&mut response, MAX_ERROR_BODY_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) | Err(_) => Vec::new(),
    };
    Err(AttemptFailure::Status {
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body_bytes).into_owned(),
        retry_after,
    })
}

/// Reads the body up to `limit` bytes; `None` when it is longer.
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, AttemptFailure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(AttemptFailure::Transport)? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn into_model_error(
    failure: AttemptFailure,
    endpoint: &ModelEndpoint,
    attempts: u32,
) -> ModelError {
    let model = endpoint.name.clone();
    match failure {
        AttemptFailure::Status {
            status,
            body,
            retry_after,
        } => ModelError::Http {
            model,
            status,
            body_excerpt: body_excerpt(&body, ERROR_EXCERPT_CHARS),
            retry_after,
            attempts,
        },
        AttemptFailure::TooLarge => ModelError::InvalidResponse {
            model,
            detail: format!(
                "the body is larger than {} MiB",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            ),
        },
        AttemptFailure::Transport(error) if error.is_builder() => ModelError::InvalidEndpoint {
            model,
            base_url: endpoint.base_url.clone(),
            cause: error_chain(&error),
        },
        AttemptFailure::Transport(error) if error.is_timeout() => ModelError::TimedOut {
            model,
            timeout: endpoint.timeout,
            attempts,
        },
        AttemptFailure::Transport(error) => ModelError::Unreachable {
            model,
            base_url: endpoint.base_url.clone(),
            cause: transport_cause(&error),
            attempts,
        },
    }
}

/// The most telling cause of a transport error: the OS error for connection failures
/// ("connection refused"), otherwise the innermost message.
fn transport_cause(error: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut innermost = error.to_string();
    while let Some(current) = source {
        if let Some(io_error) = current.downcast_ref::<std::io::Error>() {
            return match io_error.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                std::io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
                _ => io_error.to_string(),
            };
        }
        innermost = current.to_string();
        source = current.source();
    }
    innermost
}

/// An error and its causes on one line, for start-up and configuration errors.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
