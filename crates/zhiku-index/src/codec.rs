//! The indexes' files: little-endian binary, written to a temporary name, synced and renamed
//! into place (a crash leaves the old file or the new one, never half of one), and read back
//! with every length checked against what is there.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::distance::Metric;
use crate::{Error, Result};

/// Writes `path` atomically with what `write` produces: to a temporary name, synced, renamed
/// into place, and the rename synced with its directory.
pub(crate) fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::new(CrashPoint::new(std::fs::File::create(&tmp).map_err(io)?));
    write(&mut w).map_err(io)?;
    w.into_inner().map_err(|e| io(e.into_error()))?.file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Fault injection for the crash tests: with `ZHIKU_CRASH_INDEX_WRITE_AFTER=N` in the
/// environment, the process aborts (as a `kill -9` would end it) once an index file has taken
/// N bytes, leaving a partial temporary file behind. Unset, it costs a comparison per buffer.
struct CrashPoint {
    file: std::fs::File,
    budget: Option<u64>,
}

impl CrashPoint {
    fn new(file: std::fs::File) -> Self {
        let budget = std::env::var("ZHIKU_CRASH_INDEX_WRITE_AFTER").ok().and_then(|v| v.parse().ok());
        Self { file, budget }
    }
}

impl Write for CrashPoint {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(budget) = self.budget.as_mut() {
            let take = buf.len().min(*budget as usize);
            self.file.write_all(&buf[..take])?;
            *budget -= take as u64;
            if *budget == 0 {
                self.file.sync_all()?;
                std::process::abort();
            }
            return Ok(take);
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Reads a whole file and parses it, a parse failure becoming a corrupt-index error naming it.
pub(crate) fn read_file<T>(path: &Path, parse: impl FnOnce(&mut Reader<'_>) -> std::result::Result<T, String>) -> Result<T> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: name.clone(), source })?;
    parse(&mut Reader::new(&bytes)).map_err(|reason| Error::Corrupt { path: name, reason })
}

pub(crate) fn metric_code(metric: Metric) -> u8 {
    match metric {
        Metric::Cosine => 0,
        Metric::InnerProduct => 1,
        Metric::L2 => 2,
    }
}

pub(crate) fn metric_from_code(code: u8) -> std::result::Result<Metric, String> {
    match code {
        0 => Ok(Metric::Cosine),
        1 => Ok(Metric::InnerProduct),
        2 => Ok(Metric::L2),
        other => Err(format!("unknown metric {other}")),
    }
}

/// A cursor over a file's bytes; every read fails cleanly past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A u64 length or count that must fit this machine's memory.
    pub fn size(&mut self) -> std::result::Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|e| e.to_string())
    }

    fn words(&mut self, n: usize) -> std::result::Result<impl Iterator<Item = [u8; 4]> + 'a, String> {
        Ok(self.take(n.checked_mul(4).ok_or("size overflow")?)?.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]))
    }

    pub fn f32s(&mut self, n: usize) -> std::result::Result<Vec<f32>, String> {
        Ok(self.words(n)?.map(f32::from_le_bytes).collect())
    }

    pub fn u32s(&mut self, n: usize) -> std::result::Result<Vec<u32>, String> {
        Ok(self.words(n)?.map(u32::from_le_bytes).collect())
    }
}
