//! The derived indexes of one knowledge base and their consistency with the store.

use std::path::{Path, PathBuf};

use tracing::{info, warn};
use zhiku_core::Principal;
use zhiku_index::{Bm25Index, FlatIndex, VectorIndexWrite};
use zhiku_store::{Store, StoredChunk};

use crate::Result;

/// Index text: the heading path gives a chunk its context ("Leave > Carry over") both for the
/// embedding and for BM25.
pub fn index_text(heading_path: &[String], text: &str) -> String {
    if heading_path.is_empty() {
        text.to_string()
    } else {
        format!("{}\n{}", heading_path.join(" > "), text)
    }
}

pub struct KbIndexes {
    pub vectors: FlatIndex,
    pub bm25: Bm25Index,
    dir: PathBuf,
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
    pub fn open(data_dir: &Path, store: &Store, kb: &str, dim: usize, access: Access) -> Result<Self> {
        let dir = data_dir.join("kb").join(kb);
        let generation = store.generation(kb)?;
        let flat_path = dir.join("vectors.flat");
        let vectors = match FlatIndex::load(&flat_path) {
            Ok((index, g)) if g == generation && index.dimension() == dim => Some(index),
            Ok(_) => None,
            Err(e) if flat_path.exists() => {
                warn!(error = %e, "vector index unreadable; rebuilding it from the store");
                None
            }
            Err(_) => None,
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
            (Some(vectors), Some(bm25)) if bm25_fresh => return Ok(Self { vectors, bm25, dir }),
            other => other,
        };
        info!(kb, generation, "indexes behind the store; rebuilding from it");
        let chunks = store.chunks(kb)?;
        let vectors = match vectors {
            Some(v) => v,
            None => build_flat(&chunks, dim)?,
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
        let indexes = Self { vectors, bm25, dir };
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

    /// Makes both indexes durable, stamped with the store generation they now reflect.
    pub fn commit(&mut self, generation: u64) -> Result<()> {
        self.bm25.commit(generation)?;
        self.save_vectors(generation)
    }

    fn save_vectors(&self, generation: u64) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| crate::Error::Io { path: self.dir.clone(), source: e })?;
        self.vectors.save(&self.dir.join("vectors.flat"), generation)?;
        Ok(())
    }
}

fn build_flat(chunks: &[StoredChunk], dim: usize) -> Result<FlatIndex> {
    let mut index = FlatIndex::new(dim);
    for c in chunks {
        index.insert(c.id, c.doc_id, &c.embedding, &c.acl)?;
    }
    Ok(index)
}
