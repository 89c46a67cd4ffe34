use std::collections::HashMap;

use crate::Scored;

/// Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): each list contributes
/// `1 / (k + rank)` for every id it ranks (rank from 1). Scores of different scales (cosine,
/// BM25) never need calibrating. `k = 60` is the paper's value. Ties keep the order of first
/// appearance, so results are deterministic.
pub fn reciprocal_rank_fusion(lists: &[Vec<Scored>], k: f32) -> Vec<Scored> {
    let mut fused: HashMap<u64, (f32, usize)> = HashMap::new();
    let mut order = 0usize;
    for list in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            let entry = fused.entry(*id).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (k + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(u64, f32, usize)> = fused.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(id, s, _)| (id, s)).collect()
}

/// Weighted score fusion (convex combination, Bruch et al., "An Analysis of Fusion Functions
/// for Hybrid Retrieval", TOIS 2023): each list's scores are min-max normalised to [0, 1], then
/// summed with the list's weight. Unlike RRF it keeps how much better the top hit is; an id a
/// list does not rank gets 0 from it. Ties keep the order of first appearance.
pub fn weighted_fusion(lists: &[(Vec<Scored>, f32)]) -> Vec<Scored> {
    let mut fused: HashMap<u64, (f32, usize)> = HashMap::new();
    let mut order = 0usize;
    for (list, weight) in lists {
        let (min, max) = list.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| (lo.min(h.1), hi.max(h.1)));
        let span = max - min;
        for (id, score) in list {
            // A list of equal scores (or of one hit) says only that these are its hits.
            let normalised = if span > 0.0 { (score - min) / span } else { 1.0 };
            let entry = fused.entry(*id).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += weight * normalised;
        }
    }
    let mut out: Vec<(u64, f32, usize)> = fused.into_iter().map(|(id, (s, o))| (id, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(id, s, _)| (id, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_fusion_keeps_margins_and_weights() {
        let vector = vec![(1, 0.9), (2, 0.5), (3, 0.1)];
        let bm25 = vec![(2, 20.0), (3, 10.0), (1, 0.0)];
        // Vector weight 0.7: 1 → 0.7·1 + 0.3·0 = 0.7; 2 → 0.7·0.5 + 0.3·1 = 0.65; 3 → 0 + 0.15.
        let fused = weighted_fusion(&[(vector.clone(), 0.7), (bm25.clone(), 0.3)]);
        assert_eq!(fused.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!((fused[1].1 - 0.65).abs() < 1e-6);
        // Weighted towards BM25, 2 wins.
        assert_eq!(weighted_fusion(&[(vector, 0.2), (bm25, 0.8)])[0].0, 2);
        assert_eq!(weighted_fusion(&[(vec![(9, 3.0)], 1.0)]), vec![(9, 1.0)]);
        assert!(weighted_fusion(&[]).is_empty());
    }

    #[test]
    fn items_ranked_well_by_both_lists_win() {
        let vector = vec![(1, 0.9), (2, 0.8), (3, 0.7)];
        let bm25 = vec![(3, 12.0), (2, 11.0), (4, 3.0)];
        let fused = reciprocal_rank_fusion(&[vector, bm25], 60.0);
        let ids: Vec<u64> = fused.iter().map(|h| h.0).collect();
        // 3 (third and first: 1/63 + 1/61) edges out 2 (second twice: 2/62); both beat 1, which
        // only one list ranks.
        assert_eq!(ids[0], 3);
        assert_eq!(ids[1], 2);
        assert_eq!(ids[2], 1);
        assert_eq!(ids.len(), 4);
        let score = |id| fused.iter().find(|h| h.0 == id).unwrap().1;
        assert!((score(2) - 2.0 / 62.0).abs() < 1e-6);
        assert!((score(3) - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
        assert!((score(4) - 1.0 / 63.0).abs() < 1e-6);
    }

    #[test]
    fn scores_scale_is_ignored_and_empty_lists_are_fine() {
        let a = vec![(7, 1000.0), (8, 0.001)];
        let fused = reciprocal_rank_fusion(&[a, vec![]], 60.0);
        assert_eq!(fused.iter().map(|h| h.0).collect::<Vec<_>>(), vec![7, 8]);
        assert!(reciprocal_rank_fusion(&[], 60.0).is_empty());
    }
}
