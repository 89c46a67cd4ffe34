use serde::{Deserialize, Serialize};

use crate::Principal;

/// What a parser makes of a file: its title, if it has one, its text as a sequence of
/// headings and text blocks in reading order, and the files it carries (an e-mail's
/// attachments), which are documents of their own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedDocument {
    pub title: Option<String>,
    pub blocks: Vec<Block>,
    pub embedded: Vec<EmbeddedFile>,
}

/// A file inside another one, named as its container names it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading of level 1..=6; it opens a section that lasts until a heading of the same or a
    /// higher level.
    Heading(u8),
    /// Running text: one paragraph, list item or table row group.
    Text,
    /// Preformatted text (code, tables drawn with spaces) that must not be re-flowed or split
    /// mid-line.
    Preformatted,
    /// One structured record (a CSV row, a JSON object) as `field: value` lines. It becomes a
    /// chunk of its own; only a record too long for one chunk is split, between lines.
    Record,
    /// A Markdown table: a header row, the `| --- |` separator, then one line per row. It is
    /// chunked on its own, between rows, and every chunk after the first repeats the header so
    /// that each chunk still says what its columns are.
    Table,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    /// The page the block is on, for paged formats (PDF), from 1.
    pub page: Option<u32>,
}

impl Block {
    pub fn heading(level: u8, text: impl Into<String>) -> Self {
        Self { kind: BlockKind::Heading(level.clamp(1, 6)), text: text.into(), page: None }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self { kind: BlockKind::Text, text: text.into(), page: None }
    }

    pub fn preformatted(text: impl Into<String>) -> Self {
        Self { kind: BlockKind::Preformatted, text: text.into(), page: None }
    }

    pub fn record(text: impl Into<String>) -> Self {
        Self { kind: BlockKind::Record, text: text.into(), page: None }
    }

    /// A table from its rows, the first of which is the header. Cells are flattened to one line
    /// and `|` escaped; short rows are padded so that every row has the same columns.
    pub fn table(rows: &[Vec<String>]) -> Self {
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let line = |row: &[String]| {
            let mut out = String::from("|");
            for i in 0..columns {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let cell = cell.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
                out.push(' ');
                out.push_str(&cell);
                out.push_str(" |");
            }
            out
        };
        let mut lines = Vec::with_capacity(rows.len() + 1);
        for (i, row) in rows.iter().enumerate() {
            lines.push(line(row));
            if i == 0 {
                lines.push(format!("|{}", " --- |".repeat(columns)));
            }
        }
        Self { kind: BlockKind::Table, text: lines.join("\n"), page: None }
    }

    pub fn on_page(mut self, page: u32) -> Self {
        self.page = Some(page);
        self
    }
}

impl ParsedDocument {
    /// The document's text as the chunker lays it out: blocks separated by blank lines. Chunk
    /// offsets point into this string.
    pub fn full_text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&b.text);
        }
        out
    }

    pub fn is_blank(&self) -> bool {
        self.blocks.iter().all(|b| b.text.trim().is_empty())
    }
}

/// One retrievable passage with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position of the chunk within its document, from 0.
    pub ordinal: u32,
    /// The headings above the chunk, outermost first.
    pub heading_path: Vec<String>,
    /// The text that is embedded and indexed (the heading path is prepended at embedding time,
    /// not stored here, so offsets stay exact).
    pub text: String,
    /// Character (not byte) offsets into [`ParsedDocument::full_text`].
    pub char_start: usize,
    pub char_end: usize,
    /// The page the chunk starts on, for paged formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
}

/// A chunk as retrieval reads it from either store, with its document's source and ACL.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    pub id: u64,
    pub doc_id: i64,
    pub source: String,
    pub acl: Vec<Principal>,
    pub chunk: Chunk,
    pub embedding: Vec<f32>,
}
