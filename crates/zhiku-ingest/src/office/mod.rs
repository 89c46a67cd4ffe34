//! Office documents: Word, Excel and PowerPoint (Office Open XML) and their OpenDocument
//! counterparts. All are ZIP packages of XML parts; [`sniff`] tells them apart by the parts they
//! hold, whatever the file is called.

mod docx;
mod odf;
mod pptx;
mod xlsx;
mod xml;

use std::io::{Cursor, Read};

pub use docx::DocxParser;
pub use odf::OdfParser;
pub use pptx::PptxParser;
pub use xlsx::XlsxParser;
use zhiku_core::{Error, Parser};

/// No XML part may expand beyond this, nor compress better than [`MAX_RATIO`] past 1 MiB: a
/// crafted package must not exhaust memory.
const MAX_PART_BYTES: u64 = 256 << 20;
const MAX_RATIO: u64 = 200;

/// The office parser for a ZIP package, by its content; `None` for other ZIP files.
pub fn sniff(bytes: &[u8]) -> Option<&'static dyn Parser> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return None;
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    if zip.index_for_name("word/document.xml").is_some() {
        return Some(&DocxParser);
    }
    if zip.index_for_name("xl/workbook.xml").is_some() {
        return Some(&XlsxParser);
    }
    if zip.index_for_name("ppt/presentation.xml").is_some() {
        return Some(&PptxParser);
    }
    let mut mimetype = String::new();
    zip.by_name("mimetype").ok()?.take(128).read_to_string(&mut mimetype).ok()?;
    match mimetype.trim() {
        "application/vnd.oasis.opendocument.text" => Some(&OdfParser::TEXT),
        "application/vnd.oasis.opendocument.spreadsheet" => Some(&OdfParser::SPREADSHEET),
        "application/vnd.oasis.opendocument.presentation" => Some(&OdfParser::PRESENTATION),
        _ => None,
    }
}

/// The office parser a file's extension promises, for files whose content did not sniff as
/// any: parsing then says what is wrong with the package (truncated, main part missing).
pub fn parser_for_extension(file_name: &str) -> Option<&'static dyn Parser> {
    let ext = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "docx" | "docm" | "dotx" => Some(&DocxParser),
        "xlsx" | "xlsm" | "xltx" => Some(&XlsxParser),
        "pptx" | "pptm" | "potx" => Some(&PptxParser),
        "odt" | "ott" => Some(&OdfParser::TEXT),
        "ods" | "ots" => Some(&OdfParser::SPREADSHEET),
        "odp" | "otp" => Some(&OdfParser::PRESENTATION),
        _ => None,
    }
}

/// The first bytes of an OLE compound file: legacy `.doc/.xls/.ppt`, and also every
/// password-protected Office file, whatever its extension.
pub fn is_ole_compound(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
}

/// A ZIP package opened for reading its parts.
struct Package<'a> {
    format: &'static str,
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Package<'a> {
    fn open(format: &'static str, bytes: &'a [u8]) -> Result<Self, Error> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| Error::Parse { format, reason: format!("not a valid {format} package (corrupt or truncated ZIP: {e})") })?;
        Ok(Self { format, zip })
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::Parse { format: self.format, reason: reason.into() }
    }

    fn has(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// A part's text, or `None` if the package has no such part.
    fn part(&mut self, name: &str) -> Result<Option<String>, Error> {
        let format = self.format;
        let bad = |reason: String| Error::Parse { format, reason };
        let entry = match self.zip.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(bad(format!("part {name}: {e}"))),
        };
        let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
        if size > MAX_PART_BYTES || (size > 1 << 20 && size / compressed > MAX_RATIO) {
            return Err(bad(format!("part {name} expands to {size} bytes, over the size or compression-ratio limit")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The declared size can lie: never read past the limit whatever it says.
        entry.take(MAX_PART_BYTES + 1).read_to_end(&mut bytes).map_err(|e| bad(format!("part {name}: {e}")))?;
        if bytes.len() as u64 > MAX_PART_BYTES {
            return Err(bad(format!("part {name} is larger than the limit of {} MiB", MAX_PART_BYTES >> 20)));
        }
        let text = String::from_utf8(bytes).map_err(|_| bad(format!("part {name} is not UTF-8 XML")))?;
        Ok(Some(text))
    }

    fn required_part(&mut self, name: &str) -> Result<String, Error> {
        self.part(name)?.ok_or_else(|| self.error(format!("the package has no {name}")))
    }

    /// Walks a part's XML, turning XML errors into this format's parse error.
    fn walk(&self, name: &str, xml: &str, visit: impl FnMut(xml::Node<'_>)) -> Result<(), Error> {
        xml::walk(xml, visit).map_err(|e| self.error(format!("{name}: {e}")))
    }

    /// Relationship id → target part path, resolved against the folder of `part`
    /// (`xl/workbook.xml` + `worksheets/sheet1.xml` → `xl/worksheets/sheet1.xml`).
    fn relationships(&mut self, part: &str) -> Result<Vec<Relationship>, Error> {
        let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
        let rels_name = if dir.is_empty() { format!("_rels/{file}.rels") } else { format!("{dir}/_rels/{file}.rels") };
        let Some(xml) = self.part(&rels_name)? else { return Ok(Vec::new()) };
        let mut rels = Vec::new();
        self.walk(&rels_name, &xml, |node| {
            if let xml::Node::Open(e) = node {
                if e.name() == "Relationship" && e.attr("TargetMode").as_deref() != Some("External") {
                    if let (Some(id), Some(target), kind) = (e.attr("Id"), e.attr("Target"), e.attr("Type").unwrap_or_default()) {
                        rels.push(Relationship { id, target: resolve_path(dir, &target), kind });
                    }
                }
            }
        })?;
        Ok(rels)
    }

    /// `dc:title` from a metadata part (`docProps/core.xml`, `meta.xml`).
    fn title(&mut self, part: &str) -> Result<Option<String>, Error> {
        let Some(xml) = self.part(part)? else { return Ok(None) };
        let mut title = String::new();
        let mut inside = false;
        // Metadata is a nicety: a malformed metadata part does not fail the document.
        let _ = xml::walk(&xml, |node| match node {
            xml::Node::Open(e) if e.name() == "title" => inside = true,
            xml::Node::Close("title") => inside = false,
            xml::Node::Text(t) if inside => title.push_str(t),
            _ => {}
        });
        let title = title.trim();
        Ok((!title.is_empty()).then(|| title.to_string()))
    }
}

struct Relationship {
    id: String,
    target: String,
    kind: String,
}

fn resolve_path(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') { Vec::new() } else { dir.split('/').filter(|p| !p.is_empty()).collect() };
    for piece in target.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A table nested in a table cell becomes text of the outer cell: tables of tables do not fit a
/// Markdown table, and the inner one is usually layout.
fn append_nested_table(cell: &mut String, rows: Vec<Vec<String>>) {
    for row in rows {
        cell.push(' ');
        cell.push_str(&row.join(" "));
    }
}

/// Appends a paragraph's text, dropping the paragraph if it is blank.
fn push_nonblank(blocks: &mut Vec<zhiku_core::Block>, block: zhiku_core::Block) {
    if !block.text.trim().is_empty() {
        blocks.push(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_targets_resolve_against_the_part_folder() {
        assert_eq!(resolve_path("xl", "worksheets/sheet1.xml"), "xl/worksheets/sheet1.xml");
        assert_eq!(resolve_path("ppt/slides", "../notesSlides/notesSlide1.xml"), "ppt/notesSlides/notesSlide1.xml");
        assert_eq!(resolve_path("xl", "/xl/worksheets/sheet2.xml"), "xl/worksheets/sheet2.xml");
    }

    #[test]
    fn legacy_and_encrypted_files_are_recognised() {
        assert!(is_ole_compound(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0]));
        assert!(!is_ole_compound(b"PK\x03\x04"));
        assert!(sniff(b"PK\x03\x04 truncated").is_none());
    }
}
