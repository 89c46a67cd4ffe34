//! Lloyd's k-means with k-means++ seeding on a sample, assignments on all cores. Used for the
//! inverted file's coarse centroids and for each product-quantizer codebook.

use rayon::prelude::*;

use crate::distance::l2_squared;

/// The generator training draws from: seeded, so that training is reproducible.
pub(super) type Rng = zhiku_core::random::SplitMix64;

/// The index of the nearest of `centroids` (row-major, `dim` each) to `x`, and its distance.
#[inline]
pub(super) fn nearest(centroids: &[f32], dim: usize, x: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centroids.chunks_exact(dim).enumerate() {
        let d = l2_squared(x, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// `k` centroids of `points` (row-major, `dim` each) after `iterations` rounds. With fewer
/// distinct points than `k`, some centroids repeat.
pub(super) fn train(points: &[f32], dim: usize, k: usize, iterations: usize, rng: &mut Rng) -> Vec<f32> {
    let n = points.len() / dim;
    if n == 0 || k == 0 {
        return vec![0.0; k * dim];
    }
    let point = |i: usize| &points[i * dim..(i + 1) * dim];
    // k-means++: each next seed drawn with probability proportional to its squared distance
    // from the seeds so far. On a capped candidate set, so seeding stays cheap for large k.
    let mut centroids = Vec::with_capacity(k * dim);
    centroids.extend_from_slice(point(rng.below(n)));
    let mut nearest_d: Vec<f32> = (0..n).into_par_iter().map(|i| l2_squared(point(i), &centroids[..dim])).collect();
    while centroids.len() < k * dim {
        let total: f64 = nearest_d.iter().map(|d| *d as f64).sum();
        let chosen = if total <= 0.0 {
            rng.below(n)
        } else {
            let mut target = rng.unit() * total;
            let mut chosen = n - 1;
            for (i, d) in nearest_d.iter().enumerate() {
                target -= *d as f64;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        let start = centroids.len();
        centroids.extend_from_slice(point(chosen));
        let newest = centroids[start..].to_vec();
        nearest_d.par_iter_mut().enumerate().for_each(|(i, d)| *d = d.min(l2_squared(point(i), &newest)));
    }
    for _ in 0..iterations {
        let assignment: Vec<usize> = (0..n).into_par_iter().map(|i| nearest(&centroids, dim, point(i)).0).collect();
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &c) in assignment.iter().enumerate() {
            counts[c] += 1;
            for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(point(i)) {
                *s += *x as f64;
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // An empty cluster restarts at a random point rather than staying dead.
                let p = point(rng.below(n)).to_vec();
                centroids[c * dim..(c + 1) * dim].copy_from_slice(&p);
                continue;
            }
            for d in 0..dim {
                centroids[c * dim + d] = (sums[c * dim + d] / counts[c] as f64) as f32;
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        let mut rng = Rng::new(1);
        let centres = [[0.0f32, 0.0], [10.0, 10.0], [-10.0, 5.0]];
        let points: Vec<f32> =
            (0..300).flat_map(|i| centres[i % 3].iter().map(|c| c + (rng.below(100) as f32 / 100.0 - 0.5)).collect::<Vec<_>>()).collect();
        let found = train(&points, 2, 3, 10, &mut Rng::new(7));
        for c in centres {
            let (_, d) = nearest(&found, 2, &c);
            assert!(d < 0.1, "no centroid near {c:?}: {found:?}");
        }
    }
}
