//! A knowledge base's vector index: exact while the collection is small (a scan of a few
//! thousand vectors is as fast as a graph walk and never misses), an HNSW graph once it grows,
//! or either one when configured so.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zhiku_core::{Caller, Principal};

use crate::{FlatIndex, HnswIndex, Result, Scored, VectorIndexRead, VectorIndexWrite};

/// Which vector index a knowledge base uses (`retrieval.vector_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorIndexKind {
    /// Exact below [`GRAPH_ABOVE`] vectors, HNSW from there on.
    #[default]
    Auto,
    Flat,
    Hnsw,
}

/// Vectors from which `auto` switches to the graph.
pub const GRAPH_ABOVE: usize = 20_000;

impl std::str::FromStr for VectorIndexKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "flat" => Ok(Self::Flat),
            "hnsw" => Ok(Self::Hnsw),
            other => Err(format!("unknown vector index '{other}' (expected auto, flat or hnsw)")),
        }
    }
}

const FLAT_FILE: &str = "vectors.flat";
const GRAPH_FILE: &str = "vectors.hnsw";

pub enum VectorIndex {
    Flat(FlatIndex),
    Graph(Box<HnswIndex>),
}

impl VectorIndexKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Flat => "flat",
            Self::Hnsw => "hnsw",
        }
    }

    /// Whether an index already built fits this choice: `auto` takes either (a graph that
    /// shrank below the threshold stays one), the others only their own.
    pub fn accepts(self, index: &VectorIndex) -> bool {
        match self {
            Self::Auto => true,
            Self::Flat => !index.is_graph(),
            Self::Hnsw => index.is_graph(),
        }
    }

    fn wants_graph(self, len: usize) -> bool {
        match self {
            Self::Auto => len >= GRAPH_ABOVE,
            Self::Flat => false,
            Self::Hnsw => true,
        }
    }
}

impl VectorIndex {
    /// An index of the kind `kind` asks for at this size, over `chunks`.
    pub fn build(dim: usize, kind: VectorIndexKind, chunks: Vec<(u64, i64, Vec<f32>, Vec<Principal>)>) -> Result<Self> {
        if kind.wants_graph(chunks.len()) {
            return Ok(Self::Graph(Box::new(HnswIndex::build(dim, chunks))));
        }
        let mut flat = FlatIndex::new(dim);
        for (chunk_id, doc_id, vector, acl) in chunks {
            flat.insert(chunk_id, doc_id, &vector, &acl)?;
        }
        Ok(Self::Flat(flat))
    }

    /// The index saved in `dir`, with its generation; `None` when there is none or it cannot
    /// be read (the caller rebuilds it from the store).
    pub fn load(dir: &Path, dim: usize) -> Option<(Self, u64)> {
        let graph = dir.join(GRAPH_FILE);
        if graph.exists() {
            return match HnswIndex::load(&graph) {
                Ok((index, generation)) if index.dimension() == dim => {
                    if index.has_unsaved_rows() {
                        tracing::info!(path = %graph.display(), "vector graph in the layout before int8 codes: upgraded in memory, saved so by the next ingestion");
                    }
                    Some((Self::Graph(Box::new(index)), generation))
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "vector graph unreadable; rebuilding it from the store");
                    None
                }
            };
        }
        match FlatIndex::load(&dir.join(FLAT_FILE)) {
            Ok((index, generation)) if index.dimension() == dim => Some((Self::Flat(index), generation)),
            Ok(_) => None,
            Err(e) => {
                if dir.join(FLAT_FILE).exists() {
                    tracing::warn!(error = %e, "vector index unreadable; rebuilding it from the store");
                }
                None
            }
        }
    }

    /// Saves the index into `dir` and removes the file of the other kind.
    pub fn save(&mut self, dir: &Path, generation: u64) -> Result<()> {
        let (keep, drop) = match self {
            Self::Flat(index) => (index.save(&dir.join(FLAT_FILE), generation), [GRAPH_FILE, "vectors.graph", "vectors.rows"].as_slice()),
            Self::Graph(index) => (index.save(&dir.join(GRAPH_FILE), generation), [FLAT_FILE].as_slice()),
        };
        keep?;
        for name in drop {
            let _ = std::fs::remove_file(dir.join(name));
        }
        Ok(())
    }

    /// Moves to the kind `kind` asks for at the current size (a flat index that grew past the
    /// threshold becomes a graph); true when it changed.
    pub fn settle(&mut self, kind: VectorIndexKind) -> Result<bool> {
        let len = self.len();
        let chunks: Vec<(u64, i64, Vec<f32>, Vec<Principal>)> = match (&*self, kind.wants_graph(len)) {
            (Self::Flat(flat), true) => flat.entries().map(|(c, d, v, a)| (c, d, v.to_vec(), a)).collect(),
            (Self::Graph(_), false) if kind == VectorIndexKind::Flat => {
                // Rare (a configuration change): rebuilt by the caller from the store.
                return Ok(false);
            }
            _ => return Ok(false),
        };
        let dim = match self {
            Self::Flat(f) => f.dimension(),
            Self::Graph(g) => g.dimension(),
        };
        *self = Self::Graph(Box::new(HnswIndex::build(dim, chunks)));
        Ok(true)
    }

    /// Whether the index holds what its files do not (a graph read from the layout before
    /// int8 codes keeps its full vectors in memory until saved).
    pub fn needs_saving(&self) -> bool {
        match self {
            Self::Flat(_) => false,
            Self::Graph(index) => index.has_unsaved_rows(),
        }
    }

    pub fn is_graph(&self) -> bool {
        matches!(self, Self::Graph(_))
    }
}

impl VectorIndexRead for VectorIndex {
    fn search(&self, query: &[f32], caller: &Caller, k: usize) -> Vec<Scored> {
        match self {
            Self::Flat(index) => index.search(query, caller, k),
            Self::Graph(index) => index.search(query, caller, k),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Flat(index) => index.len(),
            Self::Graph(index) => index.len(),
        }
    }
}

impl VectorIndexWrite for VectorIndex {
    fn insert(&mut self, chunk_id: u64, doc_id: i64, vector: &[f32], acl: &[Principal]) -> Result<()> {
        match self {
            Self::Flat(index) => index.insert(chunk_id, doc_id, vector, acl),
            Self::Graph(index) => index.insert(chunk_id, doc_id, vector, acl),
        }
    }

    fn remove_document(&mut self, doc_id: i64) -> usize {
        match self {
            Self::Flat(index) => index.remove_document(doc_id),
            Self::Graph(index) => index.remove_document(doc_id),
        }
    }

    fn set_document_acl(&mut self, doc_id: i64, acl: &[Principal]) -> usize {
        match self {
            Self::Flat(index) => index.set_document_acl(doc_id, acl),
            Self::Graph(index) => index.set_document_acl(doc_id, acl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_becomes_a_graph_past_the_threshold_and_reloads_as_one() {
        let dim = 4;
        let chunk = |i: usize| {
            let mut v = vec![(i % 13) as f32, (i % 7) as f32, 1.0, (i % 3) as f32];
            crate::normalize(&mut v);
            (i as u64, i as i64 / 4, v, vec![Principal::parse("group:staff").unwrap()])
        };
        let mut index = VectorIndex::build(dim, VectorIndexKind::Auto, (0..100).map(chunk).collect()).unwrap();
        assert!(!index.is_graph());
        assert!(!index.settle(VectorIndexKind::Auto).unwrap());
        assert!(index.settle(VectorIndexKind::Hnsw).unwrap());
        assert!(index.is_graph());
        assert_eq!(index.len(), 100);
        let dir = tempfile::tempdir().unwrap();
        index.save(dir.path(), 3).unwrap();
        let (loaded, generation) = VectorIndex::load(dir.path(), dim).unwrap();
        assert!(loaded.is_graph());
        assert_eq!(generation, 3);
        let staff = Caller::user("s", ["staff"]).unwrap();
        assert_eq!(loaded.search(&chunk(5).2, &staff, 1)[0].0, index.search(&chunk(5).2, &staff, 1)[0].0);
        assert!(VectorIndex::load(dir.path(), dim + 1).is_none(), "another dimension is another model: rebuild");
        // Back to flat: the graph files go.
        VectorIndex::build(dim, VectorIndexKind::Flat, (0..10).map(chunk).collect()).unwrap().save(dir.path(), 4).unwrap();
        assert!(!dir.path().join(GRAPH_FILE).exists());
        assert!(!VectorIndex::load(dir.path(), dim).unwrap().0.is_graph());
    }

    #[test]
    fn a_document_acl_changes_in_place_in_both_kinds_and_persists() {
        let dim = 4;
        let chunk = |i: usize| {
            let mut v = vec![(i % 11) as f32, (i % 5) as f32, 1.0, (i % 3) as f32];
            crate::normalize(&mut v);
            (i as u64, i as i64 / 4, v, vec![Principal::parse("group:staff").unwrap()])
        };
        let staff = Caller::user("s", ["staff"]).unwrap();
        let ceo = Caller::user("ceo", Vec::<String>::new()).unwrap();
        for kind in [VectorIndexKind::Flat, VectorIndexKind::Hnsw] {
            let mut index = VectorIndex::build(dim, kind, (0..200).map(chunk).collect()).unwrap();
            index.settle(kind).unwrap();
            let secret_doc = 7; // chunks 28..32
            assert_eq!(index.set_document_acl(secret_doc, &[Principal::parse("user:ceo").unwrap()]), 4);
            let dir = tempfile::tempdir().unwrap();
            index.save(dir.path(), 1).unwrap();
            let (loaded, _) = VectorIndex::load(dir.path(), dim).unwrap();
            for idx in [&index, &loaded] {
                for q in 28..32 {
                    let query = chunk(q).2;
                    assert!(idx.search(&query, &staff, 200).iter().all(|(id, _)| !(28..32).contains(id)), "{kind:?}");
                    let for_ceo: Vec<u64> = idx.search(&query, &ceo, 200).iter().map(|(id, _)| *id).collect();
                    assert_eq!(for_ceo.len(), 4, "{kind:?}");
                    assert!(for_ceo.iter().all(|id| (28..32).contains(id)));
                }
            }
            assert_eq!(index.set_document_acl(999, &[]), 0);
        }
    }
}
