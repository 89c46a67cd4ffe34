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

/// `Σ a_i · b_i` of i16 weights and byte codes, exact in integers: 16 products per AVX2
/// `vpmaddwd`, where converting every byte to a float would cost four instructions per eight.
/// The caller keeps `max |a_i| · 255 · len` below 2³¹.
#[inline]
pub fn dot_i16_u8(a: &[i16], b: &[u8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        use std::arch::x86_64::*;
        let len = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: AVX2 is enabled at compile time; every load reads 16 elements at `i` with
        // `i + 16 <= len` for both slices, through the unaligned load forms.
        unsafe {
            let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let step = |acc: __m256i, at: usize| {
                let codes = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>()));
                let weights = _mm256_loadu_si256(a.as_ptr().add(at).cast::<__m256i>());
                _mm256_add_epi32(acc, _mm256_madd_epi16(weights, codes))
            };
            while i + 32 <= len {
                acc0 = step(acc0, i);
                acc1 = step(acc1, i + 16);
                i += 32;
            }
            if i + 16 <= len {
                acc0 = step(acc0, i);
                i += 16;
            }
            let mut lanes = [0i32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), _mm256_add_epi32(acc0, acc1));
            lanes.iter().sum::<i32>() + a[i..len].iter().zip(&b[i..len]).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum::<i32>()
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    a.iter().zip(b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum()
}

/// `a · b` with `b` as IEEE half-precision bit patterns.
#[inline]
pub fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
    half_kernel::<false>(a, b)
}

/// `|a - b|²` with `b` as IEEE half-precision bit patterns.
#[inline]
pub fn l2_f16(a: &[f32], b: &[u16]) -> f32 {
    half_kernel::<true>(a, b)
}

/// Σ a_i·b_i, or Σ (a_i - b_i)² when `L2`, over half-precision `b`: with F16C, eight halves become floats in one
/// instruction and the term runs on them in registers (four accumulators hide the add
/// latency); elsewhere each half is converted on its own.
#[inline(always)]
fn half_kernel<const L2: bool>(a: &[f32], b: &[u16]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let term = |x: f32, y: u16| {
        let y = half::f16::from_bits(y).to_f32();
        if L2 {
            (x - y) * (x - y)
        } else {
            x * y
        }
    };
    #[cfg(all(target_arch = "x86_64", target_feature = "f16c", target_feature = "avx"))]
    {
        use std::arch::x86_64::*;
        let len = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: F16C and AVX are enabled at compile time; each step reads 8 elements at
        // `i` with `i + 8 <= len` from both slices, through the unaligned load forms.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 4];
            let step = |acc: __m256, at: usize| {
                let x = _mm256_loadu_ps(a.as_ptr().add(at));
                let y = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>()));
                if L2 {
                    let d = _mm256_sub_ps(x, y);
                    _mm256_add_ps(acc, _mm256_mul_ps(d, d))
                } else {
                    _mm256_add_ps(acc, _mm256_mul_ps(x, y))
                }
            };
            while i + 32 <= len {
                for (lane, acc) in acc.iter_mut().enumerate() {
                    *acc = step(*acc, i + lane * 8);
                }
                i += 32;
            }
            while i + 8 <= len {
                acc[0] = step(acc[0], i);
                i += 8;
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
            lanes.iter().sum::<f32>() + a[i..len].iter().zip(&b[i..len]).map(|(x, y)| term(*x, *y)).sum::<f32>()
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "f16c", target_feature = "avx")))]
    a.iter().zip(b).map(|(x, y)| term(*x, *y)).sum()
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
            let bytes: Vec<u8> = (0..len).map(|i| ((i * 31) % 256) as u8).collect();
            let weights: Vec<i16> = (0..len).map(|i| ((i * 7919) % 20001) as i16 - 10000).collect();
            let want_i16: i64 = weights.iter().zip(&bytes).map(|(x, y)| i64::from(*x) * i64::from(*y)).sum();
            assert_eq!(i64::from(dot_i16_u8(&weights, &bytes)), want_i16, "{len}");
            let halves: Vec<u16> = b.iter().map(|x| half::f16::from_f32(*x).to_bits()).collect();
            let rounded: Vec<f32> = halves.iter().map(|h| half::f16::from_bits(*h).to_f32()).collect();
            assert!((dot_f16(&a, &halves) - dot(&a, &rounded)).abs() <= 1e-3 * want_dot.abs().max(1.0), "{len}");
            assert!((l2_f16(&a, &halves) - l2_squared(&a, &rounded)).abs() <= 1e-3 * want_l2.max(1.0), "{len}");
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
