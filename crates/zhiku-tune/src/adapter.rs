//! Adapter files: the GGUF LoRA llama.cpp loads (`--lora`), written atomically.
//!
//! llama.cpp's loader (src/llama-adapter.cpp) wants `general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, and per adapted weight `<name>.lora_a` with
//! ggml shape [in, rank] and `<name>.lora_b` with [rank, out] — PEFT's A (rank×in) and B
//! (out×rank) row-major — and scales the update by alpha/rank, as training did.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Tensor;

use crate::{Error, Result};

/// A trained adapter in memory: A and B per adapted weight (named as in the base GGUF).
pub struct Adapter {
    pub architecture: String,
    pub alpha: f32,
    pub pairs: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adapter {
    pub fn rank(&self) -> usize {
        self.pairs.values().next().and_then(|(a, _)| a.dims().first().copied()).unwrap_or(0)
    }

    /// Writes the adapter as a GGUF LoRA, replacing `path` only once the file is complete.
    pub fn write_gguf(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(self.pairs.len() * 2);
        for (name, (a, b)) in &self.pairs {
            tensors.push((format!("{name}.lora_a"), QTensor::quantize(a, GgmlDType::F32)?));
            tensors.push((format!("{name}.lora_b"), QTensor::quantize(b, GgmlDType::F32)?));
        }
        let general_type = gguf_file::Value::String("adapter".into());
        let architecture = gguf_file::Value::String(self.architecture.clone());
        let adapter_type = gguf_file::Value::String("lora".into());
        let alpha = gguf_file::Value::F32(self.alpha);
        let metadata = [
            ("general.type", &general_type),
            ("general.architecture", &architecture),
            ("adapter.type", &adapter_type),
            ("adapter.lora.alpha", &alpha),
        ];
        let named: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        write_atomically(path, |file| {
            let mut writer = BufWriter::new(file);
            gguf_file::write(&mut writer, &metadata, &named)?;
            writer.into_inner().map_err(|e| Error::io(path, e.into_error()))?.sync_all().map_err(|e| Error::io(path, e))
        })
    }
}

/// Writes through a temporary sibling and renames it over `path`: a crash leaves either the
/// old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, write: impl FnOnce(File) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write(file)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
