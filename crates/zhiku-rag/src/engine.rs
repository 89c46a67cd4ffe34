use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tracing::{debug, info, info_span};
use zhiku_core::{Caller, DuplicatePolicy, Embedder, Principal};
use zhiku_index::{VectorIndexKind, VectorIndexRead};
use zhiku_ingest::injection::{self, InjectionKind};
use zhiku_ingest::pii::{self, PiiKind, PiiPolicy};
use zhiku_ingest::{minhash, PreparedDocument};
use zhiku_models::{ChatMessage, ChatModel};
use zhiku_store::{AclChange, NewDocument, Store, Upsert};

use crate::cite::{
    attribute_uncited, cited_numbers, extractive_answer, is_abstention, mentions_to_markers, remove_invalid_markers, trim_runaway,
    RunawayGuard, NOT_FOUND,
};
use crate::embedding::{EmbedderLoader, EmbeddingModels};
use crate::graph::{self, EntityView, GraphUpdate, GraphView, PathStep, RetrievalMode};
use crate::indexes::{Access, KbIndexes};
use crate::inputs::{collect_inputs, Input};
pub use crate::pipeline::MAX_NESTING;
use crate::pipeline::{Parser, Work, IN_FLIGHT};
use crate::prompt::{build_user_prompt, Source, SYSTEM_PROMPT};
use crate::{Error, RagConfig, Result};
use zhiku_index::index_text;

/// The pipeline over one data directory: ingestion, hybrid search and answering, every one of
/// them acting as a [`Caller`].
pub struct Engine {
    data_dir: PathBuf,
    store: Arc<Store>,
    embedders: EmbeddingModels,
    reranker: Option<Arc<dyn crate::rerank::Reranker>>,
    config: RagConfig,
    /// Per knowledge base, the indexes opened for searching with the store generation and
    /// vector index choice they reflect: a long-running server answers from memory and
    /// reopens only after a change.
    read_cache: Mutex<HashMap<String, OpenedIndexes>>,
    answers: crate::answer_cache::AnswerCache,
    /// One writer per knowledge base at a time in this process (ingestion, deletion, ACL
    /// changes all update the same index files).
    write_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// For the `llm` graph extractor.
    graph_model: Option<(Arc<dyn ChatModel>, String)>,
}

/// Search indexes as opened at a store generation with a vector index choice.
struct OpenedIndexes {
    generation: u64,
    kind: VectorIndexKind,
    indexes: Arc<KbIndexes>,
}

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileOutcome {
    Ingested {
        chunks: usize,
    },
    Replaced {
        chunks: usize,
    },
    Unchanged,
    /// The same content is already in the knowledge base under another source; not indexed
    /// twice (an earlier version of this source, if any, is removed).
    Duplicate {
        of: String,
    },
    /// Nearly the same text as another source (estimated Jaccard similarity of 5-character
    /// shingles at or above the configured threshold); not indexed.
    NearDuplicate {
        of: String,
        similarity: f32,
    },
    /// With `sync`: the file is gone from the synced directory, so its document was removed.
    Removed,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    pub source: String,
    #[serde(flatten)]
    pub outcome: FileOutcome,
    /// Personal data and secrets found in the file, by kind (before the KB's policy applied).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pii: BTreeMap<PiiKind, usize>,
    /// Prompt-injection attempts found in the file, by kind (control tokens are neutralised;
    /// instruction-like text is marked as such whenever it reaches a prompt).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub injection: BTreeMap<InjectionKind, usize>,
    /// With the knowledge base's duplicate policy `keep`: the source this file (nearly) repeats,
    /// indexed anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

impl FileReport {
    pub(crate) fn new(source: String, outcome: FileOutcome) -> Self {
        Self { source, outcome, pii: BTreeMap::new(), injection: BTreeMap::new(), duplicate_of: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
    /// What the knowledge graph read of the new chunks (when the graph is enabled).
    pub graph: Option<GraphUpdate>,
}

impl IngestReport {
    pub fn count(&self, pred: impl Fn(&FileOutcome) -> bool) -> usize {
        self.files.iter().filter(|f| pred(&f.outcome)).count()
    }
    pub fn ingested(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Ingested { .. } | FileOutcome::Replaced { .. }))
    }
    pub fn unchanged(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Unchanged))
    }
    pub fn duplicates(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Duplicate { .. } | FileOutcome::NearDuplicate { .. }))
    }
    pub fn removed(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Removed))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Failed { .. }))
    }
    /// PII findings of the whole batch, by kind.
    pub fn pii(&self) -> BTreeMap<PiiKind, usize> {
        let mut total = BTreeMap::new();
        for f in &self.files {
            for (kind, n) in &f.pii {
                *total.entry(*kind).or_insert(0) += n;
            }
        }
        total
    }
    /// Prompt-injection findings of the whole batch, by kind.
    pub fn injection(&self) -> BTreeMap<InjectionKind, usize> {
        let mut total = BTreeMap::new();
        for f in &self.files {
            for (kind, n) in &f.injection {
                *total.entry(*kind).or_insert(0) += n;
            }
        }
        total
    }
    pub fn chunks(&self) -> usize {
        self.files
            .iter()
            .map(|f| match f.outcome {
                FileOutcome::Ingested { chunks } | FileOutcome::Replaced { chunks } => chunks,
                _ => 0,
            })
            .sum()
    }
}

/// One search result, in the shape of the `search --json` contract plus context fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub source: String,
    pub chunk_id: String,
    /// Fused (RRF) score: only its order is meaningful.
    pub score: f32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub char_start: usize,
    pub char_end: usize,
    pub page: Option<u32>,
    /// Cosine similarity between the query and the chunk, the absolute relevance signal.
    pub similarity: f32,
    /// Found (also) by walking the knowledge graph from the entities the query names.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub via_graph: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Citation {
    pub n: usize,
    pub source: String,
    pub chunk_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub answer: String,
    pub citations: Vec<Citation>,
    pub abstained: bool,
    /// False when the answer quotes the sources because the model's text was unsupported by
    /// them (or when no model was called).
    pub generated: bool,
    /// Served from the knowledge base's answer cache (an earlier, nearly identical question by a
    /// caller with the same principals, the knowledge base unchanged since).
    pub cached: bool,
    /// The rewordings searched besides the question (`retrieval.rewrites`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<String>,
}

impl Answer {
    /// "Not found in the knowledge base", after the model was asked (`generated`) or not.
    fn not_found(generated: bool, rewrites: Vec<String>) -> Self {
        Answer { answer: NOT_FOUND.into(), citations: Vec::new(), abstained: true, generated, cached: false, rewrites }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestOptions {
    /// Who may read the documents; `None` or empty: the knowledge base's default ACL.
    pub acl: Option<Vec<Principal>>,
    /// Make the knowledge base mirror the given directories: documents whose source lies under
    /// one of them but whose file no longer exists are removed.
    pub sync: bool,
    /// The embedding model of a knowledge base this ingest creates (`None`: the configured
    /// default). An existing knowledge base keeps its own.
    pub embedding_model: Option<String>,
}

/// Progress of a batch ingest, for progress bars.
pub enum IngestEvent<'a> {
    Started {
        files: usize,
    },
    /// A container was opened: this many more files to go.
    Discovered {
        files: usize,
    },
    FileDone {
        report: &'a FileReport,
    },
}

/// The state of one ingest run.
struct Batch<'a> {
    store: &'a Store,
    /// The knowledge base's embedding model.
    embedder: Arc<dyn Embedder>,
    kb: &'a str,
    /// The ACL given for the files (`own_acl`), or the knowledge base's inherited one.
    acl: Vec<Principal>,
    own_acl: bool,
    pii_policy: PiiPolicy,
    duplicates: DuplicatePolicy,
    indexes: KbIndexes,
    report: IngestReport,
    /// Documents written since the derived indexes were last committed.
    pending: usize,
    /// The file being stored a section at a time, until its last section.
    open: Option<OpenDocument>,
    progress: &'a mut dyn FnMut(IngestEvent<'_>),
}

/// A huge file between its first section and its last.
struct OpenDocument {
    report: FileReport,
    content_hash: String,
    /// `None` when the first section settled it without storing (a duplicate, a failure): the
    /// other sections are then passed over.
    stored: Option<StoredSoFar>,
}

/// A document as written: its id and the ACL it was stored with.
type StoredAs = (i64, Vec<Principal>);

struct StoredSoFar {
    doc_id: i64,
    /// The ACL the document was stored with (it may have kept one of its own).
    acl: Vec<Principal>,
    chunks: usize,
    replaced: bool,
}

impl Batch<'_> {
    fn finish(&mut self, report: FileReport) -> Result<()> {
        if matches!(report.outcome, FileOutcome::Ingested { .. } | FileOutcome::Replaced { .. } | FileOutcome::Removed) {
            self.pending += 1;
            // Commit the derived indexes every so often so a crash loses little index work (the
            // store already has every finished file; a stale index is rebuilt on open).
            if self.pending >= 64 {
                self.indexes.commit(self.store.generation(self.kb)?)?;
                self.pending = 0;
            }
        }
        self.report.files.push(report);
        (self.progress)(IngestEvent::FileDone { report: self.report.files.last().expect("just pushed") });
        Ok(())
    }
}

impl Engine {
    pub fn new(data_dir: &Path, store: Arc<Store>, embedder: Arc<dyn Embedder>, config: RagConfig) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            store,
            embedders: EmbeddingModels::new(config.embedding_model.clone(), embedder, config.retrieval.query_cache),
            reranker: match config.retrieval.rerank {
                crate::Rerank::None => None,
                crate::Rerank::Similarity => Some(Arc::new(crate::rerank::SimilarityReranker)),
            },
            config,
            read_cache: Mutex::new(HashMap::new()),
            answers: Default::default(),
            write_locks: Mutex::default(),
            graph_model: None,
        }
    }

    /// The language model the `llm` graph extractor asks (`graph.extractor = "llm"`), named for
    /// the extraction cache.
    pub fn with_graph_model(mut self, model: Arc<dyn ChatModel>, id: String) -> Self {
        self.graph_model = Some((model, id));
        self
    }

    /// Re-ranks fused candidates with `reranker` (a cross-encoder, say) instead of the configured one.
    pub fn with_reranker(mut self, reranker: Arc<dyn crate::rerank::Reranker>) -> Self {
        self.reranker = Some(reranker);
        self
    }

    /// Makes another embedding model available to knowledge bases, under `name`, loaded the
    /// first time one uses it.
    pub fn with_embedding_model(mut self, name: &str, load: EmbedderLoader) -> Self {
        self.embedders.loaders.insert(name.to_string(), load);
        self
    }

    /// The names of the embedding models knowledge bases may choose.
    pub fn embedding_models(&self) -> Vec<String> {
        self.embedders.names()
    }

    /// The embedding model a knowledge base's vectors are made with.
    pub fn embedder_for(&self, kb: &str) -> Result<Arc<dyn Embedder>> {
        self.embedders.get(&self.store.kb_embedding_model(kb)?)
    }

    /// Creates a knowledge base with `viewers` and an embedding model (`None`: the configured
    /// default); false when it exists (nothing is changed then).
    pub fn create_kb(&self, kb: &str, viewers: &[Principal], embedding_model: Option<&str>) -> Result<bool> {
        let model = embedding_model.unwrap_or(&self.embedders.default);
        self.embedders.get(model)?;
        let created = self.store.ensure_kb(kb, viewers)?;
        if created {
            self.store.set_kb_embedding_model(kb, model)?;
        }
        Ok(created)
    }

    /// Moves a knowledge base to another embedding model: every chunk embedded again, then the
    /// vectors and the model swapped in one transaction (a search sees all old or all new),
    /// the indexes rebuilt from them. Returns the chunks re-embedded (0: already on that model).
    pub fn set_embedding_model(&self, kb: &str, model: &str, progress: &mut dyn FnMut(usize, usize)) -> Result<usize> {
        self.require_kb(kb)?;
        let embedder = self.embedders.get(model)?;
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.kb_embedding_model(kb)? == model {
            return Ok(0);
        }
        let chunks = self.store.chunks(kb)?;
        let mut vectors = Vec::with_capacity(chunks.len());
        for (done, group) in chunks.chunks(64).enumerate() {
            progress(done * 64, chunks.len());
            let texts: Vec<String> = group.iter().map(|c| index_text(&c.chunk.heading_path, &c.chunk.text)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embedded = embedder.embed(&refs)?;
            vectors.extend(group.iter().map(|c| c.id).zip(embedded));
        }
        progress(chunks.len(), chunks.len());
        self.store.replace_embeddings(kb, model, &vectors)?;
        let kind = self.vector_index_kind(kb)?;
        let mut indexes = KbIndexes::open(&self.data_dir, &self.store, kb, embedder.dimension(), Access::Write, kind)?;
        indexes.commit(self.store.generation(kb)?)?;
        Ok(vectors.len())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &RagConfig {
        &self.config
    }

    /// The caller for `--as NAME`: `user:NAME` plus every group NAME belongs to.
    pub fn caller_for(&self, user: &str) -> Result<Caller> {
        let groups = self.store.groups_of(user)?;
        Ok(Caller::user(user, groups)?)
    }

    /// Ingests files and directories (recursively, in sorted order), opening containers (ZIP
    /// archives, mailboxes, e-mail attachments) down to [`MAX_NESTING`] levels. Each file is
    /// committed on its own, so an interrupted run keeps what it finished and the next run skips
    /// it as unchanged. One bad file is reported and the batch goes on.
    pub fn ingest(
        &self,
        kb: &str,
        paths: &[PathBuf],
        options: &IngestOptions,
        progress: &mut dyn FnMut(IngestEvent<'_>),
    ) -> Result<IngestReport> {
        let _span = info_span!("ingest", kb, paths = paths.len()).entered();
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.create_kb(kb, &[], options.embedding_model.as_deref())? {
            info!(kb, "created knowledge base (documents without --acl are visible to administrators only)");
        }
        let (acl, own_acl) = match &options.acl {
            Some(a) if !a.is_empty() => (a.clone(), true),
            _ => (self.store.kb_default_acl(kb)?, false),
        };
        let mut listing = IngestReport::default();
        let files = collect_inputs(paths, &mut listing);
        progress(IngestEvent::Started { files: files.len() + listing.files.len() });
        for r in &listing.files {
            progress(IngestEvent::FileDone { report: r });
        }
        let embedder = self.embedder_for(kb)?;
        let indexes = KbIndexes::open(&self.data_dir, &self.store, kb, embedder.dimension(), Access::Write, self.vector_index_kind(kb)?)?;
        let pii_policy = self.store.kb_pii_policy(kb)?;
        let duplicates = self.store.kb_duplicate_policy(kb)?;
        let mut batch = Batch {
            store: &self.store,
            embedder: embedder.clone(),
            kb,
            acl,
            own_acl,
            pii_policy,
            duplicates,
            indexes,
            report: listing,
            pending: 0,
            open: None,
            progress,
        };
        if options.sync {
            for source in self.vanished_documents(kb, paths, &files, &batch.report)? {
                self.remove_document(&mut batch, source)?;
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(IN_FLIGHT);
        let acl = batch.acl.clone();
        let counter: &dyn zhiku_core::TokenCounter = embedder.as_ref();
        let parser = Parser::new(&self.store, kb, (&acl, own_acl), &self.config.chunk, counter, self.config.section_bytes, tx);
        std::thread::scope(|scope| -> Result<()> {
            scope.spawn(move || parser.run(files));
            // Returning early drops the receiver, which stops the parse stage at its next send.
            for work in rx {
                self.store_work(&mut batch, work)?;
            }
            Ok(())
        })?;
        batch.indexes.commit(self.store.generation(kb)?)?;
        if self.config.graph.enabled {
            let model = self.graph_model.as_ref().map(|(m, id)| graph::ChatTripleModel { model: m.as_ref(), id: id.clone() });
            batch.report.graph = Some(graph::update(&self.store, kb, &self.config.graph, model.as_ref(), Some(embedder.as_ref()))?);
        }
        Ok(batch.report)
    }

    /// Documents under the synced directories whose files were not found this time. Anything
    /// under a path that could not be listed is kept: unreadable is not deleted. Files stored
    /// from inside a container that is still there are the container's business.
    /// Removes a document (with the entries of a container: an archive's files, a message's
    /// attachments) from the store and the indexes; false when there was none.
    pub fn delete_document(&self, kb: &str, source: &str) -> Result<bool> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        let dimension = self.embedder_for(kb)?.dimension();
        let mut indexes = KbIndexes::open(&self.data_dir, &self.store, kb, dimension, Access::Write, self.vector_index_kind(kb)?)?;
        let mut removed = false;
        for s in std::iter::once(source.to_string()).chain(self.store.sources_under(kb, &format!("{source}!/"))?) {
            if let Some(doc_id) = self.store.delete_document(kb, &s)? {
                indexes.remove_document(doc_id)?;
                removed = true;
            }
        }
        if removed {
            indexes.commit(self.store.generation(kb)?)?;
            // The document's chunks took their graph contributions with them.
            if self.store.graph_gc(kb)? > 0 {
                graph::refresh_communities(&self.store, kb)?;
            }
        }
        Ok(removed)
    }

    /// Deletes a knowledge base: its documents, chunks and index files; false when there was
    /// none.
    pub fn delete_kb(&self, kb: &str) -> Result<bool> {
        zhiku_store::validate_kb_name(kb)?;
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        let deleted = self.store.delete_kb(kb)?;
        self.read_cache.lock().unwrap_or_else(|p| p.into_inner()).remove(kb);
        let dir = self.data_dir.join("kb").join(kb);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::Io { path: dir, source: e }),
            _ => {}
        }
        Ok(deleted)
    }

    fn write_lock(&self, kb: &str) -> Arc<Mutex<()>> {
        self.write_locks.lock().unwrap_or_else(|p| p.into_inner()).entry(kb.to_string()).or_default().clone()
    }

    /// Gives `principal` a role on the knowledge base, or takes it away (`None`). The documents
    /// inheriting the knowledge base's ACL change with it, searchable as such at once.
    pub fn set_kb_role(&self, kb: &str, principal: &Principal, role: Option<zhiku_core::Role>) -> Result<AclChange> {
        self.change_acls(kb, || self.store.set_kb_role(kb, principal, role).map(Some)).map(|c| c.unwrap_or_default())
    }

    /// Makes exactly `viewers` the knowledge base's viewers (editors and admins stay).
    pub fn set_kb_viewers(&self, kb: &str, viewers: &[Principal]) -> Result<AclChange> {
        self.change_acls(kb, || self.store.set_kb_viewers(kb, viewers).map(Some)).map(|c| c.unwrap_or_default())
    }

    /// Gives a document an ACL of its own, or (`None`) makes it inherit the knowledge base's
    /// again; `None` when there is no such document. Nothing is parsed or embedded again.
    pub fn set_document_acl(&self, kb: &str, doc_id: i64, acl: Option<&[Principal]>) -> Result<Option<AclChange>> {
        self.change_acls(kb, || self.store.set_document_acl(kb, doc_id, acl))
    }

    /// Runs a store change of ACLs and applies it to the indexes in place. The indexes are
    /// opened (brought up to date) first, so the change is all they miss; a crash before the
    /// commit leaves them a generation behind, which the next open repairs by rebuilding.
    fn change_acls(&self, kb: &str, change: impl FnOnce() -> zhiku_store::Result<Option<AclChange>>) -> Result<Option<AclChange>> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        let dimension = self.embedder_for(kb)?.dimension();
        let mut indexes = KbIndexes::open(&self.data_dir, &self.store, kb, dimension, Access::Write, self.vector_index_kind(kb)?)?;
        let Some(change) = change()? else { return Ok(None) };
        if !change.documents.is_empty() {
            for (doc_id, acl) in &change.documents {
                indexes.set_document_acl(*doc_id, acl, &self.store.document_chunks(*doc_id)?)?;
            }
            indexes.commit(change.generation)?;
        }
        Ok(Some(change))
    }

    /// The knowledge base's indexes for searching: the cached ones while the store generation
    /// and the vector index choice are those they were opened at, else freshly opened.
    fn read_indexes(&self, kb: &str) -> Result<Arc<KbIndexes>> {
        // Read before opening: a write in between leaves the entry stamped older than what it
        // holds, which only costs one more reopen.
        let generation = self.store.generation(kb)?;
        let kind = self.vector_index_kind(kb)?;
        {
            let cache = self.read_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(kb).filter(|o| o.generation == generation && o.kind == kind) {
                return Ok(hit.indexes.clone());
            }
        }
        let dimension = self.embedder_for(kb)?.dimension();
        let opened = Arc::new(KbIndexes::open(&self.data_dir, &self.store, kb, dimension, Access::Read, kind)?);
        let entry = OpenedIndexes { generation, kind, indexes: opened.clone() };
        let replaced = self.read_cache.lock().unwrap_or_else(|p| p.into_inner()).insert(kb.to_string(), entry);
        drop(replaced);
        // Opening read whole files and built tables; what it freed goes back to the system.
        crate::release_freed_memory();
        Ok(opened)
    }

    /// The knowledge base's own vector index choice (`kb create --vector-index`), else the
    /// configuration's.
    fn vector_index_kind(&self, kb: &str) -> Result<VectorIndexKind> {
        match self.store.kb_vector_index(kb)? {
            Some(kind) => kind.parse().map_err(|e| Error::Store(zhiku_store::Error::Corrupt(e))),
            None => Ok(self.config.retrieval.vector_index),
        }
    }

    fn vanished_documents(&self, kb: &str, paths: &[PathBuf], files: &[Input], report: &IngestReport) -> Result<Vec<String>> {
        let stored = self.store.documents(kb)?.into_iter().map(|d| d.source).collect();
        Ok(crate::inputs::vanished_sources(stored, paths, files, report))
    }

    fn remove_document(&self, batch: &mut Batch<'_>, source: String) -> Result<()> {
        if let Some(doc_id) = self.store.delete_document(batch.kb, &source)? {
            batch.indexes.remove_document(doc_id)?;
        }
        batch.finish(FileReport::new(source, FileOutcome::Removed))
    }

    /// What the parse stage sends, stored in the order it was sent.
    fn store_work(&self, batch: &mut Batch<'_>, work: Work) -> Result<()> {
        match work {
            Work::Discovered(files) => {
                (batch.progress)(IngestEvent::Discovered { files });
                Ok(())
            }
            Work::Unchanged { source } => batch.finish(FileReport::new(source, FileOutcome::Unchanged)),
            Work::Failed { source, reason } => {
                // A later section failed: what was stored of the file goes, nothing half-written stays.
                if let Some(open) = batch.open.take_if(|o| o.report.source == source) {
                    if let Some(stored) = open.stored {
                        self.store.delete_document(batch.kb, &source)?;
                        batch.indexes.remove_document(stored.doc_id)?;
                    }
                }
                batch.finish(FileReport::new(source, FileOutcome::Failed { reason }))
            }
            Work::Continued { chunks } => {
                let Some(open) = batch.open.as_mut() else { return Ok(()) };
                let Some(stored) = open.stored.as_mut() else { return Ok(()) };
                let chunks = neutralize_injections(chunks, &mut open.report.injection);
                let chunks = apply_pii_policy(chunks, batch.pii_policy, &mut open.report.pii);
                let texts: Vec<String> = chunks.iter().map(|c| index_text(&c.heading_path, &c.text)).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let embeddings = match batch.embedder.embed(&refs) {
                    Ok(e) => e,
                    Err(e) => {
                        let source = open.report.source.clone();
                        return self.store_work(batch, Work::Failed { source, reason: e.to_string() });
                    }
                };
                let chunks: Vec<_> = chunks.into_iter().zip(embeddings).collect();
                let ids = self.store.append_chunks(batch.kb, stored.doc_id, &chunks)?;
                for ((id, (_, embedding)), text) in ids.iter().zip(&chunks).zip(&texts) {
                    batch.indexes.add_chunk(*id, stored.doc_id, text, embedding, &stored.acl)?;
                }
                stored.chunks += chunks.len();
                Ok(())
            }
            Work::Completed => {
                let Some(mut open) = batch.open.take() else { return Ok(()) };
                if let Some(stored) = &open.stored {
                    self.store.complete_document(stored.doc_id, &open.content_hash)?;
                    let chunks = stored.chunks;
                    open.report.outcome = if stored.replaced { FileOutcome::Replaced { chunks } } else { FileOutcome::Ingested { chunks } };
                }
                batch.finish(open.report)
            }
            Work::Abort(e) => Err(e.into()),
            Work::ContainerDone { parent, produced } => {
                let produced: HashSet<String> = produced.into_iter().collect();
                for stale in self.store.sources_under(batch.kb, &format!("{parent}!/"))? {
                    if !produced.iter().any(|p| &stale == p || crate::inputs::is_inside(&stale, p)) {
                        self.remove_document(batch, stale)?;
                    }
                }
                Ok(())
            }
            Work::Parsed { source, prepared, sectioned } => {
                let mut report = FileReport::new(source, FileOutcome::Unchanged);
                let content_hash = prepared.content_hash.clone();
                let mut stored = None;
                report.outcome = match self.store_document(batch, &mut report, *prepared, sectioned) {
                    Ok((o, doc_id)) => {
                        if let (Some((doc_id, acl)), FileOutcome::Ingested { chunks } | FileOutcome::Replaced { chunks }) = (doc_id, &o) {
                            let replaced = matches!(o, FileOutcome::Replaced { .. });
                            stored = Some(StoredSoFar { doc_id, acl, chunks: *chunks, replaced });
                        }
                        o
                    }
                    Err(Error::FileFailed(reason)) => FileOutcome::Failed { reason },
                    Err(other) => return Err(other),
                };
                if sectioned {
                    batch.open = Some(OpenDocument { report, content_hash, stored });
                    return Ok(());
                }
                batch.finish(report)
            }
        }
    }

    /// Duplicate checks against what is stored now, the KB's PII policy, embedding, then one
    /// store transaction and the index updates.
    /// `partial`: more chunks of the file follow (a huge file in sections). Returns the stored
    /// document's id with the outcome when something was written.
    fn store_document(
        &self,
        batch: &mut Batch<'_>,
        report: &mut FileReport,
        mut prepared: PreparedDocument,
        partial: bool,
    ) -> Result<(FileOutcome, Option<StoredAs>)> {
        let failed = |reason: String| Error::FileFailed(reason);
        let kb = batch.kb;
        let source = report.source.clone();
        let source = source.as_str();
        if let Some(original) = self.store.source_with_hash(kb, &prepared.content_hash, source)? {
            if batch.duplicates == DuplicatePolicy::Keep {
                report.duplicate_of = Some(original);
            } else {
                if let Some(old) = self.store.delete_document(kb, source)? {
                    batch.indexes.remove_document(old)?;
                }
                return Ok((FileOutcome::Duplicate { of: original }, None));
            }
        }
        if prepared.chunks.is_empty() {
            return Err(failed("no text found".into()));
        }
        let threshold = self.config.near_duplicate_threshold;
        if let (Some(sig), true, None) = (&prepared.minhash, threshold > 0.0, &report.duplicate_of) {
            let keys = minhash::band_keys(sig);
            let best = self
                .store
                .minhash_candidates(kb, &keys, source)?
                .into_iter()
                .filter_map(|(other, bytes)| minhash::from_bytes(&bytes).map(|s| (other, minhash::similarity(sig, &s))))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((of, similarity)) = best.filter(|b| b.1 >= threshold) {
                if batch.duplicates == DuplicatePolicy::Keep {
                    report.duplicate_of = Some(of);
                } else {
                    if let Some(old) = self.store.delete_document(kb, source)? {
                        batch.indexes.remove_document(old)?;
                    }
                    return Ok((FileOutcome::NearDuplicate { of, similarity }, None));
                }
            }
        }
        prepared.chunks = neutralize_injections(std::mem::take(&mut prepared.chunks), &mut report.injection);
        prepared.chunks = apply_pii_policy(prepared.chunks, batch.pii_policy, &mut report.pii);
        let texts: Vec<String> = prepared.chunks.iter().map(|c| index_text(&c.heading_path, &c.text)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embeddings = batch.embedder.embed(&refs).map_err(|e| failed(e.to_string()))?;
        let chunks: Vec<_> = prepared.chunks.into_iter().zip(embeddings).collect();
        let minhash_bytes = prepared.minhash.as_ref().map(minhash::to_bytes);
        let minhash_keys: Vec<u64> = prepared.minhash.as_ref().map(|s| minhash::band_keys(s).to_vec()).unwrap_or_default();
        let doc = NewDocument {
            source,
            content_hash: &prepared.content_hash,
            title: prepared.title.as_deref(),
            format: prepared.format,
            language: prepared.language,
            minhash: minhash_bytes.as_deref().map(|b| (b, &minhash_keys[..])),
            acl: &batch.acl,
            own_acl: batch.own_acl,
            chunks: &chunks,
            partial,
        };
        let upsert = self.store.upsert_document(kb, &doc)?;
        let (doc_id, chunk_ids, acl, replaced) = match upsert {
            Upsert::Unchanged => return Ok((FileOutcome::Unchanged, None)),
            Upsert::Inserted { doc_id, chunk_ids, acl } => (doc_id, chunk_ids, acl, false),
            Upsert::Replaced { doc_id, old_doc_id, chunk_ids, acl } => {
                batch.indexes.remove_document(old_doc_id)?;
                (doc_id, chunk_ids, acl, true)
            }
        };
        for ((id, (_, embedding)), text) in chunk_ids.iter().zip(&chunks).zip(&texts) {
            batch.indexes.add_chunk(*id, doc_id, text, embedding, &acl)?;
        }
        debug!(source, chunks = chunks.len(), "ingested");
        let n = chunks.len();
        Ok((if replaced { FileOutcome::Replaced { chunks: n } } else { FileOutcome::Ingested { chunks: n } }, Some((doc_id, acl))))
    }

    /// Hybrid search: vector and BM25 candidates, each filtered by the caller's principals
    /// inside the index, fused with reciprocal rank fusion.
    pub fn search(&self, kb: &str, query: &str, caller: &Caller, top_k: usize) -> Result<Vec<SearchHit>> {
        self.search_in(kb, query, caller, top_k, self.config.retrieval.mode)
    }

    /// [`Engine::search`] in the given retrieval mode.
    pub fn search_in(&self, kb: &str, query: &str, caller: &Caller, top_k: usize, mode: RetrievalMode) -> Result<Vec<SearchHit>> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        let query = query.trim();
        if query.is_empty() || top_k == 0 {
            return Ok(Vec::new());
        }
        let q = self.embedder_for(kb)?.embed_queries(&[query])?.pop().unwrap_or_default();
        self.search_embedded(kb, query, &q, caller, top_k, mode)
    }

    /// [`Engine::search`] with the query's embedding already made.
    fn search_embedded(
        &self,
        kb: &str,
        query: &str,
        q: &[f32],
        caller: &Caller,
        top_k: usize,
        mode: RetrievalMode,
    ) -> Result<Vec<SearchHit>> {
        let _span = info_span!("retrieve", kb, top_k, ?mode).entered();
        let indexes = self.read_indexes(kb)?;
        let candidates = self.config.retrieval.candidates.max(top_k);
        let vector_hits = indexes.vectors.search(q, caller, candidates);
        let bm25_hits = indexes.bm25.search(query, caller, candidates)?;
        let mut lists = vec![vector_hits, bm25_hits];
        let mut from_graph: HashSet<u64> = HashSet::new();
        if mode != RetrievalMode::Hybrid {
            let config = &self.config.graph;
            let view = GraphView::new(&self.store, kb, caller)?;
            let mut graph_hits = match mode {
                RetrievalMode::Global => view.retrieve_global(query, 3)?,
                _ => view.retrieve(query, config.hops, config.max_entities)?,
            };
            graph_hits.truncate(candidates);
            from_graph = graph_hits.iter().map(|h| h.0).collect();
            lists.push(graph_hits);
        }
        let fused = self.config.retrieval.fuse(lists);
        // Re-ranking looks deeper than the answer: what fusion placed just below may be the
        // most similar passage.
        let depth = if self.reranker.is_none() { top_k } else { (top_k * 3).min(fused.len()) };
        let ids: Vec<u64> = fused.iter().take(depth).map(|h| h.0).collect();
        let mut chunks = self.store.chunks_by_id(kb, &ids)?;
        // Defence in depth: the indexes filtered already; nothing unreadable passes this line
        // even if an index were stale or wrong.
        chunks.retain(|c| caller.can_read(&c.acl));
        let mut hits: Vec<SearchHit> = chunks
            .into_iter()
            .map(|c| {
                let score = fused.iter().find(|h| h.0 == c.id).map(|h| h.1).unwrap_or(0.0);
                let similarity = dot(q, &c.embedding);
                SearchHit {
                    source: c.source,
                    chunk_id: c.id.to_string(),
                    score,
                    text: c.chunk.text,
                    heading_path: c.chunk.heading_path,
                    char_start: c.chunk.char_start,
                    char_end: c.chunk.char_end,
                    page: c.chunk.page,
                    similarity,
                    via_graph: from_graph.contains(&c.id),
                }
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk_id.cmp(&b.chunk_id)));
        if let Some(reranker) = &self.reranker {
            reranker.rerank(query, q, &mut hits);
        }
        hits.truncate(top_k);
        Ok(hits)
    }

    /// RAG-Fusion: the question and its rewordings searched one by one, the hit lists fused by
    /// rank, each hit then scored by its similarity to the question itself (what the answer
    /// stage's relevance cut reads).
    fn search_rewritten(
        &self,
        kb: &str,
        question: &str,
        q: &[f32],
        rewrites: &[String],
        caller: &Caller,
        mode: RetrievalMode,
    ) -> Result<Vec<SearchHit>> {
        let depth = self.config.retrieval.answer_sources * 2;
        let embedder = self.embedder_for(kb)?;
        let mut lists = vec![self.search_embedded(kb, question, q, caller, depth, mode)?];
        for rewrite in rewrites {
            let rq = embedder.embed_queries(&[rewrite.as_str()])?.pop().unwrap_or_default();
            lists.push(self.search_embedded(kb, rewrite, &rq, caller, depth, mode)?);
        }
        let ranked: Vec<Vec<zhiku_index::Scored>> =
            lists.iter().map(|l| l.iter().filter_map(|h| h.chunk_id.parse::<u64>().ok().map(|id| (id, h.score))).collect()).collect();
        let fused = zhiku_index::reciprocal_rank_fusion(&ranked, self.config.retrieval.rrf_k);
        let mut by_id: HashMap<String, SearchHit> = lists.into_iter().flatten().map(|h| (h.chunk_id.clone(), h)).collect();
        let ids: Vec<u64> = fused.iter().take(self.config.retrieval.answer_sources).map(|h| h.0).collect();
        let embeddings: HashMap<u64, Vec<f32>> = self.store.chunks_by_id(kb, &ids)?.into_iter().map(|c| (c.id, c.embedding)).collect();
        Ok(fused
            .iter()
            .take(self.config.retrieval.answer_sources)
            .filter_map(|(id, score)| {
                let mut hit = by_id.remove(&id.to_string())?;
                hit.score = *score;
                hit.similarity = embeddings.get(id).map(|e| dot(q, e)).unwrap_or(hit.similarity);
                Some(hit)
            })
            .collect())
    }

    /// Measures each retriever on questions with known answers (see [`crate::eval`]): vectors
    /// alone, BM25 alone, and the two fused as searches run.
    pub fn evaluate_retrieval(
        &self,
        kb: &str,
        judged: &[crate::eval::Judged],
        caller: &Caller,
        progress: &mut dyn FnMut(usize),
    ) -> Result<crate::eval::Report> {
        use crate::eval::{mean, score, Report, Retriever};
        self.require_kb(kb)?;
        let embedder = self.embedder_for(kb)?;
        let indexes = self.read_indexes(kb)?;
        let mut scores: BTreeMap<Retriever, Vec<crate::eval::Scores>> = BTreeMap::new();
        for (done, question) in judged.iter().enumerate() {
            progress(done);
            let q = embedder.embed_queries(&[question.query.as_str()])?.pop().unwrap_or_default();
            for retriever in Retriever::ALL {
                let ranked: Vec<String> = match retriever {
                    Retriever::Hybrid => self
                        .search_embedded(kb, &question.query, &q, caller, 10, RetrievalMode::Hybrid)?
                        .into_iter()
                        .map(|h| h.source)
                        .collect(),
                    single => {
                        let hits = match single {
                            Retriever::Vector => indexes.vectors.search(&q, caller, 10),
                            _ => indexes.bm25.search(&question.query, caller, 10)?,
                        };
                        let ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
                        let sources: HashMap<u64, String> =
                            self.store.chunks_by_id(kb, &ids)?.into_iter().map(|c| (c.id, c.source)).collect();
                        ids.iter().filter_map(|id| sources.get(id).cloned()).collect()
                    }
                };
                scores.entry(retriever).or_default().push(score(&ranked, &question.relevant));
            }
        }
        progress(judged.len());
        Ok(Report { queries: judged.len(), retrievers: scores.iter().map(|(r, s)| (*r, mean(s))).collect() })
    }

    /// One chunk, as a citation's passage: `None` when it does not exist or the caller may not
    /// read it (the two are indistinguishable, so ids cannot be probed).
    pub fn passage(&self, kb: &str, chunk_id: u64, caller: &Caller) -> Result<Option<SearchHit>> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        Ok(readable_passage(self.store.chunks_by_id(kb, &[chunk_id])?, chunk_id, caller))
    }

    /// Reads the knowledge base's chunks that the graph has not read yet (after an ingest that
    /// was cut short, or one with the graph disabled) into the graph.
    pub fn update_graph(&self, kb: &str) -> Result<GraphUpdate> {
        self.require_kb(kb)?;
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        let model = self.graph_model.as_ref().map(|(m, id)| graph::ChatTripleModel { model: m.as_ref(), id: id.clone() });
        graph::update(&self.store, kb, &self.config.graph, model.as_ref(), Some(self.embedder_for(kb)?.as_ref()))
    }

    /// Forgets the knowledge base's graph and reads every chunk again.
    pub fn rebuild_graph(&self, kb: &str) -> Result<GraphUpdate> {
        self.require_kb(kb)?;
        let lock = self.write_lock(kb);
        let _writing = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.store.graph_reset(kb)?;
        let model = self.graph_model.as_ref().map(|(m, id)| graph::ChatTripleModel { model: m.as_ref(), id: id.clone() });
        graph::update(&self.store, kb, &self.config.graph, model.as_ref(), Some(self.embedder_for(kb)?.as_ref()))
    }

    /// An entity of the knowledge base with its neighbours (at most `limit`), as the caller sees
    /// it: `None` when no document the caller may read mentions it.
    pub fn graph_entity(&self, kb: &str, name: &str, caller: &Caller, limit: usize) -> Result<Option<EntityView>> {
        GraphView::new(&self.store, kb, caller)?.entity(name, limit)
    }

    /// The shortest chain of relations between two entities that the caller can see.
    pub fn graph_path(&self, kb: &str, from: &str, to: &str, caller: &Caller, max_hops: usize) -> Result<Option<Vec<PathStep>>> {
        GraphView::new(&self.store, kb, caller)?.path(from, to, max_hops)
    }

    /// The knowledge base's main communities, as the caller sees them.
    pub fn graph_communities(&self, kb: &str, caller: &Caller, limit: usize) -> Result<Vec<graph::CommunityView>> {
        GraphView::new(&self.store, kb, caller)?.communities(limit)
    }

    /// The part of the knowledge base's graph the caller can see, for export.
    pub fn graph_export(&self, kb: &str, caller: &Caller) -> Result<zhiku_graph::export::Graph> {
        GraphView::new(&self.store, kb, caller)?.export()
    }

    fn require_kb(&self, kb: &str) -> Result<()> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        Ok(())
    }

    /// Retrieves, then answers from the retrieved sources with citations — or abstains when
    /// nothing retrieved is relevant enough, without calling the model.
    pub fn ask(&self, kb: &str, question: &str, caller: &Caller, model: &dyn ChatModel, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        self.ask_with(kb, question, caller, model, &self.config.generation, self.config.retrieval.mode, &mut |text| {
            on_text(text);
            true
        })
    }

    /// [`Engine::ask`] with the caller's own generation settings (an API request's
    /// `max_tokens`, `temperature`); `on_text` returning false stops the generation (a client
    /// that went away), and what was generated so far is answered from.
    #[allow(clippy::too_many_arguments)]
    pub fn ask_with(
        &self,
        kb: &str,
        question: &str,
        caller: &Caller,
        model: &dyn ChatModel,
        options: &zhiku_models::GenerationOptions,
        mode: RetrievalMode,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        let span = info_span!("answer", kb, cached = tracing::field::Empty).entered();
        let scope = match self.store.kb_caches_answers(kb)? {
            true => Some(crate::answer_cache::Scope::new(kb, self.store.generation(kb)?, caller, format!("{options:?} {mode:?}"))),
            false => None,
        };
        // With the cache, the question is embedded as the cache compares it (the embedding serves
        // retrieval as well: the model is uncased and punctuation carries no topic).
        let embedded = match scope {
            Some(_) => crate::answer_cache::normalize(question),
            None => question.trim().to_string(),
        };
        let q = self.embedder_for(kb)?.embed_queries(&[embedded.as_str()])?.pop().unwrap_or_default();
        if let Some(cached) = scope.as_ref().and_then(|s| self.answers.get(s, &q)) {
            span.record("cached", true);
            on_text(&cached.answer);
            return Ok(Answer { cached: true, ..cached });
        }
        let mut complete = true;
        let answer = self.answer(kb, question, &q, caller, model, options, mode, &mut |text| {
            let listening = on_text(text);
            complete &= listening;
            listening
        })?;
        // An answer cut short because nobody listened any more is not one to give again.
        if let (Some(scope), true) = (scope, complete) {
            self.answers.put(scope, q, answer.clone());
        }
        Ok(answer)
    }

    /// Retrieval and generation for [`Engine::ask_with`], the question already embedded.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &self,
        kb: &str,
        question: &str,
        q: &[f32],
        caller: &Caller,
        model: &dyn ChatModel,
        options: &zhiku_models::GenerationOptions,
        mode: RetrievalMode,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer> {
        let mut rewrites = Vec::new();
        let hits = if question.trim().is_empty() {
            Vec::new()
        } else if self.config.retrieval.rewrites > 0 {
            rewrites = rewrite_question(question.trim(), self.config.retrieval.rewrites, model);
            self.search_rewritten(kb, question.trim(), q, &rewrites, caller, mode)?
        } else {
            self.search_embedded(kb, question.trim(), q, caller, self.config.retrieval.answer_sources, mode)?
        };
        let masks_answers = self.store.kb_masks_answers(kb)?;
        answer_from_hits(question, hits, rewrites, &self.config, masks_answers, model, options, on_text)
    }
}

/// The chunk `chunk_id` of those read, as a cited passage, if the caller may read it.
pub(crate) fn readable_passage(chunks: Vec<zhiku_core::StoredChunk>, chunk_id: u64, caller: &Caller) -> Option<SearchHit> {
    let c = chunks.into_iter().find(|c| c.id == chunk_id && caller.can_read(&c.acl))?;
    Some(SearchHit {
        source: c.source,
        chunk_id: c.id.to_string(),
        score: 0.0,
        text: c.chunk.text,
        heading_path: c.chunk.heading_path,
        char_start: c.chunk.char_start,
        char_end: c.chunk.char_end,
        page: c.chunk.page,
        similarity: 0.0,
        via_graph: false,
    })
}

/// The generation stage, shared by both backends: keeps the retrieved passages relevant enough
/// to answer from, prompts the model with them as numbered sources, and returns its answer with
/// the citations it supports — or abstains. `masks_answers`: the knowledge base masks personal
/// data in answers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn answer_from_hits(
    question: &str,
    hits: Vec<SearchHit>,
    rewrites: Vec<String>,
    config: &RagConfig,
    masks_answers: bool,
    model: &dyn ChatModel,
    options: &zhiku_models::GenerationOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Answer> {
    let best = hits.iter().map(|h| h.similarity).fold(f32::MIN, f32::max);
    let floor = config.retrieval.min_similarity;
    let min = floor.max(best - config.retrieval.source_margin);
    // A passage the graph reached states a relation of what the question names: it is on
    // topic even when it shares few words with the question (the second hop of a chain).
    let relevant: Vec<SearchHit> = hits.into_iter().filter(|h| h.similarity >= min || (h.via_graph && h.similarity >= floor)).collect();
    // Overlapping or neighbouring passages of a document are read once, as one.
    let relevant = crate::context::merge_passages(relevant);
    if relevant.is_empty() {
        on_text(NOT_FOUND);
        return Ok(Answer::not_found(false, rewrites));
    }
    let sources: Vec<Source> =
        relevant.iter().map(|h| Source { source: h.source.clone(), heading_path: h.heading_path.clone(), text: h.text.clone() }).collect();
    let (user, included) = build_user_prompt(question, &sources, config.prompt_budget_tokens, model.token_counter());
    let messages = [ChatMessage::new("system", SYSTEM_PROMPT), ChatMessage::new("user", user)];
    let mut guard = RunawayGuard::default();
    // Personal data in the answer is masked as it streams, by the knowledge base's policy.
    let mut masker = masks_answers.then(pii::StreamMasker::default);
    let release = |text: &str, masker: &mut Option<pii::StreamMasker>| -> String {
        match masker {
            Some(m) => m.push(text),
            None => text.to_string(),
        }
    };
    let generating = info_span!("generate", sources = included).entered();
    let generation = model.generate(&messages, options, &mut |piece| {
        let (shown, stop) = guard.push(piece);
        let shown = release(&shown, &mut masker);
        let listening = shown.is_empty() || on_text(&shown);
        !stop && listening
    })?;
    drop(generating);
    let mut rest = release(&guard.finish(), &mut masker);
    if let Some(m) = masker.as_mut() {
        rest.push_str(&m.finish());
    }
    if !rest.is_empty() {
        on_text(&rest);
    }
    let raw = trim_runaway(generation.text.trim());
    if is_abstention(&raw) {
        return Ok(Answer::not_found(true, rewrites));
    }
    let source_texts: Vec<&str> = relevant[..included].iter().map(|h| h.text.as_str()).collect();
    let cleaned = mentions_to_markers(&remove_invalid_markers(&raw, included), included);
    let mut answer = attribute_uncited(&cleaned, &source_texts);
    let mut generated = true;
    if cited_numbers(&answer, included).is_empty() {
        // Nothing the model wrote is supported by a source: rather than pass on an
        // unsupported answer, quote the passages that answer the question.
        match extractive_answer(question, &source_texts, 2) {
            Some(quoted) => {
                debug!("generated answer unsupported by the sources; answering extractively");
                answer = quoted;
                generated = false;
            }
            None => return Ok(Answer::not_found(true, rewrites)),
        }
    }
    let citations = cited_numbers(&answer, included)
        .into_iter()
        .map(|n| Citation { n, source: relevant[n - 1].source.clone(), chunk_id: relevant[n - 1].chunk_id.clone() })
        .collect();
    if masks_answers {
        answer = pii::mask(&answer, &pii::detect(&answer));
    }
    Ok(Answer { answer, citations, abstained: false, generated, cached: false, rewrites })
}

/// Counts the findings of every chunk and applies the knowledge base's policy to them.
/// Counts prompt-injection findings and neutralises control tokens (look-alikes of the same
/// length in characters, so the chunks' offsets still hold).
pub(crate) fn neutralize_injections(chunks: Vec<zhiku_core::Chunk>, counts: &mut BTreeMap<InjectionKind, usize>) -> Vec<zhiku_core::Chunk> {
    chunks
        .into_iter()
        .map(|mut chunk| {
            let findings = injection::detect(&chunk.text);
            for f in &findings {
                *counts.entry(f.kind).or_insert(0) += 1;
            }
            if findings.iter().any(|f| f.kind == InjectionKind::ControlToken) {
                chunk.text = injection::neutralize(&chunk.text).into_owned();
            }
            chunk
        })
        .collect()
}

pub(crate) fn apply_pii_policy(
    chunks: Vec<zhiku_core::Chunk>,
    policy: PiiPolicy,
    counts: &mut BTreeMap<PiiKind, usize>,
) -> Vec<zhiku_core::Chunk> {
    chunks
        .into_iter()
        .filter_map(|mut chunk| {
            let findings = pii::detect(&chunk.text);
            for f in &findings {
                *counts.entry(f.kind).or_insert(0) += 1;
            }
            match policy {
                _ if findings.is_empty() => Some(chunk),
                PiiPolicy::Keep => Some(chunk),
                PiiPolicy::Mask => {
                    chunk.text = pii::mask(&chunk.text, &findings);
                    Some(chunk)
                }
                PiiPolicy::DropChunk => None,
            }
        })
        .collect()
}

/// Up to `count` rewordings of a question for search, written by the model under a JSON
/// grammar; none (the question alone is searched) when the model fails or writes nothing usable.
fn rewrite_question(question: &str, count: usize, model: &dyn ChatModel) -> Vec<String> {
    let grammar = format!(
        r#"root ::= "{{" ws "\"queries\":" ws "[" ws query ( ws "," ws query ){{0,{}}} ws "]" ws "}}"
query ::= "\"" char{{3,150}} "\""
char ::= [^"\\\x00-\x1f]
ws ::= [ \t\n]{{0,2}}"#,
        count.saturating_sub(1)
    );
    let options = zhiku_models::GenerationOptions {
        max_tokens: 60 * count,
        temperature: 0.0,
        repeat_penalty: 1.1,
        context_tokens: 1024,
        grammar: Some(grammar),
        ..Default::default()
    };
    let messages = [
        ChatMessage::new(
            "system",
            format!("You rewrite a question into {count} different search queries that use other words for the same need. Reply with JSON: {{\"queries\": [\"...\"]}}."),
        ),
        ChatMessage::new("user", question.to_string()),
    ];
    let reply = match model.generate(&messages, &options, &mut |_| true) {
        Ok(g) => g.text,
        Err(e) => {
            debug!(error = %e, "query rewriting failed; searching the question alone");
            return Vec::new();
        }
    };
    let start = reply.find('{').unwrap_or(0);
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(&reply[start..])
        .ok()
        .and_then(|v| v["queries"].as_array().map(|a| a.iter().filter_map(|q| q.as_str().map(|s| s.trim().to_string())).collect()));
    let mut seen: HashSet<String> = HashSet::from([question.trim().to_lowercase()]);
    parsed.unwrap_or_default().into_iter().filter(|q| !q.is_empty() && seen.insert(q.to_lowercase())).take(count).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
