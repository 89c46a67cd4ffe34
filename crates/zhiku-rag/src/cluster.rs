//! The scale-out backend: the same ingestion, retrieval and answering as [`crate::Engine`],
//! with every piece of state in a shared PostgreSQL database ([`zhiku_pg`]), so that any number
//! of processes on any number of machines can work on one set of knowledge bases.
//!
//! [`ClusterEngine::enqueue`] turns files into queued jobs; [`Worker::run`] (one per `zhiku
//! worker` process) claims them, parses, embeds and writes each document in one transaction,
//! renewing its lease by heartbeat from a thread of its own. A worker killed in the middle of a
//! job leaves nothing half-written (its transaction dies with its connection); once the lease
//! runs out another worker does the job again, and a document written twice is written once.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use zhiku_core::{Caller, Embedder, PiiPolicy, Principal};
use zhiku_ingest::container::{self, ArchiveLimits, Unpacked};
use zhiku_models::ChatModel;
use zhiku_pg::{Claimed, KbId, NewDocument, NewJob, PgStore, Upsert};

use crate::engine::{answer_from_hits, apply_pii_policy, neutralize_injections};
use crate::inputs::{collect_inputs, Input, Origin};
use crate::{Answer, Error, FileOutcome, FileReport, IngestReport, RagConfig, Result, SearchHit, MAX_NESTING};

/// The job kind a queued file is.
pub const INGEST_JOB: &str = "ingest";

/// One process's view of the shared database.
pub struct ClusterEngine {
    url: String,
    /// Idle connections: a server replica answers many requests at once, each on a connection
    /// of its own.
    idle: Mutex<Vec<PgStore>>,
    embedder: Arc<dyn Embedder>,
    config: RagConfig,
    /// Audit entries of this process's concurrent requests, appended together.
    audit: zhiku_core::audit::GroupCommit,
}

/// Connections kept idle for the next requests; more are opened under load and closed after.
const IDLE_CONNECTIONS: usize = 16;

/// A connection lent from the pool, given back when dropped (unless the database closed it).
pub(crate) struct Lent<'a> {
    engine: &'a ClusterEngine,
    db: Option<PgStore>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        self.db.as_ref().expect("a lent connection is present until dropped")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut PgStore {
        self.db.as_mut().expect("a lent connection is present until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        let mut idle = self.engine.idle.lock().unwrap_or_else(|p| p.into_inner());
        if !db.is_closed() && idle.len() < IDLE_CONNECTIONS {
            idle.push(db);
        }
    }
}

impl crate::audit::AuditLog for ClusterEngine {
    fn append(&self, event: &zhiku_store::AuditEvent<'_>) -> Result<i64> {
        let entry = zhiku_core::audit::PendingEntry::from_event(event);
        self.audit
            .append(entry, |batch| self.db().and_then(|mut db| Ok(db.append_audit(batch)?)).map_err(|e| e.to_string()))
            .map_err(Error::Audit)
    }

    /// A shared database's knowledge bases have no such setting: only hashes are kept.
    fn keeps_question_text(&self, _kb: &str) -> Result<bool> {
        Ok(false)
    }
}

/// What an ingest job carries: where to read the file and what to store it as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IngestPayload {
    /// The name the document is stored and cited under (the path as given to `ingest`).
    source: String,
    /// Where workers read it: an absolute path, so that workers in other directories (or on
    /// other machines sharing the file system) find the same file. Empty for an upload.
    #[serde(default)]
    path: PathBuf,
    /// The file as uploaded through a server replica, held in the database (its row id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload: Option<i64>,
    /// The entry's index when the file is inside a ZIP archive at `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zip_index: Option<usize>,
    /// Given with `--acl`; none: the knowledge base's default ACL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acl: Option<Vec<String>>,
}

impl ClusterEngine {
    /// Connects (migrating the schema if needed) with the embedding model every knowledge base
    /// of this deployment uses.
    pub fn connect(url: &str, embedder: Arc<dyn Embedder>, config: RagConfig) -> Result<Self> {
        let db = PgStore::connect(url)?;
        let embedder = crate::embedding::QueryEmbedder::wrap(embedder, config.retrieval.query_cache);
        Ok(Self { url: url.to_string(), idle: Mutex::new(vec![db]), embedder, config, audit: Default::default() })
    }

    /// An idle connection, or a new one. Connections the database dropped (a restart, a
    /// failover, a network cut) are not lent again: a long-running worker or server outlives
    /// its connections.
    pub(crate) fn db(&self) -> Result<Lent<'_>> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match next {
                Some(db) if db.is_closed() => continue,
                Some(db) => return Ok(Lent { engine: self, db: Some(db) }),
                None => break,
            }
        }
        debug!("opening a database connection");
        Ok(Lent { engine: self, db: Some(PgStore::connect(&self.url)?) })
    }

    pub fn config(&self) -> &RagConfig {
        &self.config
    }

    /// A user with the groups the shared database holds for them.
    pub fn caller_for(&self, user: &str) -> Result<Caller> {
        let groups = self.db()?.groups_of(user)?;
        Ok(Caller::user(user, groups)?)
    }

    pub fn add_member(&self, group: &str, member: &Principal) -> Result<bool> {
        Ok(self.db()?.add_member(group, member)?)
    }

    pub fn remove_member(&self, group: &str, member: &Principal) -> Result<bool> {
        Ok(self.db()?.remove_member(group, member)?)
    }

    pub fn memberships(&self) -> Result<Vec<(String, String)>> {
        Ok(self.db()?.memberships()?)
    }

    pub fn kb_names(&self) -> Result<Vec<String>> {
        Ok(self.db()?.kb_names()?)
    }

    pub fn documents(&self, kb: &str) -> Result<Vec<zhiku_pg::DocumentRow>> {
        let mut db = self.db()?;
        let id = db.kb(kb)?;
        Ok(db.documents(&id)?)
    }

    pub fn jobs(&self, status: Option<zhiku_pg::JobStatus>, limit: usize) -> Result<Vec<zhiku_pg::Job>> {
        Ok(self.db()?.jobs(status, limit)?)
    }

    /// Queues one ingest job per file (directories expanded, ZIP archives listed entry by entry),
    /// all in one transaction. The report lists what could not be listed or read.
    pub fn enqueue(&self, kb: &str, paths: &[PathBuf], acl: Option<&[Principal]>, max_attempts: i32) -> Result<(Vec<i64>, IngestReport)> {
        let mut report = IngestReport::default();
        let inputs = collect_inputs(paths, &mut report);
        self.db()?.ensure_kb(kb, &[])?;
        let acl: Option<Vec<String>> = acl.filter(|a| !a.is_empty()).map(|a| a.iter().map(|p| p.as_str().to_string()).collect());
        let mut jobs = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (path, zip_index) = match &input.origin {
                Origin::File(p) => (p.clone(), None),
                Origin::ZipEntry { archive, index } => (archive.clone(), Some(*index)),
            };
            let path = match std::fs::canonicalize(&path) {
                Ok(p) => p,
                Err(e) => {
                    report.files.push(FileReport::new(input.source, FileOutcome::Failed { reason: format!("cannot resolve: {e}") }));
                    continue;
                }
            };
            let payload = IngestPayload { source: input.source, path, zip_index, acl: acl.clone(), upload: None };
            let payload = serde_json::to_value(&payload).map_err(|e| Error::FileFailed(e.to_string()))?;
            jobs.push(NewJob { kind: INGEST_JOB, kb, payload, max_attempts });
        }
        let ids = self.db()?.enqueue(&jobs)?;
        Ok((ids, report))
    }

    /// Queues a file uploaded through a server replica: the bytes go into the database with the
    /// job, so that any worker on any machine can ingest them. Stored and cited as `name`.
    pub fn enqueue_upload(&self, kb: &str, name: &str, bytes: &[u8], acl: Option<&[Principal]>, max_attempts: i32) -> Result<i64> {
        let mut db = self.db()?;
        db.ensure_kb(kb, &[])?;
        let acl: Option<Vec<String>> = acl.filter(|a| !a.is_empty()).map(|a| a.iter().map(|p| p.as_str().to_string()).collect());
        let payload = IngestPayload { source: name.to_string(), path: PathBuf::new(), zip_index: None, acl, upload: None };
        let payload = serde_json::to_value(&payload).map_err(|e| Error::FileFailed(e.to_string()))?;
        Ok(db.enqueue_upload(&NewJob { kind: INGEST_JOB, kb, payload, max_attempts }, name, bytes)?)
    }

    /// One chunk (a cited passage) if the caller may read it.
    pub fn passage(&self, kb: &str, chunk_id: u64, caller: &Caller) -> Result<Option<SearchHit>> {
        let mut db = self.db()?;
        let kb_id = db.kb(kb)?;
        Ok(crate::engine::readable_passage(db.chunks_by_id(&kb_id, &[chunk_id])?, chunk_id, caller))
    }

    pub fn jobs_by_ids(&self, ids: &[i64]) -> Result<Vec<zhiku_pg::Job>> {
        Ok(self.db()?.jobs_by_ids(ids)?)
    }

    pub fn job(&self, id: i64) -> Result<Option<zhiku_pg::Job>> {
        Ok(self.db()?.job(id)?)
    }

    /// Removes a document (its chunks and vectors with it) by id; its source, or `None` when
    /// the knowledge base holds no such document.
    pub fn delete_document(&self, kb: &str, id: i64) -> Result<Option<String>> {
        let mut db = self.db()?;
        let kb_id = db.kb(kb)?;
        let Some(doc) = db.documents(&kb_id)?.into_iter().find(|d| d.id == id) else { return Ok(None) };
        Ok(db.delete_document(&kb_id, &doc.source)?.then_some(doc.source))
    }

    /// Ingests files here and now (no queue): each file in its own transaction.
    /// With `sync`, the knowledge base mirrors the given directories: documents whose files are
    /// gone from them are removed too (as `ingest --sync` on the embedded store).
    pub fn ingest(&self, kb: &str, paths: &[PathBuf], acl: Option<&[Principal]>, sync: bool) -> Result<IngestReport> {
        let mut report = IngestReport::default();
        let inputs = collect_inputs(paths, &mut report);
        let kb_id = self.db()?.ensure_kb(kb, &[])?;
        if sync {
            let stored = self.db()?.documents(&kb_id)?.into_iter().map(|d| d.source).collect();
            for source in crate::inputs::vanished_sources(stored, paths, &inputs, &report) {
                if self.db()?.delete_document(&kb_id, &source)? {
                    report.files.push(FileReport::new(source, FileOutcome::Removed));
                }
            }
        }
        let acl = self.effective_acl(&kb_id, acl)?;
        for input in inputs {
            self.ingest_input(&kb_id, &input, &acl, &mut report)?;
        }
        Ok(report)
    }

    /// The ACL given for the files, else the knowledge base's viewers (followed from then on).
    fn effective_acl(&self, kb: &KbId, acl: Option<&[Principal]>) -> Result<Access> {
        match acl {
            Some(a) if !a.is_empty() => Ok(Access { acl: a.to_vec(), own: true }),
            _ => Ok(Access { acl: self.db()?.kb_default_acl(kb)?, own: false }),
        }
    }

    /// One input (a file, or an entry of a ZIP archive): containers are opened and their files
    /// stored as `container!/name`. Bad input becomes a failed file in the report; only
    /// database and model errors (worth retrying elsewhere) are returned.
    fn ingest_input(&self, kb: &KbId, input: &Input, acl: &Access, report: &mut IngestReport) -> Result<()> {
        match input.read() {
            Ok(bytes) => {
                let depth = usize::from(input.zip_index().is_some());
                self.ingest_bytes(kb, &input.source, input.file_name(), bytes, depth, acl, report)
            }
            Err(reason) => {
                report.files.push(FileReport::new(input.source.clone(), FileOutcome::Failed { reason }));
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_bytes(
        &self,
        kb: &KbId,
        source: &str,
        name: &str,
        bytes: Vec<u8>,
        depth: usize,
        acl: &Access,
        report: &mut IngestReport,
    ) -> Result<()> {
        let failed = |reason: String| FileReport::new(source.to_string(), FileOutcome::Failed { reason });
        let unpacked = catch_unwind(AssertUnwindSafe(|| container::unpack(name, &bytes, &ArchiveLimits::default())))
            .unwrap_or_else(|_| Unpacked::Failed("the archive reader crashed on this file; please report it".into()));
        match unpacked {
            Unpacked::Failed(reason) => report.files.push(failed(reason)),
            Unpacked::Entries(entries) => {
                if depth >= MAX_NESTING {
                    report.files.push(failed(format!("containers nested deeper than {MAX_NESTING} levels: extract this one first")));
                    return Ok(());
                }
                for entry in entries {
                    let child = format!("{source}!/{}", entry.name);
                    match entry.content {
                        Ok(b) => {
                            let file_name = entry.name.rsplit('/').next().unwrap_or(&entry.name).to_string();
                            self.ingest_bytes(kb, &child, &file_name, b, depth + 1, acl, report)?;
                        }
                        Err(reason) => report.files.push(FileReport::new(child, FileOutcome::Failed { reason })),
                    }
                }
            }
            Unpacked::Document => self.ingest_document(kb, source, name, &bytes, depth, acl, report)?,
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_document(
        &self,
        kb: &KbId,
        source: &str,
        name: &str,
        bytes: &[u8],
        depth: usize,
        acl: &Access,
        report: &mut IngestReport,
    ) -> Result<()> {
        let hash = zhiku_ingest::content_hash(bytes);
        if self.db()?.is_unchanged(kb, source, &hash, &acl.acl, acl.own)? {
            report.files.push(FileReport::new(source.to_string(), FileOutcome::Unchanged));
            return Ok(());
        }
        let counter: &dyn zhiku_core::TokenCounter = self.embedder.as_ref();
        let prepared = catch_unwind(AssertUnwindSafe(|| crate::ocr::prepare_file(name, bytes, &self.config.chunk, counter)));
        let mut prepared = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(reason)) => {
                report.files.push(FileReport::new(source.to_string(), FileOutcome::Failed { reason }));
                return Ok(());
            }
            Err(_) => {
                let reason = "the parser crashed on this file; please report it".to_string();
                report.files.push(FileReport::new(source.to_string(), FileOutcome::Failed { reason }));
                return Ok(());
            }
        };
        for attachment in std::mem::take(&mut prepared.embedded) {
            let child = format!("{source}!/{}", attachment.name);
            self.ingest_bytes(kb, &child, &attachment.name.clone(), attachment.bytes, depth + 1, acl, report)?;
        }
        let mut file = FileReport::new(source.to_string(), FileOutcome::Unchanged);
        let chunks = neutralize_injections(prepared.chunks, &mut file.injection);
        let chunks = apply_pii_policy(chunks, PiiPolicy::default(), &mut file.pii);
        if chunks.is_empty() {
            file.outcome = FileOutcome::Failed { reason: "no text found".into() };
            report.files.push(file);
            return Ok(());
        }
        let texts: Vec<String> = chunks.iter().map(|c| zhiku_index::index_text(&c.heading_path, &c.text)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embeddings = self.embedder.embed(&refs)?;
        let chunks: Vec<_> = chunks.into_iter().zip(embeddings).collect();
        let doc = NewDocument {
            source,
            content_hash: &hash,
            title: prepared.title.as_deref(),
            format: prepared.format,
            language: prepared.language,
            acl: &acl.acl,
            own_acl: acl.own,
            chunks: &chunks,
        };
        file.outcome = match self.db()?.upsert_document(kb, &doc)? {
            Upsert::Inserted { chunks, .. } => FileOutcome::Ingested { chunks },
            Upsert::Replaced { chunks, .. } => FileOutcome::Replaced { chunks },
            Upsert::Unchanged => FileOutcome::Unchanged,
        };
        debug!(source, "stored");
        report.files.push(file);
        Ok(())
    }

    /// Does one claimed job. `Err` only for what may pass on another try (the database or the
    /// embedding model away); bad input is reported in the `IngestReport`.
    pub fn run_job(&self, job: &Claimed) -> Result<IngestReport> {
        if job.kind != INGEST_JOB {
            return Err(Error::FileFailed(format!("unknown job kind '{}': a newer zhiku queued it", job.kind)));
        }
        let payload: IngestPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| Error::FileFailed(format!("job {}: unreadable payload: {e}", job.id)))?;
        let kb = self.db()?.ensure_kb(&job.kb, &[])?;
        let given: Option<Vec<Principal>> = match &payload.acl {
            Some(list) => Some(list.iter().map(|p| Principal::parse(p)).collect::<zhiku_core::Result<_>>()?),
            None => None,
        };
        let acl = self.effective_acl(&kb, given.as_deref())?;
        let mut report = IngestReport::default();
        if let Some(upload) = payload.upload {
            let bytes = self.db()?.upload(upload)?.ok_or_else(|| {
                Error::FileFailed(format!("job {}: its uploaded file is no longer in the database (the job ended before)", job.id))
            })?;
            let name = payload.source.rsplit(['/', '!']).next().unwrap_or(&payload.source).to_string();
            self.ingest_bytes(&kb, &payload.source, &name, bytes, 0, &acl, &mut report)?;
            return Ok(report);
        }
        let origin = match payload.zip_index {
            Some(index) => Origin::ZipEntry { archive: payload.path.clone(), index },
            None => Origin::File(payload.path.clone()),
        };
        self.ingest_input(&kb, &Input { source: payload.source, origin }, &acl, &mut report)?;
        Ok(report)
    }

    /// Vector and keyword candidates, each filtered by the caller's principals in its SQL,
    /// fused as the embedded engine fuses them.
    pub fn search(&self, kb: &str, query: &str, caller: &Caller, top_k: usize) -> Result<Vec<SearchHit>> {
        let query = query.trim();
        let kb_id = self.db()?.kb(kb)?;
        if query.is_empty() || top_k == 0 {
            return Ok(Vec::new());
        }
        let q = self.embedder.embed_queries(&[query])?.pop().unwrap_or_default();
        self.search_embedded(&kb_id, query, &q, caller, top_k)
    }

    fn search_embedded(&self, kb: &KbId, query: &str, q: &[f32], caller: &Caller, top_k: usize) -> Result<Vec<SearchHit>> {
        let retrieval = &self.config.retrieval;
        let candidates = retrieval.candidates.max(top_k);
        let mut db = self.db()?;
        let lists = vec![db.vector_search(kb, q, caller, candidates)?, db.keyword_search(kb, query, caller, candidates)?];
        let fused = retrieval.fuse(lists);
        let scores: BTreeMap<u64, f32> = fused.iter().take(top_k).copied().collect();
        let ids: Vec<u64> = scores.keys().copied().collect();
        let mut chunks = db.chunks_by_id(kb, &ids)?;
        drop(db);
        // Defence in depth: the SQL filtered already.
        chunks.retain(|c| caller.can_read(&c.acl));
        let mut hits: Vec<SearchHit> = chunks
            .into_iter()
            .map(|c| SearchHit {
                score: scores.get(&c.id).copied().unwrap_or(0.0),
                similarity: zhiku_index::dot(q, &c.embedding),
                source: c.source,
                chunk_id: c.id.to_string(),
                text: c.chunk.text,
                heading_path: c.chunk.heading_path,
                char_start: c.chunk.char_start,
                char_end: c.chunk.char_end,
                page: c.chunk.page,
                via_graph: false,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk_id.cmp(&b.chunk_id)));
        Ok(hits)
    }

    /// Retrieves and answers with citations, or abstains, as [`crate::Engine::ask_with`] does;
    /// `on_text` returning false stops the generation.
    pub fn ask_with(
        &self,
        kb: &str,
        question: &str,
        caller: &Caller,
        model: &dyn ChatModel,
        options: &zhiku_models::GenerationOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer> {
        let kb_id = self.db()?.kb(kb)?;
        let question = question.trim();
        let hits = if question.is_empty() {
            Vec::new()
        } else {
            let q = self.embedder.embed_queries(&[question])?.pop().unwrap_or_default();
            self.search_embedded(&kb_id, question, &q, caller, self.config.retrieval.answer_sources)?
        };
        answer_from_hits(question, hits, Vec::new(), &self.config, false, model, options, on_text)
    }

    /// Creates the knowledge base if needed and, with `viewers`, sets who reads the documents
    /// ingested without an ACL of their own (those documents follow at once). Returns how many
    /// documents changed.
    pub fn create_kb(&self, kb: &str, viewers: Option<&[Principal]>) -> Result<u64> {
        let mut db = self.db()?;
        let id = db.ensure_kb(kb, &[])?;
        match viewers {
            Some(viewers) => Ok(db.set_kb_default_acl(&id, viewers)?),
            None => Ok(0),
        }
    }

    /// Gives a principal a role on a knowledge base (or takes it away); how many inheriting
    /// documents moved to the new readers.
    pub fn set_kb_role(&self, kb: &str, principal: &Principal, role: Option<zhiku_core::Role>) -> Result<u64> {
        let mut db = self.db()?;
        let id = db.kb(kb)?;
        Ok(db.set_kb_role(&id, principal, role)?)
    }

    pub fn kb_roles(&self, kb: &str) -> Result<Vec<(Principal, zhiku_core::Role)>> {
        let mut db = self.db()?;
        let id = db.kb(kb)?;
        Ok(db.kb_roles(&id)?)
    }

    /// The strongest role the caller holds on the knowledge base; the administrator holds all.
    pub fn role_of(&self, kb: &str, caller: &Caller) -> Result<Option<zhiku_core::Role>> {
        let Some(held) = caller.principals() else { return Ok(Some(zhiku_core::Role::Admin)) };
        let mut db = self.db()?;
        let id = db.kb(kb)?;
        Ok(db.role_of(&id, &held.iter().cloned().collect::<Vec<_>>())?)
    }

    /// Gives a document an ACL of its own, or (`None`) makes it follow the knowledge base's
    /// viewers again; false when the knowledge base has no such document.
    pub fn set_document_acl(&self, kb: &str, source: &str, acl: Option<&[Principal]>) -> Result<bool> {
        let mut db = self.db()?;
        let id = db.kb(kb)?;
        Ok(db.set_document_acl(&id, source, acl)?)
    }

    pub fn kb_exists(&self, kb: &str) -> Result<bool> {
        match self.db()?.kb(kb) {
            Ok(_) => Ok(true),
            Err(zhiku_pg::Error::UnknownKb(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an API key in the shared database (every replica accepts it); returns its id and
    /// the key, shown this once.
    pub fn create_api_key(&self, name: &str, user: &str, scopes: &[&str], expires_in_seconds: Option<i64>) -> Result<(String, String)> {
        Principal::user(user)?;
        Ok(self.db()?.create_api_key(name, user, scopes, expires_in_seconds)?)
    }

    pub fn verify_api_key(&self, presented: &str) -> Result<Option<zhiku_pg::KeyHolder>> {
        Ok(self.db()?.verify_api_key(presented)?)
    }

    pub fn revoke_api_key(&self, id: &str) -> Result<bool> {
        Ok(self.db()?.revoke_api_key(id)?)
    }

    /// Takes one of `user`'s requests per minute, counted across every replica; `Err(seconds)`
    /// to wait.
    pub fn take_request(&self, user: &str, per_minute: u32) -> Result<std::result::Result<(), u64>> {
        Ok(self.db()?.take_request(user, per_minute)?)
    }

    /// Entries of the shared audit log matching the filter, oldest first.
    pub fn audit_records(&self, filter: &zhiku_core::audit::AuditFilter) -> Result<Vec<zhiku_core::audit::AuditRecord>> {
        Ok(self.db()?.audit_records(filter)?)
    }

    /// Checks the shared audit chain: entries and the latest hash, or where it breaks.
    pub fn verify_audit(&self) -> Result<std::result::Result<(i64, String), zhiku_core::audit::ChainBreak>> {
        Ok(self.db()?.verify_audit()?)
    }

    /// The database answers.
    pub fn ping(&self) -> Result<()> {
        self.db()?.schema_version()?;
        Ok(())
    }

    /// Copies the embedded store's knowledge bases (documents, chunks and their vectors: nothing
    /// is embedded again) and group memberships into the shared database, then checks that every
    /// copied document is there with its content hash and chunk count. Safe to run again:
    /// documents already copied are left as they are. Documents whose ingestion was cut short
    /// are skipped (ingest them again), and knowledge bases embedded with another model than
    /// this deployment's are refused.
    pub fn migrate_from(&self, store: &zhiku_store::Store, progress: &mut dyn FnMut(&str, usize, usize)) -> Result<MigrationReport> {
        let mut report = MigrationReport::default();
        // The chain first: the migration's own entry then follows the copied ones.
        match self.db()?.import_audit(&store.audit_entries()?)? {
            Ok(copied) => report.audit_entries = copied,
            Err(why) => report.audit_note = Some(why),
        }
        for (account, hash) in store.accounts_with_hashes()? {
            if self.db()?.import_user(&account, hash.as_deref())? {
                report.accounts += 1;
            }
        }
        for (user, exchange) in store.exchanges_with_users()? {
            if self.db()?.import_exchange(&user, &exchange)? {
                report.exchanges += 1;
            }
        }
        for (group, user) in store.group_members()? {
            self.db()?.add_member(&group, &Principal::user(&user)?)?;
            report.memberships += 1;
        }
        for (parent, child) in store.subgroups()? {
            self.db()?.add_member(&parent, &Principal::group(&child)?)?;
            report.memberships += 1;
        }
        for name in store.list_kbs()? {
            let model = store.kb_embedding_model(&name)?;
            if model != self.config.embedding_model {
                let reason = format!(
                    "embedded with '{model}', this deployment embeds with '{}': move it to that model first (kb create {name} --embedding-model {})",
                    self.config.embedding_model, self.config.embedding_model
                );
                report.refused.push(RefusedKb { name, reason });
                continue;
            }
            let kb = self.db()?.ensure_kb(&name, &[])?;
            for (principal, role) in store.kb_roles(&name)? {
                self.db()?.set_kb_role(&kb, &principal, Some(role))?;
            }
            let documents = store.documents(&name)?;
            let mut migrated = MigratedKb { name: name.clone(), ..Default::default() };
            for (i, doc) in documents.iter().enumerate() {
                progress(&name, i, documents.len());
                if doc.partial {
                    migrated.skipped.push(doc.source.clone());
                    continue;
                }
                let chunks: Vec<(zhiku_core::Chunk, Vec<f32>)> =
                    store.document_chunks(doc.id)?.into_iter().map(|c| (c.chunk, c.embedding)).collect();
                if chunks.is_empty() {
                    migrated.skipped.push(doc.source.clone());
                    continue;
                }
                let new = NewDocument {
                    source: &doc.source,
                    content_hash: &doc.content_hash,
                    title: doc.title.as_deref(),
                    format: &doc.format,
                    language: &doc.language,
                    acl: &doc.acl,
                    own_acl: !doc.acl_inherited,
                    chunks: &chunks,
                };
                match self.db()?.upsert_document(&kb, &new)? {
                    Upsert::Unchanged => migrated.unchanged += 1,
                    Upsert::Inserted { .. } | Upsert::Replaced { .. } => migrated.copied += 1,
                }
                migrated.chunks += chunks.len();
            }
            progress(&name, documents.len(), documents.len());
            // Verify what is there now, not what the writes said.
            let stored: BTreeMap<String, (String, i64)> =
                self.db()?.documents(&kb)?.into_iter().map(|d| (d.source, (d.content_hash, d.chunks))).collect();
            for doc in documents.iter().filter(|d| !migrated.skipped.contains(&d.source)) {
                match stored.get(&doc.source) {
                    Some((hash, chunks)) if *hash == doc.content_hash && *chunks as usize == doc.chunks => migrated.documents += 1,
                    found => {
                        return Err(Error::FileFailed(format!(
                            "verification failed for {name}/{}: the shared database holds {found:?}, the embedded store {} chunks of {}",
                            doc.source, doc.chunks, doc.content_hash
                        )))
                    }
                }
            }
            report.kbs.push(migrated);
        }
        Ok(report)
    }

    /// A worker over this engine's database, named uniquely among all workers.
    pub fn worker(&self, lease: Duration) -> Worker<'_> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
        // Told apart from an earlier process that had the same pid.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default();
        let nonce = zhiku_core::random::SplitMix64::new(nanos).next_u64() & 0xffff_ffff;
        Worker { engine: self, name: format!("{host}-{}-{nonce:08x}", std::process::id()), lease }
    }
}

/// Who may read what is being ingested.
struct Access {
    acl: Vec<Principal>,
    /// Given for these files rather than the knowledge base's viewers.
    own: bool,
}

impl Input {
    fn zip_index(&self) -> Option<usize> {
        match self.origin {
            Origin::ZipEntry { index, .. } => Some(index),
            Origin::File(_) => None,
        }
    }
}

/// What [`ClusterEngine::migrate_from`] copied and verified.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MigrationReport {
    pub kbs: Vec<MigratedKb>,
    pub refused: Vec<RefusedKb>,
    /// Group memberships (users in groups, groups in groups) copied.
    pub memberships: usize,
    /// Audit entries copied (the chain continues in the shared database).
    pub audit_entries: usize,
    /// Accounts copied with their password hashes (ones already there are left as they are).
    pub accounts: usize,
    /// Stored exchanges (conversation history and ratings) copied.
    pub exchanges: usize,
    /// Why no audit entries were copied, when the two chains have diverged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MigratedKb {
    pub name: String,
    /// Documents verified in the shared database (copied now or before).
    pub documents: usize,
    pub copied: usize,
    pub unchanged: usize,
    pub chunks: usize,
    /// Documents left behind: their ingestion was cut short.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusedKb {
    pub name: String,
    pub reason: String,
}

/// What a worker did while it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkerSummary {
    pub done: usize,
    pub failed: usize,
    pub retried: usize,
}

pub struct Worker<'a> {
    engine: &'a ClusterEngine,
    name: String,
    lease: Duration,
}

impl Worker<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claims and does jobs until `stop` is set, or — with `until_idle` — until no job is
    /// pending or running anywhere. Between jobs it polls every `poll`.
    pub fn run(
        &self,
        until_idle: bool,
        poll: Duration,
        stop: &AtomicBool,
        on_job: &mut dyn FnMut(&Claimed, &str),
    ) -> Result<WorkerSummary> {
        let heartbeat = Heartbeat::start(&self.engine.url, &self.name, self.lease)?;
        let mut summary = WorkerSummary::default();
        info!(worker = %self.name, "worker started");
        let mut backoff = FIRST_BACKOFF;
        while !stop.load(Ordering::Relaxed) {
            match self.turn(until_idle, &heartbeat, &mut summary, on_job) {
                Ok(Turn::Worked) => backoff = FIRST_BACKOFF,
                Ok(Turn::Idle) => std::thread::sleep(poll),
                Ok(Turn::Drained) => break,
                // The database is away (restarting, failing over): the job in hand, if any,
                // stays leased and is done again once its lease runs out.
                Err(e) => {
                    warn!(worker = %self.name, error = %e, "the database is unavailable; trying again in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(LONGEST_BACKOFF);
                }
            }
        }
        Ok(summary)
    }

    /// Claims one job and does it; `Idle` when there was none.
    fn turn(
        &self,
        until_idle: bool,
        heartbeat: &Heartbeat,
        summary: &mut WorkerSummary,
        on_job: &mut dyn FnMut(&Claimed, &str),
    ) -> Result<Turn> {
        let claimed = self.engine.db()?.claim(&self.name, self.lease.as_secs_f64())?;
        let Some(job) = claimed else {
            return Ok(if until_idle && self.engine.db()?.open_jobs()? == 0 { Turn::Drained } else { Turn::Idle });
        };
        heartbeat.watch(Some(job.id));
        let outcome = self.engine.run_job(&job);
        heartbeat.watch(None);
        let mut db = self.engine.db()?;
        let status = match outcome {
            Ok(report) => {
                let failed: Vec<&FileReport> = report.files.iter().filter(|f| matches!(f.outcome, FileOutcome::Failed { .. })).collect();
                if !report.files.is_empty() && failed.len() == report.files.len() {
                    let reason = failed
                        .iter()
                        .map(|f| match &f.outcome {
                            FileOutcome::Failed { reason } => format!("{}: {reason}", f.source),
                            _ => String::new(),
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    db.fail(job.id, &self.name, &reason, false)?;
                    summary.failed += 1;
                    "failed"
                } else {
                    let result = serde_json::to_value(&report).unwrap_or_default();
                    db.complete(job.id, &self.name, &result)?;
                    summary.done += 1;
                    "done"
                }
            }
            Err(e @ (Error::FileFailed(_) | Error::Core(_))) => {
                db.fail(job.id, &self.name, &e.to_string(), false)?;
                summary.failed += 1;
                "failed"
            }
            Err(e) => {
                warn!(job = job.id, error = %e, "job failed; it goes back to the queue while it has attempts left");
                db.fail(job.id, &self.name, &e.to_string(), true)?;
                summary.retried += 1;
                "retried"
            }
        };
        drop(db);
        on_job(&job, status);
        Ok(Turn::Worked)
    }
}

enum Turn {
    Worked,
    Idle,
    /// Nothing pending or running anywhere.
    Drained,
}

/// Waits between attempts to reach an unavailable database.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);

/// Renews the lease of the job being worked on, from a thread with its own connection, so
/// that a long parse or embedding never lets the lease run out while the worker is alive.
struct Heartbeat {
    current: Arc<Mutex<Option<i64>>>,
    stopped: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(url: &str, worker: &str, lease: Duration) -> Result<Self> {
        let mut db = PgStore::connect(url)?;
        let url = url.to_string();
        let current = Arc::new(Mutex::new(None::<i64>));
        let stopped = Arc::new(AtomicBool::new(false));
        let (watched, stop, worker) = (current.clone(), stopped.clone(), worker.to_string());
        // Three beats per lease: one lost beat does not lose the job.
        let beat = lease / 3;
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(beat);
                let job = *watched.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(job) = job {
                    if db.is_closed() {
                        match PgStore::connect(&url) {
                            Ok(fresh) => db = fresh,
                            Err(e) => {
                                warn!(job, error = %e, "heartbeat: the database is unavailable");
                                continue;
                            }
                        }
                    }
                    match db.heartbeat(job, &worker, lease.as_secs_f64()) {
                        Ok(true) => {}
                        Ok(false) => warn!(job, "lost the lease of this job: another worker took it over"),
                        Err(e) => warn!(job, error = %e, "heartbeat failed"),
                    }
                }
            }
        });
        Ok(Self { current, stopped, thread: Some(thread) })
    }

    fn watch(&self, job: Option<i64>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = job;
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
