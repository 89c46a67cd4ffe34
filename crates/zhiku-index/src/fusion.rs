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

#[cfg(test)]
mod tests {
    use super::*;

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
