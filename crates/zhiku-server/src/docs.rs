//! Knowledge bases and their documents over HTTP: create a knowledge base, upload files
//! (multipart, one or many) into an ingestion job whose progress streams as SSE, list, download
//! and delete documents, change who may read them. Every knowledge base is gated by roles
//! ([`crate::auth`]): viewers read (as far as document ACLs allow), editors change documents
//! and their ACLs, knowledge-base admins change settings and roles.
//!
//! Uploaded files are kept under `<data-dir>/uploads/<kb>/` (their names, so uploading a file
//! again replaces its document) and are the only originals served back: documents ingested
//! from elsewhere on the server's disk are never read out over HTTP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zhiku_core::{Principal, Role};
use zhiku_rag::{IngestEvent, IngestOptions};

use crate::auth::{audit, check_role, kb_not_found, Authenticated};
use crate::error::ApiJson;
use crate::error::ErrorBody;
use crate::{blocking, ApiError, AppState};

/// Where an ingestion job stands; every change is sent to its watchers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: u64,
    pub kb: String,
    /// queued, running, done or failed.
    pub state: &'static str,
    pub files_total: usize,
    pub files_done: usize,
    /// One report per file as `zhiku ingest --json` gives it.
    pub files: Vec<Value>,
    pub error: Option<String>,
}

/// The server's ingestion jobs, run one at a time (the store has one writer).
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<HashMap<u64, tokio::sync::watch::Sender<JobStatus>>>,
    one_at_a_time: Arc<Mutex<()>>,
}

impl Jobs {
    /// Every job's status, newest first.
    pub fn all(&self) -> Vec<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<JobStatus> = jobs.values().map(|tx| tx.borrow().clone()).collect();
        all.sort_by_key(|j| std::cmp::Reverse(j.id));
        all
    }

    fn watch(&self, id: u64) -> Option<tokio::sync::watch::Receiver<JobStatus>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(&id).map(|s| s.subscribe())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKb {
    pub(crate) name: String,
    /// Who may read documents uploaded without their own ACL.
    #[serde(default)]
    pub(crate) acl: Vec<String>,
    /// `minilm` or `multilingual-e5-small` (default: the server's `models.default_embedding`);
    /// chosen when the knowledge base is created.
    pub(crate) embedding_model: Option<String>,
}

fn principals(values: &[String], field: &str) -> Result<Vec<Principal>, ApiError> {
    values.iter().map(|v| Principal::parse(v).map_err(|e| ApiError::invalid(format!("{field}: {e}"), Some(field)))).collect()
}

#[utoipa::path(post, path = "/api/kbs", tag = "zhiku", request_body = CreateKb,
    responses((status = 201, description = "Created", body = serde_json::Value), (status = 200, description = "Existed; default ACL updated when given", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody)))]
pub async fn create_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    ApiJson(request): ApiJson<CreateKb>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let acl = principals(&request.acl, "acl")?;
    let (store, engine, actor) = (state.store.clone(), state.engine.clone(), who.clone());
    let (name, model) = (request.name.clone(), request.embedding_model.clone());
    let created = blocking(move || {
        let created = engine.create_kb(&name, &acl, model.as_deref()).map_err(|e| match e {
            zhiku_rag::Error::Store(zhiku_store::Error::InvalidKbName(_)) => ApiError::invalid(e.to_string(), Some("name")),
            zhiku_rag::Error::EmbeddingModel { .. } => ApiError::invalid(e.to_string(), Some("embedding_model")),
            other => ApiError::from(other),
        })?;
        if !created && !acl.is_empty() {
            engine.set_kb_viewers(&name, &acl)?;
        }
        actor.audit(&store, if created { "kb.create" } else { "kb.update" }, Some(&name), json!({ "viewers": acl }))?;
        Ok::<_, ApiError>(created)
    })
    .await?;
    let status = if created { axum::http::StatusCode::CREATED } else { axum::http::StatusCode::OK };
    Ok((status, Json(json!({ "name": request.name, "created": created }))).into_response())
}

#[utoipa::path(get, path = "/api/kbs/{kb}/documents", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")),
    responses((status = 200, description = "{documents: [{id, source, chunks, language, complete, acl}]}, those the caller may read", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn list_documents(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (store, asking) = (state.store.clone(), who.clone());
    let (docs, editor) = blocking(move || -> Result<_, ApiError> {
        asking.require_role(&store, &kb, Role::Viewer)?;
        let editor = asking.require_role(&store, &kb, Role::Editor).is_ok();
        Ok((store.documents(&kb)?, editor))
    })
    .await?;
    let docs: Vec<Value> = docs
        .into_iter()
        .filter(|d| who.caller.can_read(&d.acl))
        .map(|d| {
            // Who else may read a document is for those who may change it.
            let acl = editor.then(|| d.acl.iter().map(|p| p.as_str()).collect::<Vec<_>>());
            json!({
                "id": d.id, "source": d.source, "chunks": d.chunks, "language": d.language, "complete": !d.partial,
                "acl": acl, "acl_inherited": editor.then_some(d.acl_inherited),
            })
        })
        .collect();
    Ok(Json(json!({ "documents": docs })))
}

/// A file name an upload may be stored under: its last path component, no control characters,
/// not `.`/`..`, at most 255 bytes.
fn safe_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next()?.trim();
    let ok = !base.is_empty() && base != "." && base != ".." && base.len() <= 255 && !base.chars().any(char::is_control);
    ok.then(|| base.to_string())
}

fn uploads_dir(data_dir: &FsPath, kb: &str) -> PathBuf {
    data_dir.join("uploads").join(kb)
}

#[utoipa::path(post, path = "/api/kbs/{kb}/documents", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "{job}: an ingestion job; follow it at /api/jobs/{id}/events", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 413, description = "Body over server.max_body_mb", body = ErrorBody)))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    zhiku_store::validate_kb_name(&kb).map_err(|e| ApiError::invalid(e.to_string(), Some("kb")))?;
    // Administrators may upload into a new knowledge base, which the ingestion creates.
    if !who.admin {
        check_role(&state, &who, &kb, Role::Editor).await?;
    }
    let dir = uploads_dir(&state.data_dir, &kb);
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut acl = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| ApiError { status: e.status(), ..ApiError::invalid(e.body_text(), None) };
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("acl") => acl.push(field.text().await.map_err(bad)?),
            Some("file") => {
                let name = part_file_name(&field)?;
                let path = dir.join(&name);
                let partial = dir.join(format!(".{name}.part"));
                let mut out = std::fs::File::create(&partial).map_err(ApiError::internal)?;
                while let Some(bytes) = field.chunk().await.map_err(bad)? {
                    out.write_all(&bytes).map_err(ApiError::internal)?;
                }
                out.sync_all().map_err(ApiError::internal)?;
                std::fs::rename(&partial, &path).map_err(ApiError::internal)?;
                files.push(path);
            }
            other => return Err(unexpected_part(other)),
        }
    }
    if files.is_empty() {
        return Err(no_file_part());
    }
    let acl = principals(&acl, "acl")?;
    let status = start_job(&state, &who, kb, files, (!acl.is_empty()).then_some(acl), None);
    Ok((axum::http::StatusCode::ACCEPTED, Json(json!({ "job": status }))).into_response())
}

/// An upload's file part's name, checked (see [`safe_file_name`]).
pub(crate) fn part_file_name(field: &axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    field
        .file_name()
        .and_then(safe_file_name)
        .ok_or_else(|| ApiError::invalid("each file part needs a file name (a plain name, no path)", Some("file")))
}

pub(crate) fn unexpected_part(name: Option<&str>) -> ApiError {
    ApiError::invalid(format!("unexpected form field {:?}: send 'file' parts and optional 'acl' parts", name.unwrap_or("")), None)
}

pub(crate) fn no_file_part() -> ApiError {
    ApiError::invalid("no file: send one or more multipart parts named 'file'", Some("file"))
}

/// Queues an ingestion of `files` into `kb` (after removing the document `replacing`, for a
/// re-ingestion) and returns its first status.
/// The ingestion is audited as `who`'s when it ends.
fn start_job(
    state: &Arc<AppState>,
    who: &Authenticated,
    kb: String,
    files: Vec<PathBuf>,
    acl: Option<Vec<Principal>>,
    replacing: Option<String>,
) -> JobStatus {
    let id = state.jobs.next.fetch_add(1, Ordering::Relaxed) + 1;
    let status = JobStatus { id, kb: kb.clone(), state: "queued", files_total: files.len(), files_done: 0, files: Vec::new(), error: None };
    let (tx, _) = tokio::sync::watch::channel(status.clone());
    state.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx.clone());
    let (engine, lock, who, server) = (state.engine.clone(), state.jobs.one_at_a_time.clone(), who.clone(), state.clone());
    tokio::task::spawn_blocking(move || {
        let _turn = lock.lock().unwrap_or_else(|p| p.into_inner());
        tx.send_modify(|s| s.state = "running");
        let options = IngestOptions { acl, ..Default::default() };
        let result = replacing.map_or(Ok(false), |source| engine.delete_document(&kb, &source)).and_then(|_| {
            engine.ingest(&kb, &files, &options, &mut |event| match event {
                IngestEvent::Started { files } => tx.send_modify(|s| s.files_total = files),
                IngestEvent::Discovered { files } => tx.send_modify(|s| s.files_total += files),
                IngestEvent::FileDone { report } => tx.send_modify(|s| {
                    let value = serde_json::to_value(report).unwrap_or_default();
                    server.metrics.file_ingested(value["status"].as_str().unwrap_or("unknown"));
                    s.files_done += 1;
                    s.files.push(value);
                }),
            })
        });
        let mut detail = match &result {
            Ok(report) => zhiku_rag::audit::ingest_detail(report),
            Err(e) => json!({ "error": e.to_string() }),
        };
        detail["job"] = json!(id);
        if let Err(e) = who.audit(engine.store(), "ingest", Some(&kb), detail) {
            tracing::error!(error = %e.message, "could not audit an ingestion job");
        }
        tx.send_modify(|s| match result {
            Ok(_) => s.state = "done",
            Err(e) => {
                tracing::error!(error = %e, "ingestion job failed");
                s.state = "failed";
                s.error = Some(e.to_string());
            }
        });
    });
    status
}

/// The upload form: one or more `file` parts, and optional `acl` parts (principals such as
/// `group:staff`; without them the knowledge base's default ACL applies).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the multipart form for the OpenAPI document
pub struct UploadForm {
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    acl: Vec<String>,
}

/// Roles as the API shows them: `[{principal, role}]`.
fn roles_json(roles: &[(Principal, Role)]) -> Vec<Value> {
    roles.iter().map(|(p, r)| json!({ "principal": p, "role": r })).collect()
}

/// The settings as `who` may see them: roles and ACLs only for the knowledge base's admins, and
/// only the documents `who` may read counted.
fn kb_settings(store: &zhiku_store::Store, who: &Authenticated, kb: &str) -> Result<Value, ApiError> {
    let kb_admin = who.require_role(store, kb, Role::Admin).is_ok();
    let readable = store.documents(kb)?.iter().filter(|d| who.caller.can_read(&d.acl)).count();
    let roles: Option<Vec<Value>> = kb_admin.then(|| store.kb_roles(kb)).transpose()?.map(|r| roles_json(&r));
    Ok(json!({
        "name": kb,
        "acl": kb_admin.then(|| store.kb_default_acl(kb)).transpose()?,
        "roles": roles,
        "role": if who.admin { Some(Role::Admin) } else { store.role_of(kb, &who.caller)? },
        "pii": store.kb_pii_policy(kb)?.as_str(),
        "duplicates": store.kb_duplicate_policy(kb)?.as_str(),
        "vector_index": store.kb_vector_index(kb)?,
        "log_questions": store.kb_logs_questions(kb)?,
        "mask_answers": store.kb_masks_answers(kb)?,
        "answer_cache": store.kb_caches_answers(kb)?,
        "embedding_model": store.kb_embedding_model(kb)?,
        "model": store.kb_model(kb)?,
        "documents": readable,
    }))
}

#[utoipa::path(get, path = "/api/kbs/{kb}", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")),
    responses((status = 200, description = "{name, role, acl and roles (knowledge-base admins only), pii, duplicates, vector_index, log_questions, mask_answers, answer_cache, embedding_model, model (the registered language model answering in it; null: the default), documents (those the caller may read)}", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "No such knowledge base", body = ErrorBody)))]
pub async fn get_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        who.require_role(&store, &kb, Role::Viewer)?;
        kb_settings(&store, &who, &kb)
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbSettings {
    /// Readers of documents uploaded without their own ACL.
    pub(crate) acl: Option<Vec<String>>,
    /// keep, mask or drop-chunk.
    pub(crate) pii: Option<String>,
    /// skip or keep.
    pub(crate) duplicates: Option<String>,
    /// auto, flat or hnsw.
    pub(crate) vector_index: Option<String>,
    /// Keep question text in the audit log (else only its SHA-256).
    pub(crate) log_questions: Option<bool>,
    /// Mask personal data and secrets in answers (the default).
    pub(crate) mask_answers: Option<bool>,
    /// Reuse answers for nearly identical questions by callers with the same principals.
    pub(crate) answer_cache: Option<bool>,
    /// minilm, multilingual-e5-small (or remote): every chunk is embedded again with it, then
    /// the vectors are swapped at once (the request lasts as long as that takes).
    pub(crate) embedding_model: Option<String>,
    /// The registered language model answers in it come from; `none` for the default one.
    pub(crate) model: Option<String>,
}

#[utoipa::path(patch, path = "/api/kbs/{kb}", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")), request_body = KbSettings,
    responses((status = 200, description = "The settings now", body = serde_json::Value), (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 404, description = "No such knowledge base", body = ErrorBody)))]
pub async fn update_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    ApiJson(request): ApiJson<KbSettings>,
) -> Result<Json<Value>, ApiError> {
    let acl = request.acl.as_deref().map(|a| principals(a, "acl")).transpose()?;
    let pii =
        request.pii.as_deref().map(|p| p.parse::<zhiku_core::PiiPolicy>().map_err(|e| ApiError::invalid(e, Some("pii")))).transpose()?;
    let duplicates = request
        .duplicates
        .as_deref()
        .map(|d| d.parse::<zhiku_core::DuplicatePolicy>().map_err(|e| ApiError::invalid(e, Some("duplicates"))))
        .transpose()?;
    let vector_index = match request.vector_index.as_deref() {
        None => None,
        Some(v @ ("auto" | "flat" | "hnsw")) => Some(v.to_string()),
        Some(other) => return Err(ApiError::invalid(format!("vector_index '{other}' is not auto, flat or hnsw"), Some("vector_index"))),
    };
    let (store, engine) = (state.store.clone(), state.engine.clone());
    let (log_questions, mask_answers, answer_cache) = (request.log_questions, request.mask_answers, request.answer_cache);
    let (embedding_model, model) = (request.embedding_model, request.model);
    blocking(move || {
        who.require_role(&store, &kb, Role::Admin)?;
        let reembedded = match &embedding_model {
            Some(model) => Some(engine.set_embedding_model(&kb, model, &mut |_, _| {}).map_err(|e| match e {
                zhiku_rag::Error::EmbeddingModel { .. } => ApiError::invalid(e.to_string(), Some("embedding_model")),
                other => ApiError::from(other),
            })?),
            None => None,
        };
        if let Some(acl) = &acl {
            engine.set_kb_viewers(&kb, acl)?;
        }
        if let Some(keep) = log_questions {
            store.set_kb_logs_questions(&kb, keep)?;
        }
        if let Some(mask) = mask_answers {
            store.set_kb_masks_answers(&kb, mask)?;
        }
        if let Some(cache) = answer_cache {
            store.set_kb_caches_answers(&kb, cache)?;
        }
        if let Some(p) = pii {
            store.set_kb_pii_policy(&kb, p)?;
        }
        if let Some(d) = duplicates {
            store.set_kb_duplicate_policy(&kb, d)?;
        }
        if let Some(v) = &vector_index {
            store.set_kb_vector_index(&kb, v)?;
        }
        if let Some(m) = &model {
            store.set_kb_model(&kb, Some(m.as_str()).filter(|m| *m != "none")).map_err(|e| match e {
                e @ zhiku_store::Error::Invalid { .. } => ApiError::invalid(e.to_string(), Some("model")),
                other => other.into(),
            })?;
        }
        let detail = json!({
            "viewers": acl, "pii": pii.map(|p| p.as_str()), "duplicates": duplicates.map(|d| d.as_str()),
            "vector_index": vector_index, "log_questions": log_questions, "mask_answers": mask_answers,
            "answer_cache": answer_cache, "embedding_model": embedding_model, "reembedded": reembedded, "model": model,
        });
        who.audit(&store, "kb.update", Some(&kb), detail)?;
        let mut settings = kb_settings(&store, &who, &kb)?;
        if let Some(n) = reembedded {
            settings["reembedded"] = json!(n);
        }
        Ok::<_, ApiError>(settings)
    })
    .await
    .map(Json)
}

#[utoipa::path(delete, path = "/api/kbs/{kb}", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")),
    responses((status = 200, description = "{deleted: true}: documents, chunks, indexes and uploaded files are gone", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 404, description = "No such knowledge base", body = ErrorBody)))]
pub async fn delete_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    zhiku_store::validate_kb_name(&kb).map_err(|e| ApiError::invalid(e.to_string(), Some("kb")))?;
    check_role(&state, &who, &kb, Role::Admin).await?;
    let (engine, uploads) = (state.engine.clone(), uploads_dir(&state.data_dir, &kb));
    let name = kb.clone();
    // Waits for a running ingestion: deleting under it would leave half a knowledge base.
    let lock = state.jobs.one_at_a_time.clone();
    let deleted = blocking(move || {
        let _turn = lock.lock().unwrap_or_else(|p| p.into_inner());
        let deleted = engine.delete_kb(&name)?;
        let _ = std::fs::remove_dir_all(uploads);
        Ok::<_, ApiError>(deleted)
    })
    .await?;
    if !deleted {
        return Err(kb_not_found(&kb));
    }
    audit(&state, &who, "kb.delete", Some(kb), json!({})).await?;
    Ok(Json(json!({ "deleted": true })))
}

#[utoipa::path(post, path = "/api/kbs/{kb}/documents/{id}/reingest", tag = "zhiku",
    params(("kb" = String, Path, description = "Knowledge base"), ("id" = i64, Path, description = "Document id")),
    responses((status = 202, description = "{job}: the uploaded original parsed, embedded and indexed again (after a parser or model upgrade)", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody),
        (status = 404, description = "No such document, or its original was not uploaded", body = ErrorBody)))]
pub async fn reingest(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    check_role(&state, &who, &kb, Role::Editor).await?;
    let doc = readable_document(&state, &who, kb.clone(), id).await?;
    let path = PathBuf::from(&doc.source);
    if !path.starts_with(uploads_dir(&state.data_dir, &kb)) || !path.is_file() {
        return Err(ApiError::not_found(
            "only uploaded documents can be re-ingested over HTTP; ingest others again with `zhiku ingest`",
            "original_not_kept",
            None,
        ));
    }
    let own_acl = (!doc.acl_inherited).then(|| doc.acl.clone());
    let status = start_job(&state, &who, kb, vec![path], own_acl, Some(doc.source.clone()));
    Ok((axum::http::StatusCode::ACCEPTED, Json(json!({ "job": status }))).into_response())
}

fn job_not_found(id: u64) -> ApiError {
    ApiError::not_found(format!("no ingestion job {id}"), "job_not_found", None)
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "zhiku", params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, description = "{job}", body = JobStatus), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn job(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let rx = state.jobs.watch(id).ok_or_else(|| job_not_found(id))?;
    let status = rx.borrow().clone();
    check_role(&state, &who, &status.kb, Role::Editor).await?;
    Ok(Json(json!({ "job": status })))
}

/// The job's status as SSE: one event now, one per change, the last when it has ended.
#[utoipa::path(get, path = "/api/jobs/{id}/events", tag = "zhiku", params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, description = "SSE: `progress` events with {job}, one per change, the last when the job has ended", content_type = "text/event-stream"), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn job_events(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let rx = state.jobs.watch(id).ok_or_else(|| job_not_found(id))?;
    let kb = rx.borrow().kb.clone();
    check_role(&state, &who, &kb, Role::Editor).await?;
    let stream = futures_util::stream::unfold((rx, false, true), |(mut rx, ended, first)| async move {
        if ended {
            return None;
        }
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let status = rx.borrow_and_update().clone();
        let ended = matches!(status.state, "done" | "failed");
        let event = Event::default().event("progress").data(json!({ "job": status }).to_string());
        Some((Ok::<_, Infallible>(event), (rx, ended, false)))
    });
    Ok(Sse::new(stream).into_response())
}

/// The document with this id if the caller may read it.
async fn readable_document(state: &AppState, who: &Authenticated, kb: String, id: i64) -> Result<zhiku_store::DocumentInfo, ApiError> {
    let (store, who) = (state.store.clone(), who.clone());
    blocking(move || {
        who.require_role(&store, &kb, Role::Viewer)?;
        store
            .document(&kb, id)?
            .filter(|d| who.caller.can_read(&d.acl))
            .ok_or_else(|| ApiError::not_found(format!("no document {id} in '{kb}' that you may read"), "document_not_found", None))
    })
    .await
}

#[utoipa::path(delete, path = "/api/kbs/{kb}/documents/{id}", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), ("id" = i64, Path, description = "Document id")),
    responses((status = 200, description = "{deleted, source}", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 403, description = "Needs an administrator's key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn delete_document(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    check_role(&state, &who, &kb, Role::Editor).await?;
    let doc = readable_document(&state, &who, kb.clone(), id).await?;
    let engine = state.engine.clone();
    let (source, name) = (doc.source.clone(), kb.clone());
    let removed = blocking(move || engine.delete_document(&name, &source).map_err(ApiError::from)).await?;
    audit(&state, &who, "document.delete", Some(kb), json!({ "document": id, "source": doc.source })).await?;
    // An uploaded original goes with its document.
    if FsPath::new(&doc.source).starts_with(state.data_dir.join("uploads")) {
        let _ = std::fs::remove_file(&doc.source);
    }
    Ok(Json(json!({ "deleted": removed, "source": doc.source })))
}

#[utoipa::path(get, path = "/api/kbs/{kb}/documents/{id}/original", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base"), ("id" = i64, Path, description = "Document id")),
    responses((status = 200, description = "The uploaded file", content_type = "application/octet-stream"), (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "Unknown knowledge base, model or item", body = ErrorBody)))]
pub async fn original(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let doc = readable_document(&state, &who, kb.clone(), id).await?;
    let dir = uploads_dir(&state.data_dir, &kb);
    let path = FsPath::new(&doc.source);
    if !path.starts_with(&dir) || !path.is_file() {
        return Err(ApiError::not_found(
            "only uploaded files are kept for download; this document was ingested from elsewhere or is inside a container",
            "original_not_kept",
            None,
        ));
    }
    let file = doc.source.clone();
    let bytes = blocking(move || std::fs::read(file).map_err(ApiError::internal)).await?;
    let name = path.file_name().map(|n| n.to_string_lossy().replace('"', "")).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename*=UTF-8''{}", percent_encode(&name))),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentAcl {
    /// The document's own readers (user:<name>, group:<name>); empty: administrators only.
    acl: Option<Vec<String>>,
    /// Inherit the knowledge base's ACL (its role holders) again instead.
    #[serde(default)]
    inherit: bool,
}

#[utoipa::path(put, path = "/api/kbs/{kb}/documents/{id}/acl", tag = "zhiku", request_body = DocumentAcl,
    params(("kb" = String, Path, description = "Knowledge base"), ("id" = i64, Path, description = "Document id")),
    responses((status = 200, description = "{id, acl, acl_inherited}: in effect for the next search, nothing re-embedded", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs the editor role and the write scope", body = ErrorBody), (status = 404, description = "No such document you may read", body = ErrorBody)))]
pub async fn set_document_acl(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, i64)>,
    ApiJson(request): ApiJson<DocumentAcl>,
) -> Result<Json<Value>, ApiError> {
    let acl = match (&request.acl, request.inherit) {
        (Some(_), true) => return Err(ApiError::invalid("give either acl or inherit: true, not both", Some("acl"))),
        (None, false) => return Err(ApiError::invalid("give acl (a list of principals) or inherit: true", Some("acl"))),
        (Some(acl), false) => Some(principals(acl, "acl")?),
        (None, true) => None,
    };
    check_role(&state, &who, &kb, Role::Editor).await?;
    readable_document(&state, &who, kb.clone(), id).await?;
    let (engine, name) = (state.engine.clone(), kb.clone());
    let change = blocking(move || engine.set_document_acl(&name, id, acl.as_deref()).map_err(ApiError::from)).await?;
    let Some(change) = change else { return Err(ApiError::not_found(format!("no document {id} in '{kb}'"), "document_not_found", None)) };
    let acl = change.documents.first().map(|d| d.1.clone()).unwrap_or_default();
    audit(&state, &who, "document.acl", Some(kb), json!({ "document": id, "acl": acl, "inherited": request.inherit })).await?;
    Ok(Json(json!({ "id": id, "acl": acl, "acl_inherited": request.inherit })))
}

#[utoipa::path(get, path = "/api/kbs/{kb}/roles", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")),
    responses((status = 200, description = "{roles: [{principal, role}]}", body = serde_json::Value), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs the admin role on the knowledge base", body = ErrorBody), (status = 404, description = "No such knowledge base", body = ErrorBody)))]
pub async fn list_roles(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let roles = blocking(move || {
        who.require_role(&store, &kb, Role::Admin)?;
        Ok::<_, ApiError>(store.kb_roles(&kb)?)
    })
    .await?;
    Ok(Json(json!({ "roles": roles_json(&roles) })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    /// user:<name> or group:<name>.
    principal: String,
    /// viewer, editor or admin; null takes the principal's role away.
    role: Option<String>,
}

#[utoipa::path(put, path = "/api/kbs/{kb}/roles", tag = "zhiku", request_body = RoleGrant, params(("kb" = String, Path, description = "Knowledge base")),
    responses((status = 200, description = "{roles, documents_updated}: the roles now, and how many inheriting documents changed readers", body = serde_json::Value),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Needs the admin role on the knowledge base and the write scope", body = ErrorBody), (status = 404, description = "No such knowledge base", body = ErrorBody)))]
pub async fn set_role(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    ApiJson(request): ApiJson<RoleGrant>,
) -> Result<Json<Value>, ApiError> {
    let principal = Principal::parse(&request.principal).map_err(|e| ApiError::invalid(e.to_string(), Some("principal")))?;
    let role =
        request.role.as_deref().map(|r| r.parse::<Role>().map_err(|e| ApiError::invalid(e.to_string(), Some("role")))).transpose()?;
    let (store, engine) = (state.store.clone(), state.engine.clone());
    let (roles, updated) = blocking(move || {
        who.require_role(&store, &kb, Role::Admin)?;
        let change = engine.set_kb_role(&kb, &principal, role)?;
        let action = if role.is_some() { "kb.grant" } else { "kb.revoke" };
        who.audit(&store, action, Some(&kb), json!({ "principal": principal, "role": role, "documents": change.documents.len() }))?;
        Ok::<_, ApiError>((store.kb_roles(&kb)?, change.documents.len()))
    })
    .await?;
    Ok(Json(json!({ "roles": roles_json(&roles), "documents_updated": updated })))
}

/// RFC 5987 encoding of a file name for Content-Disposition.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_plain_file_names() {
        assert_eq!(safe_file_name("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_file_name("C:\\Users\\x\\年报.docx").as_deref(), Some("年报.docx"));
        assert_eq!(safe_file_name("../../etc/passwd").as_deref(), Some("passwd"));
        for bad in ["", "..", ".", "a/", "bad\nname"] {
            assert_eq!(safe_file_name(bad), None, "{bad:?}");
        }
        assert_eq!(percent_encode("年 a.pdf"), "%E5%B9%B4%20a.pdf");
    }
}
