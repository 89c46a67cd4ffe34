//! A llama-architecture decoder in candle, with LoRA adapters on its projections, for training.
//!
//! Follows llama.cpp's `llm_build_llama` (src/models/llama.cpp) on the weights as they sit in a
//! GGUF file: the converter permuted the rows of `attn_q`/`attn_k` so that llama.cpp's
//! interleaved ("normal") rotary embedding applies, so the same interleaved rotation is used
//! here and an adapter trained on these weights is already in llama.cpp's coordinates.
//! Every operation used has a gradient in candle (no fused kernels: they have no backward).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, Var, D};

use zhiku_core::random::SplitMix64;

use crate::{Error, Result};

/// The projections LoRA may adapt, by their GGUF names.
pub const TARGETS: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub rope_theta: f32,
    pub rms_eps: f64,
    pub context: usize,
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// The shape of a llama-architecture GGUF model, read from its metadata alone.
    pub fn read(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let content =
            gguf_file::Content::read(&mut file).map_err(|e| Error::BaseModel { path: path.to_path_buf(), reason: e.to_string() })?;
        Self::from_gguf(&content, path)
    }

    fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let format = |reason: String| Error::BaseModel { path: path.to_path_buf(), reason };
        let arch = content.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if arch != "llama" {
            return Err(format(format!(
                "its architecture is {arch:?}; the built-in trainer trains llama-architecture models \
                 (SmolLM2, Llama); for others export the dataset, train with PEFT and `zhiku finetune import` the adapter"
            )));
        }
        let int = |key: &str| -> Result<usize> {
            let value = content.metadata.get(&format!("llama.{key}")).ok_or_else(|| format(format!("metadata llama.{key} is missing")))?;
            value
                .to_u32()
                .map(|v| v as usize)
                .or_else(|_| value.to_u64().map(|v| v as usize))
                .map_err(|e| format(format!("llama.{key}: {e}")))
        };
        let float = |key: &str, default: f32| -> f32 {
            content.metadata.get(&format!("llama.{key}")).and_then(|v| v.to_f32().ok()).unwrap_or(default)
        };
        let heads = int("attention.head_count")?;
        let vocab = match content.tensor_infos.get("token_embd.weight") {
            Some(info) => info.shape.dims()[0],
            None => return Err(format("tensor token_embd.weight is missing".into())),
        };
        Ok(Self {
            vocab,
            hidden: int("embedding_length")?,
            intermediate: int("feed_forward_length")?,
            layers: int("block_count")?,
            heads,
            kv_heads: int("attention.head_count_kv").unwrap_or(heads),
            rope_theta: float("rope.freq_base", 10_000.0),
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5) as f64,
            context: int("context_length").unwrap_or(2048),
        })
    }
}

/// A trainable low-rank update `B·A` (PEFT's shapes: A is rank×in, B is out×rank) scaled by
/// alpha/rank, added to a frozen projection.
pub struct LoraPair {
    pub a: Var,
    pub b: Var,
    pub scale: f64,
}

/// A frozen projection with an optional adapter; `weight` is out×in as stored.
struct Projection {
    weight: Tensor,
    lora: Option<LoraPair>,
}

impl Projection {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let base = frozen_matmul(x, &self.weight)?;
        match &self.lora {
            None => Ok(base),
            Some(lora) => {
                let update = x.matmul(&lora.a.as_tensor().t()?)?.matmul(&lora.b.as_tensor().t()?)?;
                Ok((base + (update * lora.scale)?)?)
            }
        }
    }
}

struct Block {
    attn_norm: Tensor,
    q: Projection,
    k: Projection,
    v: Projection,
    o: Projection,
    ffn_norm: Tensor,
    gate: Projection,
    up: Projection,
    down: Projection,
}

impl Block {
    fn projections_mut(&mut self) -> [(&'static str, &mut Projection); 7] {
        [
            ("attn_q", &mut self.q),
            ("attn_k", &mut self.k),
            ("attn_v", &mut self.v),
            ("attn_output", &mut self.o),
            ("ffn_gate", &mut self.gate),
            ("ffn_up", &mut self.up),
            ("ffn_down", &mut self.down),
        ]
    }

    fn projections(&self) -> [(&'static str, &Projection); 7] {
        [
            ("attn_q", &self.q),
            ("attn_k", &self.k),
            ("attn_v", &self.v),
            ("attn_output", &self.o),
            ("ffn_gate", &self.gate),
            ("ffn_up", &self.up),
            ("ffn_down", &self.down),
        ]
    }
}

/// The base model (frozen, dequantized to f32) with the adapters being trained.
pub struct LlamaModel {
    pub config: LlamaConfig,
    embedding: Tensor,
    blocks: Vec<Block>,
    output_norm: Tensor,
    /// `None`: the output projection is tied to the embedding (SmolLM2).
    output: Option<Tensor>,
    device: Device,
}

impl LlamaModel {
    /// Loads a llama-architecture GGUF, dequantizing every tensor to f32.
    pub fn load_gguf(path: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let content =
            gguf_file::Content::read(&mut file).map_err(|e| Error::BaseModel { path: path.to_path_buf(), reason: e.to_string() })?;
        let config = LlamaConfig::from_gguf(&content, path)?;
        let mut tensor = |name: &str| -> Result<Tensor> {
            let q = content
                .tensor(&mut file, name, &device)
                .map_err(|e| Error::BaseModel { path: path.to_path_buf(), reason: format!("tensor {name}: {e}") })?;
            Ok(q.dequantize(&device)?.to_dtype(DType::F32)?)
        };
        let projection = |weight: Tensor| Projection { weight, lora: None };
        let embedding = tensor("token_embd.weight")?;
        let mut blocks = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let mut named = |suffix: &str| tensor(&format!("blk.{i}.{suffix}.weight"));
            blocks.push(Block {
                attn_norm: named("attn_norm")?,
                q: projection(named("attn_q")?),
                k: projection(named("attn_k")?),
                v: projection(named("attn_v")?),
                o: projection(named("attn_output")?),
                ffn_norm: named("ffn_norm")?,
                gate: projection(named("ffn_gate")?),
                up: projection(named("ffn_up")?),
                down: projection(named("ffn_down")?),
            });
        }
        let output_norm = tensor("output_norm.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") { Some(tensor("output.weight")?) } else { None };
        Ok(Self { config, embedding, blocks, output_norm, output, device })
    }

    /// Attaches adapters of `rank` to the `targets` projections of every block. A starts
    /// Kaiming-uniform from `seed` (as PEFT does), B at zero, so the model starts unchanged.
    pub fn attach_lora(&mut self, rank: usize, alpha: f64, targets: &[String], seed: u64) -> Result<()> {
        let mut rng = SplitMix64::new(seed);
        for block in &mut self.blocks {
            for (name, projection) in block.projections_mut() {
                if !targets.iter().any(|t| t == name) {
                    continue;
                }
                let (out_dim, in_dim) = projection.weight.dims2()?;
                let bound = 1.0 / (in_dim as f64).sqrt();
                let a: Vec<f32> = (0..rank * in_dim).map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32).collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (rank, in_dim), &self.device)?)?;
                let b = Var::from_tensor(&Tensor::zeros((out_dim, rank), DType::F32, &self.device)?)?;
                projection.lora = Some(LoraPair { a, b, scale: alpha / rank as f64 });
            }
        }
        Ok(())
    }

    /// The adapters by GGUF tensor name stem (`blk.3.attn_q.weight`), in a fixed order.
    pub fn adapters(&self) -> BTreeMap<String, &LoraPair> {
        let mut out = BTreeMap::new();
        for (i, block) in self.blocks.iter().enumerate() {
            for (name, projection) in block.projections() {
                if let Some(lora) = &projection.lora {
                    out.insert(format!("blk.{i}.{name}.weight"), lora);
                }
            }
        }
        out
    }

    /// Every trainable variable, named `<stem>.lora_a` / `<stem>.lora_b`.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.adapters()
            .into_iter()
            .flat_map(|(stem, pair)| [(format!("{stem}.lora_a"), pair.a.clone()), (format!("{stem}.lora_b"), pair.b.clone())])
            .collect()
    }

    /// Summed negative log-likelihood of `tokens[j + 1]` at each position j in `targets`, and
    /// how many there were. One sequence, no padding.
    pub fn sequence_nll(&self, tokens: &[u32], targets: &[u32]) -> Result<Tensor> {
        let seq = tokens.len();
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embedding.index_select(&ids, 0)?;
        let (cos, sin) = self.rotary(seq)?;
        let mask = causal_mask(seq, &self.device)?;
        for block in &self.blocks {
            x = self.block_forward(block, &x, &cos, &sin, &mask)?;
        }
        let positions = Tensor::new(targets, &self.device)?;
        let hidden = rms_norm(&x.index_select(&positions, 0)?, &self.output_norm, self.config.rms_eps)?;
        let head = self.output.as_ref().unwrap_or(&self.embedding);
        let logits = frozen_matmul(&hidden, head)?;
        let next: Vec<u32> = targets.iter().map(|&j| tokens[j as usize + 1]).collect();
        let next = Tensor::new(next.as_slice(), &self.device)?.unsqueeze(1)?;
        let max = logits.max_keepdim(D::Minus1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let log_norm = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
        let picked = shifted.gather(&next, D::Minus1)?;
        Ok((log_norm - picked)?.sum_all()?)
    }

    fn block_forward(&self, block: &Block, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let seq = x.dim(0)?;
        let head_dim = c.head_dim();
        let h = rms_norm(x, &block.attn_norm, c.rms_eps)?;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> { Ok(t.reshape((1, seq, n, head_dim))?.transpose(1, 2)?.contiguous()?) };
        let q = rope_interleaved(&heads(block.q.forward(&h)?, c.heads)?, cos, sin)?;
        let k = rope_interleaved(&heads(block.k.forward(&h)?, c.kv_heads)?, cos, sin)?;
        let v = heads(block.v.forward(&h)?, c.kv_heads)?;
        let group = c.heads / c.kv_heads;
        let repeat = |t: Tensor| -> Result<Tensor> {
            if group == 1 {
                return Ok(t);
            }
            Ok(t.unsqueeze(2)?.broadcast_as((1, c.kv_heads, group, seq, head_dim))?.reshape((1, c.heads, seq, head_dim))?)
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(mask)?;
        let max = scores.max_keepdim(D::Minus1)?.detach();
        let weights = scores.broadcast_sub(&max)?.exp()?;
        let weights = weights.broadcast_div(&weights.sum_keepdim(D::Minus1)?)?;
        let attended = weights.matmul(&v)?.transpose(1, 2)?.reshape((seq, c.hidden))?;
        let x = (x + block.o.forward(&attended)?)?;
        let h = rms_norm(&x, &block.ffn_norm, c.rms_eps)?;
        let mlp = block.down.forward(&(block.gate.forward(&h)?.silu()? * block.up.forward(&h)?)?)?;
        Ok((x + mlp)?)
    }

    /// cos and sin of position × frequency, seq × head_dim/2, as llama.cpp's rope computes them.
    fn rotary(&self, seq: usize) -> Result<(Tensor, Tensor)> {
        let half = self.config.head_dim() / 2;
        let theta = self.config.rope_theta;
        let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf(2.0 * i as f32 / self.config.head_dim() as f32)).collect();
        let mut angles = Vec::with_capacity(seq * half);
        for pos in 0..seq {
            angles.extend(inv_freq.iter().map(|f| pos as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (seq, half), &self.device)?;
        Ok((angles.cos()?, angles.sin()?))
    }
}

/// `x · weightᵀ` for a weight that is not trained. Candle's own matmul would also compute the
/// weight's gradient on the way back — as much work again as the forward product, thrown
/// away; this op passes a gradient to `x` only.
fn frozen_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(FrozenMatmul { weight: weight.clone() })?)
}

struct FrozenMatmul {
    weight: Tensor,
}

impl candle_core::CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (start, end) =
            layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("frozen-matmul wants a contiguous input".into()))?;
        let x = Tensor::from_slice(&storage.as_slice::<f32>()?[start..end], layout.shape(), &Device::Cpu)?;
        let y = x.matmul(&self.weight.t()?)?;
        let shape = y.shape().clone();
        Ok((candle_core::CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_y.matmul(&self.weight)?))
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(mean_square + eps)?.sqrt()?)?.broadcast_mul(weight)?)
}

/// Rotates pairs (x[2i], x[2i+1]) of each head by the position's angle: llama.cpp's
/// `LLAMA_ROPE_TYPE_NORM`, which llama-architecture GGUF weights are laid out for.
fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, h, seq, d) = x.dims4()?;
    let cos = cos.reshape((seq, d / 2, 1))?.broadcast_as((b, h, seq, d / 2, 1))?;
    let sin = sin.reshape((seq, d / 2, 1))?.broadcast_as((b, h, seq, d / 2, 1))?;
    let pairs = x.reshape((b, h, seq, d / 2, 2))?;
    let even = pairs.narrow(D::Minus1, 0, 1)?;
    let odd = pairs.narrow(D::Minus1, 1, 1)?;
    let rotated_even = (even.broadcast_mul(&cos)? - odd.broadcast_mul(&sin)?)?;
    let rotated_odd = (even.broadcast_mul(&sin)? + odd.broadcast_mul(&cos)?)?;
    Ok(Tensor::cat(&[rotated_even, rotated_odd], D::Minus1)?.reshape((b, h, seq, d))?)
}

fn causal_mask(seq: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..seq).flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Ok(Tensor::from_vec(mask, (seq, seq), device)?)
}
