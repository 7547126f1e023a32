//! `ApiError`: every error a handler returns, and its one HTTP rendering.

use agentd_api_types::{FieldError, LocItem};
use agentd_engine::EngineError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    NotFound(String),
    Conflict(String),
    Validation(Vec<FieldError>),
    Quota {
        active: u32,
        limit: u32,
        queue_full: bool,
    },
    TooLarge,
    Internal(String),
}

impl ApiError {
    pub fn session_not_found() -> Self {
        Self::NotFound("Session not found.".to_string())
    }

    pub fn field(loc: &[&str], kind: &str, msg: impl Into<String>, input: Option<Value>) -> Self {
        Self::Validation(vec![FieldError::invalid(
            loc.iter().map(|s| LocItem::from(*s)).collect(),
            kind,
            msg.into(),
            input,
        )])
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => Self::session_not_found(),
            EngineError::Conflict(m) => Self::Conflict(m),
            EngineError::QuotaExceeded { active, limit } => Self::Quota {
                active,
                limit,
                queue_full: false,
            },
            EngineError::Invalid { field, message } => {
                let mut loc = vec![LocItem::from("body")];
                loc.extend(field.into_iter().map(|item| match item.parse::<usize>() {
                    Ok(index) => LocItem::Index(index),
                    Err(_) => LocItem::Key(item),
                }));
                Self::Validation(vec![FieldError::invalid(loc, "value_error", message, None)])
            }
            EngineError::Store(m) => Self::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use agentd_api_types::{error_body, quota_error_body, validation_error_body};
        let (status, body) = match &self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                error_body("Authentication required", "unauthorized"),
            ),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, error_body(m, "not_found")),
            Self::Conflict(m) => (StatusCode::CONFLICT, error_body(m, "conflict")),
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                validation_error_body(errors),
            ),
            Self::Quota {
                active,
                limit,
                queue_full,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                quota_error_body(*active, *limit, *queue_full),
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                error_body(
                    "The request body is larger than 10 MiB.",
                    "payload_too_large",
                ),
            ),
            Self::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_body("Internal error; the request may be retried.", "internal"),
                )
            }
        };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self, Self::Quota { .. }) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
