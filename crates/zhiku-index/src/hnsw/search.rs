//! The layered search (the paper's Algorithms 2 and 5) and the filtered variant: nodes outside
//! the filter are walked through but never enter the results; when the filter allows few
//! nodes, scanning them exactly is both cheaper and perfect (Qdrant's rule).

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::store::Prepared;
use super::Hnsw;
use crate::distance::{dot, normalize, Metric};
use crate::IdFilter;

/// A distance with a total order, paired with its node.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Near(pub f32, pub u32);

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Which nodes one search has seen: a stamp per node, so starting a search costs nothing.
pub(super) struct Visited {
    stamps: Vec<u16>,
    current: u16,
}

impl Visited {
    fn start(&mut self, nodes: usize) {
        if self.stamps.len() < nodes {
            self.stamps.resize(nodes, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamps.fill(0);
            self.current = 1;
        }
    }

    /// True the first time a node is seen in this search.
    #[inline]
    fn first_visit(&mut self, node: u32) -> bool {
        let stamp = &mut self.stamps[node as usize];
        if *stamp == self.current {
            false
        } else {
            *stamp = self.current;
            true
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { stamps: Vec::new(), current: 0 }) };
}

/// Below this many allowed nodes, or this share of the graph, a filtered search scans them.
const SCAN_BELOW: usize = 1000;
const SCAN_BELOW_FRACTION: usize = 50;

impl Hnsw {
    /// Starts loading a node's vector into cache.
    #[inline]
    fn prefetch(&self, node: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let (start, len) = self.store.row_start(self.dim, node);
            // A vector spans several cache lines; asking for the first two starts the
            // hardware prefetcher on the sequential rest.
            for offset in [0, 64].into_iter().filter(|o| *o < len) {
                // SAFETY: prefetching is a hint that never faults, and the address is inside
                // the node's row of a live allocation.
                unsafe { std::arch::x86_64::_mm_prefetch(start.add(offset).cast::<i8>(), std::arch::x86_64::_MM_HINT_T0) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = node;
    }

    /// From `node`, moves to a nearer neighbour on `level` while there is one.
    pub(super) fn greedy(&self, query: &Prepared<'_>, mut node: u32, mut distance: f32, level: usize) -> (u32, f32) {
        loop {
            let mut moved = false;
            self.graph.for_each_neighbor(node, level, |n| {
                let d = self.distance(query, n);
                if d < distance {
                    (node, distance, moved) = (n, d, true);
                }
            });
            if !moved {
                return (node, distance);
            }
        }
    }

    /// The `ef` nearest nodes to `query` on `level` reachable from `entry`, nearest first;
    /// only allowed ones when `filter` is given (others are still walked through).
    pub(super) fn search_layer(&self, query: &Prepared<'_>, entry: Near, ef: usize, level: usize, filter: Option<&IdFilter>) -> Vec<Near> {
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.start(self.len());
            let allowed = |n: u32| filter.is_none_or(|f| f.contains(n));
            let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 4);
            let mut results: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
            visited.first_visit(entry.1);
            candidates.push(Reverse(entry));
            if allowed(entry.1) {
                results.push(entry);
            }
            let mut bound = if results.len() >= ef { results.peek().map_or(f32::INFINITY, |r| r.0) } else { f32::INFINITY };
            let mut fresh: Vec<u32> = Vec::with_capacity(self.graph.capacity(0));
            while let Some(Reverse(current)) = candidates.pop() {
                if current.0 > bound {
                    break;
                }
                // Gather the unseen neighbours and ask for their vectors before scoring any:
                // the loads overlap instead of each one stalling the next distance.
                fresh.clear();
                self.graph.for_each_neighbor(current.1, level, |n| {
                    if visited.first_visit(n) {
                        self.prefetch(n);
                        fresh.push(n);
                    }
                });
                for &n in &fresh {
                    let d = self.distance(query, n);
                    if d < bound {
                        candidates.push(Reverse(Near(d, n)));
                        if allowed(n) {
                            results.push(Near(d, n));
                            if results.len() > ef {
                                results.pop();
                            }
                            if results.len() >= ef {
                                bound = results.peek().map_or(f32::INFINITY, |r| r.0);
                            }
                        }
                    }
                }
            }
            results.into_sorted_vec()
        })
    }

    /// The `k` nearest nodes to `query` as `(node, distance)`, nearest first, searching layer 0
    /// with a beam of `ef` (at least `k`). With a filter, only allowed nodes are returned.
    /// Distances are those of the storage: approximate below f32.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&IdFilter>) -> Vec<(u32, f32)> {
        if query.len() != self.dim || k == 0 || self.is_empty() {
            return Vec::new();
        }
        let query = self.prepare_query(query);
        let mut found = self.nearest(&query, k, ef.max(k), filter);
        found.truncate(k);
        found.into_iter().map(|Near(d, n)| (n, d)).collect()
    }

    /// [`Hnsw::search`], then the best `k × rescore` of the beam (at most `ef`) re-scored
    /// exactly from `full` (node → its vector as given to the index), and the best `k` of those
    /// returned: the way back to f32 ranking for f16 and int8 storage.
    pub fn search_rescored(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&IdFilter>,
        rescore: usize,
        full: &(dyn Fn(u32) -> Vec<f32> + Sync),
    ) -> Vec<(u32, f32)> {
        if query.len() != self.dim || k == 0 || self.is_empty() {
            return Vec::new();
        }
        let mut exact_query = query.to_vec();
        if self.config.metric == Metric::Cosine {
            normalize(&mut exact_query);
        }
        let prepared = self.store.prepare(Cow::Borrowed(&exact_query));
        let pool = (k * rescore.max(1)).min(ef.max(k));
        let mut found = self.nearest(&prepared, pool, ef.max(pool), filter);
        found.truncate(pool);
        let mut scored: Vec<(u32, f32)> = found
            .into_iter()
            .map(|Near(_, n)| {
                let v = full(n);
                let distance = match self.config.metric {
                    // Against the normalised vector, without writing it out.
                    Metric::Cosine => 1.0 - dot(&exact_query, &v) / dot(&v, &v).sqrt().max(f32::MIN_POSITIVE),
                    metric => metric.distance(&exact_query, &v),
                };
                (n, distance)
            })
            .collect();
        scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }

    /// At least `count` nearest (allowed) nodes when the graph has them, nearest first: an
    /// exact scan when the filter allows few, else the layered search with a beam of `ef`.
    fn nearest(&self, query: &Prepared<'_>, count: usize, ef: usize, filter: Option<&IdFilter>) -> Vec<Near> {
        if let Some(filter) = filter {
            if filter.count() == 0 {
                return Vec::new();
            }
            if filter.count() <= SCAN_BELOW.max(self.len() / SCAN_BELOW_FRACTION) {
                return self.scan(query, count, filter);
            }
        }
        let Some((entry, top)) = *self.entry.lock().unwrap_or_else(|e| e.into_inner()) else { return Vec::new() };
        let (mut node, mut distance) = (entry, self.distance(query, entry));
        for level in (1..=top).rev() {
            (node, distance) = self.greedy(query, node, distance, level);
        }
        self.search_layer(query, Near(distance, node), ef, 0, filter)
    }

    /// Exact search (in the storage's distances) over the allowed nodes.
    fn scan(&self, query: &Prepared<'_>, k: usize, filter: &IdFilter) -> Vec<Near> {
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(k + 1);
        for n in filter.iter().filter(|n| (*n as usize) < self.len()) {
            let d = self.distance(query, n);
            if best.len() < k || best.peek().is_some_and(|b| d < b.0) {
                best.push(Near(d, n));
                if best.len() > k {
                    best.pop();
                }
            }
        }
        best.into_sorted_vec()
    }
}
