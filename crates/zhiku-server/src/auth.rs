//! Bearer API keys. Every route under `/v1` and `/api` requires one; the request then acts as
//! the key's user with the user's groups, as `--as USER` does on the command line, or as an
//! administrator for a key created with `--admin` (the only keys that may change anything).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use zhiku_core::Caller;

use crate::{blocking, ApiError, AppState};

/// Who is asking, put into the request by [`require_key`].
#[derive(Clone)]
pub struct Authenticated {
    pub caller: Caller,
    pub user: String,
    /// May manage knowledge bases and documents.
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
}

pub async fn require_key(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(key) = header.strip_prefix("Bearer ").map(str::trim).filter(|k| !k.is_empty()) else {
        return Err(ApiError::unauthorized("missing API key: send 'Authorization: Bearer <key>' (create one with `zhiku key create`)"));
    };
    let key = key.to_string();
    let store = state.store.clone();
    let engine = state.engine.clone();
    let found = blocking(move || -> Result<Option<Authenticated>, ApiError> {
        let Some(info) = store.verify_api_key(&key)? else { return Ok(None) };
        let caller = if info.admin { Caller::Admin } else { engine.caller_for(&info.user)? };
        Ok(Some(Authenticated { caller, user: info.user, admin: info.admin }))
    })
    .await?;
    let Some(who) = found else { return Err(ApiError::unauthorized("invalid or revoked API key")) };
    request.extensions_mut().insert(who);
    Ok(next.run(request).await)
}
