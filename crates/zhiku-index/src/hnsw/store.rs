//! How the graph holds its vectors: f32, f16 (half the memory, distances within ~1e-3) or int8
//! (a quarter: each dimension mapped linearly from its own min..max onto 0..=255, as faiss's
//! SQ8 does). Distances are asymmetric: the query stays f32 and is compared with the stored
//! codes directly, so a search never decodes a vector. Ranking errors of the coarse codes are
//! undone by re-scoring the best candidates from the full vectors ([`super::Hnsw::search_rescored`]).

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

use memmap2::Mmap;

use crate::distance::{dot, dot_f16, dot_i16_u8, l2_f16, Metric};

/// The storage a graph is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quant {
    #[default]
    F32,
    F16,
    Int8,
}

impl Quant {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "f32" => Some(Self::F32),
            "f16" => Some(Self::F16),
            "int8" | "sq8" => Some(Self::Int8),
            _ => None,
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Int8 => 2,
        }
    }

    pub(super) fn from_code(code: u8) -> Result<Self, String> {
        match code {
            0 => Ok(Self::F32),
            1 => Ok(Self::F16),
            2 => Ok(Self::Int8),
            other => Err(format!("unknown vector storage {other}")),
        }
    }
}

/// Per-dimension affine map of int8 codes: x ≈ lower + step · code.
#[derive(Clone, Default)]
pub(super) struct Sq8 {
    pub lower: Vec<f32>,
    pub step: Vec<f32>,
    pub codes: Codes,
    /// Per vector, the squared norm of its decoded value (for L2 distances).
    pub norms: Vec<f32>,
}

impl Sq8 {
    /// The map that covers every value of `vectors` in each dimension; with no vectors to
    /// learn from, -1..=1 (where every value of a unit vector lies).
    pub fn trained(dim: usize, vectors: &[f32]) -> Self {
        if vectors.len() < dim.max(1) {
            return Self { lower: vec![-1.0; dim], step: vec![2.0 / 255.0; dim], codes: Codes::default(), norms: Vec::new() };
        }
        let mut lower = vec![f32::INFINITY; dim];
        let mut upper = vec![f32::NEG_INFINITY; dim];
        for row in vectors.chunks_exact(dim) {
            for ((lo, hi), x) in lower.iter_mut().zip(&mut upper).zip(row) {
                *lo = lo.min(*x);
                *hi = hi.max(*x);
            }
        }
        let step = lower
            .iter_mut()
            .zip(&upper)
            .map(|(lo, hi)| {
                if !lo.is_finite() {
                    *lo = 0.0;
                }
                let range = hi - *lo;
                if range.is_finite() && range > 0.0 {
                    range / 255.0
                } else {
                    1.0
                }
            })
            .collect();
        Self { lower, step, codes: Codes::default(), norms: Vec::new() }
    }

    /// Appends one vector (values outside the trained range are clamped to it).
    pub fn push(&mut self, vector: &[f32]) {
        let start = self.codes.len();
        self.codes
            .to_mut()
            .extend(vector.iter().zip(&self.lower).zip(&self.step).map(|((x, lo), st)| ((x - lo) / st).round().clamp(0.0, 255.0) as u8));
        let mut decoded = vec![0f32; vector.len()];
        self.decode(&self.codes[start..], &mut decoded);
        self.norms.push(dot(&decoded, &decoded));
    }

    fn decode(&self, codes: &[u8], out: &mut [f32]) {
        for (((o, c), lo), st) in out.iter_mut().zip(codes).zip(&self.lower).zip(&self.step) {
            *o = lo + st * f32::from(*c);
        }
    }
}

/// The int8 codes: in memory, or read in place from the saved index file through a memory
/// map (what a loaded index does: the operating system's cache, shared and evictable, holds
/// them, touched a few rows per search). Adding to mapped codes copies them into memory first.
#[derive(Clone)]
pub(super) enum Codes {
    Owned(Vec<u8>),
    Mapped { map: Arc<Mmap>, start: usize, len: usize },
}

impl Default for Codes {
    fn default() -> Self {
        Self::Owned(Vec::new())
    }
}

impl Deref for Codes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Owned(codes) => codes,
            Self::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

impl Codes {
    pub fn to_mut(&mut self) -> &mut Vec<u8> {
        if let Self::Mapped { .. } = self {
            *self = Self::Owned(self.to_vec());
        }
        match self {
            Self::Owned(codes) => codes,
            Self::Mapped { .. } => unreachable!("just copied into memory"),
        }
    }
}

pub(super) enum Store {
    F32(Vec<f32>),
    /// IEEE half-precision bit patterns.
    F16(Vec<u16>),
    Int8(Sq8),
}

/// A query made ready for one store. For int8 it is scaled by each dimension's step and
/// rounded to integers, so that q·x ≈ offset + scale · Σ weights_i · code_i: integer products
/// run four times as fast as converting codes to floats, and 15-bit weights lose nothing next
/// to 8-bit codes.
pub(super) struct Prepared<'a> {
    /// The query itself, compared as is with f32 and f16 vectors.
    pub values: Cow<'a, [f32]>,
    pub weights: Vec<i16>,
    pub scale: f32,
    pub offset: f32,
    /// |q|², for L2 over int8 codes.
    pub norm: f32,
}

impl Store {
    pub fn quant(&self) -> Quant {
        match self {
            Self::F32(_) => Quant::F32,
            Self::F16(_) => Quant::F16,
            Self::Int8(_) => Quant::Int8,
        }
    }

    /// `vectors` (row-major, `dim` each) in the given storage; int8 trains its map on them.
    pub fn encode(quant: Quant, dim: usize, vectors: Vec<f32>) -> Self {
        match quant {
            Quant::F32 => Self::F32(vectors),
            Quant::F16 => Self::F16(vectors.iter().map(|x| half::f16::from_f32(*x).to_bits()).collect()),
            Quant::Int8 => {
                let mut sq = Sq8::trained(dim, &vectors);
                sq.codes.to_mut().reserve(vectors.len());
                vectors.chunks_exact(dim).for_each(|row| sq.push(row));
                Self::Int8(sq)
            }
        }
    }

    pub fn push(&mut self, vector: &[f32]) {
        match self {
            Self::F32(v) => v.extend_from_slice(vector),
            Self::F16(v) => v.extend(vector.iter().map(|x| half::f16::from_f32(*x).to_bits())),
            Self::Int8(sq) => sq.push(vector),
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Self::F32(v) => v.len() * 4,
            Self::F16(v) => v.len() * 2,
            Self::Int8(sq) => sq.codes.len() + (sq.lower.len() + sq.step.len() + sq.norms.len()) * 4,
        }
    }

    /// A node's vector as f32 (decoded unless stored as f32).
    pub fn vector(&self, dim: usize, node: u32) -> Cow<'_, [f32]> {
        let range = node as usize * dim..(node as usize + 1) * dim;
        match self {
            Self::F32(v) => Cow::Borrowed(&v[range]),
            Self::F16(v) => Cow::Owned(v[range].iter().map(|h| half::f16::from_bits(*h).to_f32()).collect()),
            Self::Int8(sq) => {
                let mut out = vec![0f32; dim];
                sq.decode(&sq.codes[range], &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// The first bytes of a node's codes, to prefetch.
    #[inline]
    pub fn row_start(&self, dim: usize, node: u32) -> (*const u8, usize) {
        let at = node as usize * dim;
        match self {
            Self::F32(v) => (v[at..].as_ptr().cast(), dim * 4),
            Self::F16(v) => (v[at..].as_ptr().cast(), dim * 2),
            Self::Int8(sq) => (sq.codes[at..].as_ptr(), dim),
        }
    }

    pub fn prepare<'a>(&self, query: Cow<'a, [f32]>) -> Prepared<'a> {
        match self {
            Self::F32(_) | Self::F16(_) => Prepared { values: query, weights: Vec::new(), scale: 0.0, offset: 0.0, norm: 0.0 },
            Self::Int8(sq) => {
                let scaled: Vec<f32> = query.iter().zip(&sq.step).map(|(q, s)| q * s).collect();
                // The largest weight that keeps Σ |weight| · 255 inside an i32.
                let limit = (i32::MAX as f64 / (255.0 * scaled.len().max(1) as f64)).min(f64::from(i16::MAX)) as f32;
                let largest = scaled.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = if largest > 0.0 { largest / limit } else { 1.0 };
                Prepared {
                    weights: scaled.iter().map(|v| (v / scale).round() as i16).collect(),
                    scale,
                    offset: dot(&query, &sq.lower),
                    norm: dot(&query, &query),
                    values: query,
                }
            }
        }
    }

    #[inline]
    pub fn distance(&self, metric: Metric, dim: usize, query: &Prepared<'_>, node: u32) -> f32 {
        let range = node as usize * dim..(node as usize + 1) * dim;
        match self {
            Self::F32(v) => metric.distance(&query.values, &v[range]),
            Self::F16(v) => match metric {
                Metric::Cosine => 1.0 - dot_f16(&query.values, &v[range]),
                Metric::InnerProduct => -dot_f16(&query.values, &v[range]),
                Metric::L2 => l2_f16(&query.values, &v[range]),
            },
            Self::Int8(sq) => {
                let ip = query.offset + query.scale * dot_i16_u8(&query.weights, &sq.codes[range]) as f32;
                match metric {
                    Metric::Cosine => 1.0 - ip,
                    Metric::InnerProduct => -ip,
                    Metric::L2 => (query.norm - 2.0 * ip + sq.norms[node as usize]).max(0.0),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coded_distances_track_the_exact_ones() {
        let dim = 48;
        let data: Vec<f32> = (0..200 * dim).map(|i| ((i * 7919) % 1013) as f32 / 500.0 - 1.0).collect();
        let query: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
            for (quant, tolerance) in [(Quant::F32, 1e-4), (Quant::F16, 1e-2), (Quant::Int8, 0.15)] {
                let store = Store::encode(quant, dim, data.clone());
                let prepared = store.prepare(Cow::Borrowed(&query));
                for node in 0..200u32 {
                    let exact = metric.distance(&query, &data[node as usize * dim..(node as usize + 1) * dim]);
                    let coded = store.distance(metric, dim, &prepared, node);
                    assert!(
                        (exact - coded).abs() <= tolerance * exact.abs().max(1.0),
                        "{metric:?} {quant:?} node {node}: {exact} vs {coded}"
                    );
                    let decoded = store.vector(dim, node);
                    assert!((metric.distance(&query, &decoded) - coded).abs() <= 1e-3 * exact.abs().max(1.0), "{metric:?} {quant:?}");
                }
            }
        }
    }

    #[test]
    fn int8_clamps_values_outside_the_trained_range_and_survives_constant_dimensions() {
        let mut sq = Sq8::trained(2, &[0.0, 5.0, 1.0, 5.0]);
        sq.push(&[2.0, 5.0]);
        sq.push(&[-1.0, 5.0]);
        assert_eq!(&*sq.codes, &[255, 0, 0, 0]);
        let mut out = [0f32; 2];
        sq.decode(&sq.codes[0..2], &mut out);
        assert_eq!(out, [1.0, 5.0]);
    }
}
