//! `/api/v2/sessions` and everything under it (`wire-format.md` §3.1).

use std::time::Duration;

use agentd_api_types as wire;
use agentd_domain::SessionId;
use agentd_engine::{CreateSession, MessageIn, ToolResultIn, ToolResultOutcome};
use agentd_store::{CreateOutcome, IdempotencyKey, SessionRecord};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::{caller, required_caller};
use crate::body::required_json;
use crate::error::ApiError;

type Pairs = Query<Vec<(String, String)>>;

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Who may do what with a session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Reads: the owner, or anybody when the session is shared.
    Read,
    /// Writes: the owner only.
    Write,
}

/// The session at `id` if the caller may access it. Another organisation's session is
/// a 404, like one that does not exist; without a key, only shared sessions are visible.
async fn load(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    access: Access,
) -> Result<SessionRecord, ApiError> {
    let org = caller(state, headers).await?;
    if access == Access::Write && org.is_none() {
        return Err(ApiError::Unauthorized);
    }
    let session_id = parse_session_id(id)?;
    let record = state.engine.session(session_id).await?;
    match (record, org) {
        (Some(record), Some(org)) if record.org_id == org => Ok(record),
        (Some(record), _) if access == Access::Read && record.shared => Ok(record),
        (_, None) => Err(ApiError::Unauthorized),
        _ => Err(ApiError::session_not_found()),
    }
}

fn parse_session_id(id: &str) -> Result<SessionId, ApiError> {
    id.parse().map_err(|e| {
        ApiError::field(
            &["path", "session_id"],
            "uuid_parsing",
            format!("Input should be a valid UUID, {e}"),
            Some(Value::String(id.to_string())),
        )
    })
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// The canonical form of a catalog agent reference, and the helpers create needs.
struct Catalog<'a>(&'a AppState);

impl wire::Catalog for Catalog<'_> {
    fn agent(&self, name: &str, _revision: Option<u32>) -> Option<Value> {
        self.0.agents.get(name).cloned()
    }

    fn has_model(&self, name: &str) -> bool {
        self.0.engine.has_model(name)
    }

    fn check_schema(&self, schema: &Value) -> Result<(), String> {
        agentd_engine::answer_format::check_schema(schema)
    }
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let org = required_caller(&state, &headers).await?;
    let idempotency_key = idempotency_key(&headers)?;
    let body = required_json(body).await?;
    let parsed = match wire::parse_create(&body, &Catalog(&state)) {
        Ok(parsed) => parsed,
        Err(wire::CreateError::Invalid(errors)) => return Err(ApiError::Validation(errors)),
        Err(wire::CreateError::AgentNotFound(name)) => {
            return Err(ApiError::NotFound(format!("Agent '{name}' not found.")));
        }
    };
    if parsed.spec.agent.model.is_none()
        && !state.engine.has_model(&state.engine.config().default_model)
    {
        return Err(ApiError::field(
            &["body", "agent", "model"],
            "value_error",
            "No default model is configured on this server: name a model, or set AGENTD_MODEL_BASE_URL.",
            None,
        ));
    }
    let idempotency = idempotency_key.map(|key| IdempotencyKey {
        key,
        request_hash: hex_digest(parsed.canonical_body.as_bytes()),
    });
    if let Some(parent) = parsed.parent_session_id {
        // A child must belong to a session the caller can see.
        match state.engine.session(parent).await? {
            Some(parent) if parent.org_id == org => {}
            _ => {
                return Err(ApiError::NotFound("Parent session not found.".to_string()));
            }
        }
    }
    let create = CreateSession {
        first_message: parsed.messages.first().map(wire::UserMessage::wire),
        messages: parsed.messages.iter().map(message_in).collect(),
        spec: parsed.spec,
        request_echo: parsed.request_echo,
        agent_name: parsed.agent_name,
        group_id: parsed.group_id,
        parent_session_id: parsed.parent_session_id,
        queue: parsed.queue,
    };
    match state
        .engine
        .create_session(&org, create, idempotency)
        .await?
    {
        CreateOutcome::Created(record) | CreateOutcome::Replayed(record) => {
            Ok((StatusCode::CREATED, axum::Json(wire::session_json(&record))).into_response())
        }
        CreateOutcome::KeyConflict => Err(ApiError::field(
            &["header", "Idempotency-Key"],
            "value_error",
            "This Idempotency-Key was already used with a different request body.",
            None,
        )),
        CreateOutcome::Refused {
            active,
            limit,
            queue_full,
        } => Err(ApiError::Quota {
            active,
            limit,
            queue_full,
        }),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| {
            ApiError::field(
                &["header", "Idempotency-Key"],
                "string_type",
                "Idempotency-Key must be printable ASCII",
                None,
            )
        })?
        .trim();
    if key.is_empty() {
        return Err(ApiError::field(
            &["header", "Idempotency-Key"],
            "value_error",
            "Idempotency-Key must not be blank",
            None,
        ));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::field(
            &["header", "Idempotency-Key"],
            "string_too_long",
            format!("Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters"),
            None,
        ));
    }
    Ok(Some(key.to_string()))
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn message_in(message: &wire::UserMessage) -> MessageIn {
    MessageIn {
        caller_id: message.caller_id.clone(),
        content: message.event_content(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let org = required_caller(&state, &headers).await?;
    let query = wire::parse_list_query(&pairs).map_err(ApiError::Validation)?;
    let page = query.filter.page;
    if query.schedule_id.is_some() {
        // No schedule creates sessions yet: the filter matches nothing.
        return Ok(axum::Json(wire::page_json(Vec::new(), 0, page)).into_response());
    }
    let (records, total) = state
        .store
        .list_sessions(&org, &query.filter)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let items = records.iter().map(wire::summary_json).collect();
    Ok(axum::Json(wire::page_json(items, total, page)).into_response())
}

pub async fn quota(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let org = required_caller(&state, &headers).await?;
    let active = state
        .store
        .count_active(&org)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let limit = state.engine.config().slot_limit;
    Ok(axum::Json(json!({
        "scope": "org",
        "limit": limit,
        "active": active,
        "available": limit.saturating_sub(active),
    }))
    .into_response())
}

pub async fn retrieve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Read).await?;
    Ok(axum::Json(wire::session_json(&record)).into_response())
}

pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Read).await?;
    Ok(axum::Json(wire::status_json(&record)).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    state.engine.cancel(record.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    let body = required_json(body).await?;
    let messages = wire::parse_messages_body(&body).map_err(ApiError::Validation)?;
    let messages = messages.iter().map(message_in).collect();
    state.engine.send_messages(record.id, messages).await?;
    Ok(accepted())
}

pub async fn tool_results(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    let body = required_json(body).await?;
    let results = wire::parse_tool_results(&body).map_err(ApiError::Validation)?;
    let results = results
        .into_iter()
        .map(|result| ToolResultIn {
            tool_name: result.tool_req.tool_name,
            args: result.tool_req.args,
            id: result.tool_req.id,
            outcome: match result.outcome {
                wire::ToolOutcome::Result(value) => ToolResultOutcome::Result(value),
                wire::ToolOutcome::Error { error, origin } => {
                    ToolResultOutcome::Error { error, origin }
                }
            },
        })
        .collect();
    state.engine.tool_results(record.id, results).await?;
    Ok(accepted())
}

pub async fn pause(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    state.engine.pause(record.id).await?;
    Ok(accepted())
}

pub async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    state.engine.resume(record.id).await?;
    Ok(accepted())
}

pub async fn force_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    state.engine.force_answer(record.id).await?;
    Ok(accepted())
}

pub async fn changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Read).await?;
    let query = wire::parse_changes_query(&pairs).map_err(ApiError::Validation)?;
    let page = state
        .engine
        .changes(
            record.id,
            query.from_index,
            query.limit,
            Duration::from_secs(query.wait_for_seconds),
        )
        .await?;
    match page {
        Some(page) => Ok(axum::Json(wire::changes_json(
            &page.session,
            &page.events,
            page.first_index,
            query.include_events,
        ))
        .into_response()),
        None => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            if let Ok(etag) = HeaderValue::from_str(&query.from_index.to_string()) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            Ok(response)
        }
    }
}

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Read).await?;
    let query = wire::parse_events_query(&pairs).map_err(ApiError::Validation)?;
    let (events, total) = state
        .store
        .events_page(record.id, &query)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let items = events.iter().map(wire::event_json).collect();
    Ok(axum::Json(wire::page_json(items, total, query.page)).into_response())
}

pub async fn feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    let body = required_json(body).await?;
    let feedback = wire::parse_feedback(&body).map_err(ApiError::Validation)?;
    let update = agentd_store::SessionUpdate {
        feedback: Some(feedback),
        ..Default::default()
    };
    state
        .store
        .commit(record.id, &Default::default(), update, Vec::new())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn event_feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, event_index)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    let index: u64 = event_index.parse().map_err(|_| {
        ApiError::field(
            &["path", "event_index"],
            "int_parsing",
            "Input should be a valid integer",
            Some(Value::String(event_index.clone())),
        )
    })?;
    let body = required_json(body).await?;
    let feedback = wire::parse_feedback(&body).map_err(ApiError::Validation)?;
    let found = state
        .store
        .set_event_feedback(record.id, index, feedback)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !found {
        return Err(ApiError::NotFound("Event not found".to_string()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn share(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    set_shared(&state, &record, true).await?;
    let base = public_base(&state, &headers);
    Ok(
        axum::Json(json!({"share_url": format!("{base}/api/v2/sessions/{}", record.id)}))
            .into_response(),
    )
}

pub async fn unshare(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Write).await?;
    set_shared(&state, &record, false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_shared(
    state: &AppState,
    record: &SessionRecord,
    shared: bool,
) -> Result<(), ApiError> {
    let update = agentd_store::SessionUpdate {
        shared: Some(shared),
        ..Default::default()
    };
    state
        .store
        .commit(record.id, &Default::default(), update, Vec::new())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(())
}

/// The origin absolute URLs start with: the configured public URL, else the
/// request's own Host.
fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub async fn resource(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, bucket, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let record = load(&state, &headers, &id, Access::Read).await?;
    let blob = state
        .blobs
        .get(record.id, &bucket, &key)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound("Resource not found.".to_string()))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, blob.content_type)],
        blob.bytes,
    )
        .into_response())
}
