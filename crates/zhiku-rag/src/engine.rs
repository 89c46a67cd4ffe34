use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tracing::{debug, info};
use zhiku_core::{Caller, Embedder, Principal};
use zhiku_index::VectorIndexRead;
use zhiku_ingest::minhash;
use zhiku_ingest::pii::{self, PiiKind, PiiPolicy};
use zhiku_models::{ChatMessage, ChatModel};
use zhiku_store::{NewDocument, Store, Upsert};

use crate::cite::{
    attribute_uncited, cited_numbers, extractive_answer, is_abstention, mentions_to_markers, remove_invalid_markers, trim_runaway,
    RunawayGuard,
    NOT_FOUND,
};
use crate::indexes::{index_text, Access, KbIndexes};
use crate::inputs::{collect_inputs, Input};
use crate::prompt::{build_user_prompt, Source, SYSTEM_PROMPT};
use crate::{Error, RagConfig, Result};

/// The pipeline over one data directory: ingestion, hybrid search and answering, every one of
/// them acting as a [`Caller`].
pub struct Engine {
    data_dir: PathBuf,
    store: Arc<Store>,
    embedder: Arc<dyn Embedder>,
    config: RagConfig,
}

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileOutcome {
    Ingested { chunks: usize },
    Replaced { chunks: usize },
    Unchanged,
    /// The same content is already in the knowledge base under another source; not indexed
    /// twice (an earlier version of this source, if any, is removed).
    Duplicate { of: String },
    /// Nearly the same text as another source (estimated Jaccard similarity of 5-character
    /// shingles at or above the configured threshold); not indexed.
    NearDuplicate { of: String, similarity: f32 },
    /// With `sync`: the file is gone from the synced directory, so its document was removed.
    Removed,
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    pub source: String,
    #[serde(flatten)]
    pub outcome: FileOutcome,
    /// Personal data and secrets found in the file, by kind (before the KB's policy applied).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pii: BTreeMap<PiiKind, usize>,
}

impl FileReport {
    pub(crate) fn new(source: String, outcome: FileOutcome) -> Self {
        Self { source, outcome, pii: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
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
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestOptions {
    /// Who may read the documents; `None` or empty: the knowledge base's default ACL.
    pub acl: Option<Vec<Principal>>,
    /// Make the knowledge base mirror the given directories: documents whose source lies under
    /// one of them but whose file no longer exists are removed.
    pub sync: bool,
}

/// Progress of a batch ingest, for progress bars.
pub enum IngestEvent<'a> {
    Started { files: usize },
    FileDone { report: &'a FileReport },
}

impl Engine {
    pub fn new(data_dir: &Path, store: Arc<Store>, embedder: Arc<dyn Embedder>, config: RagConfig) -> Self {
        Self { data_dir: data_dir.to_path_buf(), store, embedder, config }
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

    /// Ingests files and directories (recursively, in sorted order). Each file is committed on
    /// its own, so an interrupted run keeps what it finished and the next run skips it as
    /// unchanged. One bad file is reported and the batch goes on.
    pub fn ingest(
        &self,
        kb: &str,
        paths: &[PathBuf],
        options: &IngestOptions,
        progress: &mut dyn FnMut(IngestEvent<'_>),
    ) -> Result<IngestReport> {
        if self.store.ensure_kb(kb, &[])? {
            info!(kb, "created knowledge base (documents without --acl are visible to administrators only)");
        }
        let acl: Vec<Principal> = match &options.acl {
            Some(a) if !a.is_empty() => a.clone(),
            _ => self.store.kb_default_acl(kb)?,
        };
        let mut report = IngestReport::default();
        let files = collect_inputs(paths, &mut report);
        progress(IngestEvent::Started { files: files.len() + report.files.len() });
        for r in &report.files {
            progress(IngestEvent::FileDone { report: r });
        }
        let mut indexes = KbIndexes::open(&self.data_dir, &self.store, kb, self.embedder.dimension(), Access::Write)?;
        if options.sync {
            let gone = self.vanished_documents(kb, paths, &files, &report)?;
            for source in gone {
                if let Some(doc_id) = self.store.delete_document(kb, &source)? {
                    indexes.remove_document(doc_id)?;
                }
                report.files.push(FileReport::new(source, FileOutcome::Removed));
                progress(IngestEvent::FileDone { report: report.files.last().expect("just pushed") });
            }
        }
        let pii_policy = self.store.kb_pii_policy(kb)?;
        let mut pending = 0usize;
        for file in files {
            let source = file.source.clone();
            let mut pii = BTreeMap::new();
            let outcome = match self.ingest_file(kb, &file, &source, &acl, pii_policy, &mut pii, &mut indexes) {
                Ok(o) => o,
                Err(Error::FileFailed(reason)) => FileOutcome::Failed { reason },
                Err(other) => return Err(other),
            };
            if matches!(outcome, FileOutcome::Ingested { .. } | FileOutcome::Replaced { .. }) {
                pending += 1;
                // Commit the derived indexes every so often so a crash loses little index work
                // (the store already has every finished file; a stale index is rebuilt on open).
                if pending >= 64 {
                    indexes.commit(self.store.generation(kb)?)?;
                    pending = 0;
                }
            }
            report.files.push(FileReport { source, outcome, pii });
            progress(IngestEvent::FileDone { report: report.files.last().expect("just pushed") });
        }
        indexes.commit(self.store.generation(kb)?)?;
        Ok(report)
    }

    /// Documents under the synced directories whose files were not found this time. Anything
    /// under a path that could not be listed is kept: unreadable is not deleted.
    fn vanished_documents(&self, kb: &str, paths: &[PathBuf], files: &[Input], report: &IngestReport) -> Result<Vec<String>> {
        let prefix_of = |p: &Path| {
            let mut s = p.to_string_lossy().into_owned();
            if !s.ends_with('/') {
                s.push('/');
            }
            s
        };
        let synced: Vec<String> = paths.iter().filter(|p| p.is_dir()).map(|p| prefix_of(p)).collect();
        // A directory or archive that failed to list keeps everything under it.
        let under_failed = |s: &str| {
            report.files.iter().any(|f| {
                s == f.source || s.starts_with(&prefix_of(Path::new(&f.source))) || s.starts_with(&format!("{}!/", f.source))
            })
        };
        let present: std::collections::HashSet<&str> = files.iter().map(|f| f.source.as_str()).collect();
        Ok(self
            .store
            .documents(kb)?
            .into_iter()
            .map(|d| d.source)
            .filter(|s| synced.iter().any(|p| s.starts_with(p)))
            .filter(|s| !present.contains(s.as_str()) && !under_failed(s))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_file(
        &self,
        kb: &str,
        input: &Input,
        source: &str,
        acl: &[Principal],
        pii_policy: PiiPolicy,
        pii: &mut BTreeMap<PiiKind, usize>,
        indexes: &mut KbIndexes,
    ) -> Result<FileOutcome> {
        let failed = |reason: String| Error::FileFailed(reason);
        let bytes = input.read().map_err(failed)?;
        let hash = zhiku_ingest::content_hash(&bytes);
        if self.store.is_unchanged(kb, source, &hash, acl)? {
            return Ok(FileOutcome::Unchanged);
        }
        if let Some(original) = self.store.source_with_hash(kb, &hash, source)? {
            if let Some(old) = self.store.delete_document(kb, source)? {
                indexes.remove_document(old)?;
            }
            return Ok(FileOutcome::Duplicate { of: original });
        }
        let name = input.file_name().to_string();
        let counter = self.embedder.as_ref();
        // Parsers run on untrusted input: a panic in one becomes this file's error, not the batch's.
        let prepared = catch_unwind(AssertUnwindSafe(|| zhiku_ingest::prepare(&name, &bytes, &self.config.chunk, counter)))
            .map_err(|_| failed("the parser crashed on this file; please report it".into()))?
            .map_err(|e| failed(e.to_string()))?;
        if prepared.chunks.is_empty() {
            return Err(failed("no text found".into()));
        }
        let threshold = self.config.near_duplicate_threshold;
        if let (Some(sig), true) = (&prepared.minhash, threshold > 0.0) {
            let keys = minhash::band_keys(sig);
            let best = self
                .store
                .minhash_candidates(kb, &keys, source)?
                .into_iter()
                .filter_map(|(other, bytes)| minhash::from_bytes(&bytes).map(|s| (other, minhash::similarity(sig, &s))))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((of, similarity)) = best.filter(|b| b.1 >= threshold) {
                if let Some(old) = self.store.delete_document(kb, source)? {
                    indexes.remove_document(old)?;
                }
                return Ok(FileOutcome::NearDuplicate { of, similarity });
            }
        }
        let mut prepared = prepared;
        prepared.chunks = apply_pii_policy(prepared.chunks, pii_policy, pii);
        let texts: Vec<String> = prepared.chunks.iter().map(|c| index_text(&c.heading_path, &c.text)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embeddings = self.embedder.embed(&refs).map_err(|e| failed(e.to_string()))?;
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
            acl,
            chunks: &chunks,
        };
        let upsert = self.store.upsert_document(kb, &doc)?;
        let (doc_id, chunk_ids, replaced) = match upsert {
            Upsert::Unchanged => return Ok(FileOutcome::Unchanged),
            Upsert::Inserted { doc_id, chunk_ids } => (doc_id, chunk_ids, false),
            Upsert::Replaced { doc_id, old_doc_id, chunk_ids } => {
                indexes.remove_document(old_doc_id)?;
                (doc_id, chunk_ids, true)
            }
        };
        for ((id, (_, embedding)), text) in chunk_ids.iter().zip(&chunks).zip(&texts) {
            indexes.add_chunk(*id, doc_id, text, embedding, acl)?;
        }
        debug!(source, chunks = chunks.len(), "ingested");
        let n = chunks.len();
        Ok(if replaced { FileOutcome::Replaced { chunks: n } } else { FileOutcome::Ingested { chunks: n } })
    }

    /// Hybrid search: vector and BM25 candidates, each filtered by the caller's principals
    /// inside the index, fused with reciprocal rank fusion.
    pub fn search(&self, kb: &str, query: &str, caller: &Caller, top_k: usize) -> Result<Vec<SearchHit>> {
        if !self.store.kb_exists(kb)? {
            return Err(Error::Store(zhiku_store::Error::UnknownKb(kb.to_string())));
        }
        let query = query.trim();
        if query.is_empty() || top_k == 0 {
            return Ok(Vec::new());
        }
        let indexes = KbIndexes::open(&self.data_dir, &self.store, kb, self.embedder.dimension(), Access::Read)?;
        let q = self.embedder.embed(&[query])?.pop().unwrap_or_default();
        let candidates = self.config.retrieval.candidates.max(top_k);
        let vector_hits = indexes.vectors.search(&q, caller, candidates);
        let bm25_hits = indexes.bm25.search(query, caller, candidates)?;
        let fused = zhiku_index::reciprocal_rank_fusion(&[vector_hits, bm25_hits], self.config.retrieval.rrf_k);
        let ids: Vec<u64> = fused.iter().take(top_k).map(|h| h.0).collect();
        let mut chunks = self.store.chunks_by_id(kb, &ids)?;
        // Defence in depth: the indexes filtered already; nothing unreadable passes this line
        // even if an index were stale or wrong.
        chunks.retain(|c| caller.can_read(&c.acl));
        let mut hits: Vec<SearchHit> = chunks
            .into_iter()
            .map(|c| {
                let score = fused.iter().find(|h| h.0 == c.id).map(|h| h.1).unwrap_or(0.0);
                let similarity = dot(&q, &c.embedding);
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
                }
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk_id.cmp(&b.chunk_id)));
        Ok(hits)
    }

    /// Retrieves, then answers from the retrieved sources with citations — or abstains when
    /// nothing retrieved is relevant enough, without calling the model.
    pub fn ask(
        &self,
        kb: &str,
        question: &str,
        caller: &Caller,
        model: &dyn ChatModel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let hits = self.search(kb, question, caller, self.config.retrieval.answer_sources)?;
        let best = hits.iter().map(|h| h.similarity).fold(f32::MIN, f32::max);
        let min = self.config.retrieval.min_similarity.max(best - self.config.retrieval.source_margin);
        let mut relevant: Vec<SearchHit> = hits.into_iter().filter(|h| h.similarity >= min).collect();
        relevant.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        if relevant.is_empty() {
            on_text(NOT_FOUND);
            return Ok(Answer { answer: NOT_FOUND.into(), citations: Vec::new(), abstained: true, generated: false });
        }
        let sources: Vec<Source> = relevant
            .iter()
            .map(|h| Source { source: h.source.clone(), heading_path: h.heading_path.clone(), text: h.text.clone() })
            .collect();
        let (user, included) = build_user_prompt(question, &sources, self.config.prompt_budget_tokens, model.token_counter());
        let messages = [ChatMessage::new("system", SYSTEM_PROMPT), ChatMessage::new("user", user)];
        let mut guard = RunawayGuard::default();
        let generation = model.generate(&messages, &self.config.generation, &mut |piece| {
            let (shown, stop) = guard.push(piece);
            if !shown.is_empty() {
                on_text(&shown);
            }
            !stop
        })?;
        let rest = guard.finish();
        if !rest.is_empty() {
            on_text(&rest);
        }
        let raw = trim_runaway(generation.text.trim());
        if is_abstention(&raw) {
            return Ok(Answer { answer: NOT_FOUND.into(), citations: Vec::new(), abstained: true, generated: true });
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
                None => return Ok(Answer { answer: NOT_FOUND.into(), citations: Vec::new(), abstained: true, generated: true }),
            }
        }
        let citations = cited_numbers(&answer, included)
            .into_iter()
            .map(|n| Citation { n, source: relevant[n - 1].source.clone(), chunk_id: relevant[n - 1].chunk_id.clone() })
            .collect();
        Ok(Answer { answer, citations, abstained: false, generated })
    }
}

/// Counts the findings of every chunk and applies the knowledge base's policy to them.
fn apply_pii_policy(chunks: Vec<zhiku_core::Chunk>, policy: PiiPolicy, counts: &mut BTreeMap<PiiKind, usize>) -> Vec<zhiku_core::Chunk> {
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

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
