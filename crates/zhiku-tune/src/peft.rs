//! Hugging Face PEFT adapters in and out: bigger models are fine-tuned on GPU clusters with
//! PEFT/TRL/LLaMA-Factory, and their adapters come back here to be served by llama.cpp; ours go
//! the other way.
//!
//! A PEFT LoRA folder holds `adapter_config.json` (`r`, `lora_alpha`, `use_rslora`) and
//! `adapter_model.safetensors` with `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`
//! (rank×in) and `…lora_B.weight` (out×rank). Two things differ from a GGUF LoRA, as in
//! llama.cpp's convert_lora_to_gguf.py: tensor names, and the rows of q/k, which the HF→GGUF
//! converter permuted for llama.cpp's interleaved rotary embedding — a LoRA update's rows are
//! those of its B, so B is permuted the same way.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::adapter::{write_atomically, Adapter};
use crate::llama::LlamaConfig;
use crate::{Error, Result};

/// GGUF projection name ↔ the module path inside a Hugging Face llama layer.
const MODULES: [(&str, &str); 7] = [
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Heads whose rows the converter interleaved, for a projection (`None`: rows unchanged).
fn permuted_heads(projection: &str, config: &LlamaConfig) -> Option<usize> {
    match projection {
        "attn_q" => Some(config.heads),
        "attn_k" => Some(config.kv_heads),
        _ => None,
    }
}

/// HF row order → GGUF row order: per head, the rows (first half, second half) become pairs.
fn hf_to_gguf_rows(b: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, rank) = b.dims2()?;
    let half = out / heads / 2;
    Ok(b.reshape((heads, 2, half, rank))?.transpose(1, 2)?.contiguous()?.reshape((out, rank))?)
}

/// GGUF row order → HF row order (the inverse of [`hf_to_gguf_rows`]).
fn gguf_to_hf_rows(b: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, rank) = b.dims2()?;
    let half = out / heads / 2;
    Ok(b.reshape((heads, half, 2, rank))?.transpose(1, 2)?.contiguous()?.reshape((out, rank))?)
}

/// Reads a GGUF LoRA adapter (ours, or any llama.cpp one of f32/f16 tensors).
pub fn read_gguf_adapter(path: &Path) -> Result<Adapter> {
    let bad = |reason: String| Error::Adapter { path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| bad(e.to_string()))?;
    let text = |key: &str| content.metadata.get(key).and_then(|v| v.to_string().ok()).cloned();
    if text("general.type").as_deref() != Some("adapter") || text("adapter.type").as_deref() != Some("lora") {
        return Err(bad("not a LoRA adapter (general.type must be adapter, adapter.type lora)".into()));
    }
    let alpha = content.metadata.get("adapter.lora.alpha").and_then(|v| v.to_f32().ok()).unwrap_or(0.0);
    let mut pairs: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    for name in names {
        let tensor = content.tensor(&mut file, &name, &Device::Cpu).map_err(|e| bad(format!("{name}: {e}")))?.dequantize(&Device::Cpu)?;
        if let Some(stem) = name.strip_suffix(".lora_a") {
            pairs.entry(stem.to_string()).or_default().0 = Some(tensor);
        } else if let Some(stem) = name.strip_suffix(".lora_b") {
            pairs.entry(stem.to_string()).or_default().1 = Some(tensor);
        }
    }
    let pairs = pairs
        .into_iter()
        .map(|(stem, pair)| match pair {
            (Some(a), Some(b)) => Ok((stem, (a, b))),
            _ => Err(bad(format!("{stem} has only one of lora_a and lora_b"))),
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let rank = pairs.values().next().map(|(a, _)| a.dims()[0]).unwrap_or(1);
    Ok(Adapter {
        architecture: text("general.architecture").unwrap_or_else(|| "llama".into()),
        // llama.cpp reads an absent alpha as "scale 1": the same as alpha = rank.
        alpha: if alpha > 0.0 { alpha } else { rank as f32 },
        pairs,
    })
}

/// Writes `adapter` (trained on the GGUF `base`) as a PEFT LoRA folder.
pub fn export_peft(adapter: &Adapter, base: &LlamaConfig, base_name: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut modules = std::collections::BTreeSet::new();
    for (stem, (a, b)) in &adapter.pairs {
        let (layer, projection) = parse_stem(stem).ok_or_else(|| Error::Adapter {
            path: dir.to_path_buf(),
            reason: format!("{stem} is not a projection PEFT can name (layers' attention and MLP only)"),
        })?;
        let module = MODULES.iter().find(|(g, _)| *g == projection).map(|(_, m)| *m).unwrap_or_default();
        modules.insert(module.rsplit('.').next().unwrap_or(module).to_string());
        let b = match permuted_heads(projection, base) {
            Some(heads) => gguf_to_hf_rows(b, heads)?,
            None => b.clone(),
        };
        let prefix = format!("base_model.model.model.layers.{layer}.{module}");
        tensors.insert(format!("{prefix}.lora_A.weight"), a.to_dtype(DType::F32)?.contiguous()?);
        tensors.insert(format!("{prefix}.lora_B.weight"), b.to_dtype(DType::F32)?.contiguous()?);
    }
    let weights = dir.join("adapter_model.safetensors");
    let tensors: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&tensors, &weights)?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": adapter.rank(),
        "lora_alpha": adapter.alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "target_modules": modules.into_iter().collect::<Vec<_>>(),
    });
    let config_path = dir.join("adapter_config.json");
    write_atomically(&config_path, |mut file| {
        use std::io::Write;
        let text = serde_json::to_vec_pretty(&config).unwrap_or_default();
        file.write_all(&text).map_err(|e| Error::io(&config_path, e))
    })
}

/// Reads a PEFT LoRA folder made for the base model described by `base`, in GGUF terms.
pub fn import_peft(dir: &Path, base: &LlamaConfig) -> Result<Adapter> {
    let bad = |reason: String| Error::Adapter { path: dir.to_path_buf(), reason };
    let config_path = dir.join("adapter_config.json");
    let config: Value = serde_json::from_slice(&std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?)
        .map_err(|e| bad(format!("adapter_config.json: {e}")))?;
    if config.get("peft_type").and_then(Value::as_str).is_some_and(|t| t != "LORA") {
        return Err(bad(format!("peft_type is {}, only LORA adapters convert", config["peft_type"])));
    }
    let rank = config.get("r").and_then(Value::as_f64).ok_or_else(|| bad("adapter_config.json has no r".into()))?;
    let mut alpha = config.get("lora_alpha").and_then(Value::as_f64).unwrap_or(rank);
    // rsLoRA scales by alpha/√r; llama.cpp scales by alpha/r: the same update needs alpha·√r.
    if config.get("use_rslora").and_then(Value::as_bool).unwrap_or(false) {
        alpha *= rank.sqrt();
    }
    if config.get("fan_in_fan_out").and_then(Value::as_bool).unwrap_or(false) {
        return Err(bad("fan_in_fan_out adapters (GPT-2 style Conv1D layers) are not llama adapters".into()));
    }
    let weights = ["adapter_model.safetensors", "adapter_model.bin"].iter().map(|f| dir.join(f)).find(|p| p.is_file());
    let Some(weights) = weights.filter(|p| p.extension().is_some_and(|e| e == "safetensors")) else {
        return Err(bad("no adapter_model.safetensors (save with safe_serialization=True)".into()));
    };
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)?;
    let mut pairs: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (name, tensor) in tensors {
        let (stem, is_a) =
            gguf_stem(&name).ok_or_else(|| bad(format!("tensor {name} is not a LoRA matrix of a llama layer's projection")))?;
        let tensor = tensor.to_dtype(DType::F32)?;
        let slot = pairs.entry(stem).or_default();
        if is_a {
            slot.0 = Some(tensor);
        } else {
            slot.1 = Some(tensor);
        }
    }
    let mut out = BTreeMap::new();
    for (stem, pair) in pairs {
        let (Some(a), Some(b)) = pair else { return Err(bad(format!("{stem} has only one of lora_A and lora_B"))) };
        let (layer, projection) = parse_stem(&stem).ok_or_else(|| bad(format!("{stem}: unexpected name")))?;
        if layer >= base.layers {
            return Err(bad(format!("layer {layer} does not exist in the base model ({} layers): wrong base model?", base.layers)));
        }
        let expected = expected_shape(projection, base);
        let (r_a, in_a) = a.dims2()?;
        let (out_b, r_b) = b.dims2()?;
        if (out_b, in_a) != expected || r_a != r_b {
            return Err(bad(format!(
                "{stem}: lora_A {r_a}×{in_a} and lora_B {out_b}×{r_b} do not fit a {}×{} weight: wrong base model?",
                expected.0, expected.1
            )));
        }
        let b = match permuted_heads(projection, base) {
            Some(heads) => hf_to_gguf_rows(&b, heads)?,
            None => b,
        };
        out.insert(stem, (a, b));
    }
    if out.is_empty() {
        return Err(bad("the adapter holds no LoRA matrices".into()));
    }
    Ok(Adapter { architecture: "llama".into(), alpha: alpha as f32, pairs: out })
}

/// The (out, in) shape of a projection's weight.
fn expected_shape(projection: &str, c: &LlamaConfig) -> (usize, usize) {
    let kv = c.kv_heads * c.head_dim();
    match projection {
        "attn_q" | "attn_output" => (c.hidden, c.hidden),
        "attn_k" | "attn_v" => (kv, c.hidden),
        "ffn_gate" | "ffn_up" => (c.intermediate, c.hidden),
        _ => (c.hidden, c.intermediate),
    }
}

/// `blk.3.attn_q.weight` → (3, "attn_q").
fn parse_stem(stem: &str) -> Option<(usize, &'static str)> {
    let rest = stem.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (layer, projection) = rest.split_once('.')?;
    let projection = MODULES.iter().map(|(g, _)| *g).find(|g| *g == projection)?;
    Some((layer.parse().ok()?, projection))
}

/// A PEFT tensor name → (GGUF stem, is it A). Accepts the adapter-name infix PEFT writes in
/// some versions (`lora_A.default.weight`).
fn gguf_stem(name: &str) -> Option<(String, bool)> {
    let after_layers = name.split_once("layers.")?.1;
    let (layer, rest) = after_layers.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, matrix) = MODULES.iter().find_map(|(g, m)| rest.strip_prefix(m).map(|r| (*g, r)))?;
    let is_a = match matrix.trim_start_matches('.').split('.').next()? {
        "lora_A" => true,
        "lora_B" => false,
        _ => return None,
    };
    Some((format!("blk.{layer}.{module}.weight"), is_a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LlamaConfig {
        LlamaConfig {
            vocab: 10,
            hidden: 8,
            intermediate: 12,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            context: 64,
        }
    }

    #[test]
    fn q_rows_are_interleaved_per_head_as_the_gguf_converter_does() {
        // One head of 4 rows: HF order (x0, x1, y0, y1) becomes GGUF order (x0, y0, x1, y1).
        let b = Tensor::new(&[[0f32], [1.], [2.], [3.], [10.], [11.], [12.], [13.]], &Device::Cpu).unwrap();
        let gguf = hf_to_gguf_rows(&b, 2).unwrap();
        assert_eq!(gguf.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0., 2., 1., 3., 10., 12., 11., 13.]);
        let back = gguf_to_hf_rows(&gguf, 2).unwrap();
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }

    #[test]
    fn names_map_both_ways() {
        assert_eq!(gguf_stem("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"), Some(("blk.1.attn_q.weight".into(), true)));
        assert_eq!(
            gguf_stem("base_model.model.model.layers.0.mlp.down_proj.lora_B.default.weight"),
            Some(("blk.0.ffn_down.weight".into(), false))
        );
        assert_eq!(gguf_stem("base_model.model.lm_head.lora_A.weight"), None);
        assert_eq!(parse_stem("blk.12.ffn_up.weight"), Some((12, "ffn_up")));
        assert_eq!(parse_stem("token_embd.weight"), None);
    }

    #[test]
    fn an_adapter_survives_export_and_import() {
        let c = config();
        let dev = Device::Cpu;
        let mut pairs = BTreeMap::new();
        let rank = 2;
        for (layer, projection) in [(0, "attn_q"), (1, "attn_k"), (1, "ffn_down")] {
            let (out, inp) = expected_shape(projection, &c);
            let a = Tensor::randn(0f32, 1., (rank, inp), &dev).unwrap();
            let b = Tensor::randn(0f32, 1., (out, rank), &dev).unwrap();
            pairs.insert(format!("blk.{layer}.{projection}.weight"), (a, b));
        }
        let adapter = Adapter { architecture: "llama".into(), alpha: 4.0, pairs };
        let dir = tempfile::tempdir().unwrap();
        export_peft(&adapter, &c, "tiny", dir.path()).unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(dir.path().join("adapter_config.json")).unwrap()).unwrap();
        assert_eq!((written["r"].as_u64(), written["lora_alpha"].as_f64()), (Some(2), Some(4.0)));
        let back = import_peft(dir.path(), &c).unwrap();
        assert_eq!(back.alpha, 4.0);
        for (stem, (a, b)) in &adapter.pairs {
            let (a2, b2) = &back.pairs[stem];
            let diff = |x: &Tensor, y: &Tensor| (x - y).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!((diff(a, a2), diff(b, b2)), (0.0, 0.0), "{stem}");
        }
        // The q rows in the PEFT file are in Hugging Face order, not GGUF's.
        let raw = candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &dev).unwrap();
        let hf_b = &raw["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"];
        let (_, gguf_b) = &adapter.pairs["blk.0.attn_q.weight"];
        assert_ne!(hf_b.to_vec2::<f32>().unwrap(), gguf_b.to_vec2::<f32>().unwrap());
        // A base model of another shape is refused, naming the tensor.
        let other = LlamaConfig { hidden: 16, ..config() };
        let refused = import_peft(dir.path(), &other).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("wrong base model"), "{refused}");
    }
}
