//! Walking a graph: k-hop neighbourhoods and shortest paths, breadth first.
//!
//! The graph is reached through a `neighbours` function (entity id → its edges), so the same walk
//! runs over the store's indexed tables with the caller's ACL applied, or over a graph in memory.

use std::collections::{HashMap, VecDeque};

/// One edge as a walk sees it, from the entity it was reached from.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub to: i64,
    pub relation: String,
    /// The edge points from `to` to the entity it was reached from.
    pub incoming: bool,
    pub weight: f32,
}

/// Entities within `hops` of `start`, each with its distance, nearest first, at most `limit`.
/// Of an entity's edges the heaviest are followed first, so the limit keeps the best-supported.
pub fn k_hop(start: &[i64], hops: usize, limit: usize, mut neighbours: impl FnMut(i64) -> Vec<Step>) -> Vec<(i64, usize)> {
    let mut depth: HashMap<i64, usize> = HashMap::new();
    let mut order = Vec::new();
    let mut queue = VecDeque::new();
    for &s in start {
        if order.len() < limit && depth.insert(s, 0).is_none() {
            order.push((s, 0));
            queue.push_back(s);
        }
    }
    while let Some(at) = queue.pop_front() {
        let d = depth[&at];
        if d >= hops {
            continue;
        }
        let mut steps = neighbours(at);
        steps.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.to.cmp(&b.to)));
        for step in steps {
            if order.len() >= limit {
                return order;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = depth.entry(step.to) {
                e.insert(d + 1);
                order.push((step.to, d + 1));
                queue.push_back(step.to);
            }
        }
    }
    order
}

/// The shortest path from `from` to `to` of at most `max_hops` edges: the steps taken, in order.
/// `None` when there is none that short. Generic `related_to` edges are taken only when
/// `generic` is true.
pub fn shortest_path(from: i64, to: i64, max_hops: usize, mut neighbours: impl FnMut(i64) -> Vec<Step>) -> Option<Vec<(i64, Step)>> {
    if from == to {
        return Some(Vec::new());
    }
    let mut came_from: HashMap<i64, (i64, Step)> = HashMap::new();
    let mut depth: HashMap<i64, usize> = HashMap::from([(from, 0)]);
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        let d = depth[&at];
        if d >= max_hops {
            continue;
        }
        let mut steps = neighbours(at);
        // Specific relations before generic co-occurrence, then the heaviest: among equally
        // short paths, the most telling one.
        steps.sort_by(|a, b| {
            (a.relation == crate::RELATED_TO)
                .cmp(&(b.relation == crate::RELATED_TO))
                .then(b.weight.total_cmp(&a.weight))
                .then(a.to.cmp(&b.to))
        });
        for step in steps {
            if depth.contains_key(&step.to) {
                continue;
            }
            depth.insert(step.to, d + 1);
            let next = step.to;
            came_from.insert(next, (at, step));
            if next == to {
                let mut path = Vec::new();
                let mut cur = to;
                while cur != from {
                    let (prev, step) = came_from.remove(&cur)?;
                    path.push((prev, step));
                    cur = prev;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(edges: &'a [(i64, &'a str, i64)]) -> impl Fn(i64) -> Vec<Step> + 'a {
        move |at| {
            edges
                .iter()
                .filter_map(|&(a, r, b)| {
                    if a == at {
                        Some(Step { to: b, relation: r.into(), incoming: false, weight: 1.0 })
                    } else if b == at {
                        Some(Step { to: a, relation: r.into(), incoming: true, weight: 1.0 })
                    } else {
                        None
                    }
                })
                .collect()
        }
    }

    #[test]
    fn k_hop_is_breadth_first_and_bounded() {
        let edges = [(1, "depends_on", 2), (2, "owns", 3), (3, "member_of", 4), (5, "uses", 1)];
        let g = graph(&edges);
        assert_eq!(k_hop(&[1], 2, 10, &g), vec![(1, 0), (2, 1), (5, 1), (3, 2)]);
        assert_eq!(k_hop(&[1], 3, 3, &g).len(), 3);
    }

    #[test]
    fn shortest_paths_prefer_specific_relations_and_respect_the_hop_limit() {
        let edges = [(1, "related_to", 3), (1, "depends_on", 2), (2, "owns", 3), (3, "member_of", 4)];
        let g = graph(&edges);
        let path = shortest_path(1, 4, 4, &g).unwrap();
        assert_eq!(path.iter().map(|(from, s)| (*from, s.to)).collect::<Vec<_>>(), vec![(1, 3), (3, 4)]);
        assert!(shortest_path(1, 4, 1, &g).is_none());
        assert!(shortest_path(1, 99, 5, &g).is_none());
        let path = shortest_path(2, 1, 3, &g).unwrap();
        assert!(path[0].1.incoming);
    }
}
