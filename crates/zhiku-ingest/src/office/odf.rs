//! OpenDocument text, spreadsheets and presentations (`.odt`, `.ods`, `.odp`), from their
//! `content.xml`. Text: headings by outline level, paragraphs, list items, tables. Spreadsheets:
//! one section per sheet with its table of displayed cell values. Presentations: one section per
//! slide (the page), headed by its title, with its speaker notes.

use zhiku_core::{Block, ParsedDocument, Parser, Result};

use super::docx::push_table;
use super::xml::Node;
use super::{append_nested_table, push_nonblank, Package};

#[derive(Debug, Clone, Copy)]
pub struct OdfParser {
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Spreadsheet,
    Presentation,
}

impl OdfParser {
    pub const TEXT: Self = Self { kind: Kind::Text };
    pub const SPREADSHEET: Self = Self { kind: Kind::Spreadsheet };
    pub const PRESENTATION: Self = Self { kind: Kind::Presentation };
}

/// Elements whose content is not document text: comments, footnote marks, the record of
/// deleted changes, thumbnails.
const SKIPPED: &[&str] = &["annotation", "note-citation", "tracked-changes", "page-thumbnail", "sequence-decls"];
/// Repeat counts are attacker-controlled: a cell repeated 16,384 times is normal for an empty
/// tail, but no more than this many copies of a non-empty cell or row are made.
const MAX_REPEAT: usize = 1000;
const MAX_COLUMNS: usize = 1024;

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
    row_repeat: usize,
    cell_repeat: usize,
}

impl Parser for OdfParser {
    fn format(&self) -> &'static str {
        match self.kind {
            Kind::Text => "odt",
            Kind::Spreadsheet => "ods",
            Kind::Presentation => "odp",
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let mut package = Package::open(self.format(), bytes)?;
        if package.has("META-INF/manifest.xml") {
            let manifest = package.part("META-INF/manifest.xml")?.unwrap_or_default();
            if manifest.contains("encryption-data") {
                return Err(package.error("the document is password-protected: save it without a password to ingest it"));
            }
        }
        let content = package.required_part("content.xml")?;
        let title = package.title("meta.xml")?;
        let kind = self.kind;

        let mut blocks: Vec<Block> = Vec::new();
        let mut paragraphs: Vec<(Option<u8>, String)> = Vec::new();
        let mut tables: Vec<Table> = Vec::new();
        let mut list_depth = 0usize;
        let mut skip_depth = 0usize;
        let mut page = 0u32;
        let mut in_notes = false;
        let mut frame_is_title = false;
        let mut slide_title: Option<String> = None;
        let mut slide_blocks: Vec<Block> = Vec::new();
        let mut notes_blocks: Vec<Block> = Vec::new();

        package.walk("content.xml", &content, |node| {
            if skip_depth > 0 {
                match node {
                    Node::Open(_) => skip_depth += 1,
                    Node::Close(_) => skip_depth -= 1,
                    Node::Text(_) => {}
                }
                return;
            }
            match node {
                Node::Open(e) => match e.name() {
                    name if SKIPPED.contains(&name) => skip_depth = 1,
                    "h" => paragraphs.push((Some(e.attr("outline-level").and_then(|l| l.parse().ok()).unwrap_or(1)), String::new())),
                    "p" => paragraphs.push((None, String::new())),
                    "s" => {
                        let n = e.attr("c").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1).min(64);
                        push_text(&mut paragraphs, &" ".repeat(n));
                    }
                    "tab" => push_text(&mut paragraphs, "\t"),
                    "line-break" => push_text(&mut paragraphs, "\n"),
                    "list-item" => list_depth += 1,
                    "table" => {
                        if kind == Kind::Spreadsheet && tables.is_empty() {
                            if let Some(name) = e.attr("name") {
                                blocks.push(Block::heading(1, name));
                            }
                        }
                        tables.push(Table::default());
                    }
                    "table-row" if tables.len() == 1 => {
                        tables[0].row.clear();
                        tables[0].row_repeat = repeat(e.attr("number-rows-repeated"));
                    }
                    "table-cell" | "covered-table-cell" if tables.len() == 1 => {
                        tables[0].cell.clear();
                        tables[0].cell_repeat = repeat(e.attr("number-columns-repeated"));
                    }
                    "page" if kind == Kind::Presentation => {
                        page += 1;
                        slide_title = None;
                    }
                    "notes" => in_notes = true,
                    "frame" => match e.attr("class").as_deref() {
                        // Slide furniture, not content: numbers, footers, dates, the slide image on
                        // a notes page.
                        Some("page-number" | "footer" | "date-time" | "header" | "page") => skip_depth = 1,
                        class => frame_is_title = class == Some("title"),
                    },
                    _ => {}
                },
                Node::Close(name) => match name {
                    "h" | "p" => {
                        let Some((level, text)) = paragraphs.pop() else { return };
                        let text = text.trim();
                        if text.is_empty() {
                            return;
                        }
                        if let Some(outer) = paragraphs.last_mut() {
                            outer.1.push(' ');
                            outer.1.push_str(text);
                        } else if let Some(table) = tables.first_mut() {
                            if !table.cell.is_empty() {
                                table.cell.push(' ');
                            }
                            table.cell.push_str(text);
                        } else if kind == Kind::Presentation && frame_is_title && !in_notes {
                            let title = slide_title.get_or_insert_with(String::new);
                            if !title.is_empty() {
                                title.push(' ');
                            }
                            title.push_str(text);
                        } else {
                            let block = match level {
                                Some(level) => Block::heading(level, text),
                                None if list_depth > 0 => Block::text(format!("{}- {text}", "  ".repeat(list_depth - 1))),
                                None => Block::text(text),
                            };
                            match (kind, in_notes) {
                                (Kind::Presentation, false) => slide_blocks.push(block),
                                (Kind::Presentation, true) => notes_blocks.push(block),
                                _ => blocks.push(block),
                            }
                        }
                    }
                    "list-item" => list_depth = list_depth.saturating_sub(1),
                    "table-cell" | "covered-table-cell" if tables.len() == 1 => {
                        let t = &mut tables[0];
                        let cell = std::mem::take(&mut t.cell);
                        let copies = if cell.trim().is_empty() { t.cell_repeat } else { t.cell_repeat.min(MAX_REPEAT) };
                        for _ in 0..copies.min(MAX_COLUMNS.saturating_sub(t.row.len())) {
                            t.row.push(cell.clone());
                        }
                    }
                    "table-row" if tables.len() == 1 => {
                        let t = &mut tables[0];
                        let mut row = std::mem::take(&mut t.row);
                        while row.last().is_some_and(|c| c.trim().is_empty()) {
                            row.pop();
                        }
                        if !row.is_empty() {
                            for _ in 0..t.row_repeat.min(MAX_REPEAT) {
                                t.rows.push(row.clone());
                            }
                        }
                    }
                    "table" => {
                        let Some(table) = tables.pop() else { return };
                        if let Some(outer) = tables.first_mut() {
                            append_nested_table(&mut outer.cell, table.rows);
                        } else {
                            let target = match (kind, in_notes) {
                                (Kind::Presentation, false) => &mut slide_blocks,
                                (Kind::Presentation, true) => &mut notes_blocks,
                                _ => &mut blocks,
                            };
                            let rows = trim_empty_columns(table.rows);
                            if kind == Kind::Spreadsheet {
                                if !rows.is_empty() {
                                    target.push(Block::table(&rows));
                                } else if matches!(target.last(), Some(b) if matches!(b.kind, zhiku_core::BlockKind::Heading(_))) {
                                    target.pop(); // an empty sheet: drop its heading too
                                }
                            } else {
                                push_table(target, rows);
                            }
                        }
                    }
                    "frame" => frame_is_title = false,
                    "notes" => in_notes = false,
                    "page" if kind == Kind::Presentation => {
                        let heading = slide_title.take().unwrap_or_else(|| format!("Slide {page}"));
                        blocks.push(Block::heading(1, heading).on_page(page));
                        blocks.extend(slide_blocks.drain(..).map(|b| b.on_page(page)));
                        if !notes_blocks.is_empty() {
                            blocks.push(Block::heading(2, "Speaker notes").on_page(page));
                            blocks.extend(notes_blocks.drain(..).map(|b| b.on_page(page)));
                        }
                    }
                    _ => {}
                },
                Node::Text(t) => push_text(&mut paragraphs, t),
            }
        })?;
        let mut kept = Vec::with_capacity(blocks.len());
        for block in blocks {
            push_nonblank(&mut kept, block);
        }
        Ok(ParsedDocument { title, blocks: kept, ..Default::default() })
    }
}

fn repeat(value: Option<String>) -> usize {
    value.and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).max(1)
}

fn push_text(paragraphs: &mut [(Option<u8>, String)], text: &str) {
    if let Some(p) = paragraphs.last_mut() {
        p.1.push_str(text);
    }
}

/// Drops leading columns that are empty in every row (sheets often start at column B).
fn trim_empty_columns(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let lead = rows.iter().map(|r| r.iter().take_while(|c| c.trim().is_empty()).count()).min().unwrap_or(0);
    rows.into_iter().map(|r| r.into_iter().skip(lead).collect()).collect()
}
