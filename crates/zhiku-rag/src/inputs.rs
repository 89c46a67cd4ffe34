//! What an ingest run reads: files given on the command line, files found under directories, and
//! the entries of ZIP archives among them — each with the source name it is stored under
//! (`docs/a.txt`, `docs/pack.zip!/b/c.md`).

use std::path::{Path, PathBuf};

use zhiku_ingest::container::{read_zip_entry, zip_entries, ArchiveLimits};

use crate::engine::{FileOutcome, FileReport, IngestReport};

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
                read_zip_entry(&mut zip, *index, &ArchiveLimits::default())
            }
        }
    }
}

fn failed(source: String, reason: String) -> FileReport {
    FileReport::new(source, FileOutcome::Failed { reason })
}

/// Expands directories (recursively, sorted, skipping hidden entries) and ZIP archives named
/// `.zip` (whose entries are read one at a time from the file when ingested; containers inside
/// them are opened by the engine). Paths that cannot be read are reported.
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
        Ok(m) if m.is_file() => inputs.push(Input { source, origin: Origin::File(path.to_path_buf()) }),
        // Reading a FIFO would block the batch forever; devices and sockets are not documents.
        Ok(_) => report.files.push(failed(source, "not a regular file (a pipe, socket or device)".into())),
        Err(e) => report.files.push(failed(source, format!("cannot open: {e}"))),
    }
}

fn list_archive(path: &Path, source: &str, inputs: &mut Vec<Input>, report: &mut IngestReport) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("corrupt or unsupported ZIP archive: {e}"))?;
    for entry in zip_entries(&mut zip, &ArchiveLimits::default())? {
        let entry_source = format!("{source}!/{}", entry.name);
        match entry.refused {
            Some(reason) => report.files.push(failed(entry_source, reason)),
            None => {
                inputs.push(Input { source: entry_source, origin: Origin::ZipEntry { archive: path.to_path_buf(), index: entry.index } })
            }
        }
    }
    Ok(())
}
