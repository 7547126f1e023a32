//! Why a model call failed, worded for the people who read session errors: every message
//! names the configured model and the cause.

use std::time::Duration;

/// A failed model call. [`ModelError::is_retryable`] tells transient failures (already
/// retried by the client up to the endpoint's `max_retries`) from permanent ones.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The connection failed or broke before a complete answer arrived.
    #[error("model '{model}' at {base_url} is unreachable: {cause}{}", attempts_note(*attempts))]
    Unreachable {
        model: String,
        base_url: String,
        cause: String,
        attempts: u32,
    },

    /// An attempt took longer than the endpoint's timeout.
    #[error("model '{model}' timed out after {}{}", format_duration(*timeout), attempts_note(*attempts))]
    TimedOut {
        model: String,
        timeout: Duration,
        attempts: u32,
    },

    /// The server answered with a non-success HTTP status.
    #[error("model '{model}' answered HTTP {status}: {body_excerpt}{}", attempts_note(*attempts))]
    Http {
        model: String,
        status: u16,
        /// The first characters of the response body, on one line.
        body_excerpt: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        attempts: u32,
    },

    /// The server answered 200 with something that is not a usable completion.
    #[error("model '{model}' sent an invalid response: {detail}")]
    InvalidResponse { model: String, detail: String },

    /// The endpoint's configuration cannot be used (for example a malformed base URL).
    #[error("model '{model}' cannot be called at {base_url}: {cause}")]
    InvalidEndpoint {
        model: String,
        base_url: String,
        cause: String,
    },

    /// The HTTP client could not be initialised on this machine.
    #[error("model '{model}' cannot be called: the HTTP client failed to start: {cause}")]
    ClientUnavailable { model: String, cause: String },
}

impl ModelError {
    /// True for failures that may pass on their own (connection problems, timeouts, HTTP
    /// 408, 429 and 5xx): worth trying again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ModelError::Unreachable { .. } | ModelError::TimedOut { .. } => true,
            ModelError::Http { status, .. } => is_retryable_status(*status),
            ModelError::InvalidResponse { .. }
            | ModelError::InvalidEndpoint { .. }
            | ModelError::ClientUnavailable { .. } => false,
        }
    }

    /// The configured name of the model that failed.
    pub fn model_name(&self) -> &str {
        match self {
            ModelError::Unreachable { model, .. }
            | ModelError::TimedOut { model, .. }
            | ModelError::Http { model, .. }
            | ModelError::InvalidResponse { model, .. }
            | ModelError::InvalidEndpoint { model, .. }
            | ModelError::ClientUnavailable { model, .. } => model,
        }
    }

    /// The HTTP status the server answered, if the failure is one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ModelError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// 408 Request Timeout, 429 Too Many Requests and every 5xx.
fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// `120s`, `1.5s` or `200ms`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis.is_multiple_of(1000) {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// At most `max_chars` characters of `body`, on one line; `(empty body)` when blank.
pub(crate) fn body_excerpt(body: &str, max_chars: usize) -> String {
    let one_line: String = body
        .trim()
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.is_empty() {
        "(empty body)".to_owned()
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_model_and_the_cause() {
        let unreachable = ModelError::Unreachable {
            model: "default".to_owned(),
            base_url: "http://127.0.0.1:9/v1".to_owned(),
            cause: "connection refused".to_owned(),
            attempts: 3,
        };
        assert_eq!(
            unreachable.to_string(),
            "model 'default' at http://127.0.0.1:9/v1 is unreachable: connection refused (after 3 attempts)"
        );
        let http = ModelError::Http {
            model: "x".to_owned(),
            status: 400,
            body_excerpt: "bad request".to_owned(),
            retry_after: None,
            attempts: 1,
        };
        assert_eq!(http.to_string(), "model 'x' answered HTTP 400: bad request");
        let timed_out = ModelError::TimedOut {
            model: "x".to_owned(),
            timeout: Duration::from_secs(120),
            attempts: 1,
        };
        assert_eq!(timed_out.to_string(), "model 'x' timed out after 120s");
        let invalid = ModelError::InvalidResponse {
            model: "x".to_owned(),
            detail: "it has no choices".to_owned(),
        };
        assert_eq!(
            invalid.to_string(),
            "model 'x' sent an invalid response: it has no choices"
        );
    }

    #[test]
    fn retryable_failures_are_transient_ones() {
        let http = |status| ModelError::Http {
            model: "x".to_owned(),
            status,
            body_excerpt: String::new(),
            retry_after: None,
            attempts: 1,
        };
        assert!(http(429).is_retryable());
        assert!(http(408).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(401).is_retryable());
        assert!(!http(404).is_retryable());
        assert!(
            !ModelError::InvalidResponse {
                model: "x".to_owned(),
                detail: String::new()
            }
            .is_retryable()
        );
        assert_eq!(http(404).http_status(), Some(404));
        assert_eq!(http(404).model_name(), "x");
    }

    #[test]
    fn durations_and_excerpts_read_well() {
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(120)), "120s");
        assert_eq!(body_excerpt("  a\nb\tc  ", 300), "a b c");
        assert_eq!(body_excerpt("", 300), "(empty body)");
        assert_eq!(body_excerpt("ééé", 2), "éé");
    }
}
