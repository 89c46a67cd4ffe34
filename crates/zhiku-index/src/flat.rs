use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use zhiku_core::{Caller, Principal};

use crate::codec::{read_file, write_atomically};
use crate::principals::Principals;
use crate::{Error, Result, Scored, VectorIndexRead, VectorIndexWrite};

const MAGIC: &[u8; 8] = b"ZKFLAT01";

/// Exact nearest-neighbour search by dot product over unit vectors (= cosine similarity).
///
/// Principals are interned to small integers and each entry keeps the sorted ids of its ACL, so
/// the access check inside the scan is a short integer intersection, done *before* scoring.
pub struct FlatIndex {
    dim: usize,
    ids: Vec<u64>,
    doc_ids: Vec<i64>,
    acls: Vec<Box<[u32]>>,
    vectors: Vec<f32>,
    principals: Principals,
}

/// The min-heap entry that keeps the current top k.
#[derive(PartialEq)]
struct Candidate(f32, u64);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl FlatIndex {
    pub fn new(dim: usize) -> Self {
        Self { dim, ids: Vec::new(), doc_ids: Vec::new(), acls: Vec::new(), vectors: Vec::new(), principals: Principals::default() }
    }

    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// Every entry as inserted: chunk id, document id, vector, ACL.
    pub fn entries(&self) -> impl Iterator<Item = (u64, i64, &[f32], Vec<Principal>)> + '_ {
        (0..self.ids.len()).map(|i| {
            (self.ids[i], self.doc_ids[i], &self.vectors[i * self.dim..(i + 1) * self.dim], self.principals.resolve(&self.acls[i]))
        })
    }

    /// Saves atomically (temp file, fsync, rename) with the store generation it reflects.
    pub fn save(&self, path: &Path, generation: u64) -> Result<()> {
        write_atomically(path, |w| {
            w.write_all(MAGIC)?;
            w.write_all(&generation.to_le_bytes())?;
            w.write_all(&(self.dim as u32).to_le_bytes())?;
            self.principals.write(w)?;
            w.write_all(&(self.ids.len() as u64).to_le_bytes())?;
            for i in 0..self.ids.len() {
                w.write_all(&self.ids[i].to_le_bytes())?;
                w.write_all(&self.doc_ids[i].to_le_bytes())?;
                w.write_all(&(self.acls[i].len() as u32).to_le_bytes())?;
                for a in self.acls[i].iter() {
                    w.write_all(&a.to_le_bytes())?;
                }
                for x in &self.vectors[i * self.dim..(i + 1) * self.dim] {
                    w.write_all(&x.to_le_bytes())?;
                }
            }
            Ok(())
        })
    }

    /// Loads an index saved by [`FlatIndex::save`], returning it with its generation.
    pub fn load(path: &Path) -> Result<(Self, u64)> {
        read_file(path, |r| {
            if r.take(8)? != MAGIC {
                return Err("not a zhiku flat index".into());
            }
            let generation = r.u64()?;
            let dim = r.u32()? as usize;
            let mut index = FlatIndex::new(dim);
            index.principals = Principals::read(r)?;
            let n = r.size()?;
            for _ in 0..n {
                let id = r.u64()?;
                let doc_id = r.u64()? as i64;
                let nacl = r.u32()? as usize;
                let acl = r.u32s(nacl)?;
                if let Some(a) = acl.iter().find(|a| **a as usize >= index.principals.len()) {
                    return Err(format!("principal id {a} out of range"));
                }
                index.ids.push(id);
                index.doc_ids.push(doc_id);
                index.acls.push(acl.into_boxed_slice());
                index.vectors.extend(r.f32s(dim)?);
            }
            Ok((index, generation))
        })
    }
}

fn intersects(sorted_a: &[u32], sorted_b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < sorted_a.len() && j < sorted_b.len() {
        match sorted_a[i].cmp(&sorted_b[j]) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    false
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise (AVX2 with target-cpu=x86-64-v3).
    let mut acc = [0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl VectorIndexRead for FlatIndex {
    fn search(&self, query: &[f32], caller: &Caller, k: usize) -> Vec<Scored> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let allowed = self.principals.ids_of(caller);
        let mut heap: BinaryHeap<Reverse<Candidate>> = BinaryHeap::with_capacity(k + 1);
        for i in 0..self.ids.len() {
            if let Some(allowed) = &allowed {
                if !intersects(&self.acls[i], allowed) {
                    continue;
                }
            }
            let score = dot(query, &self.vectors[i * self.dim..(i + 1) * self.dim]);
            if heap.len() < k {
                heap.push(Reverse(Candidate(score, self.ids[i])));
            } else if let Some(Reverse(worst)) = heap.peek() {
                if score > worst.0 {
                    heap.pop();
                    heap.push(Reverse(Candidate(score, self.ids[i])));
                }
            }
        }
        let mut out: Vec<Scored> = heap.into_iter().map(|Reverse(c)| (c.1, c.0)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

impl VectorIndexWrite for FlatIndex {
    fn insert(&mut self, chunk_id: u64, doc_id: i64, vector: &[f32], acl: &[Principal]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::Dimension { expected: self.dim, got: vector.len() });
        }
        let acl = self.principals.intern_all(acl);
        self.ids.push(chunk_id);
        self.doc_ids.push(doc_id);
        self.acls.push(acl);
        self.vectors.extend_from_slice(vector);
        Ok(())
    }

    fn remove_document(&mut self, doc_id: i64) -> usize {
        let before = self.ids.len();
        let mut write = 0;
        for read in 0..before {
            if self.doc_ids[read] == doc_id {
                continue;
            }
            if write != read {
                self.ids[write] = self.ids[read];
                self.doc_ids[write] = self.doc_ids[read];
                self.acls.swap(write, read);
                self.vectors.copy_within(read * self.dim..(read + 1) * self.dim, write * self.dim);
            }
            write += 1;
        }
        self.ids.truncate(write);
        self.doc_ids.truncate(write);
        self.acls.truncate(write);
        self.vectors.truncate(write * self.dim);
        before - write
    }

    fn set_document_acl(&mut self, doc_id: i64, acl: &[Principal]) -> usize {
        let ids = self.principals.intern_all(acl);
        let mut n = 0;
        for (i, _) in self.doc_ids.iter().enumerate().filter(|(_, d)| **d == doc_id) {
            self.acls[i] = ids.clone();
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Principal {
        Principal::parse(s).unwrap()
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// A small deterministic generator so tests need no rand dependency.
    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    #[test]
    fn exact_top_k_matches_brute_force() {
        let mut seed = 7;
        let mut index = FlatIndex::new(16);
        let mut all = Vec::new();
        for id in 0..300u64 {
            let v = unit(&(0..16).map(|_| lcg(&mut seed)).collect::<Vec<_>>());
            index.insert(id, id as i64, &v, &[p("group:all")]).unwrap();
            all.push((id, v));
        }
        let q = unit(&(0..16).map(|_| lcg(&mut seed)).collect::<Vec<_>>());
        let mut expected: Vec<(u64, f32)> = all.iter().map(|(id, v)| (*id, dot(&q, v))).collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = index.search(&q, &Caller::Admin, 10);
        assert_eq!(got.iter().map(|h| h.0).collect::<Vec<_>>(), expected[..10].iter().map(|h| h.0).collect::<Vec<_>>());
    }

    #[test]
    fn acl_filter_is_applied_before_top_k() {
        // The forbidden vectors are the closest ones: a post-filter on top-k would return
        // nothing for bob; filtering inside the scan returns his best allowed chunks.
        let mut index = FlatIndex::new(2);
        for id in 0..20 {
            index.insert(id, 1, &unit(&[1.0, 0.01 * id as f32]), &[p("group:secret")]).unwrap();
        }
        index.insert(100, 2, &unit(&[0.0, 1.0]), &[p("user:bob")]).unwrap();
        index.insert(101, 3, &unit(&[0.1, 1.0]), &[p("group:staff")]).unwrap();
        let bob = Caller::user("bob", ["staff"]).unwrap();
        let hits = index.search(&unit(&[1.0, 0.0]), &bob, 5);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![101, 100]);
        let stranger = Caller::user("eve", Vec::<String>::new()).unwrap();
        assert!(index.search(&unit(&[1.0, 0.0]), &stranger, 5).is_empty());
        assert_eq!(index.search(&unit(&[1.0, 0.0]), &Caller::Admin, 5).len(), 5);
    }

    #[test]
    fn remove_document_and_roundtrip_through_disk() {
        let mut index = FlatIndex::new(2);
        index.insert(1, 10, &[1.0, 0.0], &[p("user:a")]).unwrap();
        index.insert(2, 20, &[0.0, 1.0], &[p("user:b"), p("group:g")]).unwrap();
        index.insert(3, 10, &[0.6, 0.8], &[p("user:a")]).unwrap();
        assert_eq!(index.remove_document(10), 2);
        assert!(index.insert(4, 30, &[1.0], &[]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.flat");
        index.save(&path, 42).unwrap();
        let (loaded, generation) = FlatIndex::load(&path).unwrap();
        assert_eq!(generation, 42);
        assert_eq!(loaded.len(), 1);
        let g = Caller::user("x", ["g"]).unwrap();
        assert_eq!(loaded.search(&[0.0, 1.0], &g, 3), vec![(2, 1.0)]);
        std::fs::write(&path, b"ZKFLAT01garbage").unwrap();
        assert!(matches!(FlatIndex::load(&path), Err(Error::Corrupt { .. })));
    }
}
