//! The derived indexes of one knowledge base and their consistency with the store.

use std::path::{Path, PathBuf};

use tracing::info;
use zhiku_core::Principal;
use zhiku_index::{index_text, Bm25Index, VectorIndex, VectorIndexKind, VectorIndexRead, VectorIndexWrite};
use zhiku_store::{Store, StoredChunk};

use crate::Result;

pub struct KbIndexes {
    pub vectors: VectorIndex,
    pub bm25: Bm25Index,
    dir: PathBuf,
    kind: VectorIndexKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Searching only: a stale index is rebuilt in memory, never written (another process may be
    /// ingesting and own the files).
    Read,
    /// Ingesting: a stale index is rebuilt on disk.
    Write,
}

impl KbIndexes {
    pub fn open(data_dir: &Path, store: &Store, kb: &str, dim: usize, access: Access, kind: VectorIndexKind) -> Result<Self> {
        let dir = data_dir.join("kb").join(kb);
        let generation = store.generation(kb)?;
        let vectors = match VectorIndex::load(&dir, dim) {
            // An index of another kind than the one now asked for is rebuilt as that kind.
            Some((index, g)) if g == generation && kind.accepts(&index) => Some(index),
            _ => None,
        };
        let bm25 = match access {
            Access::Write => Some(Bm25Index::open(&dir.join("bm25"))?),
            Access::Read => Bm25Index::open_read_only(&dir.join("bm25")).ok(),
        };
        let bm25_fresh = match &bm25 {
            Some(b) => b.generation()? == generation,
            None => false,
        };
        let (vectors, bm25) = match (vectors, bm25) {
            (Some(vectors), Some(bm25)) if bm25_fresh => {
                let mut indexes = Self { vectors, bm25, dir, kind };
                // Read in an older file layout (and upgraded in memory): written anew once.
                if access == Access::Write && indexes.vectors.needs_saving() {
                    indexes.save_vectors(generation)?;
                }
                return Ok(indexes);
            }
            other => other,
        };
        info!(kb, generation, "indexes behind the store; rebuilding from it");
        let chunks = store.chunks(kb)?;
        let vectors = match vectors {
            Some(v) => v,
            None => {
                let entries = chunks.iter().map(|c| (c.id, c.doc_id, c.embedding.clone(), c.acl.clone())).collect();
                VectorIndex::build(dim, kind, entries)?
            }
        };
        let bm25 = if bm25_fresh {
            bm25.expect("fresh implies present")
        } else {
            let mut fresh = match (access, bm25) {
                (Access::Write, Some(b)) => b,
                _ => Bm25Index::in_memory()?,
            };
            fresh.clear()?;
            for c in &chunks {
                fresh.add(c.id, c.doc_id, &index_text(&c.chunk.heading_path, &c.chunk.text), &c.acl)?;
            }
            fresh.commit(generation)?;
            fresh
        };
        let mut indexes = Self { vectors, bm25, dir, kind };
        if access == Access::Write {
            indexes.save_vectors(generation)?;
        }
        Ok(indexes)
    }

    pub fn remove_document(&mut self, doc_id: i64) -> Result<()> {
        self.vectors.remove_document(doc_id);
        self.bm25.remove_document(doc_id)?;
        Ok(())
    }

    pub fn add_chunk(&mut self, chunk_id: u64, doc_id: i64, text: &str, embedding: &[f32], acl: &[Principal]) -> Result<()> {
        self.vectors.insert(chunk_id, doc_id, embedding, acl)?;
        self.bm25.add(chunk_id, doc_id, text, acl)?;
        Ok(())
    }

    /// Gives a document's chunks a new ACL: in place in the vector index; BM25 keeps ACLs as
    /// indexed terms, so there the chunks' text is indexed again. Nothing is embedded again.
    pub fn set_document_acl(&mut self, doc_id: i64, acl: &[Principal], chunks: &[StoredChunk]) -> Result<()> {
        self.vectors.set_document_acl(doc_id, acl);
        self.bm25.remove_document(doc_id)?;
        for c in chunks {
            self.bm25.add(c.id, doc_id, &index_text(&c.chunk.heading_path, &c.chunk.text), acl)?;
        }
        Ok(())
    }

    /// Makes both indexes durable, stamped with the store generation they now reflect. A flat
    /// index that has grown past the graph threshold becomes a graph here.
    pub fn commit(&mut self, generation: u64) -> Result<()> {
        self.bm25.commit(generation)?;
        if self.vectors.settle(self.kind)? {
            info!(chunks = self.vectors.len(), "vector index switched to an HNSW graph");
        }
        self.save_vectors(generation)
    }

    fn save_vectors(&mut self, generation: u64) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| crate::Error::Io { path: self.dir.clone(), source: e })?;
        self.vectors.save(&self.dir, generation)?;
        Ok(())
    }
}
