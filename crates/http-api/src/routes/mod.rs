//! The route table. Literal segments win over captures in axum's router, so
//! `/sessions/quota` is never taken for a session id.

mod health;
mod sessions;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    let sessions = Router::new()
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/quota", get(sessions::quota))
        .route(
            "/sessions/{id}",
            get(sessions::retrieve).delete(sessions::cancel),
        )
        .route("/sessions/{id}/status", get(sessions::status))
        .route("/sessions/{id}/messages", post(sessions::messages))
        .route("/sessions/{id}/tool_results", post(sessions::tool_results))
        .route("/sessions/{id}/pause", post(sessions::pause))
        .route("/sessions/{id}/resume", post(sessions::resume))
        .route("/sessions/{id}/force_answer", post(sessions::force_answer))
        .route("/sessions/{id}/changes", get(sessions::changes))
        .route("/sessions/{id}/events", get(sessions::events))
        .route("/sessions/{id}/feedback", post(sessions::feedback))
        .route(
            "/sessions/{id}/events/{event_index}/feedback",
            put(sessions::event_feedback),
        )
        .route(
            "/sessions/{id}/share",
            post(sessions::share).delete(sessions::unshare),
        )
        .route(
            "/sessions/{id}/resources/{bucket}/{*key}",
            get(sessions::resource),
        );
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .nest("/api/v2", sessions)
        .fallback(|| async { ApiError::NotFound("No such route.".to_string()) })
        .layer(axum::middleware::map_response(json_framework_errors))
        .layer(axum::middleware::from_fn(record_request))
}

/// Counts requests by route template (never by concrete path: ids would explode the
/// label set) and status, and times them.
async fn record_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("agentd_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("agentd_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The router's own refusals (a wrong method, a path segment that is not UTF-8) are
/// plain text; clients expect every error as JSON, with a path error as a 422 naming it.
async fn json_framework_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error()) {
        return response;
    }
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response.headers().get(header::ALLOW).cloned();
            let mut json = (
                status,
                axum::Json(agentd_api_types::error_body(
                    "This method is not allowed on this path.",
                    "method_not_allowed",
                )),
            )
                .into_response();
            if let Some(allow) = allow {
                json.headers_mut().insert(header::ALLOW, allow);
            }
            json
        }
        StatusCode::BAD_REQUEST => {
            let text = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            ApiError::field(&["path"], "value_error", text, None).into_response()
        }
        _ => response,
    }
}
