//! Local text generation from GGUF files through llama.cpp (the `llama-cpp-2` bindings, which
//! build llama.cpp from source). Every architecture llama.cpp supports loads here — llama,
//! qwen2/qwen3, gemma3 — with the chat template stored in the GGUF metadata.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::{ChatMessage, Error, Generation, GenerationOptions, Result};

/// llama.cpp's global state may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor it loads; route it to `tracing` (debug level) instead of
            // stderr so the CLI output stays clean.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Inference(format!("llama.cpp backend: {e}")))
}

pub struct LlamaGenerator {
    model: LlamaModel,
    path: PathBuf,
    /// A LoRA adapter applied to every context, with its scale. llama.cpp wants it mutable to
    /// attach it; the lock is held only while attaching.
    lora: Option<(Mutex<LlamaLoraAdapter>, f32, PathBuf)>,
}

impl LlamaGenerator {
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::MissingModelFile { path: path.to_path_buf() });
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| Error::ModelFormat { path: path.to_path_buf(), reason: format!("llama.cpp cannot load it: {e}") })?;
        Ok(Self { model, path: path.to_path_buf(), lora: None })
    }

    /// Applies a GGUF LoRA adapter (from `zhiku finetune train`, or converted from PEFT) to
    /// every generation, scaled by `scale` (1.0: as trained).
    pub fn with_lora(mut self, adapter: &Path, scale: f32) -> Result<Self> {
        if !adapter.is_file() {
            return Err(Error::MissingModelFile { path: adapter.to_path_buf() });
        }
        let loaded = self.model.lora_adapter_init(adapter).map_err(|e| Error::ModelFormat {
            path: adapter.to_path_buf(),
            reason: format!("llama.cpp cannot load it as a LoRA adapter of {}: {e}", self.path.display()),
        })?;
        self.lora = Some((Mutex::new(loaded), scale, adapter.to_path_buf()));
        Ok(self)
    }

    /// The LoRA adapter applied, if any.
    pub fn lora_path(&self) -> Option<&Path> {
        self.lora.as_ref().map(|(_, _, p)| p.as_path())
    }

    /// Token ids as this model's tokenizer makes them; `special` parses markers such as
    /// `<|im_start|>` as the single tokens they are.
    pub fn tokenize(&self, text: &str, add_bos: bool, special: bool) -> Vec<u32> {
        self.model.vocab().tokenize(text.as_bytes(), add_bos, special).into_iter().map(|t| t.0 as u32).collect()
    }

    /// Whether the tokenizer wants a BOS token in front of a prompt.
    pub fn adds_bos(&self) -> bool {
        self.model.vocab().should_add_bos()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context length the model was trained with.
    pub fn trained_context(&self) -> usize {
        self.model.n_ctx_train() as usize
    }

    pub fn count_tokens(&self, text: &str) -> usize {
        self.model.vocab().tokenize(text.as_bytes(), false, false).len()
    }

    /// Renders chat messages with the model's own template (ChatML for SmolLM2/Qwen, Gemma's
    /// turns for Gemma 3); models without one get a plain role-prefixed transcript.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.render_conversation(messages, true)
    }

    /// Renders a conversation with the model's template; `open_assistant_turn` ends it with the
    /// header of an assistant turn for the model to fill (what [`Self::render_chat`] does).
    pub fn render_conversation(&self, messages: &[ChatMessage], open_assistant_turn: bool) -> Result<String> {
        let as_llama = || -> std::result::Result<Vec<LlamaChatMessage>, String> {
            messages.iter().map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()).map_err(|e| e.to_string())).collect()
        };
        if let Ok(template) = self.model.chat_template(None) {
            let msgs = as_llama().map_err(Error::Inference)?;
            if let Ok(prompt) = self.model.apply_chat_template(&template, &msgs, open_assistant_turn) {
                return Ok(prompt);
            }
        }
        let mut prompt = String::new();
        for m in messages {
            prompt.push_str(&format!("{}: {}\n\n", capitalise(&m.role), m.content));
        }
        if open_assistant_turn {
            prompt.push_str("Assistant:");
        }
        Ok(prompt)
    }

    /// Generates a reply, calling `on_text` with each new piece of UTF-8 text; returning false
    /// from it stops generation.
    pub fn generate(
        &self,
        messages: &[ChatMessage],
        options: &GenerationOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let prompt = self.render_chat(messages)?;
        self.complete(&prompt, options, on_text)
    }

    /// Continues a raw prompt (no chat template).
    pub fn complete(&self, prompt: &str, options: &GenerationOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generation> {
        let backend = backend()?;
        let vocab = self.model.vocab();
        // The template already contains the BOS marker where the model wants one; the tokenizer
        // parses special tokens such as <|im_start|> as the single tokens they are.
        let tokens = vocab.tokenize(prompt.as_bytes(), vocab.should_add_bos() && !prompt.starts_with("<s>"), true);
        if tokens.is_empty() {
            return Err(Error::Inference("empty prompt".into()));
        }
        let n_ctx = options.context_tokens.min(self.trained_context()).max(64);
        if tokens.len() >= n_ctx {
            return Err(Error::PromptTooLong { tokens: tokens.len(), limit: n_ctx });
        }
        let threads = options.threads.unwrap_or_else(default_threads) as i32;
        let n_batch = 512u32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx as u32))
            .with_n_batch(n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx =
            self.model.new_context(backend, params).map_err(|e| Error::Inference(format!("cannot create a llama.cpp context: {e}")))?;
        if let Some((adapter, scale, path)) = &self.lora {
            let mut adapter = adapter.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            ctx.lora_adapter_set(&mut adapter, *scale)
                .map_err(|e| Error::Inference(format!("cannot apply the LoRA adapter {}: {e}", path.display())))?;
        }

        let started = Instant::now();
        let mut batch = LlamaBatch::new(n_batch as usize, 1);
        let last = tokens.len() - 1;
        for (chunk_start, piece) in tokens.chunks(n_batch as usize).enumerate().map(|(i, c)| (i * n_batch as usize, c)) {
            batch.clear();
            for (offset, token) in piece.iter().enumerate() {
                let pos = chunk_start + offset;
                batch.add(*token, pos as i32, &[0], pos == last).map_err(|e| Error::Inference(e.to_string()))?;
            }
            ctx.decode(&mut batch).map_err(|e| Error::Inference(format!("prompt evaluation failed: {e}")))?;
        }
        let prompt_seconds = started.elapsed().as_secs_f64();

        let mut chain = Vec::new();
        if options.repeat_penalty != 1.0 {
            chain.push(LlamaSampler::penalties(self.model.n_vocab(), 64, options.repeat_penalty, 0.0, 0.0));
        }
        // The grammar is checked against the token the other samplers pick, and imposed on the
        // whole vocabulary only when that token breaks it: checking 49,000 tokens at every step
        // is most of a small model's time.
        let mut grammar = match &options.grammar {
            Some(g) => {
                Some(LlamaSampler::grammar(&self.model, g, "root").map_err(|e| Error::Inference(format!("invalid output grammar: {e}")))?)
            }
            None => None,
        };
        if options.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.extend([
                LlamaSampler::top_k(40),
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::temp(options.temperature),
                LlamaSampler::dist(options.seed),
            ]);
        }
        let mut sampler = LlamaSampler::chain_simple(chain);
        let decode_started = Instant::now();
        let mut text = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut generated = 0usize;
        let mut pos = tokens.len();
        let mut logits_index = batch.n_tokens() - 1;
        while generated < options.max_tokens && pos < n_ctx {
            let token: LlamaToken = match grammar.as_mut() {
                // `sample` accepts the token into every sampler of the chain as well: accepting
                // it again would count it twice.
                None => sampler.sample(&ctx, logits_index),
                Some(grammar) => {
                    let mut candidates = ctx.token_data_array_ith(logits_index);
                    candidates.apply_sampler(&mut sampler);
                    let picked = candidates.selected_token().ok_or_else(|| Error::Inference("no token sampled".into()))?;
                    let logit = candidates.data.iter().find(|d| d.id() == picked).map(|d| d.logit()).unwrap_or(0.0);
                    let mut alone = LlamaTokenDataArray::new(vec![LlamaTokenData::new(picked, logit, 0.0)], false);
                    alone.apply_sampler(grammar);
                    let token = if alone.data[0].logit().is_finite() {
                        picked
                    } else {
                        let mut candidates = ctx.token_data_array_ith(logits_index);
                        candidates.apply_sampler(grammar);
                        candidates.apply_sampler(&mut sampler);
                        candidates.selected_token().ok_or_else(|| Error::Inference("the grammar allows no token here".into()))?
                    };
                    sampler.accept(token);
                    grammar.accept(token);
                    token
                }
            };
            if vocab.is_eog(token) {
                break;
            }
            generated += 1;
            pending.extend(vocab.token_to_piece(token, false, None));
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                // Invalid bytes (not just an unfinished character): replace them and move on.
                Err(_) => {
                    let lossy = String::from_utf8_lossy(&pending).into_owned();
                    pending = lossy.into_bytes();
                    pending.len()
                }
            };
            if valid > 0 {
                let piece = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                text.push_str(&piece);
                if !on_text(&piece) {
                    break;
                }
            }
            batch.clear();
            batch.add(token, pos as i32, &[0], true).map_err(|e| Error::Inference(e.to_string()))?;
            ctx.decode(&mut batch).map_err(|e| Error::Inference(format!("decoding failed: {e}")))?;
            pos += 1;
            logits_index = 0;
        }
        Ok(Generation {
            text,
            prompt_tokens: tokens.len(),
            generated_tokens: generated,
            prompt_seconds,
            decode_seconds: decode_started.elapsed().as_secs_f64(),
        })
    }
}

fn capitalise(role: &str) -> String {
    let mut c = role.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// llama.cpp decodes fastest with one thread per physical core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 16)
}

/// The weight formats `quantize` writes (llama.cpp's `llama_ftype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    F32,
    F16,
    Q8_0,
    Q6K,
    Q5KM,
    Q5KS,
    Q5_0,
    Q4KM,
    Q4KS,
    Q4_0,
    Q3KM,
    Q2K,
}

impl QuantType {
    pub const NAMES: [(&'static str, QuantType); 12] = [
        ("f32", QuantType::F32),
        ("f16", QuantType::F16),
        ("q8_0", QuantType::Q8_0),
        ("q6_k", QuantType::Q6K),
        ("q5_k_m", QuantType::Q5KM),
        ("q5_k_s", QuantType::Q5KS),
        ("q5_0", QuantType::Q5_0),
        ("q4_k_m", QuantType::Q4KM),
        ("q4_k_s", QuantType::Q4KS),
        ("q4_0", QuantType::Q4_0),
        ("q3_k_m", QuantType::Q3KM),
        ("q2_k", QuantType::Q2K),
    ];

    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        use llama_cpp_sys_2 as sys;
        match self {
            QuantType::F32 => sys::LLAMA_FTYPE_ALL_F32,
            QuantType::F16 => sys::LLAMA_FTYPE_MOSTLY_F16,
            QuantType::Q8_0 => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
            QuantType::Q6K => sys::LLAMA_FTYPE_MOSTLY_Q6_K,
            QuantType::Q5KM => sys::LLAMA_FTYPE_MOSTLY_Q5_K_M,
            QuantType::Q5KS => sys::LLAMA_FTYPE_MOSTLY_Q5_K_S,
            QuantType::Q5_0 => sys::LLAMA_FTYPE_MOSTLY_Q5_0,
            QuantType::Q4KM => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            QuantType::Q4KS => sys::LLAMA_FTYPE_MOSTLY_Q4_K_S,
            QuantType::Q4_0 => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
            QuantType::Q3KM => sys::LLAMA_FTYPE_MOSTLY_Q3_K_M,
            QuantType::Q2K => sys::LLAMA_FTYPE_MOSTLY_Q2_K,
        }
    }
}

impl std::str::FromStr for QuantType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let wanted = s.to_ascii_lowercase();
        Self::NAMES.iter().find(|(name, _)| *name == wanted).map(|(_, t)| *t).ok_or_else(|| {
            format!("unknown quantization '{s}': use one of {}", Self::NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
        })
    }
}

/// Writes `input` (a GGUF of any architecture llama.cpp knows) re-encoded as `kind` with
/// llama.cpp's own quantizer: tensors whose rows do not fit a k-quant block fall back to a
/// compatible type, as llama.cpp decides. Weights already quantized are re-quantized only with
/// `allow_requantize` (quality suffers: quantize from f16/f32 when there is a choice).
pub fn quantize(input: &Path, output: &Path, kind: QuantType, threads: Option<usize>, allow_requantize: bool) -> Result<()> {
    if !input.is_file() {
        return Err(Error::MissingModelFile { path: input.to_path_buf() });
    }
    backend()?;
    let c_path = |p: &Path| {
        std::ffi::CString::new(p.to_string_lossy().as_bytes())
            .map_err(|_| Error::ModelFormat { path: p.to_path_buf(), reason: "the path contains a NUL byte".into() })
    };
    let (from, to) = (c_path(input)?, c_path(output)?);
    // SAFETY: the default parameters are plain values (null pointers for the optional tables);
    // both paths are NUL-terminated and outlive the call, which reads them and returns.
    let status = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.ftype = kind.ftype();
        params.nthread = threads.unwrap_or_else(default_threads) as i32;
        params.allow_requantize = allow_requantize;
        llama_cpp_sys_2::llama_model_quantize(from.as_ptr(), to.as_ptr(), &params)
    };
    if status != 0 {
        let _ = std::fs::remove_file(output);
        return Err(Error::ModelFormat {
            path: input.to_path_buf(),
            reason: if allow_requantize {
                "llama.cpp could not quantize it (see the log with ZHIKU_LOG=debug)".into()
            } else {
                "llama.cpp could not quantize it; if its weights are quantized already, allow re-quantizing (quality suffers) or start from an f16/f32 GGUF".into()
            },
        });
    }
    Ok(())
}
