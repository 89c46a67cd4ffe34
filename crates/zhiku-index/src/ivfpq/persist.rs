//! The index on disk, written to a temporary file, synced and renamed into place; every size,
//! code and id checked when read.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::{IvfPq, List, KSUB};
use crate::distance::Metric;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"ZKIVFPQ1";

impl IvfPq {
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let tmp = path.with_extension("tmp");
        let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        (|| -> std::io::Result<()> {
            w.write_all(MAGIC)?;
            for v in [self.dim, self.m, self.lists.len(), self.len] {
                w.write_all(&(v as u64).to_le_bytes())?;
            }
            w.write_all(&[match self.metric {
                Metric::Cosine => 0,
                Metric::InnerProduct => 1,
                Metric::L2 => 2,
            }])?;
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
            w.into_inner().map_err(|e| e.into_error())?.sync_all()
        })()
        .map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: name.clone(), source })?;
        parse(&bytes).map_err(|reason| Error::Corrupt { path: name, reason })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn size(&mut self) -> std::result::Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))).map_err(|e| e.to_string())
    }

    fn words(&mut self, n: usize) -> std::result::Result<impl Iterator<Item = [u8; 4]> + 'a, String> {
        Ok(self.take(n.checked_mul(4).ok_or("size overflow")?)?.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]))
    }
}

fn parse(bytes: &[u8]) -> std::result::Result<IvfPq, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err("not a zhiku IVF-PQ index".into());
    }
    let (dim, m, nlist, len) = (r.size()?, r.size()?, r.size()?, r.size()?);
    if dim == 0 || m == 0 || dim % m != 0 || nlist == 0 || dim > 65_536 || nlist > 1 << 20 || len > u32::MAX as usize {
        return Err(format!("implausible header: dimension {dim}, m {m}, {nlist} lists, {len} vectors"));
    }
    let metric = match r.take(1)?[0] {
        0 => Metric::Cosine,
        1 => Metric::InnerProduct,
        2 => Metric::L2,
        other => return Err(format!("unknown metric {other}")),
    };
    let centroids: Vec<f32> = r.words(nlist * dim)?.map(f32::from_le_bytes).collect();
    let codebooks: Vec<f32> = r.words(m * KSUB * (dim / m))?.map(f32::from_le_bytes).collect();
    let mut lists = Vec::with_capacity(nlist);
    let mut total = 0usize;
    for _ in 0..nlist {
        let n = r.size()?;
        total = total.checked_add(n).filter(|t| *t <= len).ok_or("lists hold more vectors than the index")?;
        let ids: Vec<u32> = r.words(n)?.map(u32::from_le_bytes).collect();
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
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
