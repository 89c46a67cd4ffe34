//! Insertion (the paper's Algorithm 1 with the neighbour heuristic of Algorithm 4), safe to run
//! for many nodes at once: a node's lists change only under its lock, the entry point only
//! under the entry lock, which a node that raises the top layer holds for its whole insertion.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rayon::prelude::*;

use super::search::Near;
use super::store::Store;
use super::{Hnsw, HnswConfig, Quant};
use crate::distance::{normalize, Metric};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hnsw {
    /// An index over `vectors` (row-major, `dim` floats each; node `i` is row `i`), built on
    /// `threads` threads.
    pub fn build(dim: usize, mut vectors: Vec<f32>, config: HnswConfig, threads: usize) -> Self {
        let mut index = Self::new(dim, config);
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        vectors.truncate(n * dim);
        if index.config.metric == Metric::Cosine {
            vectors.chunks_exact_mut(dim.max(1)).for_each(normalize);
        }
        // Linked over the exact vectors, whatever the storage: the graph is as good as an
        // f32 one, and only the search's distances are coarse.
        index.store = Store::F32(vectors);
        for _ in 0..n {
            let level = index.draw_level();
            index.graph.push_node(level);
            index.locks.push(Mutex::new(()));
        }
        if n > 0 {
            index.insert_node(0);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build();
            match pool {
                Ok(pool) => pool.install(|| (1..n as u32).into_par_iter().for_each(|node| index.insert_node(node))),
                Err(_) => (1..n as u32).for_each(|node| index.insert_node(node)),
            }
        }
        if index.config.quant != Quant::F32 {
            if let Store::F32(exact) = std::mem::replace(&mut index.store, Store::F32(Vec::new())) {
                index.store = Store::encode(index.config.quant, dim, exact);
            }
        }
        index
    }

    /// Adds one vector; returns its node id (ids are dense, in insertion order).
    pub fn add(&mut self, vector: &[f32]) -> u32 {
        assert_eq!(vector.len(), self.dim, "vector dimension");
        let node = self.len() as u32;
        let mut vector = vector.to_vec();
        if self.config.metric == Metric::Cosine {
            normalize(&mut vector);
        }
        self.store.push(&vector);
        let level = self.draw_level();
        self.graph.push_node(level);
        self.locks.push(Mutex::new(()));
        self.insert_node(node);
        node
    }

    /// Links an allocated node into the graph.
    fn insert_node(&self, node: u32) {
        let level = self.graph.levels[node as usize] as usize;
        let mut entry_guard = Some(lock(&self.entry));
        let Some((entry, top)) = *entry_guard.as_deref().expect("just locked") else {
            **entry_guard.as_mut().expect("just locked") = Some((node, level));
            return;
        };
        // Only a node that raises the top layer keeps the entry lock, to become the entry.
        if level <= top {
            entry_guard = None;
        }
        let query = self.node_query(node);
        let (mut nearest, mut distance) = (entry, self.distance(&query, entry));
        for l in (level + 1..=top).rev() {
            (nearest, distance) = self.greedy(&query, nearest, distance, l);
        }
        for l in (0..=level.min(top)).rev() {
            let candidates = self.search_layer(&query, Near(distance, nearest), self.config.ef_construction, l, None);
            let selected = self.select_neighbors(&candidates, self.config.m);
            {
                let _own = lock(&self.locks[node as usize]);
                self.graph.set_neighbors(node, l, &selected);
            }
            for &other in &selected {
                self.link(other, node, l);
            }
            if let Some(best) = candidates.first() {
                (nearest, distance) = (best.1, best.0);
            }
        }
        if let Some(mut guard) = entry_guard {
            if level > top {
                *guard = Some((node, level));
            }
        }
    }

    /// Adds `new` to `node`'s list on `level`, pruning the list with the heuristic when full.
    fn link(&self, node: u32, new: u32, level: usize) {
        let _guard = lock(&self.locks[node as usize]);
        let mut list = self.graph.neighbors(node, level);
        if list.contains(&new) || node == new {
            return;
        }
        if list.len() < self.graph.capacity(level) {
            list.push(new);
            self.graph.set_neighbors(node, level, &list);
            return;
        }
        let base = self.node_query(node);
        let mut candidates: Vec<Near> = list.iter().chain([&new]).map(|&n| Near(self.distance(&base, n), n)).collect();
        candidates.sort_unstable();
        let kept = self.select_neighbors(&candidates, self.graph.capacity(level));
        self.graph.set_neighbors(node, level, &kept);
    }

    /// The paper's heuristic: going through `candidates` nearest first, keep one only if it is
    /// nearer to the base than to every one kept so far, until `m` are kept.
    fn select_neighbors(&self, candidates: &[Near], m: usize) -> Vec<u32> {
        if candidates.len() <= m {
            return candidates.iter().map(|c| c.1).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for &Near(distance, candidate) in candidates {
            if kept.len() >= m {
                break;
            }
            let candidate_query = self.node_query(candidate);
            if kept.iter().all(|&k| self.distance(&candidate_query, k) >= distance) {
                kept.push(candidate);
            }
        }
        kept
    }
}
