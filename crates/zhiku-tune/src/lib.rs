//! zhiku-tune: fine-tuning on the CPU — LoRA adapters for llama-architecture GGUF models,
//! trained on conversations and served by llama.cpp.
//!
//! The flow, in the order a run goes through it:
//! - [`data`]: read JSONL conversations (OpenAI, Alpaca or ShareGPT records) and tokenize them
//!   with the base model's own chat template, marking the assistant turns as the only targets.
//! - [`LlamaModel`] (`llama.rs`): the base model dequantized from its GGUF into candle, frozen,
//!   with trainable low-rank adapters on its projections.
//! - [`train()`] (`train.rs`): AdamW, accumulation, warm-up + cosine, checkpoints and resume,
//!   the loss before and after on held-out conversations.
//! - [`Adapter`] (`adapter.rs`): the result as a GGUF LoRA that `zhiku generate --lora` (any
//!   llama.cpp) applies on top of the unchanged base file.
//!
//! ```no_run
//! use std::path::Path;
//! use zhiku_models::LlamaGenerator;
//! use zhiku_tune::{data, train, TrainConfig};
//!
//! let base = Path::new("data/models/SmolLM2-135M-Instruct.Q4_1.gguf");
//! let tokenizer = LlamaGenerator::load(base).unwrap();
//! let load = |file: &str| -> Vec<data::Example> {
//!     let conversations = data::read_jsonl(Path::new(file)).unwrap();
//!     conversations.iter().filter_map(|c| data::tokenize(&tokenizer, c, 512).unwrap()).collect()
//! };
//! let config = TrainConfig { steps: 50, ..TrainConfig::default() };
//! let report = train(base, &load("train.jsonl"), &load("eval.jsonl"), &config, Path::new("adapter.gguf"), &mut |_| {}).unwrap();
//! assert!(report.eval_loss_after < report.eval_loss_before);
//! ```

mod adapter;
pub mod data;
pub mod dataset;
mod llama;
pub mod peft;
mod train;

use std::path::{Path, PathBuf};

pub use adapter::Adapter;
pub use llama::{LlamaConfig, LlamaModel, TARGETS};
pub use train::{mean_loss, train, StepReport, TrainConfig, TrainReport};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("base model {path} cannot be trained: {reason}")]
    BaseModel { path: PathBuf, reason: String },
    #[error("{path}, line {line}: {reason}")]
    Data { path: PathBuf, line: usize, reason: String },
    #[error("training setting {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("adapter {path}: {reason}")]
    Adapter { path: PathBuf, reason: String },
    #[error("checkpoint {path} cannot be resumed: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("training diverged at step {step} (loss {loss}); lower the learning rate")]
    Diverged { step: usize, loss: f64 },
    #[error(transparent)]
    Model(#[from] zhiku_models::Error),
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
