//! The fine-tuning review queue over HTTP: editors of a knowledge base list the pairs a model
//! wrote from its documents and accept, correct or reject them. Each sees only pairs made from
//! passages they may read; every decision is audited.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use zhiku_core::Role;
use zhiku_rag::finetune::{self as tuning, Decision};
use zhiku_store::PairStatus;

use crate::auth::{audit, check_role, Authenticated};
use crate::error::{ApiJson, ErrorBody};
use crate::{blocking, ApiError, AppState};

/// Longest question or answer a reviewer may write.
const MAX_TEXT: usize = 4_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PairsQuery {
    /// pending, accepted or rejected (default: all).
    status: Option<String>,
}

#[utoipa::path(get, path = "/api/kbs/{kb}/finetune/pairs", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), PairsQuery),
    responses((status = 200, description = "{pairs: [{id, chunk_id, source, generator, question, answer, status, edited, reviewer, reviewed_at}]}, oldest first", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not an editor of the knowledge base", body = ErrorBody), (status = 404, description = "Unknown knowledge base", body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    Query(query): Query<PairsQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = query.status.map(|s| s.parse::<PairStatus>()).transpose().map_err(|e| ApiError::invalid(e, Some("status")))?;
    check_role(&state, &who, &kb, Role::Editor).await?;
    let store = state.store.clone();
    let pairs = blocking(move || tuning::review_queue(&store, &kb, &who.caller, status)).await?;
    Ok(Json(json!({ "pairs": pairs })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReviewRequest {
    /// accepted or rejected.
    status: String,
    /// A corrected question.
    question: Option<String>,
    /// A corrected answer.
    answer: Option<String>,
}

#[utoipa::path(post, path = "/api/kbs/{kb}/finetune/pairs/{id}", tag = "zhiku", request_body = ReviewRequest,
    params(("kb" = String, Path, description = "Knowledge base"), ("id" = i64, Path, description = "Pair")),
    responses((status = 200, description = "{reviewed: true}", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Not an editor of the knowledge base", body = ErrorBody),
        (status = 404, description = "No such pair that the caller may see", body = ErrorBody)))]
pub async fn review(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, i64)>,
    ApiJson(request): ApiJson<ReviewRequest>,
) -> Result<Json<Value>, ApiError> {
    let status = match request.status.as_str() {
        "accepted" => PairStatus::Accepted,
        "rejected" => PairStatus::Rejected,
        other => return Err(ApiError::invalid(format!("status '{other}' is not accepted or rejected"), Some("status"))),
    };
    let tidy = |text: Option<String>, field: &'static str| -> Result<Option<String>, ApiError> {
        match text.map(|t| t.trim().to_string()) {
            Some(t) if t.is_empty() => Err(ApiError::invalid(format!("{field} is empty"), Some(field))),
            Some(t) if t.chars().count() > MAX_TEXT => {
                Err(ApiError::invalid(format!("{field} is longer than {MAX_TEXT} characters"), Some(field)))
            }
            other => Ok(other),
        }
    };
    let (question, answer) = (tidy(request.question, "question")?, tidy(request.answer, "answer")?);
    let edited = question.is_some() || answer.is_some();
    check_role(&state, &who, &kb, Role::Editor).await?;
    let (store, reviewer, caller, kb_name) = (state.store.clone(), who.actor(), who.caller.clone(), kb.clone());
    let reviewed = blocking(move || {
        let decision = Decision { pair: id, status, question: question.as_deref(), answer: answer.as_deref() };
        tuning::review(&store, &kb_name, &caller, decision, &reviewer)
    })
    .await?;
    if !reviewed {
        return Err(ApiError::not_found(format!("no pair {id} in knowledge base '{kb}' that you may see"), "pair_not_found", None));
    }
    audit(&state, &who, "finetune.review", Some(kb), json!({ "pair": id, "status": status, "edited": edited })).await?;
    Ok(Json(json!({ "reviewed": true })))
}
