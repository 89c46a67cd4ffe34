//! Knowledge bases and their documents over HTTP: create a knowledge base, upload files
//! (multipart, one or many) into an ingestion job whose progress streams as SSE, list, download
//! and delete documents. Reading is for everyone the ACLs allow; changing needs an
//! administrator's key.
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
use zhiku_core::Principal;
use zhiku_rag::{IngestEvent, IngestOptions};

use crate::auth::Authenticated;
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
    name: String,
    /// Who may read documents uploaded without their own ACL.
    #[serde(default)]
    acl: Vec<String>,
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
    let store = state.store.clone();
    let name = request.name.clone();
    let created = blocking(move || {
        let created = store.ensure_kb(&name, &acl).map_err(|e| match e {
            zhiku_store::Error::InvalidKbName(_) => ApiError::invalid(e.to_string(), Some("name")),
            other => ApiError::internal(other),
        })?;
        if !created && !acl.is_empty() {
            store.set_kb_default_acl(&name, &acl)?;
        }
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
    let store = state.store.clone();
    let docs = blocking(move || -> Result<_, ApiError> {
        require_kb(&store, &kb)?;
        Ok(store.documents(&kb)?)
    })
    .await?;
    let docs: Vec<Value> = docs
        .into_iter()
        .filter(|d| who.caller.can_read(&d.acl))
        .map(|d| {
            json!({
                "id": d.id, "source": d.source, "chunks": d.chunks, "language": d.language, "complete": !d.partial,
                "acl": if who.admin { json!(d.acl.iter().map(|p| p.as_str()).collect::<Vec<_>>()) } else { Value::Null },
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
    who.require_admin()?;
    zhiku_store::validate_kb_name(&kb).map_err(|e| ApiError::invalid(e.to_string(), Some("kb")))?;
    let dir = uploads_dir(&state.data_dir, &kb);
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut acl = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| ApiError { status: e.status(), ..ApiError::invalid(e.body_text(), None) };
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("acl") => acl.push(field.text().await.map_err(bad)?),
            Some("file") => {
                let name = field
                    .file_name()
                    .and_then(safe_file_name)
                    .ok_or_else(|| ApiError::invalid("each file part needs a file name (a plain name, no path)", Some("file")))?;
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
            other => {
                return Err(ApiError::invalid(
                    format!("unexpected form field {:?}: send 'file' parts and optional 'acl' parts", other.unwrap_or("")),
                    None,
                ))
            }
        }
    }
    if files.is_empty() {
        return Err(ApiError::invalid("no file: send one or more multipart parts named 'file'", Some("file")));
    }
    let acl = principals(&acl, "acl")?;
    let status = start_job(&state, kb, files, (!acl.is_empty()).then_some(acl), None);
    Ok((axum::http::StatusCode::ACCEPTED, Json(json!({ "job": status }))).into_response())
}

/// Queues an ingestion of `files` into `kb` (after removing the document `replacing`, for a
/// re-ingestion) and returns its first status.
fn start_job(state: &AppState, kb: String, files: Vec<PathBuf>, acl: Option<Vec<Principal>>, replacing: Option<String>) -> JobStatus {
    let id = state.jobs.next.fetch_add(1, Ordering::Relaxed) + 1;
    let status = JobStatus { id, kb: kb.clone(), state: "queued", files_total: files.len(), files_done: 0, files: Vec::new(), error: None };
    let (tx, _) = tokio::sync::watch::channel(status.clone());
    state.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx.clone());
    let (engine, lock) = (state.engine.clone(), state.jobs.one_at_a_time.clone());
    tokio::task::spawn_blocking(move || {
        let _turn = lock.lock().unwrap_or_else(|p| p.into_inner());
        tx.send_modify(|s| s.state = "running");
        let options = IngestOptions { acl, ..Default::default() };
        let result = replacing.map_or(Ok(false), |source| engine.delete_document(&kb, &source)).and_then(|_| {
            engine.ingest(&kb, &files, &options, &mut |event| match event {
                IngestEvent::Started { files } => tx.send_modify(|s| s.files_total = files),
                IngestEvent::Discovered { files } => tx.send_modify(|s| s.files_total += files),
                IngestEvent::FileDone { report } => tx.send_modify(|s| {
                    s.files_done += 1;
                    s.files.push(serde_json::to_value(report).unwrap_or_default());
                }),
            })
        });
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

fn kb_not_found(kb: &str) -> ApiError {
    ApiError::not_found(format!("knowledge base '{kb}' does not exist"), "kb_not_found", None)
}

fn require_kb(store: &zhiku_store::Store, kb: &str) -> Result<(), ApiError> {
    if store.kb_exists(kb)? {
        Ok(())
    } else {
        Err(kb_not_found(kb))
    }
}

fn kb_settings(store: &zhiku_store::Store, kb: &str) -> Result<Value, ApiError> {
    Ok(json!({
        "name": kb,
        "acl": store.kb_default_acl(kb)?.iter().map(|p| p.as_str().to_string()).collect::<Vec<_>>(),
        "pii": store.kb_pii_policy(kb)?.as_str(),
        "duplicates": store.kb_duplicate_policy(kb)?.as_str(),
        "vector_index": store.kb_vector_index(kb)?,
        "documents": store.documents(kb)?.len(),
    }))
}

#[utoipa::path(get, path = "/api/kbs/{kb}", tag = "zhiku", params(("kb" = String, Path, description = "Knowledge base")),
    responses((status = 200, description = "{name, acl, pii, duplicates, vector_index, documents}", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody), (status = 404, description = "No such knowledge base", body = ErrorBody)))]
pub async fn get_kb(State(state): State<Arc<AppState>>, Path(kb): Path<String>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        require_kb(&store, &kb)?;
        kb_settings(&store, &kb)
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbSettings {
    /// Readers of documents uploaded without their own ACL.
    acl: Option<Vec<String>>,
    /// keep, mask or drop-chunk.
    pii: Option<String>,
    /// skip or keep.
    duplicates: Option<String>,
    /// auto, flat or hnsw.
    vector_index: Option<String>,
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
    who.require_admin()?;
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
    let store = state.store.clone();
    blocking(move || {
        require_kb(&store, &kb)?;
        if let Some(acl) = &acl {
            store.set_kb_default_acl(&kb, acl)?;
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
        kb_settings(&store, &kb)
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
    who.require_admin()?;
    zhiku_store::validate_kb_name(&kb).map_err(|e| ApiError::invalid(e.to_string(), Some("kb")))?;
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
    who.require_admin()?;
    let doc = readable_document(&state, &who, kb.clone(), id).await?;
    let path = PathBuf::from(&doc.source);
    if !path.starts_with(uploads_dir(&state.data_dir, &kb)) || !path.is_file() {
        return Err(ApiError::not_found(
            "only uploaded documents can be re-ingested over HTTP; ingest others again with `zhiku ingest`",
            "original_not_kept",
            None,
        ));
    }
    let status = start_job(&state, kb, vec![path], Some(doc.acl.clone()), Some(doc.source.clone()));
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
    who.require_admin()?;
    let rx = state.jobs.watch(id).ok_or_else(|| job_not_found(id))?;
    let status = rx.borrow().clone();
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
    who.require_admin()?;
    let rx = state.jobs.watch(id).ok_or_else(|| job_not_found(id))?;
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
    let store = state.store.clone();
    let caller = who.caller.clone();
    blocking(move || {
        require_kb(&store, &kb)?;
        store
            .document(&kb, id)?
            .filter(|d| caller.can_read(&d.acl))
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
    who.require_admin()?;
    let doc = readable_document(&state, &who, kb.clone(), id).await?;
    let engine = state.engine.clone();
    let source = doc.source.clone();
    let removed = blocking(move || engine.delete_document(&kb, &source).map_err(ApiError::from)).await?;
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
