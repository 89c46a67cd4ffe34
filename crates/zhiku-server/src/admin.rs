//! Administration over HTTP, for administrators' keys only: API keys (create, list, revoke),
//! users, groups, the audit log and the ingestion jobs of this server. Every change is audited.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use zhiku_core::Principal;
use zhiku_store::{AuditFilter, Scope};

use crate::auth::{audit, Authenticated};
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
    /// The same as scopes ["admin"].
    #[serde(default)]
    admin: bool,
    /// read, write, admin [default: read and write].
    #[serde(default)]
    scopes: Vec<String>,
    /// The key stops working this many days from now.
    expires_in_days: Option<u32>,
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
    let mut scopes: Vec<Scope> = request
        .scopes
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: zhiku_store::Error| ApiError::invalid(e.to_string(), Some("scopes")))?;
    if request.admin {
        scopes.push(Scope::Admin);
    }
    if scopes.is_empty() {
        scopes = vec![Scope::Read, Scope::Write];
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let expires_at = match request.expires_in_days {
        Some(0) => return Err(ApiError::invalid("expires_in_days must be at least 1", Some("expires_in_days"))),
        Some(days) => Some(now + i64::from(days) * 86_400),
        None => None,
    };
    let store = state.store.clone();
    let user = request.user.clone().unwrap_or_else(|| request.name.clone());
    let actor = who.clone();
    let created = blocking(move || {
        let created = store.create_api_key(&request.name, &user, &scopes, expires_at)?;
        let i = &created.info;
        actor.audit(
            &store,
            "key.create",
            None,
            json!({ "id": i.id, "name": i.name, "user": i.user, "scopes": i.scopes, "expires_at": i.expires_at }),
        )?;
        Ok::<_, ApiError>(created)
    })
    .await?;
    tracing::info!(id = %created.info.id, user = %created.info.user, admin = created.info.admin, "API key created over HTTP");
    let i = &created.info;
    let body = json!({
        "id": i.id, "name": i.name, "user": i.user, "admin": i.admin, "scopes": i.scopes, "expires_at": i.expires_at, "key": created.key,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
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
    audit(&state, &who, "key.revoke", None, json!({ "id": id })).await?;
    Ok(Json(json!({ "revoked": true })))
}

#[utoipa::path(get, path = "/api/jobs", tag = "admin",
    responses((status = 200, description = "{jobs: [JobStatus]}, newest first", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn list_jobs(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    Ok(Json(json!({ "jobs": state.jobs.all() })))
}

#[utoipa::path(get, path = "/api/users", tag = "admin",
    responses((status = 200, description = "{users: [{name, admin, disabled, has_password, origin, created_at}], groups: [{group, member}]}", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn list_users(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let (users, members, nested) =
        blocking(move || Ok::<_, ApiError>((store.users()?, store.group_members()?, store.subgroups()?))).await?;
    let groups: Vec<Value> = members
        .iter()
        .map(|(g, u)| json!({ "group": g, "member": format!("user:{u}") }))
        .chain(nested.iter().map(|(g, c)| json!({ "group": g, "member": format!("group:{c}") })))
        .collect();
    Ok(Json(json!({ "users": users, "groups": groups })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    name: String,
    /// At least 8 characters; stored as an argon2id hash. None: the user cannot log in with a password.
    password: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[utoipa::path(post, path = "/api/users", tag = "admin", request_body = CreateUser,
    responses((status = 201, description = "{name, created: true}", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)))]
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let name = request.name.clone();
    let created = blocking(move || {
        let created = store.create_user(&request.name, request.password.as_deref(), request.admin)?;
        if created {
            let detail = json!({ "user": request.name, "admin": request.admin, "password": request.password.is_some() });
            who.audit(&store, "user.create", None, detail)?;
        }
        Ok::<_, ApiError>(created)
    })
    .await?;
    if !created {
        return Err(ApiError { status: StatusCode::CONFLICT, ..ApiError::invalid(format!("user '{name}' exists already"), Some("name")) });
    }
    Ok((StatusCode::CREATED, Json(json!({ "name": name, "created": true }))).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    admin: Option<bool>,
    /// A disabled account cannot log in; its keys and sessions stop working.
    disabled: Option<bool>,
    /// A new password (at least 8 characters); the account's sessions end.
    password: Option<String>,
}

#[utoipa::path(patch, path = "/api/users/{name}", tag = "admin", request_body = UpdateUser, params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "The account now", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<UpdateUser>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let user = blocking(move || {
        if store.user(&name)?.is_none() {
            return Err(ApiError::not_found(format!("no user '{name}'"), "user_not_found", None));
        }
        if let Some(password) = &request.password {
            store.set_password(&name, password)?;
        }
        if let Some(admin) = request.admin {
            store.set_user_admin(&name, admin)?;
        }
        if let Some(disabled) = request.disabled {
            store.set_user_disabled(&name, disabled)?;
            if disabled {
                store.end_sessions_of(&name)?;
            }
        }
        let detail = json!({ "user": name, "admin": request.admin, "disabled": request.disabled, "password": request.password.is_some() });
        who.audit(&store, "user.update", None, detail)?;
        Ok(store.user(&name)?)
    })
    .await?;
    Ok(Json(json!(user)))
}

#[utoipa::path(delete, path = "/api/users/{name}", tag = "admin", params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "{deleted: true}: memberships and roles gone, keys revoked", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let (store, user) = (state.store.clone(), name.clone());
    if !blocking(move || store.delete_user(&user)).await? {
        return Err(ApiError::not_found(format!("no user '{name}'"), "user_not_found", None));
    }
    audit(&state, &who, "user.delete", None, json!({ "user": name })).await?;
    Ok(Json(json!({ "deleted": true })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// user:<name> or group:<name> (a nested group).
    member: String,
}

#[utoipa::path(post, path = "/api/groups/{group}/members", tag = "admin", request_body = GroupMember, params(("group" = String, Path, description = "Group name")),
    responses((status = 200, description = "{added: true}", body = serde_json::Value), (status = 400, description = "Bad request (a cycle, a bad name)", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn add_group_member(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(group): Path<String>,
    ApiJson(request): ApiJson<GroupMember>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let member = Principal::parse(&request.member).map_err(|e| ApiError::invalid(e.to_string(), Some("member")))?;
    let store = state.store.clone();
    blocking(move || {
        let added = match member.as_str().split_once(':') {
            Some(("group", child)) => store.add_subgroup(&group, child),
            Some((_, user)) => store.add_group_member(&group, user),
            None => unreachable!("a principal has a kind"),
        };
        added.map_err(|e| match e {
            zhiku_store::Error::Invalid { .. } => ApiError::invalid(e.to_string(), Some("member")),
            other => ApiError::from(other),
        })?;
        who.audit(&store, "group.add", None, json!({ "group": group, "members": [member] }))
    })
    .await?;
    Ok(Json(json!({ "added": true })))
}

#[utoipa::path(delete, path = "/api/groups/{group}/members/{member}", tag = "admin",
    params(("group" = String, Path, description = "Group name"), ("member" = String, Path, description = "user:<name> or group:<name>")),
    responses((status = 200, description = "{removed: true}", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs an administrator's key", body = ErrorBody), (status = 404, description = "Not a member", body = ErrorBody)))]
pub async fn remove_group_member(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let principal = Principal::parse(&member).map_err(|e| ApiError::invalid(e.to_string(), Some("member")))?;
    let store = state.store.clone();
    let removed = blocking(move || {
        let removed = match principal.as_str().split_once(':') {
            Some(("group", child)) => store.remove_subgroup(&group, child)?,
            Some((_, user)) => store.remove_group_member(&group, user)?,
            None => unreachable!("a principal has a kind"),
        };
        if removed {
            who.audit(&store, "group.remove", None, json!({ "group": group, "members": [principal] }))?;
        }
        Ok::<_, ApiError>(removed)
    })
    .await?;
    if !removed {
        return Err(ApiError::not_found(format!("{member} is not a direct member of that group"), "member_not_found", None));
    }
    Ok(Json(json!({ "removed": true })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// From this time on, Unix milliseconds.
    since: Option<i64>,
    /// Up to this time, Unix milliseconds.
    until: Option<i64>,
    /// Only this user's entries.
    user: Option<String>,
    /// Only the latest this many.
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, description = "{entries: [{seq, at, actor, action, kb, detail, hash}], chain: {ok, entries, head} or {ok: false, seq, reason}}", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let store = state.store.clone();
    let filter = AuditFilter { since_ms: query.since, until_ms: query.until, user: query.user, latest: query.limit };
    let (entries, chain) = blocking(move || {
        let entries = store.audit_records(&filter)?;
        let chain = match store.verify_audit()? {
            Ok((n, head)) => json!({ "ok": true, "entries": n, "head": head }),
            Err(b) => json!({ "ok": false, "seq": b.seq, "reason": b.reason }),
        };
        who.audit(&store, "audit.export", None, json!({ "entries": entries.len() }))?;
        Ok::<_, ApiError>((entries, chain))
    })
    .await?;
    Ok(Json(json!({ "entries": entries, "chain": chain })))
}
