//! Communities: groups of entities more related to each other than to the rest (weighted label
//! propagation, deterministic), for "global" questions about a whole knowledge base — what its
//! main systems, teams or themes are — that no single entity answers.

use std::collections::{BTreeMap, HashMap};

/// The community of every entity that has an edge: entity id → community id (the smallest
/// entity id of the community, so that ids are stable while the community stays the same).
/// `edges` are `(source, target, weight)`; direction does not matter.
pub fn label_propagation(edges: &[(i64, i64, f32)], rounds: usize) -> HashMap<i64, i64> {
    let mut neighbours: BTreeMap<i64, Vec<(i64, f32)>> = BTreeMap::new();
    for &(a, b, w) in edges {
        if a != b {
            neighbours.entry(a).or_default().push((b, w));
            neighbours.entry(b).or_default().push((a, w));
        }
    }
    let mut label: HashMap<i64, i64> = neighbours.keys().map(|&n| (n, n)).collect();
    for _ in 0..rounds {
        let mut changed = false;
        for (&node, list) in &neighbours {
            let mut votes: BTreeMap<i64, f32> = BTreeMap::new();
            for &(other, w) in list {
                *votes.entry(label[&other]).or_default() += w;
            }
            // The heaviest label; among equals, the smallest (BTreeMap order keeps it stable).
            let best = votes.iter().fold(None::<(i64, f32)>, |best, (&l, &w)| match best {
                Some((_, bw)) if bw >= w => best,
                _ => Some((l, w)),
            });
            if let Some((l, w)) = best {
                let current = label[&node];
                let current_weight = votes.get(&current).copied().unwrap_or(0.0);
                if l != current && w > current_weight {
                    label.insert(node, l);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Name each community by its smallest member.
    let mut smallest: HashMap<i64, i64> = HashMap::new();
    for (&node, &l) in &label {
        let s = smallest.entry(l).or_insert(node);
        *s = (*s).min(node);
    }
    label.into_iter().map(|(node, l)| (node, smallest[&l])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_dense_groups_joined_by_one_weak_edge_are_two_communities() {
        let mut edges = Vec::new();
        for group in [[1, 2, 3, 4], [10, 11, 12, 13]] {
            for (i, &a) in group.iter().enumerate() {
                for &b in &group[i + 1..] {
                    edges.push((a, b, 1.0));
                }
            }
        }
        edges.push((4, 10, 0.25));
        let communities = label_propagation(&edges, 20);
        assert!([1, 2, 3, 4].iter().all(|n| communities[n] == 1), "{communities:?}");
        assert!([10, 11, 12, 13].iter().all(|n| communities[n] == 10), "{communities:?}");
        // Deterministic: the same input, the same answer.
        assert_eq!(label_propagation(&edges, 20), communities);
    }
}
