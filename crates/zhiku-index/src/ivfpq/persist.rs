//! The index on disk, written to a temporary file, synced and renamed into place; every size,
//! code and id checked when read.

use std::path::Path;

use super::{IvfPq, List, KSUB};
use crate::codec::{metric_code, metric_from_code, read_file, write_atomically, Reader};
use crate::Result;

const MAGIC: &[u8; 8] = b"ZKIVFPQ1";

impl IvfPq {
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomically(path, |w| {
            w.write_all(MAGIC)?;
            for v in [self.dim, self.m, self.lists.len(), self.len] {
                w.write_all(&(v as u64).to_le_bytes())?;
            }
            w.write_all(&[metric_code(self.metric)])?;
            for x in self.centroids.iter().chain(&self.codebooks) {
                w.write_all(&x.to_le_bytes())?;
            }
            for list in &self.lists {
                w.write_all(&(list.ids.len() as u64).to_le_bytes())?;
                for id in &list.ids {
                    w.write_all(&id.to_le_bytes())?;
                }
                w.write_all(&list.codes)?;
            }
            Ok(())
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        read_file(path, parse)
    }
}

fn parse(r: &mut Reader<'_>) -> std::result::Result<IvfPq, String> {
    if r.take(8)? != MAGIC {
        return Err("not a zhiku IVF-PQ index".into());
    }
    let (dim, m, nlist, len) = (r.size()?, r.size()?, r.size()?, r.size()?);
    if dim == 0 || m == 0 || dim % m != 0 || nlist == 0 || dim > 65_536 || nlist > 1 << 20 || len > u32::MAX as usize {
        return Err(format!("implausible header: dimension {dim}, m {m}, {nlist} lists, {len} vectors"));
    }
    let metric = metric_from_code(r.u8()?)?;
    let centroids = r.f32s(nlist * dim)?;
    let codebooks = r.f32s(m * KSUB * (dim / m))?;
    let mut lists = Vec::with_capacity(nlist);
    let mut total = 0usize;
    for _ in 0..nlist {
        let n = r.size()?;
        total = total.checked_add(n).filter(|t| *t <= len).ok_or("lists hold more vectors than the index")?;
        let ids = r.u32s(n)?;
        if let Some(bad) = ids.iter().find(|id| **id as usize >= len) {
            return Err(format!("id {bad} beyond the {len} vectors"));
        }
        let codes = r.take(n.checked_mul(m).ok_or("size overflow")?)?.to_vec();
        lists.push(List { ids, codes });
    }
    if total != len {
        return Err(format!("lists hold {total} of {len} vectors"));
    }
    Ok(IvfPq { dim, metric, m, dsub: dim / m, centroids, codebooks, lists, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;
    use crate::IvfPqConfig;

    #[test]
    fn round_trip_and_damage() {
        let dim = 8;
        let base: Vec<f32> = (0..1000 * dim).map(|i| ((i * 7919) % 1013) as f32 / 1013.0).collect();
        let index = IvfPq::build(dim, &base, IvfPqConfig { nlist: 8, m: 4, metric: Metric::L2, train_size: 1000, iterations: 4, seed: 3 });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.ivfpq");
        index.save(&path).unwrap();
        let loaded = IvfPq::load(&path).unwrap();
        assert_eq!(loaded.bytes(), index.bytes());
        assert_eq!(loaded.search(&base[..dim], 5, 4, None, 1, None), index.search(&base[..dim], 5, 4, None, 1, None));
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 9, 60, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse(&mut Reader::new(&bytes[..cut])).is_err(), "cut at {cut}");
        }
    }
}
