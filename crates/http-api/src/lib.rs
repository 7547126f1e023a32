//! The HTTP face of agentd: the Agents API v2 under `/api/v2`, health and metrics.
//!
//! Handlers are thin: they authenticate, parse the request with `agentd-api-types`
//! (which owns the wire format), call the engine, and write the response with
//! `agentd-api-types` again. This is the only crate that knows axum.
//!
//! Architecture invariant: bad input is a 4xx naming the field, never a 5xx and never
//! a panic; a handler's error path leaves the server serving.

mod auth;
mod body;
mod error;
mod routes;

use std::sync::Arc;

use agentd_engine::Engine;
use agentd_store::{BlobStore, DynStore};
use axum::Router;
use serde_json::Value;

pub use auth::hash_api_key;

/// Agents the server offers by name (the config file's catalog).
pub type AgentCatalog = std::collections::HashMap<String, Value>;

/// Renders the Prometheus metrics text.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub store: DynStore,
    pub blobs: Arc<dyn BlobStore>,
    pub agents: Arc<AgentCatalog>,
    /// Base of the absolute URLs the server writes (share links), e.g.
    /// `http://127.0.0.1:8080`; `None` derives it from the request's Host header.
    pub public_url: Option<String>,
    pub metrics: Option<MetricsRender>,
}

/// Largest request body accepted; the SDK refuses to send more than 10,000,000 bytes.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    routes::router().with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
