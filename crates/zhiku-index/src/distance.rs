//! Vector similarity kernels. Written so that the compiler vectorises them (AVX2 with
//! `target-cpu=x86-64-v3`): 32 independent lanes hide the latency of the adds. Plain multiply
//! and add, not `mul_add`: built for a CPU without FMA, `mul_add` becomes a call to `fmaf` per
//! element, ten times slower, where multiply-add still vectorises.

/// How vectors are compared. Every index orders by a distance, smaller is nearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// Cosine similarity: vectors are normalised when added, so it is an inner product.
    #[default]
    Cosine,
    InnerProduct,
    /// Squared Euclidean distance.
    L2,
}

impl Metric {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cosine" => Some(Self::Cosine),
            "ip" | "inner-product" | "dot" => Some(Self::InnerProduct),
            "l2" | "euclidean" => Some(Self::L2),
            _ => None,
        }
    }

    /// The distance between two vectors as the index stores them.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::Cosine => 1.0 - dot(a, b),
            Self::InnerProduct => -dot(a, b),
            Self::L2 => l2_squared(a, b),
        }
    }

    /// The score reported to callers, higher is better: the similarity for cosine and inner
    /// product, the negated squared distance for L2.
    pub fn score(self, distance: f32) -> f32 {
        match self {
            Self::Cosine => 1.0 - distance,
            Self::InnerProduct | Self::L2 => -distance,
        }
    }
}

/// A distance with a total order, for heaps of candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ordered(pub f32);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

const LANES: usize = 32;

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (xa, xb) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += xa[k] * xb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| (x - y) * (x - y)).sum();
    for (xa, xb) in ca.zip(cb) {
        for k in 0..LANES {
            let d = xa[k] - xb[k];
            acc[k] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_the_plain_sums_at_every_length() {
        for len in [0, 1, 7, 31, 32, 33, 100, 384, 640] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.2).collect();
            let want_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let want_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((dot(&a, &b) - want_dot).abs() <= 1e-3 * want_dot.abs().max(1.0), "{len}");
            assert!((l2_squared(&a, &b) - want_l2).abs() <= 1e-3 * want_l2.max(1.0), "{len}");
        }
    }

    #[test]
    fn metrics_order_by_distance_and_score_the_other_way() {
        let mut a = vec![3.0, 4.0];
        normalize(&mut a);
        assert!((a[0] - 0.6).abs() < 1e-6);
        let near = [0.6, 0.8];
        let far = [-0.6, -0.8];
        for m in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
            assert!(m.distance(&a, &near) < m.distance(&a, &far), "{m:?}");
            assert!(m.score(m.distance(&a, &near)) > m.score(m.distance(&a, &far)), "{m:?}");
        }
    }
}
