//! zhiku-index: the retrieval indexes, all of which filter by the caller's principals *inside*
//! the search (a chunk the caller may not read is never scored, so it can never fill a slot of
//! the top k or leak through a count).
//!
//! - [`VectorIndexRead`] / [`VectorIndexWrite`]: the vector index interface, split between
//!   readers and the writer; [`FlatIndex`] is the exact implementation and [`HnswIndex`] the
//!   graph one (over the [`Hnsw`] engine); [`VectorIndex`] picks one per knowledge base.
//!   [`ExactIndex`], [`Hnsw`] and [`IvfPq`] also serve bare matrices (`zhiku vectors bench`);
//!   [`MappedRows`] reads full vectors from disk for re-scoring quantized results.
//! - [`Bm25Index`]: full-text search on tantivy with a Chinese-aware analyzer ([`analyze`]:
//!   jieba segmentation, lowercasing, English stemming and stop words).
//! - [`reciprocal_rank_fusion`], [`weighted_fusion`]: merge ranked lists into one.
//!
//! Both indexes are derived from the store and stamped with the store generation they reflect,
//! so a stale index (a crash between the store commit and the index save) is detected on open
//! and rebuilt.
//!
//! ```
//! use zhiku_core::{Caller, Principal};
//! use zhiku_index::{FlatIndex, VectorIndexRead, VectorIndexWrite};
//!
//! let mut index = FlatIndex::new(2);
//! index.insert(1, 10, &[1.0, 0.0], &[Principal::parse("group:hr").unwrap()]).unwrap();
//! index.insert(2, 11, &[0.8, 0.6], &[Principal::parse("group:eng").unwrap()]).unwrap();
//! let hr = Caller::user("ann", ["hr"]).unwrap();
//! let hits = index.search(&[0.8, 0.6], &hr, 10);
//! assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1]);
//! ```

mod analyzer;
mod bm25;
mod codec;
mod distance;
mod exact;
mod filter;
mod flat;
mod fusion;
mod hnsw;
mod hnsw_index;
mod ivfpq;
mod kb_vectors;
mod principals;
mod rows;

pub use analyzer::analyze;
pub use bm25::Bm25Index;
pub use distance::{dot, l2_squared, normalize, Metric};
pub use exact::ExactIndex;
pub use filter::IdFilter;
pub use flat::FlatIndex;
pub use fusion::{reciprocal_rank_fusion, weighted_fusion};
pub use hnsw::{Hnsw, HnswConfig, Quant};
pub use hnsw_index::HnswIndex;
pub use ivfpq::{IvfPq, IvfPqConfig};
pub use kb_vectors::{VectorIndex, VectorIndexKind, GRAPH_ABOVE};
pub use rows::MappedRows;

/// Index text: the heading path gives a chunk its context ("Leave > Carry over") both for the
/// embedding and for BM25.
pub fn index_text(heading_path: &[String], text: &str) -> String {
    if heading_path.is_empty() {
        text.to_string()
    } else {
        format!("{}\n{}", heading_path.join(" > "), text)
    }
}

use zhiku_core::{Caller, Principal};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vector of dimension {got} given to an index of dimension {expected}")]
    Dimension { expected: usize, got: usize },
    #[error("index file {path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("index I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("full-text index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A scored hit: (chunk id, score). Higher scores are better.
pub type Scored = (u64, f32);

/// Searching a vector index. Readers never mutate.
pub trait VectorIndexRead {
    /// The `k` nearest chunks to `query` (unit length) by cosine similarity among those the
    /// caller may read, best first.
    fn search(&self, query: &[f32], caller: &Caller, k: usize) -> Vec<Scored>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Changing a vector index.
pub trait VectorIndexWrite {
    fn insert(&mut self, chunk_id: u64, doc_id: i64, vector: &[f32], acl: &[Principal]) -> Result<()>;
    /// Removes every chunk of a document; returns how many were removed.
    fn remove_document(&mut self, doc_id: i64) -> usize;
    /// Replaces the ACL of every chunk of a document in place (the vectors stay); returns how
    /// many chunks it applied to.
    fn set_document_acl(&mut self, doc_id: i64, acl: &[Principal]) -> usize;
}
