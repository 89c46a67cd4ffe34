use super::Quant;
use crate::distance::Metric;

/// Build parameters. The defaults are hnswlib's usual choice for 384–768 dimensional text
/// embeddings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswConfig {
    /// Neighbours kept per node on the upper layers (twice as many on layer 0).
    pub m: usize,
    /// Beam width while inserting: higher builds slower and searches better.
    pub ef_construction: usize,
    pub metric: Metric,
    /// Seed of the level generator.
    pub seed: u64,
    /// How the vectors are stored; anything below f32 wants its search re-scored.
    pub quant: Quant,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, metric: Metric::Cosine, seed: 42, quant: Quant::F32 }
    }
}

impl HnswConfig {
    /// Parameters a graph can be built with: M of 2..=256, a beam at least M wide.
    pub(super) fn sanitized(self) -> Self {
        let m = self.m.clamp(2, 256);
        Self { m, ef_construction: self.ef_construction.max(m), ..self }
    }
}
