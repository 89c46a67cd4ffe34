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

/// `a.zip!/b/c.txt` is inside `a.zip`; `a.zip2` is not.
pub(crate) fn is_inside(source: &str, container: &str) -> bool {
    source.len() > container.len() + 2 && source.starts_with(container) && source[container.len()..].starts_with("!/")
}

/// The outermost container a source is stored from, if any.
pub(crate) fn container_of(source: &str) -> Option<&str> {
    source.find("!/").map(|i| &source[..i])
}

/// Of the `stored` sources, those under the given directories whose files are gone (what
/// `ingest --sync` removes): not among the listed `files`, not inside a listed container, and
/// not under a directory or archive that failed to list (which keeps everything under it).
pub(crate) fn vanished_sources(stored: Vec<String>, paths: &[PathBuf], files: &[Input], report: &IngestReport) -> Vec<String> {
    let prefix_of = |p: &Path| {
        let mut s = p.to_string_lossy().into_owned();
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    };
    let synced: Vec<String> = paths.iter().filter(|p| p.is_dir()).map(|p| prefix_of(p)).collect();
    let under_failed =
        |s: &str| report.files.iter().any(|f| s == f.source || s.starts_with(&prefix_of(Path::new(&f.source))) || is_inside(s, &f.source));
    let present: std::collections::HashSet<&str> = files.iter().map(|f| f.source.as_str()).collect();
    let inside_present = |s: &str| container_of(s).is_some_and(|c| present.contains(c));
    stored
        .into_iter()
        .filter(|s| synced.iter().any(|p| s.starts_with(p)))
        .filter(|s| !present.contains(s.as_str()) && !inside_present(s) && !under_failed(s))
        .collect()
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
