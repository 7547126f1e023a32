//! API keys. A key is looked up by the SHA-256 digest of its secret (keys are random
//! and long, so a plain digest is enough and keeps the lookup one indexed read); the
//! secret itself is never stored or logged.

use agentd_domain::OrgId;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

pub fn hash_api_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The organisation of the request's key: `Ok(None)` without a key, 401 with a bad one.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Option<OrgId>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let key = state
        .store
        .find_api_key(&hash_api_key(secret))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match key {
        Some(key) => Ok(Some(key.org_id)),
        None => Err(ApiError::Unauthorized),
    }
}

/// The organisation of the request's key; 401 without one.
pub async fn required_caller(state: &AppState, headers: &HeaderMap) -> Result<OrgId, ApiError> {
    caller(state, headers).await?.ok_or(ApiError::Unauthorized)
}
