//! The route table. Literal segments win over captures in axum's router, so
//! `/sessions/quota` is never taken for a session id.

mod health;
mod sessions;

use axum::Router;
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
}
