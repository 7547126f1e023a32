//! Where a model lives and how patiently to call it.

use std::fmt;
use std::time::Duration;

/// One configured model: its address, the id sent upstream and the call policy.
#[derive(Clone, PartialEq, Eq)]
pub struct ModelEndpoint {
    /// The configured model name; shown in errors and used to group usage.
    pub name: String,
    /// For example `http://127.0.0.1:8000/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model id sent upstream.
    pub model: String,
    /// Sent as `Authorization: Bearer`; never logged and redacted in `Debug`.
    pub api_key: Option<String>,
    /// The model accepts image parts.
    pub vision: bool,
    /// Time allowed for one attempt, from connecting to the end of the response body.
    pub timeout: Duration,
    /// Extra attempts after a 408, 429 or 5xx answer, a connection failure or a timeout.
    pub max_retries: u32,
    /// First backoff; doubles on each retry, with jitter, and never shorter than the
    /// server's `Retry-After` (capped).
    pub retry_base: Duration,
}

impl ModelEndpoint {
    /// Default time allowed for one attempt.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default number of extra attempts.
    pub const DEFAULT_MAX_RETRIES: u32 = 2;
    /// Default first backoff.
    pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);

    /// An endpoint without API key or vision, with the default call policy.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        model: impl Into<String>,
    ) -> ModelEndpoint {
        ModelEndpoint {
            name: name.into(),
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            vision: false,
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            retry_base: Self::DEFAULT_RETRY_BASE,
        }
    }

    /// The URL chat requests are posted to (a trailing slash on `base_url` is tolerated).
    pub fn chat_completions_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

impl fmt::Debug for ModelEndpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ModelEndpoint")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("vision", &self.vision)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_api_key() {
        let mut endpoint = ModelEndpoint::new("default", "http://127.0.0.1:8000/v1/", "m");
        endpoint.api_key = Some("sk-secret-value".to_owned());
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains("sk-secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn chat_url_tolerates_a_trailing_slash() {
        let endpoint = ModelEndpoint::new("default", "http://127.0.0.1:8000/v1/", "m");
        assert_eq!(
            endpoint.chat_completions_url(),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
    }
}
