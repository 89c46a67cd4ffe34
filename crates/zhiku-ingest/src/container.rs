//! Containers: files that hold other files rather than text — ZIP archives and mailboxes of
//! several messages. [`unpack`] opens one in memory; [`zip_entries`] and [`read_zip_entry`] list
//! and read a ZIP archive through any reader (the caller's file, for archives too big to hold).
//! Every limit a hostile archive could push against — entry count, entry size, total size,
//! compression ratio, unsafe names — is enforced here.

use std::io::{Cursor, Read, Seek};

use crate::mail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
    /// Uncompressed/compressed size above which an entry over 1 MiB is treated as a bomb.
    pub max_ratio: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self { max_entries: 10_000, max_entry_bytes: 256 << 20, max_total_bytes: 2 << 30, max_ratio: 200 }
    }
}

/// One file found in a container: its name there and its bytes, or why it is not taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub content: Result<Vec<u8>, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Unpacked {
    /// Not a container: a document to parse.
    Document,
    Entries(Vec<Entry>),
    /// A container that cannot be opened at all (corrupt, over a limit).
    Failed(String),
}

/// A ZIP entry as listed, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    pub index: usize,
    /// Why the entry is refused, if it is.
    pub refused: Option<String>,
}

/// True for a ZIP archive that is not an Office package (those are documents).
pub fn is_archive(file_name: &str, bytes: &[u8]) -> bool {
    (bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06"))
        && crate::office::sniff(bytes).is_none()
        && crate::office::parser_for_extension(file_name).is_none()
}

/// Opens `bytes` if they are a container: a ZIP archive, or an mbox with more than one message
/// (a single message is a document).
pub fn unpack(file_name: &str, bytes: &[u8], limits: &ArchiveLimits) -> Unpacked {
    if is_archive(file_name, bytes) {
        let mut zip = match zip::ZipArchive::new(Cursor::new(bytes)) {
            Ok(zip) => zip,
            Err(e) => return Unpacked::Failed(format!("corrupt or unsupported ZIP archive: {e}")),
        };
        let listed = match zip_entries(&mut zip, limits) {
            Ok(listed) => listed,
            Err(reason) => return Unpacked::Failed(reason),
        };
        let entries = listed
            .into_iter()
            .map(|e| Entry {
                content: match e.refused {
                    Some(reason) => Err(reason),
                    None => read_zip_entry(&mut zip, e.index, limits),
                },
                name: e.name,
            })
            .collect();
        return Unpacked::Entries(entries);
    }
    if mail::looks_like_mbox(bytes) {
        let messages = mail::mbox_messages(bytes);
        if messages.len() > 1 {
            if messages.len() > limits.max_entries {
                return Unpacked::Failed(format!("mailbox has {} messages, more than the limit of {}", messages.len(), limits.max_entries));
            }
            let width = messages.len().to_string().len().max(4);
            return Unpacked::Entries(
                messages.into_iter().enumerate().map(|(i, m)| Entry { name: format!("{:0width$}.eml", i + 1), content: Ok(m) }).collect(),
            );
        }
    }
    Unpacked::Document
}

/// Lists the files of an archive in name order, skipping directories and hidden entries and
/// refusing unsafe names and entries over the limits. Fails for archives with too many entries
/// or that expand past the total limit.
pub fn zip_entries<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, limits: &ArchiveLimits) -> Result<Vec<ZipEntry>, String> {
    if zip.len() > limits.max_entries {
        return Err(format!("archive has {} entries, more than the limit of {}", zip.len(), limits.max_entries));
    }
    let mut total = 0u64;
    let mut found = Vec::new();
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).map_err(|e| format!("corrupt archive: {e}"))?;
        let Some(name) = entry.enclosed_name() else {
            let raw = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("entry {index}"));
            found.push(ZipEntry { name: raw, index, refused: Some("unsafe path in archive (absolute or '..')".into()) });
            continue;
        };
        let name = name.to_string_lossy().replace('\\', "/");
        if entry.is_dir() || name.split('/').any(|part| part.starts_with('.')) {
            continue;
        }
        let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
        if size > limits.max_entry_bytes || (size > 1 << 20 && size / compressed > limits.max_ratio) {
            let reason = format!("entry of {size} bytes exceeds the size or compression-ratio limit");
            found.push(ZipEntry { name, index, refused: Some(reason) });
            continue;
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(format!("archive expands to more than {} MiB", limits.max_total_bytes >> 20));
        }
        found.push(ZipEntry { name, index, refused: None });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

pub fn read_zip_entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, index: usize, limits: &ArchiveLimits) -> Result<Vec<u8>, String> {
    let entry = zip.by_index(index).map_err(|e| format!("corrupt archive entry: {e}"))?;
    let mut bytes = Vec::new();
    // The header's size can lie: never read past the limit whatever it says.
    entry.take(limits.max_entry_bytes + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot decompress: {e}"))?;
    if bytes.len() as u64 > limits.max_entry_bytes {
        return Err(format!("entry larger than {} MiB", limits.max_entry_bytes >> 20));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in parts {
            out.start_file(*name, options).unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn archives_unpack_in_name_order_with_refusals() {
        let big = vec![0u8; 4 << 20];
        let bytes = zip_of(&[("b.txt", b"bee"), ("a/c.md", b"# sea"), (".hidden", b"x"), ("bomb.bin", &big)]);
        let Unpacked::Entries(entries) = unpack("pack.zip", &bytes, &ArchiveLimits::default()) else { panic!() };
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a/c.md", "b.txt", "bomb.bin"]);
        assert_eq!(entries[1].content.as_deref(), Ok(&b"bee"[..]));
        assert!(entries[2].content.as_ref().unwrap_err().contains("compression-ratio"));
    }

    #[test]
    fn limits_on_count_and_total_size() {
        let bytes = zip_of(&[("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")]);
        let few = ArchiveLimits { max_entries: 2, ..Default::default() };
        assert!(matches!(unpack("x.zip", &bytes, &few), Unpacked::Failed(r) if r.contains("3 entries")));
        let small = ArchiveLimits { max_total_bytes: 2, ..Default::default() };
        assert!(matches!(unpack("x.zip", &bytes, &small), Unpacked::Failed(r) if r.contains("expands")));
    }

    #[test]
    fn documents_are_not_containers() {
        assert_eq!(unpack("a.txt", b"plain text", &ArchiveLimits::default()), Unpacked::Document);
        let docx = zip_of(&[("word/document.xml", b"<w:document/>")]);
        assert_eq!(unpack("a.docx", &docx, &ArchiveLimits::default()), Unpacked::Document);
        let one = b"From a@b Tue Feb  3 09:30:00 2026\nFrom: a@b\nSubject: one\n\nbody\n";
        assert_eq!(unpack("one.mbox", one, &ArchiveLimits::default()), Unpacked::Document);
    }
}
