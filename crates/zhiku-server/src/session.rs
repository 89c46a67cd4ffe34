//! Password log-in for the web app: `POST /api/login` checks the account's argon2id hash — or,
//! for accounts of the directory, the LDAP/AD password ([`crate::directory`]) — and opens a
//! session held in an HttpOnly, SameSite=Strict cookie (Secure where configured, as
//! behind TLS); changes made with the cookie must echo the session's CSRF token in
//! `X-CSRF-Token`. Failed logins are throttled per account and per address and audited.

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use zhiku_rag::audit::AuditLog;
use zhiku_store::AuditEvent;

use crate::auth::Authenticated;
use crate::error::{ApiJson, ErrorBody};
use crate::{blocking, guard, ApiError, AppState};

pub const COOKIE: &str = "zhiku_session";

/// Authentication by a reverse proxy in front (SSO): the user name in a header, trusted only
/// from the proxies' addresses.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxy {
    /// e.g. `X-Remote-User`; empty: off.
    pub user_header: String,
    /// e.g. `X-Remote-Groups` (comma-separated group names), added to the user's own groups.
    pub groups_header: String,
    pub proxies: Vec<std::net::IpAddr>,
}

/// Session settings and the server's throttles.
pub struct Security {
    pub session_seconds: i64,
    /// `/metrics` without a key (it shows sizes across all knowledge bases).
    pub metrics_public: bool,
    pub proxy: TrustedProxy,
    pub ldap: crate::directory::LdapConfig,
    /// Mark the cookie `Secure` (sent over HTTPS only): on behind TLS.
    pub secure_cookies: bool,
    pub limiter: guard::RateLimiter,
    pub logins: guard::LoginThrottle,
}

impl Security {
    pub fn new(session_hours: f64, secure_cookies: bool, rate_limit_per_minute: u32) -> Self {
        Self {
            session_seconds: (session_hours * 3600.0) as i64,
            metrics_public: false,
            proxy: TrustedProxy::default(),
            ldap: Default::default(),
            secure_cookies,
            limiter: guard::RateLimiter::new(rate_limit_per_minute),
            logins: guard::LoginThrottle::default(),
        }
    }
}

impl Default for Security {
    fn default() -> Self {
        Self::new(12.0, false, 600)
    }
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.security.secure_cookies { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The session token in a `Cookie` header, if any.
pub fn token_in(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')).map(str::to_string))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    user: String,
    password: String,
}

#[utoipa::path(post, path = "/api/login", tag = "zhiku", security(()), request_body = Login,
    responses((status = 200, description = "{user, admin, csrf_token, expires_at}, with the session cookie", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account or address; Retry-After says how long to wait", body = ErrorBody)))]
pub async fn login(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let peer = guard::peer(&request);
    let ApiJson(login) = ApiJson::<Login>::from_request(request, &()).await?;
    if let Err(wait) = state.security.logins.check(&login.user, peer) {
        return Err(ApiError::too_many("too many failed logins; wait and try again", wait));
    }
    let (seconds, ldap) = (state.security.session_seconds, state.security.ldap.clone());
    let (accounts, log) = (state.accounts(), state.audit_log());
    let user = login.user.clone();
    let opened = blocking(move || {
        let mut account = accounts.check_password(&login.user, &login.password)?;
        // Not a local password: the directory's, for users that are not local accounts.
        let local = accounts.user(&login.user)?.is_some_and(|u| u.origin != "ldap");
        if account.is_none() && ldap.enabled() && !local {
            let found = ldap.authenticate(&login.user, &login.password).map_err(|e| ApiError::unavailable(e.to_string()))?;
            if let Some(directory_user) = found {
                crate::directory::take_over(accounts.as_ref(), &directory_user)?;
                account = accounts.user(&directory_user.name)?;
            }
        }
        let Some(account) = account else {
            let detail = json!({ "user": login.user, "address": peer.map(|p| p.to_string()) });
            log.append(&AuditEvent { actor: "anonymous", action: "login.failed", kb: None, detail })?;
            return Ok(None);
        };
        let (token, session) = accounts.create_session(&account.name, seconds)?;
        let actor = format!("session user:{}", account.name);
        log.append(&AuditEvent { actor: &actor, action: "login", kb: None, detail: json!({ "address": peer.map(|p| p.to_string()) }) })?;
        Ok::<_, ApiError>(Some((token, session, account.admin)))
    })
    .await?;
    let Some((token, session, admin)) = opened else {
        state.security.logins.failed(&user, peer);
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    state.security.logins.succeeded(&user);
    let body = json!({ "user": session.user, "admin": admin, "csrf_token": session.csrf, "expires_at": session.expires_at });
    Ok(([(header::SET_COOKIE, cookie(&state, &token, seconds))], Json(body)).into_response())
}

#[utoipa::path(post, path = "/api/logout", tag = "zhiku",
    responses((status = 200, description = "{logged_out}: the session has ended and its cookie is cleared", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = ErrorBody)))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    request: Request,
) -> Result<Response, ApiError> {
    let ended = match token_in(&request).filter(|_| who.key_id == "session") {
        Some(token) => {
            let (accounts, log) = (state.accounts(), state.audit_log());
            blocking(move || {
                let ended = accounts.end_session(&token)?;
                who.audit(&log, "logout", None, json!({}))?;
                Ok::<_, ApiError>(ended)
            })
            .await?
        }
        None => false,
    };
    Ok(([(header::SET_COOKIE, cookie(&state, "", 0))], Json(json!({ "logged_out": ended }))).into_response())
}
