//! A knowledge base's vectors in an HNSW graph, with its chunks' ACLs: each principal has a
//! bitmap of the nodes it may read, a caller's filter is the union of its principals' bitmaps,
//! and the graph search checks that filter as it walks (or scans the allowed nodes exactly when
//! they are few). Deleted chunks stay in the graph as waypoints, marked dead, until they are a
//! quarter of it; then the graph is rebuilt from the live ones.
//!
//! The graph holds int8 codes (a quarter of the f32 vectors' memory), and the best of what it
//! finds is re-scored exactly from the full vectors, which are read through a memory map of
//! their own file: pages of the operating system's cache, touched a few rows per search, not
//! the process's heap. A server over 100,000 chunks keeps ~40 MB of codes in memory where it
//! kept ~150 MB of floats.

use std::collections::HashMap;
use std::path::Path;

use zhiku_core::{Caller, Principal};

use crate::codec::{read_file, write_atomically};
use crate::principals::Principals;
use crate::{Error, Hnsw, HnswConfig, IdFilter, MappedRows, Metric, Quant, Result, Scored, VectorIndexRead, VectorIndexWrite};

const MAGIC: &[u8; 8] = b"ZKHNSWM1";
const ROWS_MAGIC: &[u8; 8] = b"ZKROWS01";
/// Magic, generation, rows, dimension.
const ROWS_HEADER: usize = 32;
/// Candidates re-scored from the full vectors per result wanted (at most the beam).
const RESCORE: usize = 4;
/// Beam width for knowledge-base searches: recall@10 ≈ 0.99 on MiniLM embeddings.
const EF_SEARCH: usize = 96;
/// Build threads when the whole graph is made at once (a rebuild).
const BUILD_THREADS: usize = 2;

pub struct HnswIndex {
    graph: Hnsw,
    full: FullVectors,
    /// Nodes the graph's int8 map was trained on: retrained once the graph is twice as big.
    trained_on: usize,
    /// Per node: chunk id, document id, and the principals (interned) that may read it.
    chunk_ids: Vec<u64>,
    doc_ids: Vec<i64>,
    acls: Vec<Box<[u32]>>,
    principals: Principals,
    /// Per principal: the nodes it may read.
    readable: Vec<IdFilter>,
    live: IdFilter,
    nodes_of_doc: HashMap<i64, Vec<u32>>,
}

impl HnswIndex {
    pub fn new(dim: usize) -> Self {
        Self {
            graph: Hnsw::new(dim, Self::config()),
            full: FullVectors::new(dim),
            trained_on: 0,
            chunk_ids: Vec::new(),
            doc_ids: Vec::new(),
            acls: Vec::new(),
            principals: Principals::default(),
            readable: Vec::new(),
            live: IdFilter::empty(0),
            nodes_of_doc: HashMap::new(),
        }
    }

    fn config() -> HnswConfig {
        HnswConfig { m: 16, ef_construction: 200, metric: Metric::Cosine, seed: 42, quant: Quant::Int8 }
    }

    /// An index over many chunks at once, the graph built on several threads.
    pub fn build(dim: usize, chunks: impl IntoIterator<Item = (u64, i64, Vec<f32>, Vec<Principal>)>) -> Self {
        let mut index = Self::new(dim);
        let mut vectors = Vec::new();
        for (chunk_id, doc_id, vector, acl) in chunks {
            if vector.len() != dim {
                continue;
            }
            vectors.extend_from_slice(&vector);
            index.push_meta(chunk_id, doc_id, &acl);
        }
        index.full.added.clone_from(&vectors);
        index.graph = Hnsw::build(dim, vectors, Self::config(), BUILD_THREADS);
        index.trained_on = index.graph.len();
        index
    }

    pub fn dimension(&self) -> usize {
        self.graph.dimension()
    }

    /// Whether full vectors are held in memory that no saved file has yet.
    pub fn has_unsaved_rows(&self) -> bool {
        !self.full.added.is_empty()
    }

    /// Records a node's metadata; the node is the next one of the graph.
    fn push_meta(&mut self, chunk_id: u64, doc_id: i64, acl: &[Principal]) -> u32 {
        let node = self.chunk_ids.len() as u32;
        let ids = self.principals.intern_all(acl);
        self.readable.resize_with(self.principals.len(), || IdFilter::empty(0));
        for &p in ids.iter() {
            self.readable[p as usize].insert(node);
        }
        self.chunk_ids.push(chunk_id);
        self.doc_ids.push(doc_id);
        self.acls.push(ids);
        self.live.insert(node);
        self.nodes_of_doc.entry(doc_id).or_default().push(node);
        node
    }

    /// The live nodes the caller may read; `None` for an administrator over an index with no
    /// deletions (no filter at all).
    fn filter_for(&self, caller: &Caller) -> Option<IdFilter> {
        match caller.principals() {
            None if self.live.count() == self.chunk_ids.len() => None,
            None => Some(self.live.clone()),
            Some(held) => {
                let mut allowed = IdFilter::empty(self.chunk_ids.len());
                for p in held.iter().filter_map(|p| self.principals.id(p)) {
                    allowed.union_with(&self.readable[p as usize]);
                }
                allowed.intersect_with(&self.live);
                Some(allowed)
            }
        }
    }

    /// Rebuilds the graph from the live nodes when the dead ones are a quarter of it.
    fn compact_if_worthwhile(&mut self) {
        let dead = self.chunk_ids.len() - self.live.count();
        if dead < 1024 || dead * 4 < self.chunk_ids.len() {
            return;
        }
        let dim = self.dimension();
        let live: Vec<u32> = self.live.iter().collect();
        let chunks: Vec<(u64, i64, Vec<f32>, Vec<Principal>)> = live
            .iter()
            .map(|&n| {
                let acl = self.principals.resolve(&self.acls[n as usize]);
                (self.chunk_ids[n as usize], self.doc_ids[n as usize], self.full.row(n), acl)
            })
            .collect();
        *self = Self::build(dim, chunks);
    }

    /// Saves atomically (temp file, fsync, rename): the full vectors and the graph, then this
    /// metadata, all stamped with the same generation, so a crash between them is seen as a
    /// stale index on load. The vectors are read from the new file from then on.
    pub fn save(&mut self, path: &Path, generation: u64) -> Result<()> {
        self.full.save(&path.with_extension("rows"), generation)?;
        self.graph.save(&path.with_extension("graph"), generation)?;
        write_atomically(path, |w| {
            w.write_all(MAGIC)?;
            w.write_all(&generation.to_le_bytes())?;
            self.principals.write(w)?;
            w.write_all(&(self.chunk_ids.len() as u64).to_le_bytes())?;
            for n in 0..self.chunk_ids.len() {
                w.write_all(&self.chunk_ids[n].to_le_bytes())?;
                w.write_all(&self.doc_ids[n].to_le_bytes())?;
                w.write_all(&[u8::from(self.live.contains(n as u32))])?;
                w.write_all(&(self.acls[n].len() as u32).to_le_bytes())?;
                for a in self.acls[n].iter() {
                    w.write_all(&a.to_le_bytes())?;
                }
            }
            Ok(())
        })
    }

    /// Loads what [`HnswIndex::save`] wrote, with its generation. A graph saved before it
    /// held int8 codes has its f32 vectors taken as the full ones, in memory until next saved.
    pub fn load(path: &Path) -> Result<(Self, u64)> {
        let (mut graph, graph_generation) = Hnsw::load(&path.with_extension("graph"))?;
        let dim = graph.dimension();
        let full = if graph.quant() == Quant::F32 {
            let mut full = FullVectors::new(dim);
            (0..graph.len() as u32).for_each(|n| full.added.extend_from_slice(&graph.stored_vector(n)));
            graph.requantize(Quant::Int8, full.all());
            full
        } else {
            FullVectors::open(&path.with_extension("rows"), graph_generation, graph.len(), dim)?
        };
        read_file(path, |r| {
            if r.take(8)? != MAGIC {
                return Err("not a zhiku HNSW metadata file".into());
            }
            let generation = r.u64()?;
            if generation != graph_generation {
                return Err(format!("metadata of generation {generation}, graph of {graph_generation}"));
            }
            let mut index = Self::new(graph.dimension());
            let principals = Principals::read(r)?;
            let n = r.size()?;
            if n != graph.len() {
                return Err(format!("{n} chunks for a graph of {} nodes", graph.len()));
            }
            for _ in 0..n {
                let chunk_id = r.u64()?;
                let doc_id = r.u64()? as i64;
                let live = r.u8()? == 1;
                let len = r.u32()? as usize;
                let mut acl = Vec::with_capacity(len.min(1024));
                for _ in 0..len {
                    let p = r.u32()?;
                    acl.push(principals.get(p).cloned().ok_or(format!("principal {p} out of range"))?);
                }
                let node = index.push_meta(chunk_id, doc_id, &acl);
                if !live {
                    index.live.remove(node);
                }
            }
            index.trained_on = graph.len();
            index.graph = graph;
            index.full = full;
            Ok((index, generation))
        })
    }
}

/// The full-precision vectors, node by node: those saved, through a memory map, then those
/// added since, in memory until the next save.
struct FullVectors {
    dim: usize,
    saved: Option<MappedRows>,
    added: Vec<f32>,
}

impl FullVectors {
    fn new(dim: usize) -> Self {
        Self { dim, saved: None, added: Vec::new() }
    }

    fn saved_rows(&self) -> usize {
        self.saved.as_ref().map_or(0, MappedRows::len)
    }

    fn row(&self, node: u32) -> Vec<f32> {
        let saved = self.saved_rows();
        match &self.saved {
            Some(rows) if (node as usize) < saved => rows.row(node),
            _ => {
                let at = (node as usize - saved) * self.dim;
                self.added.get(at..at + self.dim).map(<[f32]>::to_vec).unwrap_or_default()
            }
        }
    }

    fn all(&self) -> Vec<f32> {
        let mut all = self.saved.as_ref().map(|rows| rows.values().collect::<Vec<f32>>()).unwrap_or_default();
        all.extend_from_slice(&self.added);
        all
    }

    /// Writes every row to `path` (atomically) and maps the new file in place of memory.
    fn save(&mut self, path: &Path, generation: u64) -> Result<()> {
        let rows = self.saved_rows() + self.added.len() / self.dim.max(1);
        write_atomically(path, |w| {
            w.write_all(ROWS_MAGIC)?;
            for v in [generation, rows as u64, self.dim as u64] {
                w.write_all(&v.to_le_bytes())?;
            }
            if let Some(saved) = &self.saved {
                w.write_all(saved.as_bytes())?;
            }
            self.added.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        })?;
        *self = Self::open(path, generation, rows, self.dim)?;
        Ok(())
    }

    fn open(path: &Path, generation: u64, rows: usize, dim: usize) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt { path: path.display().to_string(), reason };
        let mapped = MappedRows::open(path, ROWS_HEADER, rows, dim)?;
        let header = mapped.header(ROWS_HEADER);
        let field = |i: usize| u64::from_le_bytes(header[8 + i * 8..16 + i * 8].try_into().unwrap_or_default());
        if &header[..8] != ROWS_MAGIC {
            return Err(corrupt("not a zhiku vector rows file".into()));
        }
        if (field(0), field(1), field(2)) != (generation, rows as u64, dim as u64) {
            return Err(corrupt(format!(
                "rows of generation {}, {} × {}; the graph is of generation {generation}, {rows} × {dim}",
                field(0),
                field(1),
                field(2)
            )));
        }
        // The rows file may be longer than needed only if something else wrote it.
        Ok(Self { dim, saved: Some(mapped), added: Vec::new() })
    }
}

impl VectorIndexRead for HnswIndex {
    fn search(&self, query: &[f32], caller: &Caller, k: usize) -> Vec<Scored> {
        let filter = self.filter_for(caller);
        if filter.as_ref().is_some_and(|f| f.count() == 0) {
            return Vec::new();
        }
        self.graph
            .search_rescored(query, k, EF_SEARCH.max(k), filter.as_ref(), RESCORE, &|node| self.full.row(node))
            .into_iter()
            .map(|(node, distance)| (self.chunk_ids[node as usize], Metric::Cosine.score(distance)))
            .collect()
    }

    fn len(&self) -> usize {
        self.live.count()
    }
}

impl VectorIndexWrite for HnswIndex {
    fn insert(&mut self, chunk_id: u64, doc_id: i64, vector: &[f32], acl: &[Principal]) -> Result<()> {
        if vector.len() != self.dimension() {
            return Err(Error::Dimension { expected: self.dimension(), got: vector.len() });
        }
        let node = self.graph.add(vector);
        self.full.added.extend_from_slice(vector);
        let meta = self.push_meta(chunk_id, doc_id, acl);
        debug_assert_eq!(node, meta);
        // Codes trained on few vectors (or on none: the range of unit vectors) fit a grown
        // collection loosely; encoding again costs one pass over the vectors, not a rebuild.
        if self.graph.len() >= 256 && self.graph.len() >= 2 * self.trained_on {
            self.graph.requantize(Quant::Int8, self.full.all());
            self.trained_on = self.graph.len();
        }
        Ok(())
    }

    fn remove_document(&mut self, doc_id: i64) -> usize {
        let nodes = self.nodes_of_doc.remove(&doc_id).unwrap_or_default();
        let removed = nodes.iter().filter(|n| self.live.contains(**n)).count();
        for n in nodes {
            self.live.remove(n);
        }
        self.compact_if_worthwhile();
        removed
    }

    fn set_document_acl(&mut self, doc_id: i64, acl: &[Principal]) -> usize {
        let nodes: Vec<u32> = self.nodes_of_doc.get(&doc_id).into_iter().flatten().copied().filter(|n| self.live.contains(*n)).collect();
        let ids = self.principals.intern_all(acl);
        self.readable.resize_with(self.principals.len(), || IdFilter::empty(0));
        for &node in &nodes {
            for &p in self.acls[node as usize].iter() {
                self.readable[p as usize].remove(node);
            }
            for &p in ids.iter() {
                self.readable[p as usize].insert(node);
            }
            self.acls[node as usize] = ids.clone();
        }
        nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlatIndex;

    fn p(s: &str) -> Principal {
        Principal::parse(s).unwrap()
    }

    fn vector(i: usize, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|d| (((i * 31 + d * 17) % 97) as f32 / 97.0) - 0.5 + (i % 7) as f32 * 0.1).collect();
        crate::normalize(&mut v);
        v
    }

    /// The same chunks in the exact index and the graph: searches agree for every caller,
    /// before and after deletions, and after a save and a load.
    #[test]
    fn agrees_with_the_exact_index_under_acls_and_deletions() {
        let dim = 16;
        let (hr, eng) = (p("group:hr"), p("group:eng"));
        let mut flat = FlatIndex::new(dim);
        let mut graph = HnswIndex::new(dim);
        for i in 0..3000usize {
            let acl = if i % 3 == 0 {
                vec![hr.clone()]
            } else if i % 3 == 1 {
                vec![eng.clone()]
            } else {
                vec![hr.clone(), eng.clone()]
            };
            flat.insert(i as u64 + 100, (i / 10) as i64, &vector(i, dim), &acl).unwrap();
            graph.insert(i as u64 + 100, (i / 10) as i64, &vector(i, dim), &acl).unwrap();
        }
        let callers = [
            Caller::Admin,
            Caller::user("ann", ["hr"]).unwrap(),
            Caller::user("bob", ["eng"]).unwrap(),
            Caller::user("eve", ["x"]).unwrap(),
        ];
        let check = |flat: &FlatIndex, graph: &HnswIndex| {
            let mut agree = 0;
            let mut total = 0;
            for q in (0..40).map(|i| vector(i * 71 + 5, dim)) {
                for caller in &callers {
                    let want: Vec<u64> = flat.search(&q, caller, 10).into_iter().map(|h| h.0).collect();
                    let got: Vec<u64> = graph.search(&q, caller, 10).into_iter().map(|h| h.0).collect();
                    // Nothing outside the caller's ACL, ever.
                    let allowed: Vec<u64> = flat.search(&q, caller, 10_000).into_iter().map(|h| h.0).collect();
                    assert!(got.iter().all(|id| allowed.contains(id)), "a chunk outside the ACL came back");
                    assert_eq!(got.len(), want.len());
                    agree += got.iter().filter(|id| want.contains(id)).count();
                    total += want.len();
                }
            }
            agree as f64 / total.max(1) as f64
        };
        assert!(check(&flat, &graph) >= 0.95);
        for doc in (0..300).step_by(4) {
            assert_eq!(flat.remove_document(doc), graph.remove_document(doc));
        }
        assert_eq!(graph.len(), flat.len());
        assert!(check(&flat, &graph) >= 0.95);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.hnsw");
        graph.save(&path, 9).unwrap();
        let (loaded, generation) = HnswIndex::load(&path).unwrap();
        assert_eq!(generation, 9);
        assert_eq!(loaded.len(), graph.len());
        let q = vector(4242, dim);
        assert_eq!(loaded.search(&q, &callers[1], 10), graph.search(&q, &callers[1], 10));

        // Deleting most documents compacts the graph and keeps answering correctly.
        for doc in 0..280 {
            flat.remove_document(doc);
            graph.remove_document(doc);
        }
        assert!(graph.chunk_ids.len() < 1500, "compacted: {} nodes for {} live chunks", graph.chunk_ids.len(), graph.len());
        assert!(check(&flat, &graph) >= 0.95);
    }

    #[test]
    fn a_graph_saved_with_f32_vectors_loads_with_codes_and_rows_must_match_the_graph() {
        let dim = 16;
        let everyone = [p("group:all")];
        let mut index = HnswIndex::build(dim, (0..600usize).map(|i| (i as u64, i as i64, vector(i, dim), everyone.to_vec())));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.hnsw");
        index.save(&path, 3).unwrap();
        let ids =
            |index: &HnswIndex| -> Vec<u64> { index.search(&vector(9999, dim), &Caller::Admin, 10).into_iter().map(|h| h.0).collect() };
        let before = ids(&index);

        // The format before int8 codes: f32 vectors in the graph file, no rows file.
        index.graph.requantize(Quant::F32, index.full.all());
        index.graph.save(&path.with_extension("graph"), 3).unwrap();
        std::fs::remove_file(path.with_extension("rows")).unwrap();
        let (mut legacy, generation) = HnswIndex::load(&path).unwrap();
        assert_eq!((generation, legacy.graph.quant()), (3, Quant::Int8));
        assert!(legacy.has_unsaved_rows());
        assert_eq!(ids(&legacy), before);
        legacy.save(&path, 4).unwrap();
        assert!(legacy.full.added.is_empty(), "saved rows are read from the file");
        assert_eq!(ids(&HnswIndex::load(&path).unwrap().0), before);

        // Rows left from another generation (a crash between the files) make the index stale.
        let old_rows = std::fs::read(path.with_extension("rows")).unwrap();
        legacy.save(&path, 5).unwrap();
        std::fs::write(path.with_extension("rows"), old_rows).unwrap();
        let error = HnswIndex::load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("generation 4"), "{error}");
    }
}
