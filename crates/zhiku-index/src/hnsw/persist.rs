//! The index on disk: one file written to a temporary name, synced and renamed into place, so a
//! crash leaves the old file or the new one, never half of one. Loading checks every id and
//! count, so a damaged file is an error and never an out-of-bounds walk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

use super::graph::Graph;
use super::store::{Codes, Sq8, Store};
use super::{Hnsw, HnswConfig, Quant};
use crate::codec::{metric_code, metric_from_code, write_atomically, Reader};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"ZKHNSW02";
/// The format before the vector storage was chosen: f32 vectors, no storage byte.
const MAGIC_F32_ONLY: &[u8; 8] = b"ZKHNSW01";

impl Hnsw {
    /// Writes the index to `path` atomically, with `generation` (the store generation it
    /// reflects; 0 when there is none).
    pub fn save(&self, path: &Path, generation: u64) -> Result<()> {
        let entry = *self.entry.lock().unwrap_or_else(|e| e.into_inner());
        write_atomically(path, |w| {
            w.write_all(MAGIC)?;
            w.write_all(&generation.to_le_bytes())?;
            for v in [self.dim, self.config.m, self.config.ef_construction] {
                w.write_all(&(v as u32).to_le_bytes())?;
            }
            w.write_all(&[metric_code(self.config.metric), self.store.quant().code()])?;
            w.write_all(&self.rng.to_le_bytes())?;
            w.write_all(&(self.len() as u64).to_le_bytes())?;
            let (entry_node, top) = entry.map_or((u32::MAX, 0), |(n, t)| (n, t as u32));
            w.write_all(&entry_node.to_le_bytes())?;
            w.write_all(&top.to_le_bytes())?;
            w.write_all(&self.graph.levels)?;
            for node in 0..self.len() as u32 {
                for level in 0..=self.graph.levels[node as usize] as usize {
                    let list = self.graph.neighbors(node, level);
                    w.write_all(&(list.len() as u32).to_le_bytes())?;
                    for id in list {
                        w.write_all(&id.to_le_bytes())?;
                    }
                }
            }
            match &self.store {
                Store::F32(v) => v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))?,
                Store::F16(v) => v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))?,
                Store::Int8(sq) => {
                    for x in sq.lower.iter().chain(&sq.step).chain(&sq.norms) {
                        w.write_all(&x.to_le_bytes())?;
                    }
                    w.write_all(&sq.codes[..])?;
                }
            }
            Ok(())
        })
    }

    /// Reads an index written by [`Hnsw::save`], with its generation. Int8 codes stay in the
    /// file, read through a memory map; the rest is read into memory.
    pub fn load(path: &Path) -> Result<(Self, u64)> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: name.clone(), source })?;
        // SAFETY: the map is read-only and the file is replaced by rename, never rewritten in
        // place; a truncation by another process would fault, the accepted risk of every
        // mmap reader (as for the full vectors, `MappedRows`).
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|source| Error::Io { path: name.clone(), source })?);
        parse(&mut Reader::new(&map), Some(&map)).map_err(|reason| Error::Corrupt { path: name, reason })
    }
}

/// `map`: the bytes `r` reads, mapped, for the codes to stay in; `None` copies them.
fn parse(r: &mut Reader<'_>, map: Option<&Arc<Mmap>>) -> std::result::Result<(Hnsw, u64), String> {
    let magic = r.take(8)?;
    if magic != MAGIC && magic != MAGIC_F32_ONLY {
        return Err("not a zhiku HNSW index".into());
    }
    let generation = r.u64()?;
    let dim = r.u32()? as usize;
    let m = r.u32()? as usize;
    let ef_construction = r.u32()? as usize;
    let metric = metric_from_code(r.u8()?)?;
    let quant = if magic == MAGIC { Quant::from_code(r.u8()?)? } else { Quant::F32 };
    let rng = r.u64()?;
    let n = r.size()?;
    let (entry_node, top) = (r.u32()?, r.u32()? as usize);
    if dim == 0 || !(2..=256).contains(&m) || n > u32::MAX as usize {
        return Err(format!("implausible header: dimension {dim}, M {m}, {n} nodes"));
    }
    let config = HnswConfig { m, ef_construction, metric, seed: rng, quant };
    let mut graph = Graph::new(m);
    let levels = r.take(n)?.to_vec();
    for &level in &levels {
        if level > 16 {
            return Err(format!("node level {level} above 16"));
        }
        graph.push_node(level);
    }
    for node in 0..n as u32 {
        for level in 0..=levels[node as usize] as usize {
            let len = r.u32()? as usize;
            if len > graph.capacity(level) {
                return Err(format!("node {node} has {len} neighbours on layer {level}"));
            }
            let list = r.u32s(len)?;
            if let Some(id) = list.iter().find(|id| **id as usize >= n || (levels[**id as usize] as usize) < level) {
                return Err(format!("node {node} links to {id}, not a node of layer {level}"));
            }
            graph.set_neighbors(node, level, &list);
        }
    }
    let values = n.checked_mul(dim).ok_or("size overflow")?;
    let store = match quant {
        Quant::F32 => Store::F32(r.f32s(values)?),
        Quant::F16 => Store::F16(
            r.take(values.checked_mul(2).ok_or("size overflow")?)?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect(),
        ),
        Quant::Int8 => {
            let (lower, step, norms) = (r.f32s(dim)?, r.f32s(dim)?, r.f32s(n)?);
            let start = r.position();
            let bytes = r.take(values)?;
            let codes = match map {
                Some(map) => Codes::Mapped { map: map.clone(), start, len: values },
                None => Codes::Owned(bytes.to_vec()),
            };
            Store::Int8(Sq8 { lower, step, norms, codes })
        }
    };
    let entry = match entry_node {
        u32::MAX if n == 0 => None,
        node if (node as usize) < n && levels[node as usize] as usize == top => Some((node, top)),
        node => return Err(format!("entry node {node} at layer {top} is not in the graph")),
    };
    let index = Hnsw { config, dim, store, graph, entry: Mutex::new(entry), locks: (0..n).map(|_| Mutex::new(())).collect(), rng };
    Ok((index, generation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;

    #[test]
    fn saved_index_answers_the_same_and_damage_is_an_error() {
        let dim = 8;
        let data: Vec<f32> = (0..800 * dim).map(|i| ((i * 7919) % 1013) as f32 / 1013.0).collect();
        let index = Hnsw::build(dim, data, HnswConfig { m: 8, ef_construction: 40, metric: Metric::L2, ..Default::default() }, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.hnsw");
        index.save(&path, 17).unwrap();
        let (loaded, generation) = Hnsw::load(&path).unwrap();
        assert_eq!(generation, 17);
        let query = [0.3f32; 8];
        assert_eq!(loaded.search(&query, 5, 32, None), index.search(&query, 5, 32, None));
        assert_eq!(loaded.bytes(), index.bytes());

        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse(&mut Reader::new(&bytes[..cut]), None).is_err(), "cut at {cut}");
        }
        // A neighbour id pointing outside the graph.
        let mut bad = bytes.clone();
        let first_list = 8 + 8 + 12 + 2 + 8 + 8 + 8 + 800;
        bad[first_list + 4..first_list + 8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(parse(&mut Reader::new(&bad), None).err().is_some_and(|e| e.contains("links to 9999")));
    }

    #[test]
    fn loaded_int8_codes_are_read_in_place_until_the_index_grows() {
        let dim = 8;
        let data: Vec<f32> = (0..600 * dim).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
        let config = HnswConfig { m: 8, ef_construction: 40, metric: Metric::Cosine, quant: Quant::Int8, ..Default::default() };
        let index = Hnsw::build(dim, data, config, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.hnsw");
        index.save(&path, 1).unwrap();
        let (mut loaded, _) = Hnsw::load(&path).unwrap();
        assert!(matches!(&loaded.store, Store::Int8(Sq8 { codes: Codes::Mapped { .. }, .. })));
        let query = [0.1f32, -0.2, 0.3, 0.0, 0.25, -0.1, 0.05, 0.2];
        assert_eq!(loaded.search(&query, 5, 32, None), index.search(&query, 5, 32, None));
        // Saving over the mapped file (rename) leaves the loaded index reading the old one.
        index.save(&path, 2).unwrap();
        assert_eq!(loaded.search(&query, 5, 32, None), index.search(&query, 5, 32, None));
        let added = loaded.add(&query);
        assert!(matches!(&loaded.store, Store::Int8(Sq8 { codes: Codes::Owned(_), .. })));
        assert_eq!(loaded.search(&query, 1, 32, None)[0].0, added);
    }
}
