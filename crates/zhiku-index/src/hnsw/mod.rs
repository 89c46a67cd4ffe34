//! HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using
//! Hierarchical Navigable Small World graphs", 2016/2018): a hierarchy of proximity graphs,
//! searched greedily from the sparse top layer down to layer 0 where a beam of `ef` candidates
//! is kept. Neighbours are chosen with the paper's heuristic (Algorithm 4), which keeps the
//! graph navigable across clusters.
//!
//! - [`config`]: M, ef_construction, metric.
//! - [`graph`]: the neighbour lists, readable without locks during a parallel build.
//! - [`build`]: insertion, one node at a time or all of a matrix on several threads.
//! - [`search`]: the layered search, with an [`IdFilter`] checked inside the walk and an exact
//!   scan over the allowed ids when the filter leaves few of them.
//! - [`store`]: the vectors, as f32, f16 or int8 codes, compared with the query as they are.
//! - [`persist`]: one file, written atomically, validated when read.
//!
//! ```
//! use zhiku_index::{Hnsw, HnswConfig, Metric};
//!
//! let vectors: Vec<f32> = (0..1000).flat_map(|i| [(i as f32).cos(), (i as f32).sin(), 0.5]).collect();
//! let index = Hnsw::build(3, vectors, HnswConfig { m: 8, ef_construction: 64, metric: Metric::L2, ..Default::default() }, 2);
//! let hits = index.search(&[1.0, 0.0, 0.5], 3, 32, None);
//! assert_eq!(hits[0].0, 0);
//! ```

mod build;
mod config;
mod graph;
mod persist;
mod search;
mod store;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Mutex;

pub use config::HnswConfig;
pub use store::Quant;

use crate::distance::{normalize, Metric};
use graph::Graph;
use store::{Prepared, Store};

pub struct Hnsw {
    config: HnswConfig,
    dim: usize,
    /// One vector per node, in the configured storage; unit length under the cosine metric.
    store: Store,
    graph: Graph,
    /// The node searches start from and the top layer of the graph.
    entry: Mutex<Option<(u32, usize)>>,
    /// One per node, held while its neighbour lists are rewritten.
    locks: Vec<Mutex<()>>,
    /// State of the level generator (splitmix64), so a build is reproducible.
    rng: u64,
}

impl Hnsw {
    /// An empty index of vectors of `dim` floats.
    pub fn new(dim: usize, config: HnswConfig) -> Self {
        let config = config.sanitized();
        Self {
            rng: config.seed,
            graph: Graph::new(config.m),
            config,
            dim,
            store: Store::encode(config.quant, dim, Vec::new()),
            entry: Mutex::new(None),
            locks: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.graph.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dimension(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.config.metric
    }

    /// Memory held by the vectors and the graph.
    pub fn bytes(&self) -> usize {
        self.store.bytes() + self.graph.bytes() + self.locks.len() * std::mem::size_of::<Mutex<()>>()
    }

    /// How the vectors are stored.
    pub fn quant(&self) -> Quant {
        self.store.quant()
    }

    /// Encodes the stored vectors again from `vectors` (every node's, in node order, as they
    /// were given), the int8 map trained afresh on them; the graph stays as it is. For an index
    /// whose vectors have drifted from those its codes were trained on, or to change storage.
    pub fn requantize(&mut self, quant: Quant, mut vectors: Vec<f32>) {
        vectors.truncate(self.len() * self.dim);
        if vectors.len() != self.len() * self.dim {
            return;
        }
        if self.config.metric == Metric::Cosine {
            vectors.chunks_exact_mut(self.dim.max(1)).for_each(normalize);
        }
        self.config.quant = quant;
        self.store = Store::encode(quant, self.dim, vectors);
    }

    /// A node's vector as stored (unit length under cosine), decoded to f32.
    pub fn stored_vector(&self, node: u32) -> Cow<'_, [f32]> {
        self.store.vector(self.dim, node)
    }

    #[inline]
    fn distance(&self, query: &Prepared<'_>, node: u32) -> f32 {
        self.store.distance(self.config.metric, self.dim, query, node)
    }

    /// A node's own vector as a query, for linking it into the graph.
    fn node_query(&self, node: u32) -> Prepared<'_> {
        self.store.prepare(self.store.vector(self.dim, node))
    }

    /// The query as the index compares it: unit length under cosine, fitted to the storage.
    fn prepare_query(&self, query: &[f32]) -> Prepared<'static> {
        let mut q = query.to_vec();
        if self.config.metric == Metric::Cosine {
            normalize(&mut q);
        }
        self.store.prepare(Cow::Owned(q))
    }

    /// A random top layer with P(level ≥ l) = M^-l (the paper's mL = 1 / ln M).
    fn draw_level(&mut self) -> u8 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let uniform = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let level = (-uniform.ln() / (self.config.m as f64).ln()).floor();
        level.min(16.0) as u8
    }
}
