//! zhiku's own endpoints under `/api`: what the OpenAI shapes cannot say (knowledge bases,
//! retrieval without generation, with offsets and pages for highlighting).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use zhiku_core::Role;

use crate::auth::{check_role, Authenticated};
use crate::error::ApiJson;
use crate::error::ErrorBody;
use crate::{blocking, searching, ApiError, AppState};

/// Most hits one search may ask for.
const MAX_TOP_K: usize = 100;

#[utoipa::path(get, path = "/healthz", tag = "zhiku", security(()), responses((status = 200, description = "The server is up", body = serde_json::Value)))]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Who the key acts as: `{"user", "admin", "scopes", "groups"}`.
#[utoipa::path(get, path = "/api/me", tag = "zhiku", responses((status = 200, description = "{user, admin, scopes, groups}", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody)))]
pub async fn me(Extension(who): Extension<Authenticated>) -> Json<Value> {
    let groups: Vec<&str> = who.caller.principals().into_iter().flatten().filter_map(|p| p.as_str().strip_prefix("group:")).collect();
    Json(json!({ "user": who.user, "admin": who.admin, "scopes": who.scopes, "groups": groups }))
}

/// The knowledge bases the caller holds a role on (all, for an administrator), with that role.
pub(crate) fn visible_kbs(store: &zhiku_store::Store, who: &Authenticated) -> Result<Vec<(String, Role)>, ApiError> {
    let mut out = Vec::new();
    for name in store.list_kbs()? {
        let role = if who.admin { Some(Role::Admin) } else { store.role_of(&name, &who.caller)? };
        if let Some(role) = role {
            out.push((name, role));
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/api/kbs", tag = "zhiku", responses((status = 200, description = "{kbs: [{name, role}]}: those the caller holds a role on", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody)))]
pub async fn list_kbs(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let kbs = blocking(move || visible_kbs(&store, &who)).await?;
    Ok(Json(json!({ "kbs": kbs.iter().map(|(name, role)| json!({ "name": name, "role": role })).collect::<Vec<_>>() })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    kb: String,
    query: String,
    #[serde(default = "default_top_k")]
    top_k: usize,
    /// `hybrid` or `graph` (default: `retrieval.mode` of the configuration).
    #[schema(value_type = Option<String>)]
    retrieval: Option<zhiku_rag::RetrievalMode>,
}

fn default_top_k() -> usize {
    5
}

#[utoipa::path(post, path = "/api/search", tag = "zhiku", request_body = SearchRequest,
    responses((status = 200, description = "{hits: [{source, chunk_id, score, text, heading_path, char_start, char_end, page, similarity}]}, only chunks the caller may read", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    if request.top_k == 0 || request.top_k > MAX_TOP_K {
        return Err(ApiError::invalid(format!("top_k {} is outside 1..={MAX_TOP_K}", request.top_k), Some("top_k")));
    }
    check_role(&state, &who, &request.kb, Role::Viewer).await?;
    let (answering, server) = (state.answering(), state.clone());
    let hits = searching(&state, move || {
        let started = std::time::Instant::now();
        let mode = request.retrieval.unwrap_or(server.engine.config().retrieval.mode);
        let hits = answering.search_in(&request.kb, &request.query, &who.caller, request.top_k, mode)?;
        server.metrics.retrieval_took(started.elapsed());
        let refs = zhiku_rag::audit::hit_refs(&hits);
        zhiku_rag::audit::record_question(&server.audit_log(), &who.actor(), "search", &request.kb, &request.query, &refs, None)?;
        Ok::<_, zhiku_rag::Error>(hits)
    })
    .await?;
    Ok(Json(json!({ "hits": hits })))
}

/// A cited passage: `GET /api/kbs/{kb}/chunks/{id}`, 404 alike for a missing chunk and one the
/// caller may not read.
#[utoipa::path(get, path = "/api/kbs/{kb}/chunks/{id}", tag = "zhiku",
    params(("kb" = String, Path, description = "Knowledge base"), ("id" = String, Path, description = "Chunk id, as in a citation")),
    responses((status = 200, description = "The chunk as a search hit", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn passage(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found(format!("no chunk {id} in knowledge base '{kb}' that you may read"), "chunk_not_found", None);
    let Ok(chunk_id) = id.parse::<u64>() else { return Err(not_found()) };
    check_role(&state, &who, &kb, Role::Viewer).await?;
    let answering = state.answering();
    let name = kb.clone();
    let hit = blocking(move || answering.passage(&name, chunk_id, &who.caller)).await?;
    hit.map(|h| Json(json!(h))).ok_or_else(not_found)
}

#[utoipa::path(get, path = "/api/conversations", tag = "zhiku",
    responses((status = 200, description = "{conversations: [{id, kb, title, exchanges, updated_at}]}: the caller's stored conversations, latest first", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody)))]
pub async fn conversations(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    let history = state.history();
    let list = blocking(move || history.conversations(&who.user)).await?;
    Ok(Json(json!({ "conversations": list })))
}

#[utoipa::path(get, path = "/api/conversations/{id}", tag = "zhiku", params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "{exchanges: [{completion_id, question, answer, citations, rating, correction, ...}]}, oldest first", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "No such conversation of the caller's", body = ErrorBody)))]
pub async fn conversation(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let history = state.history();
    let key = id.clone();
    let exchanges = blocking(move || history.conversation(&who.user, &key)).await?;
    if exchanges.is_empty() {
        return Err(ApiError::not_found(format!("no conversation '{id}' of yours"), "conversation_not_found", None));
    }
    Ok(Json(json!({ "id": id, "exchanges": exchanges })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `id` of a chat completion made with `store: true`.
    completion_id: String,
    /// `up` (helpful) or `down` (not).
    rating: String,
    /// What the answer should have said.
    correction: Option<String>,
}

/// Most characters a correction may have.
const MAX_CORRECTION: usize = 10_000;

#[utoipa::path(post, path = "/api/feedback", tag = "zhiku", request_body = FeedbackRequest,
    responses((status = 200, description = "{rated: true}", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "No stored exchange of the caller's with that id", body = ErrorBody)))]
pub async fn feedback(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<Json<Value>, ApiError> {
    let rating = match request.rating.as_str() {
        "up" => 1,
        "down" => -1,
        other => return Err(ApiError::invalid(format!("rating '{other}' is not up or down"), Some("rating"))),
    };
    let correction = request.correction.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    if correction.as_ref().is_some_and(|c| c.chars().count() > MAX_CORRECTION) {
        return Err(ApiError::invalid(format!("correction is longer than {MAX_CORRECTION} characters"), Some("correction")));
    }
    let history = state.history();
    let id = request.completion_id.clone();
    let rated = blocking(move || history.rate_exchange(&who.user, &id, rating, correction.as_deref())).await?;
    if !rated {
        return Err(ApiError::not_found(
            format!("no stored answer '{}' of yours (ask with \"store\": true to rate it)", request.completion_id),
            "completion_not_found",
            Some("completion_id"),
        ));
    }
    Ok(Json(json!({ "rated": true })))
}
