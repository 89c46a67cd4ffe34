//! Exact nearest neighbours by scanning every vector: the reference the approximate indexes are
//! measured against, and the right index for small collections.

use std::collections::BinaryHeap;

use crate::distance::{normalize, Metric, Ordered};
use crate::IdFilter;

pub struct ExactIndex {
    dim: usize,
    metric: Metric,
    vectors: Vec<f32>,
}

impl ExactIndex {
    /// Over `vectors`, row-major with `dim` floats each (normalised here under cosine).
    pub fn new(dim: usize, mut vectors: Vec<f32>, metric: Metric) -> Self {
        vectors.truncate(vectors.len() / dim.max(1) * dim);
        if metric == Metric::Cosine {
            vectors.chunks_exact_mut(dim.max(1)).for_each(normalize);
        }
        Self { dim, metric, vectors }
    }

    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.vectors.len() * 4
    }

    /// The `k` nearest rows as `(row, distance)`, nearest first (ties by row).
    pub fn search(&self, query: &[f32], k: usize, filter: Option<&IdFilter>) -> Vec<(u32, f32)> {
        if query.len() != self.dim || k == 0 || self.dim == 0 {
            return Vec::new();
        }
        let mut query = query.to_vec();
        if self.metric == Metric::Cosine {
            normalize(&mut query);
        }
        let mut best: BinaryHeap<(Ordered, u32)> = BinaryHeap::with_capacity(k + 1);
        for (row, vector) in self.vectors.chunks_exact(self.dim).enumerate() {
            let row = row as u32;
            if filter.is_some_and(|f| !f.contains(row)) {
                continue;
            }
            let d = Ordered(self.metric.distance(&query, vector));
            if best.len() < k || best.peek().is_some_and(|b| (d, row) < *b) {
                best.push((d, row));
                if best.len() > k {
                    best.pop();
                }
            }
        }
        best.into_sorted_vec().into_iter().map(|(d, row)| (row, d.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rows_first_within_the_filter() {
        let index = ExactIndex::new(2, vec![0.0, 0.0, 1.0, 0.0, 3.0, 0.0, 10.0, 0.0], Metric::L2);
        let hits = index.search(&[2.9, 0.0], 3, None);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![2, 1, 0]);
        let odd = IdFilter::from_fn(4, |id| id % 2 == 1);
        assert_eq!(index.search(&[2.9, 0.0], 3, Some(&odd)).iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 3]);
    }
}
