//! zhiku-rag: the pipeline that the CLI and the server share — ingest files into a knowledge
//! base, search it as a caller, answer questions with citations.
//!
//! [`Engine`] ties the stages together over one data directory: [`Engine::ingest`] (parse →
//! clean → chunk → embed → store → index, per file, crash-safe), [`Engine::search`] (vector +
//! BM25, ACL-filtered inside both, fused with RRF) and [`Engine::ask`] (retrieve → prompt with
//! numbered sources under a token budget → generate → citations, or abstain). The prompt and
//! citation logic are pure functions in [`prompt`] and [`cite`]. [`cluster`] does the same
//! over a shared PostgreSQL database; [`audit`], [`accounts`] and [`history`] work over either
//! backend.
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use zhiku_core::Caller;
//! use zhiku_models::{BertEmbedder, LlamaGenerator};
//! use zhiku_rag::{Engine, RagConfig};
//! use zhiku_store::Store;
//!
//! let data = Path::new("data");
//! let store = Arc::new(Store::open(&data.join("zhiku.db")).unwrap());
//! let embedder = Arc::new(BertEmbedder::load(&data.join("models/all-MiniLM-L6-v2")).unwrap());
//! let engine = Engine::new(data, store, embedder, RagConfig::default());
//! engine.ingest("handbook", &["docs/".into()], &Default::default(), &mut |_| {}).unwrap();
//! let llm = LlamaGenerator::load(&data.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
//! let answer = engine.ask("handbook", "How many days of leave?", &Caller::Admin, &llm, &mut |t| print!("{t}")).unwrap();
//! println!("{:?}", answer.citations);
//! ```

pub mod accounts;
mod answer_cache;
pub mod audit;
pub mod cite;
pub mod cluster;
pub mod context;
pub mod embedding;
mod engine;
pub mod eval;
pub mod finetune;
pub mod graph;
pub mod history;
mod indexes;
mod inputs;
pub mod ocr;
mod pipeline;
pub mod prompt;
pub mod rerank;

use serde::{Deserialize, Serialize};

pub use engine::{Answer, Citation, Engine, FileOutcome, FileReport, IngestEvent, IngestOptions, IngestReport, SearchHit, MAX_NESTING};
pub use graph::{GraphConfig, RetrievalMode};
pub use zhiku_index::index_text;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] zhiku_store::Error),
    #[error(transparent)]
    Pg(#[from] zhiku_pg::Error),
    #[error(transparent)]
    Index(#[from] zhiku_index::Error),
    #[error(transparent)]
    Model(#[from] zhiku_models::Error),
    #[error(transparent)]
    Core(#[from] zhiku_core::Error),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("embedding model '{name}': {reason}")]
    EmbeddingModel { name: String, reason: String },
    /// Not available with this backend (yet).
    #[error("{0}")]
    Unsupported(String),
    /// One file of a batch failed; the batch reports it and continues.
    #[error("{0}")]
    FileFailed(String),
    #[error(transparent)]
    Password(#[from] zhiku_core::password::PasswordError),
    /// An entry could not be appended (written together with others', so only its text is left).
    #[error("cannot append to the audit log: {0}")]
    Audit(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the HTTP server's search and answer routes ask of a backend: the embedded [`Engine`]
/// or a shared database's [`cluster::ClusterEngine`], so that the same handlers serve both.
pub trait Answering: Send + Sync {
    fn kb_exists(&self, kb: &str) -> Result<bool>;
    fn search_in(&self, kb: &str, query: &str, caller: &zhiku_core::Caller, top_k: usize, mode: RetrievalMode) -> Result<Vec<SearchHit>>;
    /// `on_text` returning false stops the generation.
    #[allow(clippy::too_many_arguments)]
    fn ask_with(
        &self,
        kb: &str,
        question: &str,
        caller: &zhiku_core::Caller,
        model: &dyn zhiku_models::ChatModel,
        options: &zhiku_models::GenerationOptions,
        mode: RetrievalMode,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer>;

    /// One chunk (a cited passage) if the caller may read it.
    fn passage(&self, kb: &str, chunk_id: u64, caller: &zhiku_core::Caller) -> Result<Option<SearchHit>>;
}

impl Answering for Engine {
    fn kb_exists(&self, kb: &str) -> Result<bool> {
        Ok(self.store().kb_exists(kb)?)
    }

    fn search_in(&self, kb: &str, query: &str, caller: &zhiku_core::Caller, top_k: usize, mode: RetrievalMode) -> Result<Vec<SearchHit>> {
        Engine::search_in(self, kb, query, caller, top_k, mode)
    }

    fn passage(&self, kb: &str, chunk_id: u64, caller: &zhiku_core::Caller) -> Result<Option<SearchHit>> {
        Engine::passage(self, kb, chunk_id, caller)
    }

    fn ask_with(
        &self,
        kb: &str,
        question: &str,
        caller: &zhiku_core::Caller,
        model: &dyn zhiku_models::ChatModel,
        options: &zhiku_models::GenerationOptions,
        mode: RetrievalMode,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer> {
        Engine::ask_with(self, kb, question, caller, model, options, mode, on_text)
    }
}

impl Answering for cluster::ClusterEngine {
    fn kb_exists(&self, kb: &str) -> Result<bool> {
        cluster::ClusterEngine::kb_exists(self, kb)
    }

    fn search_in(&self, kb: &str, query: &str, caller: &zhiku_core::Caller, top_k: usize, mode: RetrievalMode) -> Result<Vec<SearchHit>> {
        hybrid_only(mode)?;
        self.search(kb, query, caller, top_k)
    }

    fn passage(&self, kb: &str, chunk_id: u64, caller: &zhiku_core::Caller) -> Result<Option<SearchHit>> {
        cluster::ClusterEngine::passage(self, kb, chunk_id, caller)
    }

    fn ask_with(
        &self,
        kb: &str,
        question: &str,
        caller: &zhiku_core::Caller,
        model: &dyn zhiku_models::ChatModel,
        options: &zhiku_models::GenerationOptions,
        mode: RetrievalMode,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer> {
        hybrid_only(mode)?;
        cluster::ClusterEngine::ask_with(self, kb, question, caller, model, options, on_text)
    }
}

/// Returns memory the process freed to the operating system. glibc's allocator keeps freed
/// heap memory for reuse, so after loading (a model read whole, an index file parsed) a
/// long-running server would otherwise keep its high-water mark resident: ~7 MB after opening
/// a 100,000-chunk knowledge base. Elsewhere a no-op.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The knowledge graph lives in the embedded store only so far.
fn hybrid_only(mode: RetrievalMode) -> Result<()> {
    match mode {
        RetrievalMode::Hybrid => Ok(()),
        other => Err(Error::Unsupported(format!("retrieval mode {other:?} with a shared database (hybrid works)"))),
    }
}

/// Retrieval settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Candidates taken from each retriever before fusion.
    pub candidates: usize,
    /// Reciprocal rank fusion constant.
    pub rrf_k: f32,
    /// Passages offered to the model as numbered sources.
    pub answer_sources: usize,
    /// Cosine similarity below which a passage is not relevant enough to answer from; when no
    /// passage reaches it, `ask` abstains.
    pub min_similarity: f32,
    /// Passages more than this much less similar than the best one are left out of the prompt:
    /// small models answer better from two on-topic passages than from four loosely related ones.
    pub source_margin: f32,
    /// `auto` (exact below 20,000 chunks, an HNSW graph from there on), `flat` or `hnsw`.
    pub vector_index: zhiku_index::VectorIndexKind,
    /// `hybrid` (vector + BM25) or `graph` (hybrid fused with knowledge-graph expansion); a
    /// request may choose its own.
    pub mode: RetrievalMode,
    /// How the retrievers' lists merge: `rrf` (by rank) or `weighted` (by normalised score).
    pub fusion: Fusion,
    /// The vector list's weight in `weighted` fusion (BM25's is 1 minus it).
    pub vector_weight: f32,
    /// After fusion: `none`, or `similarity` (the fused candidates re-ordered by their cosine
    /// similarity to the question, the fused rank breaking ties).
    pub rerank: Rerank,
    /// Questions asked (`ask`, chat) are also searched in this many rewordings the language
    /// model writes (RAG-Fusion), all lists fused; 0: off. Costs one short generation.
    pub rewrites: usize,
    /// Embeddings of this many recent distinct queries kept per embedding model, so a query
    /// searched again skips the model; 0: off.
    pub query_cache: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    #[default]
    Rrf,
    Weighted,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rerank {
    #[default]
    None,
    Similarity,
}

impl RetrievalConfig {
    /// Fuses ranked lists by the configured method. The first list is the vector retriever's;
    /// with weighted fusion the others (BM25, the graph) share the rest of the weight.
    pub(crate) fn fuse(&self, lists: Vec<Vec<zhiku_index::Scored>>) -> Vec<zhiku_index::Scored> {
        match self.fusion {
            Fusion::Rrf => zhiku_index::reciprocal_rank_fusion(&lists, self.rrf_k),
            Fusion::Weighted => {
                let weight = self.vector_weight.clamp(0.0, 1.0);
                let weighted: Vec<_> =
                    lists.into_iter().enumerate().map(|(i, list)| (list, if i == 0 { weight } else { 1.0 - weight })).collect();
                zhiku_index::weighted_fusion(&weighted)
            }
        }
    }
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            candidates: 50,
            rrf_k: 60.0,
            answer_sources: 4,
            min_similarity: 0.3,
            source_margin: 0.15,
            vector_index: zhiku_index::VectorIndexKind::Auto,
            mode: RetrievalMode::Hybrid,
            fusion: Fusion::Rrf,
            vector_weight: 0.5,
            rerank: Rerank::None,
            rewrites: 0,
            query_cache: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RagConfig {
    pub chunk: zhiku_ingest::ChunkConfig,
    pub retrieval: RetrievalConfig,
    pub generation: zhiku_models::GenerationOptions,
    /// Tokens of the prompt's user turn (sources + question) at most.
    pub prompt_budget_tokens: usize,
    /// A file whose text is at least this similar to a document already in the knowledge base
    /// (estimated Jaccard similarity of character shingles) is reported and not indexed; 0 turns
    /// near-duplicate detection off.
    pub near_duplicate_threshold: f32,
    /// Text files (plain, CSV/TSV, JSON Lines) bigger than this are parsed, chunked, embedded
    /// and stored this many bytes at a time, so that memory does not grow with the file.
    pub section_bytes: usize,
    pub graph: GraphConfig,
    /// The embedding model new knowledge bases get ([`embedding::MINILM`] or
    /// [`embedding::MULTILINGUAL_E5`]).
    pub embedding_model: String,
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            chunk: zhiku_ingest::ChunkConfig::default(),
            retrieval: RetrievalConfig::default(),
            generation: zhiku_models::GenerationOptions { max_tokens: 200, context_tokens: 2048, ..Default::default() },
            prompt_budget_tokens: 1400,
            near_duplicate_threshold: 0.9,
            section_bytes: 8 << 20,
            graph: GraphConfig::default(),
            embedding_model: embedding::MINILM.to_string(),
        }
    }
}
