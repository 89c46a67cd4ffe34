//! Documents through a server replica over the shared database: an upload becomes one queued
//! job per file, the file held in the database until a worker (`zhiku worker`, on any machine)
//! has ingested it, so no replica keeps anything a later request depends on. The upload's jobs
//! are followed as one batch, in the shape of the embedded server's ingestion job (the web app
//! shows either the same way), through any replica. Listing shows what the caller may read;
//! uploading, deleting and following uploads need the editor role on the knowledge base (or an
//! administrator's key).

use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use zhiku_core::Principal;

use crate::auth::{audit, kb_not_found, Authenticated};
use crate::{blocking, ApiError, AppState};

/// Attempts a queued upload gets (as `zhiku ingest --queue`'s default).
const MAX_ATTEMPTS: i32 = 3;

fn cluster(state: &AppState) -> Result<Arc<zhiku_rag::cluster::ClusterEngine>, ApiError> {
    state.cluster.clone().ok_or_else(|| ApiError::internal("a replica route without a shared database"))
}

fn require_admin(who: &Authenticated) -> Result<(), ApiError> {
    if who.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("this needs an administrator's key"))
    }
}

/// Administrators may change any knowledge base (a new one is created by its first upload);
/// others need the editor role on it.
async fn require_editor(state: &AppState, who: &Authenticated, kb: &str) -> Result<(), ApiError> {
    if who.admin {
        return Ok(());
    }
    crate::auth::check_role(state, who, kb, zhiku_core::Role::Editor).await
}

/// Every knowledge base of the database with the caller's role on it (viewer without one: any
/// caller may search any knowledge base, and the documents' ACLs decide what it reads).
pub async fn list_kbs(State(state): State<Arc<AppState>>, Extension(who): Extension<Authenticated>) -> Result<Json<Value>, ApiError> {
    let engine = cluster(&state)?;
    let caller = who.caller.clone();
    let kbs = blocking(move || -> Result<Vec<Value>, ApiError> {
        let mut kbs = Vec::new();
        for name in engine.kb_names()? {
            let role = engine.role_of(&name, &caller)?.unwrap_or(zhiku_core::Role::Viewer);
            kbs.push(json!({ "name": name, "role": role }));
        }
        Ok(kbs)
    })
    .await?;
    Ok(Json(json!({ "kbs": kbs })))
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    zhiku_store::validate_kb_name(&kb).map_err(|e| ApiError::invalid(e.to_string(), Some("kb")))?;
    require_editor(&state, &who, &kb).await?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut acl = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| ApiError { status: e.status(), ..ApiError::invalid(e.body_text(), None) };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("acl") => acl.push(field.text().await.map_err(bad)?),
            Some("file") => {
                let name = crate::docs::part_file_name(&field)?;
                let bytes = field.bytes().await.map_err(bad)?;
                files.push((name, bytes.to_vec()));
            }
            other => return Err(crate::docs::unexpected_part(other)),
        }
    }
    if files.is_empty() {
        return Err(crate::docs::no_file_part());
    }
    let acl: Vec<Principal> = acl
        .iter()
        .map(|v| Principal::parse(v).map_err(|e| ApiError::invalid(format!("acl: {e}"), Some("acl"))))
        .collect::<Result<_, _>>()?;
    let engine = cluster(&state)?;
    let name = kb.clone();
    let queued = blocking(move || -> Result<Vec<Value>, ApiError> {
        let given = (!acl.is_empty()).then_some(acl.as_slice());
        files
            .iter()
            .map(|(source, bytes)| {
                let id = engine.enqueue_upload(&name, source, bytes, given, MAX_ATTEMPTS)?;
                Ok(json!({ "id": id.to_string(), "source": source, "status": "pending", "bytes": bytes.len() }))
            })
            .collect()
    })
    .await?;
    let ids: Vec<&str> = queued.iter().filter_map(|j| j["id"].as_str()).collect();
    let batch = json!({ "id": ids.join(","), "kb": kb, "state": "queued", "files_total": ids.len(), "files_done": 0,
                        "files": [], "error": null });
    let detail = json!({ "jobs": ids, "sources": queued.iter().map(|j| j["source"].clone()).collect::<Vec<_>>() });
    audit(&state, &who, "document.upload", Some(kb), detail).await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(json!({ "jobs": queued, "job": batch }))).into_response())
}

pub async fn list_documents(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = cluster(&state)?;
    let name = kb.clone();
    let documents = blocking(move || match engine.documents(&name) {
        Err(zhiku_rag::Error::Pg(zhiku_pg::Error::UnknownKb(_))) => Err(kb_not_found(&name)),
        other => other.map_err(ApiError::from),
    })
    .await?;
    let listed: Vec<Value> = documents
        .into_iter()
        .filter(|d| who.caller.can_read(&d.acl))
        .map(|d| {
            let acl = who.admin.then(|| d.acl.iter().map(|p| p.as_str()).collect::<Vec<_>>());
            json!({ "id": d.id, "source": d.source, "chunks": d.chunks, "language": d.language, "complete": true, "acl": acl })
        })
        .collect();
    Ok(Json(json!({ "documents": listed })))
}

pub async fn delete_document(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path((kb, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    require_editor(&state, &who, &kb).await?;
    let engine = cluster(&state)?;
    let name = kb.clone();
    let removed = blocking(move || match engine.delete_document(&name, id) {
        Err(zhiku_rag::Error::Pg(zhiku_pg::Error::UnknownKb(_))) => Err(kb_not_found(&name)),
        other => other.map_err(ApiError::from),
    })
    .await?;
    let Some(source) = removed else {
        return Err(ApiError::not_found(format!("no document {id} in '{kb}'"), "document_not_found", None));
    };
    audit(&state, &who, "document.delete", Some(kb), json!({ "id": id, "source": source })).await?;
    Ok(Json(json!({ "deleted": true, "source": source })))
}

pub async fn job(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let engine = cluster(&state)?;
    let job = blocking(move || engine.job(id).map_err(ApiError::from)).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}"), "job_not_found", None))?;
    Ok(Json(json!({ "job": job })))
}

/// A batch id (`12,13,14`: the jobs of one upload) as job ids.
fn batch_ids(batch: &str) -> Result<Vec<i64>, ApiError> {
    let ids: Vec<i64> = batch.split(',').map(|id| id.trim().parse::<i64>()).collect::<Result<_, _>>().map_err(|_| {
        ApiError::not_found(format!("no job '{batch}': a job id, or the ids of one upload separated by commas"), "job_not_found", None)
    })?;
    if ids.is_empty() || ids.len() > 10_000 {
        return Err(ApiError::not_found(format!("no job '{batch}'"), "job_not_found", None));
    }
    Ok(ids)
}

/// The jobs of one upload as one embedded-style ingestion job: files done so far, each file's
/// report, and the state of the whole (`queued`, `running`, `done`, or `failed` when every
/// file failed).
pub fn batch_status(batch: &str, kb: &str, jobs: &[zhiku_pg::Job], expected: usize) -> Value {
    use zhiku_pg::JobStatus;
    let finished = |j: &&zhiku_pg::Job| matches!(j.status, JobStatus::Done | JobStatus::Failed);
    let mut files: Vec<Value> = Vec::new();
    for job in jobs.iter().filter(finished) {
        match (&job.status, &job.result) {
            (JobStatus::Done, Some(result)) => files.extend(result["files"].as_array().cloned().unwrap_or_default()),
            _ => files.push(json!({ "source": job.payload["source"], "status": "failed", "reason": job.error })),
        }
    }
    let done = jobs.iter().filter(finished).count();
    let state = if done == expected && expected > 0 {
        if jobs.iter().all(|j| j.status == JobStatus::Failed) {
            "failed"
        } else {
            "done"
        }
    } else if jobs.iter().any(|j| j.status != JobStatus::Pending) {
        "running"
    } else {
        "queued"
    };
    let error = (state == "failed").then(|| jobs.iter().filter_map(|j| j.error.clone()).collect::<Vec<_>>().join("; "));
    json!({ "id": batch, "kb": kb, "state": state, "files_total": expected, "files_done": done, "files": files, "error": error })
}

/// The batch's status as SSE: one `progress` event now and one per change, the last when
/// every job of it has ended. Replicas keep no job state: each poll reads the database.
pub async fn job_events(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(batch): Path<String>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, Sse};
    let ids = batch_ids(&batch)?;
    let engine = cluster(&state)?;
    let poll = {
        let (engine, ids) = (engine.clone(), ids.clone());
        move || {
            let (engine, ids) = (engine.clone(), ids.clone());
            blocking(move || engine.jobs_by_ids(&ids).map_err(ApiError::from))
        }
    };
    let first = poll().await?;
    let Some(kb) = first.first().map(|j| j.kb.clone()) else {
        return Err(ApiError::not_found(format!("no job '{batch}'"), "job_not_found", None));
    };
    if first.iter().any(|j| j.kb != kb) {
        return Err(ApiError::not_found(format!("no upload '{batch}': its jobs are not of one knowledge base"), "job_not_found", None));
    }
    require_editor(&state, &who, &kb).await?;
    let expected = ids.len();
    let stream = futures_util::stream::unfold((Some(first), None::<Value>, false), move |(mut fetched, mut last, ended)| {
        let (poll, batch, kb) = (poll.clone(), batch.clone(), kb.clone());
        async move {
            if ended {
                return None;
            }
            loop {
                let jobs = match fetched.take() {
                    Some(jobs) => jobs,
                    None => {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        poll().await.ok()?
                    }
                };
                let status = batch_status(&batch, &kb, &jobs, expected);
                if last.as_ref() == Some(&status) {
                    continue;
                }
                let ended = matches!(status["state"].as_str(), Some("done" | "failed"));
                let event = Event::default().event("progress").data(json!({ "job": status }).to_string());
                last = Some(status);
                return Some((Ok::<_, std::convert::Infallible>(event), (None, last, ended)));
            }
        }
    });
    Ok(Sse::new(stream).into_response())
}

fn viewers(values: &[String]) -> Result<Vec<Principal>, ApiError> {
    values.iter().map(|v| Principal::parse(v).map_err(|e| ApiError::invalid(format!("acl: {e}"), Some("acl")))).collect()
}

/// Creates a knowledge base (administrators), or on an existing one sets its viewers.
pub async fn create_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    crate::error::ApiJson(request): crate::error::ApiJson<crate::docs::CreateKb>,
) -> Result<Response, ApiError> {
    require_admin(&who)?;
    zhiku_store::validate_kb_name(&request.name).map_err(|e| ApiError::invalid(e.to_string(), Some("name")))?;
    let engine = cluster(&state)?;
    if let Some(model) = request.embedding_model.as_deref().filter(|m| *m != engine.config().embedding_model) {
        return Err(ApiError::invalid(
            format!("embedding_model '{model}': every knowledge base of a shared database uses models.default_embedding"),
            Some("embedding_model"),
        ));
    }
    let acl = viewers(&request.acl)?;
    let name = request.name.clone();
    let created = blocking(move || -> Result<bool, ApiError> {
        let existed = engine.kb_exists(&name)?;
        engine.create_kb(&name, (!acl.is_empty() || !existed).then_some(acl.as_slice()))?;
        Ok(!existed)
    })
    .await?;
    audit(&state, &who, if created { "kb.create" } else { "kb.update" }, Some(request.name.clone()), json!({ "viewers": request.acl }))
        .await?;
    let status = if created { axum::http::StatusCode::CREATED } else { axum::http::StatusCode::OK };
    Ok((status, Json(json!({ "name": request.name, "created": created }))).into_response())
}

/// A knowledge base's settings as a replica has them: the caller's role, its readable
/// documents, and (for its administrators) its viewers and roles.
async fn kb_settings(state: &AppState, who: &Authenticated, kb: String) -> Result<Value, ApiError> {
    let engine = cluster(state)?;
    let caller = who.caller.clone();
    blocking(move || -> Result<Value, ApiError> {
        let role = match engine.role_of(&kb, &caller) {
            Err(zhiku_rag::Error::Pg(zhiku_pg::Error::UnknownKb(_))) => return Err(kb_not_found(&kb)),
            other => other?.unwrap_or(zhiku_core::Role::Viewer),
        };
        let readable = engine.documents(&kb)?.iter().filter(|d| caller.can_read(&d.acl)).count();
        let kb_admin = role == zhiku_core::Role::Admin;
        let roles = if kb_admin { Some(engine.kb_roles(&kb)?) } else { None };
        let acl: Option<Vec<&str>> = roles.as_ref().map(|r| r.iter().map(|(p, _)| p.as_str()).collect());
        let roles: Option<Vec<Value>> = roles.as_ref().map(|r| r.iter().map(|(p, role)| json!({ "principal": p, "role": role })).collect());
        Ok(json!({ "name": kb, "role": role, "acl": acl, "roles": roles, "documents": readable,
                   "embedding_model": engine.config().embedding_model }))
    })
    .await
}

pub async fn get_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    kb_settings(&state, &who, kb).await.map(Json)
}

/// Changes a knowledge base's viewers (its administrators); the other settings are the
/// embedded store's only so far, and asking for them is a clear error, not a silent no-op.
pub async fn update_kb(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Authenticated>,
    Path(kb): Path<String>,
    crate::error::ApiJson(request): crate::error::ApiJson<crate::docs::KbSettings>,
) -> Result<Json<Value>, ApiError> {
    let unsupported = [
        ("pii", request.pii.is_some()),
        ("duplicates", request.duplicates.is_some()),
        ("vector_index", request.vector_index.is_some()),
        ("log_questions", request.log_questions.is_some()),
        ("mask_answers", request.mask_answers.is_some()),
        ("answer_cache", request.answer_cache.is_some()),
        ("embedding_model", request.embedding_model.is_some()),
        ("model", request.model.is_some()),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, given)| *given) {
        return Err(ApiError::invalid(
            format!("{field} is not a setting of a knowledge base in a shared database yet (acl is)"),
            Some(field),
        ));
    }
    if !who.admin {
        crate::auth::check_role(&state, &who, &kb, zhiku_core::Role::Admin).await?;
    }
    if let Some(acl) = &request.acl {
        let (engine, name, acl) = (cluster(&state)?, kb.clone(), viewers(acl)?);
        let changed = blocking(move || match engine.kb_exists(&name)? {
            true => engine.create_kb(&name, Some(&acl)).map_err(ApiError::from),
            false => Err(kb_not_found(&name)),
        })
        .await?;
        audit(&state, &who, "kb.update", Some(kb.clone()), json!({ "viewers": request.acl, "documents": changed })).await?;
    }
    kb_settings(&state, &who, kb).await.map(Json)
}
