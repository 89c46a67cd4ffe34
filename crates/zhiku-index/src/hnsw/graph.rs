//! The layered neighbour lists. Each list is a run of atomics, its length first: searches read
//! them without locks while a multi-threaded build rewrites them under per-node locks (the
//! scheme of hnswlib, made sound: a reader may see an old or a new neighbour, never a torn one,
//! and every id it sees is a node of the graph).

use std::sync::atomic::{AtomicU32, Ordering};

pub(super) struct Graph {
    /// Neighbours per node on the upper layers; `2 * m` on layer 0.
    pub m: usize,
    pub m0: usize,
    /// The top layer of each node.
    pub levels: Vec<u8>,
    /// Layer 0 of every node, `m0 + 1` slots each: length, then neighbours.
    layer0: Vec<AtomicU32>,
    /// Layers 1..=level of each node, `m + 1` slots per layer; empty for level-0 nodes.
    upper: Vec<Box<[AtomicU32]>>,
}

fn atomics(n: usize) -> impl Iterator<Item = AtomicU32> {
    (0..n).map(|_| AtomicU32::new(0))
}

impl Graph {
    pub fn new(m: usize) -> Self {
        Self { m, m0: 2 * m, levels: Vec::new(), layer0: Vec::new(), upper: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Room for a node with lists up to `level`, all empty.
    pub fn push_node(&mut self, level: u8) {
        self.levels.push(level);
        self.layer0.extend(atomics(self.m0 + 1));
        self.upper.push(atomics(level as usize * (self.m + 1)).collect());
    }

    fn list(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let start = node as usize * (self.m0 + 1);
            &self.layer0[start..start + self.m0 + 1]
        } else {
            let start = (level - 1) * (self.m + 1);
            &self.upper[node as usize][start..start + self.m + 1]
        }
    }

    pub fn capacity(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// Calls `visit` with each neighbour of `node` on `level`.
    #[inline]
    pub fn for_each_neighbor(&self, node: u32, level: usize, mut visit: impl FnMut(u32)) {
        let list = self.list(node, level);
        let len = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
        for slot in &list[1..=len] {
            visit(slot.load(Ordering::Relaxed));
        }
    }

    pub fn neighbors(&self, node: u32, level: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.capacity(level));
        self.for_each_neighbor(node, level, |n| out.push(n));
        out
    }

    /// Replaces the list; the caller holds `node`'s lock. Entries are written before the
    /// length, so a reader of the new length finds them.
    pub fn set_neighbors(&self, node: u32, level: usize, ids: &[u32]) {
        let list = self.list(node, level);
        let len = ids.len().min(list.len() - 1);
        for (slot, id) in list[1..=len].iter().zip(ids) {
            slot.store(*id, Ordering::Relaxed);
        }
        list[0].store(len as u32, Ordering::Release);
    }

    /// Bytes held by the lists.
    pub fn bytes(&self) -> usize {
        self.layer0.len() * 4
            + self.upper.iter().map(|u| u.len() * 4 + std::mem::size_of::<Box<[AtomicU32]>>()).sum::<usize>()
            + self.levels.len()
    }
}
