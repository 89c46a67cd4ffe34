//! What an ingest run reads: files given on the command line, files found under directories, and
//! the entries of ZIP archives among them — each with the source name it is stored under
//! (`docs/a.txt`, `docs/pack.zip!/b/c.md`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::{FileOutcome, FileReport, IngestReport};

/// Limits that keep a hostile archive (zip bomb, millions of entries) from exhausting the machine.
pub const MAX_ARCHIVE_ENTRIES: usize = 10_000;
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;
pub const MAX_ARCHIVE_BYTES: u64 = 2 << 30;
/// Uncompressed/compressed size above which an entry over 1 MiB is treated as a bomb.
pub const MAX_COMPRESSION_RATIO: u64 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    ZipEntry { archive: PathBuf, index: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub source: String,
    pub origin: Origin,
}

impl Input {
    /// The file name the parser is chosen by.
    pub fn file_name(&self) -> &str {
        self.source.rsplit(['/', '!']).next().unwrap_or(&self.source)
    }

    pub fn read(&self) -> Result<Vec<u8>, String> {
        match &self.origin {
            Origin::File(path) => std::fs::read(path).map_err(|e| format!("cannot read: {e}")),
            Origin::ZipEntry { archive, index } => {
                let file = std::fs::File::open(archive).map_err(|e| format!("cannot open archive: {e}"))?;
                let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("corrupt archive: {e}"))?;
                let entry = zip.by_index(*index).map_err(|e| format!("corrupt archive entry: {e}"))?;
                let mut bytes = Vec::new();
                // The header's size can lie: never read past the limit whatever it says.
                entry.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot decompress: {e}"))?;
                if bytes.len() as u64 > MAX_ENTRY_BYTES {
                    return Err(format!("entry larger than {} MiB", MAX_ENTRY_BYTES >> 20));
                }
                Ok(bytes)
            }
        }
    }
}

fn failed(source: String, reason: String) -> FileReport {
    FileReport::new(source, FileOutcome::Failed { reason })
}

/// Expands directories (recursively, sorted, skipping hidden entries) and ZIP archives (one level;
/// archives inside archives are reported, not opened). Paths that cannot be read are reported.
pub fn collect_inputs(paths: &[PathBuf], report: &mut IngestReport) -> Vec<Input> {
    let mut inputs = Vec::new();
    for path in paths {
        collect(path, &mut inputs, report);
    }
    inputs
}

fn is_zip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn collect(path: &Path, inputs: &mut Vec<Input>, report: &mut IngestReport) {
    let source = path.to_string_lossy().into_owned();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
                Err(e) => return report.files.push(failed(source, format!("cannot list directory: {e}"))),
            };
            entries.sort();
            for entry in entries {
                let hidden = entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden {
                    collect(&entry, inputs, report);
                }
            }
        }
        Ok(_) if is_zip(path) => {
            if let Err(reason) = list_archive(path, &source, inputs, report) {
                report.files.push(failed(source, reason));
            }
        }
        Ok(_) => inputs.push(Input { source, origin: Origin::File(path.to_path_buf()) }),
        Err(e) => report.files.push(failed(source, format!("cannot open: {e}"))),
    }
}

fn list_archive(path: &Path, source: &str, inputs: &mut Vec<Input>, report: &mut IngestReport) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("corrupt or unsupported ZIP archive: {e}"))?;
    if zip.len() > MAX_ARCHIVE_ENTRIES {
        return Err(format!("archive has {} entries, more than the limit of {MAX_ARCHIVE_ENTRIES}", zip.len()));
    }
    let mut total = 0u64;
    let mut found = Vec::new();
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).map_err(|e| format!("corrupt archive: {e}"))?;
        let Some(name) = entry.enclosed_name() else {
            let raw = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("entry {index}"));
            report.files.push(failed(format!("{source}!/{raw}"), "unsafe path in archive (absolute or '..')".into()));
            continue;
        };
        let name = name.to_string_lossy().replace('\\', "/");
        if entry.is_dir() || name.split('/').any(|part| part.starts_with('.')) {
            continue;
        }
        let entry_source = format!("{source}!/{name}");
        let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
        if name.to_ascii_lowercase().ends_with(".zip") {
            report.files.push(failed(entry_source, "archive inside an archive: extract it first (nesting limit 1)".into()));
            continue;
        }
        if size > MAX_ENTRY_BYTES || (size > 1 << 20 && size / compressed > MAX_COMPRESSION_RATIO) {
            report.files.push(failed(entry_source, format!("entry of {size} bytes exceeds the size or compression-ratio limit")));
            continue;
        }
        total += size;
        if total > MAX_ARCHIVE_BYTES {
            return Err(format!("archive expands to more than {} GiB", MAX_ARCHIVE_BYTES >> 30));
        }
        found.push(Input { source: entry_source, origin: Origin::ZipEntry { archive: path.to_path_buf(), index } });
    }
    found.sort_by(|a, b| a.source.cmp(&b.source));
    inputs.extend(found);
    Ok(())
}
