//! Administration over HTTP, for administrators' keys only: API keys (create, list, revoke)
//! and the ingestion jobs of this server.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Authenticated;
use crate::error::{ApiJson, ErrorBody};
use crate::{blocking, ApiError, AppState};

#[utoipa::path(get, path = "/api/keys", tag = "admin",
    responses((status = 200, description = "{keys: [{id, name, user, admin, created_at, last_used_at, revoked}]}, never a secret", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn list_keys(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let keys = blocking(move || store.list_api_keys()).await?;
    Ok(Json(json!({ "keys": keys })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    /// The user the key acts as [default: the name].
    user: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[utoipa::path(post, path = "/api/keys", tag = "admin", request_body = CreateKey,
    responses((status = 201, description = "{id, name, user, admin, key}: the key, shown this once", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    ApiJson(request): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let user = request.user.clone().unwrap_or_else(|| request.name.clone());
    let created = blocking(move || store.create_api_key(&request.name, &user, request.admin)).await?;
    tracing::info!(id = %created.info.id, user = %created.info.user, admin = created.info.admin, "API key created over HTTP");
    let i = &created.info;
    Ok((StatusCode::CREATED, Json(json!({ "id": i.id, "name": i.name, "user": i.user, "admin": i.admin, "key": created.key })))
        .into_response())
}

#[utoipa::path(delete, path = "/api/keys/{id}", tag = "admin", params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "{revoked: true}", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs an administrator's key", body = ErrorBody), (status = 404, description = "No active key with that id", body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let key = id.clone();
    let revoked = blocking(move || store.revoke_api_key(&key)).await?;
    if !revoked {
        return Err(ApiError::not_found(format!("no active API key with id '{id}'"), "key_not_found", None));
    }
    Ok(Json(json!({ "revoked": true })))
}

#[utoipa::path(get, path = "/api/jobs", tag = "admin",
    responses((status = 200, description = "{jobs: [JobStatus]}, newest first", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn list_jobs(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    Ok(Json(json!({ "jobs": state.jobs.all() })))
}
