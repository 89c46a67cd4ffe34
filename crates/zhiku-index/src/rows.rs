//! Full-precision vectors read from a file through a memory map: what re-scoring needs from
//! the f32 vectors when the index keeps only codes (int8/f16 HNSW, IVF-PQ). The pages are the
//! operating system's cache, shared and evictable, not the process's heap, so a collection
//! larger than the RAM budget can still be re-ranked exactly.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::{Error, Result};

pub struct MappedRows {
    map: Mmap,
    offset: usize,
    rows: usize,
    dim: usize,
}

impl MappedRows {
    /// `rows × dim` little-endian f32 values starting `offset` bytes into `path`.
    pub fn open(path: &Path, offset: usize, rows: usize, dim: usize) -> Result<Self> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; a concurrent truncation of the file by another
        // process would fault, the accepted risk of every mmap reader (the file is ours or
        // the user's input, not shared with writers).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let needed = rows.checked_mul(dim).and_then(|n| n.checked_mul(4)).and_then(|n| n.checked_add(offset));
        if needed.is_none_or(|n| n > map.len()) {
            return Err(Error::Corrupt {
                path: path.display().to_string(),
                reason: format!("{} bytes cannot hold {rows} × {dim} f32 values from byte {offset}", map.len()),
            });
        }
        Ok(Self { map, offset, rows, dim })
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows as stored: `len() × dim` little-endian f32 values.
    pub fn as_bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.rows * self.dim * 4]
    }

    /// Every value, row after row.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.as_bytes().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The file's first `len` bytes (at most the offset of the rows): its header.
    pub fn header(&self, len: usize) -> &[u8] {
        &self.map[..len.min(self.offset)]
    }

    /// Row `i`; empty past the end.
    pub fn row(&self, i: u32) -> Vec<f32> {
        let i = i as usize;
        if i >= self.rows {
            return Vec::new();
        }
        let start = self.offset + i * self.dim * 4;
        self.map[start..start + self.dim * 4].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_as_written_and_short_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.bin");
        let values: Vec<f32> = (0..30).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut bytes = b"header!".to_vec();
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(&path, &bytes).unwrap();
        let rows = MappedRows::open(&path, 7, 10, 3).unwrap();
        assert_eq!(rows.len(), 10);
        assert_eq!(rows.row(4), values[12..15]);
        assert!(rows.row(10).is_empty());
        assert!(matches!(MappedRows::open(&path, 7, 11, 3), Err(Error::Corrupt { .. })));
    }
}
