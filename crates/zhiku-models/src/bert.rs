//! BERT sentence embeddings (e.g. all-MiniLM-L6-v2) on candle, CPU.
//!
//! Follows Hugging Face `transformers`' `BertModel` (modeling_bert.py: absolute position
//! embeddings, post-LayerNorm encoder, exact-erf GELU) and sentence-transformers' `Pooling`
//! (mean over non-padding tokens) + `Normalize` modules, so vectors match the Python reference.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

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

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

pub struct BertModel {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl BertModel {
    pub fn load(vb: VarBuilder, config: BertConfig) -> candle_core::Result<Self> {
        // Checkpoints exported from BertForX carry a "bert." prefix; sentence-transformers' do not.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let h = config.hidden_size;
        let e = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: embedding(config.vocab_size, h, e.pp("word_embeddings"))?,
            position: embedding(config.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_type: embedding(config.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: layer_norm(h, config.layer_norm_eps, e.pp("LayerNorm"))?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(Layer {
                query: linear(h, h, a.pp("self.query"))?,
                key: linear(h, h, a.pp("self.key"))?,
                value: linear(h, h, a.pp("self.value"))?,
                attn_out: linear(h, h, a.pp("output.dense"))?,
                attn_norm: layer_norm(h, config.layer_norm_eps, a.pp("output.LayerNorm"))?,
                intermediate: linear(h, config.intermediate_size, l.pp("intermediate.dense"))?,
                output: linear(config.intermediate_size, h, l.pp("output.dense"))?,
                out_norm: layer_norm(h, config.layer_norm_eps, l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self { config, embeddings, layers })
    }

    /// Hidden states of the last layer, `(batch, seq, hidden)`. `mask` is 1 for real tokens.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?.unsqueeze(0)?.broadcast_as((batch, seq))?;
        let e = &self.embeddings;
        let x = e.word.forward(ids)?.add(&e.token_type.forward(type_ids)?)?.add(&e.position.forward(&positions)?)?;
        let mut x = e.norm.forward(&x)?;
        // Additive mask: 0 where attending is allowed, a large negative number on padding.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((batch, 1, 1, seq))?;
        let heads = self.config.num_attention_heads;
        let head_dim = self.config.hidden_size / heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let split = |t: Tensor| t.reshape((batch, seq, heads, head_dim))?.transpose(1, 2)?.contiguous();
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq, self.config.hidden_size))?;
            let attn = layer.attn_norm.forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            let inter = layer.intermediate.forward(&attn)?;
            let inter = match self.config.hidden_act.as_str() {
                "gelu_new" | "gelu_pytorch_tanh" => inter.gelu()?,
                "relu" => inter.relu()?,
                _ => inter.gelu_erf()?,
            };
            x = layer.out_norm.forward(&(layer.output.forward(&inter)? + attn)?)?;
        }
        Ok(x)
    }
}

/// A sentence embedder: tokenizer + BERT + mean pooling + L2 normalisation.
pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, to measure texts at their full length.
    counter: WordPieceCounter,
    device: Device,
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

        let tok_path = file("tokenizer.json")?;
        let bad_tok = |e: tokenizers::Error| Error::ModelFormat { path: tok_path.clone(), reason: e.to_string() };
        // Padding is done per batch, to the longest member, which is what sentence-transformers
        // does; the counter has the shipped fixed padding off already.
        let counter = WordPieceCounter::load(dir)?;
        let mut tokenizer = counter.tokenizer.clone();
        tokenizer.with_truncation(Some(TruncationParams { max_length: max_seq, ..Default::default() })).map_err(bad_tok)?;

        let weights_path = file("model.safetensors")?;
        let bytes = std::fs::read(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        let device = Device::Cpu;
        let bad_weights = |e: candle_core::Error| Error::ModelFormat { path: weights_path.clone(), reason: e.to_string() };
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device).map_err(bad_weights)?;
        let model = BertModel::load(vb, config).map_err(bad_weights)?;
        Ok(Self { model, tokenizer, counter, device, batch_size: 32 })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Inference(e.to_string()))?;
        let seq = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let n = encodings.len();
        let mut ids = vec![0u32; n * seq];
        let mut types = vec![0u32; n * seq];
        let mut mask = vec![0u32; n * seq];
        for (row, enc) in encodings.iter().enumerate() {
            for (col, ((id, ty), m)) in enc.get_ids().iter().zip(enc.get_type_ids()).zip(enc.get_attention_mask()).enumerate() {
                ids[row * seq + col] = *id;
                types[row * seq + col] = *ty;
                mask[row * seq + col] = *m;
            }
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (n, seq), &self.device)?;
            let types = Tensor::from_vec(types, (n, seq), &self.device)?;
            let mask = Tensor::from_vec(mask, (n, seq), &self.device)?;
            let hidden = self.model.forward(&ids, &types, &mask)?;
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(|e| Error::Inference(e.to_string()))
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
