//! BERT sentence embeddings (e.g. all-MiniLM-L6-v2) on the CPU: weights read with candle's
//! safetensors loader, the forward pass our own (packed sequences, fused QKV, gemm kernels).
//!
//! Follows Hugging Face `transformers`' `BertModel` (modeling_bert.py: absolute position
//! embeddings, post-LayerNorm encoder, exact-erf GELU) and sentence-transformers' `Pooling`
//! (mean over non-padding tokens) + `Normalize` modules, so vectors match the Python reference.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::wordpiece::FastWordPiece;
use zhiku_core::{Embedder, TokenCounter};

use crate::{Error, Result};

/// The fields of `config.json` this implementation reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// A dense layer, `y = x Wᵀ + b`, with `W` as PyTorch stores it (`out × in`, row-major).
pub(crate) struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    fn load(vb: &VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?.flatten_all()?.to_vec1::<f32>()?;
        let bias = vb.get(outputs, "bias")?.to_vec1::<f32>()?;
        Ok(Self { weight, bias, inputs, outputs })
    }

    pub(crate) fn new(weight: Vec<f32>, bias: Vec<f32>, inputs: usize, outputs: usize) -> Self {
        Self { weight, bias, inputs, outputs }
    }

    /// Several layers reading the same input as one (query, key and value: one matrix product
    /// instead of three).
    pub(crate) fn stack(parts: Vec<Dense>) -> Self {
        let inputs = parts[0].inputs;
        let outputs = parts.iter().map(|p| p.outputs).sum();
        let weight = parts.iter().flat_map(|p| p.weight.iter().copied()).collect();
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Self { weight, bias, inputs, outputs }
    }

    /// `rows` input rows of `x` into `y` (`rows × outputs`).
    fn forward(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        debug_assert_eq!(x.len(), rows * self.inputs);
        y.clear();
        if rows < SMALL_ROWS {
            y.resize(rows * self.outputs, 0.0);
            self.forward_few(x, rows, y);
            return;
        }
        for _ in 0..rows {
            y.extend_from_slice(&self.bias);
        }
        // SAFETY: every pointer covers the matrix its strides describe: x is rows × inputs
        // (row-major), the weight outputs × inputs read transposed, y rows × outputs.
        unsafe {
            gemm::gemm(
                rows,
                self.outputs,
                self.inputs,
                y.as_mut_ptr(),
                1,
                self.outputs as isize,
                true,
                x.as_ptr(),
                1,
                self.inputs as isize,
                self.weight.as_ptr(),
                self.inputs as isize,
                1,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    }
}

/// Below this many rows (a search query's tokens) the dense layers are dot products of each row
/// with each weight row: gemm would repack the whole weight matrix for a handful of rows, which
/// cost half of a search's time.
const SMALL_ROWS: usize = 32;

/// Weight rows a dot-product step reads together: eight independent accumulators keep both FMA
/// units busy instead of waiting on one chain.
const ROWS_AT_ONCE: usize = 8;

/// `x` against eight weight rows: eight dot products, 8 lanes each, fused multiply-adds (which
/// `mul_add` becomes on the x86-64-v3 target).
fn dot8(x: &[f32], w: &[&[f32]; ROWS_AT_ONCE]) -> [f32; ROWS_AT_ONCE] {
    let mut acc = [[0f32; 8]; ROWS_AT_ONCE];
    let whole = x.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        let xs = &x[i..i + 8];
        for (a, row) in acc.iter_mut().zip(w) {
            let ws = &row[i..i + 8];
            for l in 0..8 {
                a[l] = xs[l].mul_add(ws[l], a[l]);
            }
        }
    }
    let mut out = [0f32; ROWS_AT_ONCE];
    for ((o, a), row) in out.iter_mut().zip(&acc).zip(w) {
        *o = a.iter().sum::<f32>() + x[whole..].iter().zip(&row[whole..]).map(|(p, q)| p * q).sum::<f32>();
    }
    out
}

impl Dense {
    /// [`Dense::forward`] for a few rows: eight weight rows at a time against every input row, so
    /// a weight row is read once per call. On the calling thread: a few rows are a search query,
    /// and concurrent queries keep the cores busy better than splitting each (which cost a third
    /// of the time in thread switches under load).
    fn forward_few(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        let (inputs, outputs) = (self.inputs, self.outputs);
        let out = y.as_mut_ptr();
        self.weight.chunks(inputs * 64).enumerate().for_each(|(block, weights)| {
            let group: Vec<&[f32]> = weights.chunks_exact(inputs).collect();
            for (g, rows_of_w) in group.chunks(ROWS_AT_ONCE).enumerate() {
                let first = block * 64 + g * ROWS_AT_ONCE;
                for r in 0..rows {
                    let xr = &x[r * inputs..(r + 1) * inputs];
                    let values: Vec<f32> = match <&[&[f32]; ROWS_AT_ONCE]>::try_from(rows_of_w) {
                        Ok(eight) => dot8(xr, eight).to_vec(),
                        Err(_) => rows_of_w.iter().map(|w| xr.iter().zip(*w).map(|(p, q)| p * q).sum()).collect(),
                    };
                    for (j, v) in values.into_iter().enumerate() {
                        let o = first + j;
                        // SAFETY: (r, o) lies inside the rows × outputs output.
                        unsafe { *out.add(r * outputs + o) = v + self.bias[o] };
                    }
                }
            }
        });
    }
}

pub(crate) struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub(crate) fn new(gamma: Vec<f32>, beta: Vec<f32>, eps: f64) -> Self {
        Self { gamma, beta, eps: eps as f32 }
    }

    fn load(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self { gamma: vb.get(size, "weight")?.to_vec1::<f32>()?, beta: vb.get(size, "bias")?.to_vec1::<f32>()?, eps: eps as f32 })
    }

    /// Layer normalisation of every row of `x`, after adding `residual` to it.
    fn add_and_normalise(&self, x: &mut [f32], residual: &[f32]) {
        let h = self.gamma.len();
        let add_and_normalise = |(row, res): (&mut [f32], &[f32])| {
            for (v, r) in row.iter_mut().zip(res) {
                *v += r;
            }
            self.normalise_row(row);
        };
        if x.len() < SMALL_ROWS * h {
            x.chunks_mut(h).zip(residual.chunks(h)).for_each(add_and_normalise);
        } else {
            x.par_chunks_mut(h).zip(residual.par_chunks(h)).for_each(add_and_normalise);
        }
    }

    fn normalise(&self, x: &mut [f32]) {
        let h = self.gamma.len();
        if x.len() < SMALL_ROWS * h {
            x.chunks_mut(h).for_each(|row| self.normalise_row(row));
        } else {
            x.par_chunks_mut(h).for_each(|row| self.normalise_row(row));
        }
    }

    fn normalise_row(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

pub(crate) struct Layer {
    /// Query, key and value stacked: one row of output is `[q | k | v]`.
    pub(crate) qkv: Dense,
    pub(crate) attn_out: Dense,
    pub(crate) attn_norm: Norm,
    pub(crate) intermediate: Dense,
    pub(crate) output: Dense,
    pub(crate) out_norm: Norm,
}

/// The token-embedding table: f32 rows, or 4-bit blocks (a 250,000-word multilingual vocabulary
/// is 384 MB as f32, 54 MB as Q4_0) dequantized row by row as tokens are looked up.
pub(crate) enum WordTable {
    F32(Vec<f32>),
    Q4_0(Vec<u8>),
}

impl WordTable {
    /// Writes row `id` into `out` (one row long).
    fn write_row(&self, id: usize, out: &mut [f32]) {
        let h = out.len();
        match self {
            WordTable::F32(rows) => out.copy_from_slice(&rows[id * h..(id + 1) * h]),
            WordTable::Q4_0(blocks) => {
                let row_bytes = h / 32 * 18;
                crate::e5::dequantize_q4_0(&blocks[id * row_bytes..(id + 1) * row_bytes], out);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

/// erf with an absolute error below 1.5e-7 (Abramowitz and Stegun 7.1.26): exact GELU to f32
/// precision, several times cheaper than a library erf.
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    let y = 1.0 - poly * (-a * a).exp();
    y.copysign(x)
}

impl Activation {
    fn apply(self, x: &mut [f32]) {
        let apply = |chunk: &mut [f32]| match self {
            Activation::GeluErf => chunk.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2))),
            Activation::GeluTanh => chunk.iter_mut().for_each(|v| {
                let x = *v;
                *v = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
            }),
            Activation::Relu => chunk.iter_mut().for_each(|v| *v = v.max(0.0)),
        };
        // A few rows' worth (a query) on the calling thread, like the dense layers.
        if x.len() < 16 * 4096 {
            apply(x);
        } else {
            x.par_chunks_mut(4096).for_each(apply);
        }
    }
}

/// Buffers a thread reuses from one batch to the next: fresh multi-megabyte allocations come
/// from the kernel as zeroed pages, which cost more than a tenth of the embedding time.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attn: Vec<f32>,
    inter: Vec<f32>,
    out: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffers, or fresh ones if they are in use (a rayon worker that
/// picked up a second task while waiting inside the first).
fn with_reused<T: Default, R>(key: &'static std::thread::LocalKey<std::cell::RefCell<T>>, f: impl FnOnce(&mut T) -> R) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut reused) => f(&mut reused),
        Err(_) => f(&mut T::default()),
    })
}

/// A pointer that may cross to rayon's threads: each task writes its own part of the buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Hugging Face's `BertModel` forward pass on the CPU over *packed* sequences: the tokens of a
/// batch one after the other, without padding, so that no work is spent on padding and the
/// dense layers see one tall matrix. Attention runs per sequence and head.
pub struct BertModel {
    config: BertConfig,
    word: WordTable,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    activation: Activation,
}

impl BertModel {
    pub fn load(vb: VarBuilder, config: BertConfig) -> candle_core::Result<Self> {
        // Checkpoints exported from BertForX carry a "bert." prefix; sentence-transformers' do not.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let h = config.hidden_size;
        let e = vb.pp("embeddings");
        let table = |name: &str, rows: usize| -> candle_core::Result<Vec<f32>> {
            e.pp(name).get((rows, h), "weight")?.flatten_all()?.to_vec1::<f32>()
        };
        let word = WordTable::F32(table("word_embeddings", config.vocab_size)?);
        let position = table("position_embeddings", config.max_position_embeddings)?;
        let token_type = table("token_type_embeddings", config.type_vocab_size)?;
        let embed_norm = Norm::load(&e.pp("LayerNorm"), h, config.layer_norm_eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let qkv = Dense::stack(vec![
                Dense::load(&a.pp("self.query"), h, h)?,
                Dense::load(&a.pp("self.key"), h, h)?,
                Dense::load(&a.pp("self.value"), h, h)?,
            ]);
            layers.push(Layer {
                qkv,
                attn_out: Dense::load(&a.pp("output.dense"), h, h)?,
                attn_norm: Norm::load(&a.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
                intermediate: Dense::load(&l.pp("intermediate.dense"), h, config.intermediate_size)?,
                output: Dense::load(&l.pp("output.dense"), config.intermediate_size, h)?,
                out_norm: Norm::load(&l.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
            });
        }
        let activation = match config.hidden_act.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            _ => Activation::GeluErf,
        };
        Ok(Self { config, word, position, token_type, embed_norm, layers, activation })
    }

    /// A model from weights read elsewhere (another file format); `gelu` activation.
    pub(crate) fn from_parts(
        config: BertConfig,
        word: WordTable,
        position: Vec<f32>,
        token_type: Vec<f32>,
        embed_norm: Norm,
        layers: Vec<Layer>,
    ) -> Self {
        Self { config, word, position, token_type, embed_norm, layers, activation: Activation::GeluErf }
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Hidden states of the last layer for each sequence, packed: `Σ len × hidden`, the tokens of
    /// `sequences[0]` first. Each sequence is `(token ids, token type ids)`.
    pub fn forward(&self, sequences: &[(&[u32], &[u32])]) -> Vec<f32> {
        let h = self.config.hidden_size;
        let rows: usize = sequences.iter().map(|s| s.0.len()).sum();
        let mut x = Vec::with_capacity(rows * h);
        for (ids, types) in sequences {
            for (p, (&id, &ty)) in ids.iter().zip(types.iter()).enumerate() {
                let (t, pos) = (ty as usize * h, p * h);
                let at = x.len();
                x.resize(at + h, 0.0);
                let row = &mut x[at..];
                self.word.write_row(id as usize, row);
                for ((v, b), c) in row.iter_mut().zip(&self.token_type[t..t + h]).zip(&self.position[pos..pos + h]) {
                    *v = *v + b + c;
                }
            }
        }
        self.embed_norm.normalise(&mut x);
        let starts: Vec<(usize, usize)> = sequences
            .iter()
            .scan(0usize, |at, s| {
                let start = *at;
                *at += s.0.len();
                Some((start, s.0.len()))
            })
            .collect();
        with_reused(&SCRATCH, |scratch| {
            let Scratch { qkv, context, attn, inter, out } = scratch;
            context.clear();
            context.resize(rows * h, 0.0);
            for layer in &self.layers {
                layer.qkv.forward(&x, rows, qkv);
                self.attention(qkv, &starts, context);
                layer.attn_out.forward(context, rows, attn);
                layer.attn_norm.add_and_normalise(attn, &x);
                layer.intermediate.forward(attn, rows, inter);
                self.activation.apply(inter);
                layer.output.forward(inter, rows, out);
                layer.out_norm.add_and_normalise(out, attn);
                std::mem::swap(&mut x, out);
            }
        });
        x
    }

    /// Scaled dot-product attention of every head of every sequence: `qkv` rows are `[q | k | v]`,
    /// `context` receives the heads side by side.
    fn attention(&self, qkv: &[f32], sequences: &[(usize, usize)], context: &mut [f32]) {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let stride = 3 * h;
        let out = SharedMut(context.as_mut_ptr());
        let tasks: Vec<(usize, usize, usize)> =
            sequences.iter().flat_map(|&(start, len)| (0..heads).map(move |head| (start, len, head))).collect();
        let rows: usize = sequences.iter().map(|s| s.1).sum();
        let attend = |&(start, len, head): &(usize, usize, usize)| {
            // Captures the whole `SharedMut` (which is Sync), not its raw-pointer field (which
            // is not): closures capture the fields they use.
            #[allow(clippy::redundant_locals)]
            let out = out;
            with_reused(&SCORES, |scores| {
                scores.clear();
                scores.resize(len * len, 0.0);
                let q = qkv[start * stride + head * d..].as_ptr();
                let k = qkv[start * stride + h + head * d..].as_ptr();
                let v = qkv[start * stride + 2 * h + head * d..].as_ptr();
                // SAFETY: q, k, v index `len` rows of `stride` within qkv from this sequence's first
                // row; scores is len × len; the context rows and columns written (this sequence,
                // this head's d columns) belong to this task alone.
                unsafe {
                    gemm::gemm(
                        len,
                        len,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        q,
                        1,
                        stride as isize,
                        k,
                        stride as isize,
                        1,
                        0.0f32,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for row in scores.chunks_mut(len) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for s in row.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let inv = 1.0 / sum;
                    row.iter_mut().for_each(|s| *s *= inv);
                }
                unsafe {
                    gemm::gemm(
                        len,
                        d,
                        len,
                        out.0.add(start * h + head * d),
                        1,
                        h as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        v,
                        1,
                        stride as isize,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            });
        };
        if rows < SMALL_ROWS {
            tasks.iter().for_each(attend);
        } else {
            tasks.par_iter().for_each(attend);
        }
    }
}

/// A sentence embedder: tokenizer + BERT + mean pooling + L2 normalisation.
pub struct BertEmbedder {
    model: BertModel,
    /// The tokenizer, without truncation (to measure texts at their full length); inputs to
    /// the model are cut to `max_seq` tokens after it. One copy, not one per use: 4 MB each.
    counter: WordPieceCounter,
    max_seq: usize,
    batch_size: usize,
}

/// Counts tokens with a model folder's `tokenizer.json` alone, without loading the weights: for
/// chunking exactly as ingestion would where no embedding is needed.
#[derive(Clone)]
pub struct WordPieceCounter {
    tokenizer: Tokenizer,
    /// The same count without the tokenizers pipeline, when the tokenizer is plain BERT.
    fast: Option<std::sync::Arc<FastWordPiece>>,
}

impl WordPieceCounter {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::MissingModelFile { path });
        }
        let bad = |e: tokenizers::Error| Error::ModelFormat { path: path.clone(), reason: e.to_string() };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(bad)?;
        // The shipped tokenizer pads every input to a fixed length and truncates; a counter must
        // see texts at their full length.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(bad)?;
        let fast = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|json| FastWordPiece::from_tokenizer_json(&json))
            .map(std::sync::Arc::new);
        Ok(Self { tokenizer, fast })
    }

    /// The count through the `tokenizers` pipeline, which the fast path must agree with.
    pub fn count_with_tokenizers(&self, text: &str) -> usize {
        self.tokenizer.encode(text, false).map(|e| e.get_ids().len()).unwrap_or_else(|_| text.len() / 3)
    }

    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }
}

impl TokenCounter for WordPieceCounter {
    fn count_tokens(&self, text: &str) -> usize {
        match &self.fast {
            Some(fast) => fast.count(text),
            None => self.count_with_tokenizers(text),
        }
    }
}

/// sentence-transformers' `max_seq_length` for the MiniLM family; used when the model folder has
/// no `sentence_bert_config.json`.
const DEFAULT_MAX_SEQ: usize = 256;

impl BertEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from a model folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::MissingModelFile { path: p })
            }
        };
        let config_path = file("config.json")?;
        let config: BertConfig = serde_json::from_slice(&std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?)
            .map_err(|e| Error::ModelFormat { path: config_path.clone(), reason: e.to_string() })?;
        let max_seq = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
            .map(|m| m as usize)
            .unwrap_or(DEFAULT_MAX_SEQ)
            .min(config.max_position_embeddings);

        // The counter has the shipped fixed padding off: nothing is padded at all.
        let counter = WordPieceCounter::load(dir)?;

        let weights_path = file("model.safetensors")?;
        let bytes = std::fs::read(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        let device = Device::Cpu;
        let bad_weights = |e: candle_core::Error| Error::ModelFormat { path: weights_path.clone(), reason: e.to_string() };
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device).map_err(bad_weights)?;
        let model = BertModel::load(vb, config).map_err(bad_weights)?;
        Ok(Self { model, counter, max_seq: max_seq.max(2), batch_size: 32 })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self.counter.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Inference(e.to_string()))?;
        // Cut as the tokenizer's own truncation does for one sequence: [CLS], the first
        // max_seq - 2 tokens, [SEP].
        let cut = |values: &[u32]| -> Vec<u32> {
            if values.len() <= self.max_seq {
                return values.to_vec();
            }
            values[..self.max_seq - 1].iter().chain(values.last()).copied().collect()
        };
        let owned: Vec<(Vec<u32>, Vec<u32>)> = encodings.iter().map(|e| (cut(e.get_ids()), cut(e.get_type_ids()))).collect();
        // An empty text still has [CLS] and [SEP]; a sequence of none would divide by zero.
        let sequences: Vec<(&[u32], &[u32])> = owned.iter().map(|(ids, types)| (ids.as_slice(), types.as_slice())).collect();
        if let Some(empty) = sequences.iter().position(|s| s.0.is_empty()) {
            return Err(Error::Inference(format!("text {empty} tokenized to nothing")));
        }
        let h = self.model.config.hidden_size;
        let hidden = self.model.forward(&sequences);
        // Mean over each sequence's tokens (all real: nothing is padded), then L2-normalised.
        let mut at = 0;
        Ok(sequences
            .iter()
            .map(|(ids, _)| {
                let mut mean = vec![0f32; h];
                for row in hidden[at * h..(at + ids.len()) * h].chunks(h) {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                at += ids.len();
                let n = ids.len() as f32;
                mean.iter_mut().for_each(|m| *m /= n);
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|m| *m /= norm);
                mean
            })
            .collect())
    }
}

impl TokenCounter for BertEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.counter.count_tokens(text)
    }
}

impl Embedder for BertEmbedder {
    fn dimension(&self) -> usize {
        self.model.config.hidden_size
    }

    fn embed(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        // Sorting by length keeps padding (wasted compute) small inside each batch.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for group in order.chunks(self.batch_size) {
            let batch: Vec<&str> = group.iter().map(|&i| texts[i]).collect();
            let vectors = self.embed_batch(&batch).map_err(|e| zhiku_core::Error::Embedding(e.to_string()))?;
            for (&i, v) in group.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::erf;

    #[test]
    fn erf_is_exact_to_f32_precision() {
        for (x, want) in
            [(0.0f32, 0.0f32), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (2.0, 0.995_322_3), (-1.0, -0.842_700_8), (4.0, 0.999_999_98)]
        {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}, not {want}", erf(x));
        }
    }
}
