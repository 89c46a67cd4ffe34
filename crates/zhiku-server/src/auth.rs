//! Who is asking and what they may do. Every route under `/v1` and `/api` needs a bearer API
//! key or a web session (cookie, with its CSRF token on changes); the request then acts as the
//! key's user with the user's groups (nested ones included), as `--as USER` does on the command
//! line, or as an administrator for a key with the `admin` scope or an administrator's session.
//! Each user's requests are rate-limited.
//!
//! Knowledge bases are gated by roles (viewer < editor < admin): a knowledge base the caller
//! holds no role on answers exactly like one that does not exist, so its name does not leak.
//! Changes also need the key's `write` scope. Inside a knowledge base, document ACLs decide
//! what is read, in the engine. Refused keys and every change are written to the audit log.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use zhiku_core::{Caller, Role};
use zhiku_rag::audit::AuditLog;
use zhiku_store::{AuditEvent, Scope, Store};

use crate::{blocking, ApiError, AppState};

/// Who is asking, put into the request by [`require_key`].
#[derive(Clone)]
pub struct Authenticated {
    pub caller: Caller,
    pub user: String,
    pub key_id: String,
    pub scopes: Vec<Scope>,
    /// Holds the `admin` scope: everything, everywhere.
    pub admin: bool,
}

impl Authenticated {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an administrator's key (zhiku key create --admin)"))
        }
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self.key_id.as_str() {
            "session" => format!("session user:{}", self.user),
            "proxy" => format!("proxy user:{}", self.user),
            id => format!("key:{id} user:{}", self.user),
        }
    }

    /// Checks, on a blocking thread, that the caller may act on the knowledge base with
    /// `needed`. A knowledge base without any role of the caller's is "not found".
    pub fn require_role(&self, store: &Store, kb: &str, needed: Role) -> Result<(), ApiError> {
        if !store.kb_exists(kb)? {
            return Err(kb_not_found(kb));
        }
        if self.admin {
            return Ok(());
        }
        let Some(role) = store.role_of(kb, &self.caller)? else { return Err(kb_not_found(kb)) };
        let scope = if needed == Role::Viewer { Scope::Read } else { Scope::Write };
        if !self.scopes.contains(&scope) {
            return Err(ApiError::forbidden(format!("this key lacks the '{}' scope this needs", scope.as_str())));
        }
        if role < needed {
            return Err(ApiError::forbidden(format!("this needs the {needed} role on '{kb}'; you are {role}")));
        }
        Ok(())
    }

    /// Appends to the audit log (on a blocking thread); a change that cannot be audited fails.
    pub fn audit(&self, log: &dyn AuditLog, action: &str, kb: Option<&str>, detail: serde_json::Value) -> Result<(), ApiError> {
        log.append(&AuditEvent { actor: &self.actor(), action, kb, detail })?;
        Ok(())
    }
}

pub fn kb_not_found(kb: &str) -> ApiError {
    ApiError::not_found(format!("knowledge base '{kb}' does not exist (or you have no role on it)"), "kb_not_found", None)
}

/// Runs [`Authenticated::require_role`] off the async threads. Over a shared database every
/// key may read every knowledge base (the documents' ACLs decide what it sees), and changes
/// need the role, as on the embedded store.
pub async fn check_role(state: &AppState, who: &Authenticated, kb: &str, needed: Role) -> Result<(), ApiError> {
    if let Some(cluster) = &state.cluster {
        let scope = if needed == Role::Viewer { Scope::Read } else { Scope::Write };
        if !who.scopes.contains(&scope) && !who.admin {
            return Err(ApiError::forbidden(format!("this key lacks the '{}' scope this needs", scope.as_str())));
        }
        let (cluster, name, caller) = (cluster.clone(), kb.to_string(), who.caller.clone());
        // Every search comes here: reading needs no role, so only whether the knowledge base exists.
        if needed == Role::Viewer {
            return match blocking(move || cluster.kb_exists(&name)).await? {
                true => Ok(()),
                false => Err(kb_not_found(kb)),
            };
        }
        let role = blocking(move || match cluster.role_of(&name, &caller) {
            Err(zhiku_rag::Error::Pg(zhiku_pg::Error::UnknownKb(_))) => Ok(None),
            other => other.map(|role| Some(role.unwrap_or(Role::Viewer))).map_err(ApiError::from),
        })
        .await?;
        return match role {
            None => Err(kb_not_found(kb)),
            Some(role) if role >= needed => Ok(()),
            Some(role) => Err(ApiError::forbidden(format!("this needs the {needed} role on '{kb}'; you are {role}"))),
        };
    }
    let (store, who, kb) = (state.store.clone(), who.clone(), kb.to_string());
    blocking(move || who.require_role(&store, &kb, needed)).await
}

/// Audits a change made by `who`, off the async threads.
pub async fn audit(
    state: &AppState,
    who: &Authenticated,
    action: &'static str,
    kb: Option<String>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let (log, who) = (state.audit_log(), who.clone());
    blocking(move || who.audit(&log, action, kb.as_deref(), detail)).await
}

/// The id part of a presented key (`zk_<id>_<secret>`), safe to log: never the secret.
fn key_id_of(presented: &str) -> Option<&str> {
    let id = presented.strip_prefix("zk_")?.split_once('_')?.0;
    (id.len() <= 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// Equal contents, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A web session's caller: an administrator's account acts as the administrator. A request that
/// `changes` something must have sent the session's CSRF token.
/// The caller of a web session, checking the CSRF token of a request that changes something.
fn session(
    state: &Arc<AppState>,
    request: &Request,
    token: String,
) -> impl std::future::Future<Output = Result<Authenticated, ApiError>> + Send {
    let changes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    let sent = request.headers().get("x-csrf-token").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let worker = state.clone();
    blocking(move || session_caller(&worker, &token, changes, &sent))
}

fn session_caller(state: &AppState, token: &str, changes: bool, sent_csrf: &[u8]) -> Result<Authenticated, ApiError> {
    let accounts = state.accounts();
    let Some(session) = accounts.session(token)? else {
        return Err(ApiError::unauthorized("the session has ended; log in again"));
    };
    if changes && !constant_time_eq(sent_csrf, session.csrf.as_bytes()) {
        return Err(ApiError::forbidden("missing or wrong X-CSRF-Token for this session"));
    }
    let admin = accounts.user(&session.user)?.is_some_and(|u| u.admin);
    let caller = match (&state.cluster, admin) {
        (_, true) => Caller::Admin,
        (Some(cluster), false) => cluster.caller_for(&session.user)?,
        (None, false) => state.engine.caller_for(&session.user)?,
    };
    let mut scopes = vec![Scope::Read, Scope::Write];
    if admin {
        scopes.push(Scope::Admin);
    }
    Ok(Authenticated { caller, user: session.user, key_id: "session".into(), scopes, admin })
}

/// The caller a trusted reverse proxy names, when the request comes from one of its addresses.
/// Changes must carry `X-Requested-With` (which no other site's page can send without our
/// CORS consent), since the proxy's own login cookie goes with every browser request.
/// Returns the user and the groups the proxy says it has.
fn proxy_user(state: &AppState, request: &Request) -> Option<Result<(String, Vec<String>), ApiError>> {
    let proxy = &state.security.proxy;
    if proxy.user_header.is_empty() || !crate::guard::peer(request).is_some_and(|ip| proxy.proxies.contains(&ip)) {
        return None;
    }
    let user = request.headers().get(proxy.user_header.as_str())?.to_str().ok()?.trim().to_string();
    let extra: Vec<String> = match proxy.groups_header.as_str() {
        "" => Vec::new(),
        name => request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect())
            .unwrap_or_default(),
    };
    let changes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    if changes && request.headers().get("x-requested-with").is_none() {
        return Some(Err(ApiError::forbidden("changes through the proxy log-in need an X-Requested-With header")));
    }
    Some(Ok((user, extra)))
}

/// A bearer key checked against the shared database: every replica knows every key.
async fn shared_key_caller(cluster: &Arc<zhiku_rag::cluster::ClusterEngine>, key: String) -> Result<Authenticated, ApiError> {
    let cluster = cluster.clone();
    let found = blocking(move || -> Result<Option<Authenticated>, ApiError> {
        let Some(holder) = cluster.verify_api_key(&key)? else {
            let detail = json!({ "key_id": key_id_of(&key), "reason": "invalid, expired or revoked key" });
            cluster.append(&AuditEvent { actor: "anonymous", action: "auth.failed", kb: None, detail })?;
            return Ok(None);
        };
        let admin = holder.admin();
        let caller = if admin { Caller::Admin } else { cluster.caller_for(&holder.user)? };
        let scopes = holder.scopes.iter().filter_map(|s| s.parse().ok()).collect();
        Ok(Some(Authenticated { caller, user: holder.user, key_id: holder.id, scopes, admin }))
    })
    .await?;
    found.ok_or_else(|| ApiError::unauthorized("invalid, expired or revoked API key"))
}

pub async fn require_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Result<Response, ApiError> {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(cluster) = &state.cluster {
        let Some(key) = header.strip_prefix("Bearer ").map(str::trim).filter(|k| !k.is_empty()) else {
            if let Some(token) = crate::session::token_in(&request).filter(|_| header.is_empty()) {
                let who = session(&state, &request, token).await?;
                return admit(&state, who, request, next).await;
            }
            return Err(ApiError::unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' (zhiku key create with --database-url) or log in",
            ));
        };
        let who = shared_key_caller(cluster, key.to_string()).await?;
        return admit(&state, who, request, next).await;
    }
    if header.is_empty() {
        if let Some(found) = proxy_user(&state, &request) {
            let (user, extra) = found?;
            let worker = state.clone();
            let who = blocking(move || {
                zhiku_core::Principal::user(&user).map_err(|e| ApiError::unauthorized(format!("the proxy's user header: {e}")))?;
                if worker.store.is_disabled(&user)? {
                    return Err(ApiError::unauthorized("this account is disabled"));
                }
                let admin = worker.store.user(&user)?.is_some_and(|u| u.admin);
                let mut groups = worker.store.groups_of(&user)?;
                groups.extend(extra);
                let caller =
                    if admin { Caller::Admin } else { Caller::user(&user, groups).map_err(|e| ApiError::unauthorized(e.to_string()))? };
                let mut scopes = vec![Scope::Read, Scope::Write];
                if admin {
                    scopes.push(Scope::Admin);
                }
                Ok(Authenticated { caller, user, key_id: "proxy".into(), scopes, admin })
            })
            .await?;
            return admit(&state, who, request, next).await;
        }
    }
    let bearer = header.strip_prefix("Bearer ").map(str::trim).filter(|k| !k.is_empty());
    let Some(key) = bearer else {
        let Some(token) = crate::session::token_in(&request).filter(|_| header.is_empty()) else {
            return Err(ApiError::unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' (create one with `zhiku key create`) or log in",
            ));
        };
        let who = session(&state, &request, token).await?;
        return admit(&state, who, request, next).await;
    };
    let key = key.to_string();
    let path = request.uri().path().to_string();
    let store = state.store.clone();
    let engine = state.engine.clone();
    let found = blocking(move || -> Result<Option<Authenticated>, ApiError> {
        let Some(info) = store.verify_api_key(&key)? else {
            let detail = json!({ "key_id": key_id_of(&key), "path": path, "reason": "invalid, expired or revoked key" });
            store.audit(&AuditEvent { actor: "anonymous", action: "auth.failed", kb: None, detail })?;
            return Ok(None);
        };
        let caller = if info.admin { Caller::Admin } else { engine.caller_for(&info.user)? };
        Ok(Some(Authenticated { caller, user: info.user, key_id: info.id, admin: info.admin, scopes: info.scopes }))
    })
    .await?;
    let Some(who) = found else { return Err(ApiError::unauthorized("invalid, expired or revoked API key")) };
    admit(&state, who, request, next).await
}

/// Lets an authenticated request through, within its user's rate limit. A refusal for want of
/// a role, scope or administrator's key is audited: probing for more access leaves a trace.
async fn admit(state: &AppState, who: Authenticated, mut request: Request, next: Next) -> Result<Response, ApiError> {
    // Replicas count a user's requests together; one server counts them itself.
    let taken = match &state.cluster {
        Some(cluster) => {
            let (cluster, user, per_minute) = (cluster.clone(), who.user.clone(), state.security.limiter.per_minute());
            blocking(move || cluster.take_request(&user, per_minute)).await?
        }
        None => state.security.limiter.take(&who.user),
    };
    if let Err(wait) = taken {
        return Err(ApiError::too_many(format!("more than server.rate_limit_per_minute requests from '{}'; slow down", who.user), wait));
    }
    let (method, path) = (request.method().to_string(), request.uri().path().to_string());
    request.extensions_mut().insert(who.clone());
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::FORBIDDEN {
        let log = state.audit_log();
        let detail = json!({ "method": method, "path": path });
        blocking(move || who.audit(&log, "access.denied", None, detail)).await?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_key_id_is_ever_logged() {
        assert_eq!(key_id_of("zk_0a1b2c_deadbeefsecret"), Some("0a1b2c"));
        for bad in ["zk_", "zk_nounderscore", "Bearer zk_a_b", "zk_'; DROP TABLE--_x", "sk-openai"] {
            assert_eq!(key_id_of(bad), None, "{bad}");
        }
    }
}
