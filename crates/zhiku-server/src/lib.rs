//! zhiku-server: the HTTP face of zhiku (`zhiku serve`). It owns routing, authentication and
//! the wire formats; everything it answers comes from the engine, acting as the caller the API
//! key belongs to, so ACLs apply to HTTP exactly as to the CLI.
//!
//! - [`openai`]: the OpenAI-compatible endpoints (`/v1/models`, `/v1/chat/completions` with SSE
//!   streaming, `/v1/embeddings`); a knowledge base is the model `kb/<name>`.
//! - [`native`]: zhiku's own endpoints under `/api` (knowledge bases, search, cited passages).
//! - [`docs`]: knowledge bases and documents: upload into ingestion jobs with SSE progress,
//!   list, download, delete.
//! - [`admin`]: API keys, users, groups, the audit log and jobs, for administrators.
//! - [`chat_models`]: the language models answered with: the default, and registered ones
//!   loaded on demand under a memory budget (least recently used unloaded first).
//! - [`auth`]: bearer API keys (scopes, expiry), knowledge-base roles, audit entries.
//! - [`error`]: every failure as OpenAI's error object with the right status, never a panic
//!   message or a stack trace.
//! - [`replica`]: documents through a replica over the shared database (uploads queued for
//!   workers, listing, deletion, job status).
//! - [`openapi`]: `/openapi.json`, generated from the handlers.
//! - [`cors`]: which other web origins' pages may call the API (the widget's intranet pages).
//! - [`web`]: the browser app (chat with streamed, cited answers; search; documents; admin)
//!   and the embeddable chat widget, compiled in.

mod admin;
mod auth;
mod chat_models;
mod cors;
pub mod directory;
mod docs;
mod error;
mod finetune;
mod graph;
mod guard;
mod metrics;
mod native;
mod openai;
mod openapi;
mod replica;
mod session;
mod tls;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use zhiku_core::Embedder;
use zhiku_rag::Engine;
use zhiku_store::Store;

pub use chat_models::{remote_endpoint, ChatModels, DefaultModel, RemoteSettings};
pub use error::ApiError;
pub use session::{Security, TrustedProxy};

/// What the handlers share.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub store: Arc<Store>,
    pub embedder: Arc<dyn Embedder>,
    /// The embedding model's id in `/v1/models` and `/v1/embeddings`.
    pub embedding_model: String,
    /// The language models: the default (none installed: chat answers 503, the rest works)
    /// and the registered ones, loaded on demand within the memory budget.
    pub models: ChatModels,
    /// Generations at once; more wait their turn (each already uses every core).
    pub generation_slots: Arc<tokio::sync::Semaphore>,
    /// Embeddings of passages and graph work computed at once (two per core): more would only
    /// share the same cores while each holds its activations in memory; the rest wait in line.
    pub compute_slots: Arc<tokio::sync::Semaphore>,
    /// Searches in flight at once. Many: a search mostly waits for the shared pass that embeds
    /// the queries of all searches together, and the more queries a pass takes the less each
    /// costs (with compute slots, at most four queries met per pass, on one core). Bounded, so
    /// a flood queues here instead of starting a thread per request.
    pub search_slots: Arc<tokio::sync::Semaphore>,
    /// Where uploads are kept (`<data-dir>/uploads/<kb>/`).
    pub data_dir: PathBuf,
    pub jobs: docs::Jobs,
    /// Origins whose pages may call the API from a browser (`*`: any).
    pub cors_origins: Vec<String>,
    /// Sessions, rate limits, login throttling.
    pub security: Security,
    pub metrics: metrics::Metrics,
    /// A replica over a shared PostgreSQL database (`--database-url`): knowledge bases, groups
    /// and API keys come from there, and only the routes that work on it are served.
    pub cluster: Option<Arc<zhiku_rag::cluster::ClusterEngine>>,
}

impl AppState {
    /// Where searches and answers come from: the shared database, else the embedded engine.
    pub fn answering(&self) -> Arc<dyn zhiku_rag::Answering> {
        match &self.cluster {
            Some(cluster) => cluster.clone(),
            None => self.engine.clone(),
        }
    }

    /// Where accounts and web sessions are: the shared database, else the store.
    pub fn accounts(&self) -> Arc<dyn zhiku_rag::accounts::Accounts> {
        match &self.cluster {
            Some(cluster) => cluster.clone(),
            None => self.store.clone(),
        }
    }

    /// Where conversation history is kept: the shared database, else the store.
    pub fn history(&self) -> Arc<dyn zhiku_rag::history::History> {
        match &self.cluster {
            Some(cluster) => cluster.clone(),
            None => self.store.clone(),
        }
    }

    /// Where audit entries go: the shared database's chain, else the store's.
    pub fn audit_log(&self) -> Arc<dyn zhiku_rag::audit::AuditLog> {
        match &self.cluster {
            Some(cluster) => cluster.clone(),
            None => self.store.clone(),
        }
    }
}

/// Server settings (`[server]` in the configuration).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub bind: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// HTTPS: the certificate chain and the private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The whole application: routes, authentication and limits.
pub fn router(state: Arc<AppState>, options: &ServerOptions) -> Router {
    let routes = if state.cluster.is_some() { replica_routes() } else { embedded_routes() };
    let authenticated = routes.route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key));
    public_routes(state, options, authenticated)
}

/// Everything, on the embedded store.
fn embedded_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/api/me", get(native::me))
        .route("/api/conversations", get(native::conversations))
        .route("/api/conversations/{id}", get(native::conversation))
        .route("/api/feedback", post(native::feedback))
        .route("/api/kbs", get(native::list_kbs).post(docs::create_kb))
        .route("/api/kbs/{kb}", get(docs::get_kb).patch(docs::update_kb).delete(docs::delete_kb))
        .route("/api/kbs/{kb}/documents", get(docs::list_documents).post(docs::upload))
        .route("/api/kbs/{kb}/documents/{id}/reingest", post(docs::reingest))
        .route("/api/kbs/{kb}/documents/{id}", axum::routing::delete(docs::delete_document))
        .route("/api/kbs/{kb}/documents/{id}/original", get(docs::original))
        .route("/api/kbs/{kb}/documents/{id}/acl", axum::routing::put(docs::set_document_acl))
        .route("/api/kbs/{kb}/roles", get(docs::list_roles).put(docs::set_role))
        .route("/api/kbs/{kb}/graph/entity", get(graph::entity))
        .route("/api/kbs/{kb}/graph/path", get(graph::path))
        .route("/api/kbs/{kb}/graph/communities", get(graph::communities))
        .route("/api/kbs/{kb}/graph/export", get(graph::export))
        .route("/api/kbs/{kb}/finetune/pairs", get(finetune::list))
        .route("/api/kbs/{kb}/finetune/pairs/{id}", post(finetune::review))
        .route("/api/users", get(admin::list_users).post(admin::create_user))
        .route("/api/users/{name}", axum::routing::delete(admin::delete_user).patch(admin::update_user))
        .route("/api/groups/{group}/members", post(admin::add_group_member))
        .route("/api/groups/{group}/members/{member}", axum::routing::delete(admin::remove_group_member))
        .route("/api/audit", get(admin::audit_log))
        .route("/api/logout", post(session::logout))
        .route("/api/jobs", get(admin::list_jobs))
        .route("/api/keys", get(admin::list_keys).post(admin::create_key))
        .route("/api/keys/{id}", axum::routing::delete(admin::revoke_key))
        .route("/api/jobs/{id}", get(docs::job))
        .route("/api/jobs/{id}/events", get(docs::job_events))
        .route("/api/search", post(native::search))
        .route("/api/kbs/{kb}/chunks/{id}", get(native::passage))
}

/// What a replica over a shared database serves so far: the OpenAI-compatible API and search.
/// The rest answers 404 rather than act on a replica's local state.
fn replica_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/api/search", post(native::search))
        .route("/api/kbs/{kb}/documents", get(replica::list_documents).post(replica::upload))
        .route("/api/kbs/{kb}/documents/{id}", axum::routing::delete(replica::delete_document))
        .route("/api/jobs/{id}", get(replica::job))
        .route("/api/jobs/{id}/events", get(replica::job_events))
        .route("/api/me", get(native::me))
        .route("/api/logout", post(session::logout))
        .route("/api/kbs", get(replica::list_kbs).post(replica::create_kb))
        .route("/api/kbs/{kb}", get(replica::get_kb).patch(replica::update_kb))
        .route("/api/conversations", get(native::conversations))
        .route("/api/conversations/{id}", get(native::conversation))
        .route("/api/feedback", post(native::feedback))
        .route("/api/kbs/{kb}/chunks/{id}", get(native::passage))
}

/// Public routes, the same for both backends.
fn public_routes(state: Arc<AppState>, options: &ServerOptions, authenticated: Router<Arc<AppState>>) -> Router {
    Router::new()
        .merge(authenticated)
        .route("/healthz", get(native::health))
        .route("/api/login", post(session::login))
        .route("/readyz", get(metrics::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/", get(web::index))
        .route("/assets/app.js", get(web::script))
        .route("/assets/app.css", get(web::style))
        .route("/widget.js", get(web::widget))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors::allow_listed_origins))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .with_state(state)
}

/// Runs blocking work (SQLite, the models, files) off the async threads, its error becoming the
/// matching API error.
pub(crate) async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    // The request's span goes along, so what the engine does is logged inside it.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work)).await.map_err(ApiError::internal)?.map_err(Into::into)
}

/// [`blocking`] in one of the compute slots: for work that keeps every core busy (embedding).
pub(crate) async fn computing<T, E>(state: &AppState, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    in_slot(&state.compute_slots, work).await
}

/// [`blocking`] in one of the search slots.
pub(crate) async fn searching<T, E>(state: &AppState, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    in_slot(&state.search_slots, work).await
}

async fn in_slot<T, E>(slots: &Arc<tokio::sync::Semaphore>, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let permit = slots.clone().acquire_owned().await.map_err(ApiError::internal)?;
    blocking(move || {
        let _permit = permit;
        work()
    })
    .await
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub async fn serve(state: Arc<AppState>, options: ServerOptions) -> std::io::Result<()> {
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls::server_config(cert, key).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "zhiku serving");
    // Printed for scripts that asked for port 0.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    let app = router(state, &options);
    match tls {
        Some(config) => {
            // Browsers keep to HTTPS for this host from now on.
            let app = app.layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
                response
                    .headers_mut()
                    .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, axum::http::HeaderValue::from_static("max-age=31536000"));
                response
            }));
            tls::serve(listener, app, config, shutdown_signal()).await;
            Ok(())
        }
        None => {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown_signal()).await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
