//! Request bodies and query strings, read by hand so that every failure is a JSON
//! error naming what was wrong (axum's own rejections are plain text).

use axum::body::Body;
use serde_json::Value;

use crate::MAX_BODY_BYTES;
use crate::error::ApiError;

/// The body as JSON; `None` when it is empty (bodiless controls, and the SDK's
/// empty-bodied posts).
pub async fn json_body(body: Body) -> Result<Option<Value>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ApiError::field(
            &["body"],
            "json_invalid",
            format!("The body is not valid JSON: {e}"),
            None,
        )
    })
}

/// The body as JSON, required.
pub async fn required_json(body: Body) -> Result<Value, ApiError> {
    json_body(body)
        .await?
        .ok_or_else(|| ApiError::field(&["body"], "missing", "Field required", None))
}
