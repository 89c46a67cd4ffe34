//! Huge text files a section at a time, so that memory follows the section size and not the
//! file size: plain text, CSV/TSV and JSON Lines in UTF-8 are cut at paragraph or record
//! boundaries and each section is parsed, cleaned and chunked on its own. Chunk ordinals and
//! character offsets continue across sections exactly as if the file had been prepared whole.
//!
//! ```
//! use zhiku_core::ApproxTokenCounter;
//! use zhiku_ingest::{prepare_in_sections, ChunkConfig};
//!
//! let text = "A paragraph about leave.\n\n".repeat(2_000);
//! let config = ChunkConfig::default();
//! let mut sectioned = prepare_in_sections("big.txt", text.as_bytes(), 16_384, &config, &ApproxTokenCounter).unwrap().unwrap();
//! let mut total = sectioned.first.chunks.len();
//! for section in &mut sectioned.rest {
//!     total += section.unwrap().len();
//! }
//! assert!(total > sectioned.first.chunks.len());
//! ```

use zhiku_core::{Chunk, ParsedDocument, Parser, Result, TokenCounter};

use crate::{chunk, content_hash, detect_language, minhash, normalize_document, parser_for, ChunkConfig, PreparedDocument};
use crate::{CsvParser, JsonlParser, TextParser};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Csv(u8),
    Jsonl,
}

impl Kind {
    fn parser(self) -> &'static dyn Parser {
        match self {
            Kind::Text => &TextParser,
            Kind::Csv(b'\t') => &CsvParser { delimiter: b'\t' },
            Kind::Csv(_) => &CsvParser { delimiter: b',' },
            Kind::Jsonl => &JsonlParser,
        }
    }
}

/// A file prepared in sections: the first one as a whole document (format, language, title,
/// the whole file's content hash, MinHash of its first section), the others to come from
/// [`Sections`].
pub struct Sectioned<'a> {
    pub first: PreparedDocument,
    pub rest: Sections<'a>,
}

/// The chunks of the sections after the first, in order.
pub struct Sections<'a> {
    text: &'a str,
    at: usize,
    section_bytes: usize,
    kind: Kind,
    /// A CSV file's header line, put in front of every later section so its rows keep their
    /// column names.
    header: &'a str,
    next_ordinal: u32,
    chars_before: usize,
    config: &'a ChunkConfig,
    counter: &'a dyn TokenCounter,
}

/// `None` when the file is not one to cut into sections (not plain text, CSV/TSV or JSON Lines;
/// not valid UTF-8 without NULs; not bigger than one section): prepare it whole with
/// [`crate::prepare`]. Otherwise the first section, ready, and the rest to iterate.
pub fn prepare_in_sections<'a>(
    file_name: &str,
    bytes: &'a [u8],
    section_bytes: usize,
    config: &'a ChunkConfig,
    counter: &'a dyn TokenCounter,
) -> Option<Result<Sectioned<'a>>> {
    let section_bytes = section_bytes.max(4096);
    if bytes.len() <= section_bytes || bytes.starts_with(b"%PDF-") || bytes.starts_with(b"PK\x03\x04") {
        return None;
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if memchr::memchr(0, body).is_some() {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let head_end = (0..=text.len().min(4096)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let kind = match parser_for(file_name, &text[..head_end]).format() {
        "text" => Kind::Text,
        "csv" => Kind::Csv(b','),
        "tsv" => Kind::Csv(b'\t'),
        "jsonl" => Kind::Jsonl,
        _ => return None,
    };
    let header = match kind {
        Kind::Csv(_) => &text[..cut(text, 0, 1, kind).min(text.len())],
        _ => "",
    };
    let mut rest = Sections { text, at: 0, section_bytes, kind, header, next_ordinal: 0, chars_before: 0, config, counter };
    let (doc, full_text, chunks) = match rest.next_section() {
        Some(Ok(section)) => section,
        Some(Err(e)) => return Some(Err(e)),
        None => return None,
    };
    let first = PreparedDocument {
        format: kind.parser().format(),
        language: detect_language(&full_text),
        title: doc.title,
        content_hash: content_hash(bytes),
        minhash: minhash::signature(&full_text),
        chunks,
        embedded: Vec::new(),
    };
    Some(Ok(Sectioned { first, rest }))
}

impl Sections<'_> {
    /// Parses, cleans and chunks the next section; its chunks numbered and placed after the
    /// previous sections'.
    fn next_section(&mut self) -> Option<Result<(ParsedDocument, String, Vec<Chunk>)>> {
        loop {
            if self.at >= self.text.len() {
                return None;
            }
            let end = cut(self.text, self.at, self.section_bytes, self.kind);
            let mut section = &self.text[self.at..end];
            let first = self.at == 0;
            self.at = end;
            let with_header;
            if !first && !self.header.is_empty() {
                with_header = format!("{}{section}", self.header);
                section = &with_header;
            }
            let mut doc = match self.kind.parser().parse(section.as_bytes()) {
                Ok(doc) => doc,
                Err(e) => return Some(Err(e)),
            };
            normalize_document(&mut doc);
            if doc.is_blank() {
                continue;
            }
            let full_text = doc.full_text();
            let mut chunks = chunk::chunk_with_text(&doc, &full_text, self.config, self.counter);
            doc.blocks = Vec::new();
            // Sections join like blocks do, with a blank line: offsets stay those of the whole.
            let offset = if self.chars_before == 0 { 0 } else { self.chars_before + 2 };
            for c in &mut chunks {
                c.ordinal += self.next_ordinal;
                c.char_start += offset;
                c.char_end += offset;
            }
            self.next_ordinal += chunks.len() as u32;
            self.chars_before = offset + full_text.chars().count();
            return Some(Ok((doc, full_text, chunks)));
        }
    }
}

impl Iterator for Sections<'_> {
    type Item = Result<Vec<Chunk>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_section().map(|r| r.map(|(_, _, chunks)| chunks))
    }
}

/// Where the section starting at `from` ends: about `size` bytes on, just after a blank line
/// for text (after any line if there is none), after a line outside quotes for CSV, after a
/// line for JSON Lines. A line longer than a section is never cut inside.
fn cut(text: &str, from: usize, size: usize, kind: Kind) -> usize {
    let bytes = text.as_bytes();
    let target = from.saturating_add(size);
    if target >= bytes.len() {
        return bytes.len();
    }
    let window = &bytes[from..target];
    let line_end = match kind {
        Kind::Text => memchr::memmem::rfind(window, b"\n\n").map(|p| p + 2).or_else(|| memchr::memrchr(b'\n', window).map(|p| p + 1)),
        Kind::Jsonl => memchr::memrchr(b'\n', window).map(|p| p + 1),
        Kind::Csv(_) => {
            let mut quoted = false;
            let mut last = None;
            for (i, b) in window.iter().enumerate() {
                match b {
                    b'"' => quoted = !quoted,
                    b'\n' if !quoted => last = Some(i + 1),
                    _ => {}
                }
            }
            last
        }
    };
    match line_end {
        Some(p) if p > 0 => from + p,
        // No line break within the section: carry on to the next one.
        _ => memchr::memchr(b'\n', &bytes[target..]).map_or(bytes.len(), |p| target + p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhiku_core::ApproxTokenCounter;

    fn all_chunks(name: &str, text: &str, section: usize) -> Vec<Chunk> {
        let config = ChunkConfig { max_tokens: 48, overlap_tokens: 8 };
        let sectioned = prepare_in_sections(name, text.as_bytes(), section, &config, &ApproxTokenCounter).unwrap().unwrap();
        let mut chunks = sectioned.first.chunks;
        for more in sectioned.rest {
            chunks.extend(more.unwrap());
        }
        chunks
    }

    #[test]
    fn text_in_sections_has_the_offsets_of_the_whole_file() {
        let text: String = (0..3000).map(|i| format!("Paragraph {i} says something about policy number {i}.\n\n")).collect();
        // The text parser's blocks are the paragraphs; joined by blank lines they are the text.
        let full: Vec<char> = text.trim_end().chars().collect();
        let chunks = all_chunks("big.txt", &text, 8192);
        assert!(chunks.len() > 100);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.ordinal as usize, i);
            let slice: String = full[c.char_start..c.char_end].iter().collect();
            assert_eq!(slice, c.text, "chunk {i}");
        }
        assert!(chunks.last().unwrap().text.contains("policy number 2999."));
    }

    #[test]
    fn csv_sections_keep_the_header_and_quoted_newlines() {
        let mut text = String::from("name,note\n");
        for i in 0..2000 {
            text.push_str(&format!("user{i},\"first line\nsecond line {i}\"\n"));
        }
        let chunks = all_chunks("people.csv", &text, 4096);
        let records: Vec<&Chunk> = chunks.iter().filter(|c| c.text.contains("name: user")).collect();
        assert_eq!(records.len(), 2000, "every row is one record");
        assert!(records.iter().all(|c| c.text.contains("note: first line")), "every section knows the columns");
        assert!(chunks.iter().all(|c| !c.text.contains("name: name")), "the header is never a row");
    }

    #[test]
    fn small_binary_or_structured_files_are_prepared_whole() {
        let config = ChunkConfig::default();
        assert!(prepare_in_sections("a.txt", b"short", 4096, &config, &ApproxTokenCounter).is_none());
        let big = "x".repeat(10_000);
        assert!(prepare_in_sections("a.md", big.as_bytes(), 4096, &config, &ApproxTokenCounter).is_none());
        let mut nul = big.clone().into_bytes();
        nul[5000] = 0;
        assert!(prepare_in_sections("a.txt", &nul, 4096, &config, &ApproxTokenCounter).is_none());
        assert!(prepare_in_sections("a.txt", big.as_bytes(), 4096, &config, &ApproxTokenCounter).is_some());
    }
}
