//! Word (`.docx`): paragraphs in reading order with headings from their styles (or outline
//! levels), list items marked as such, and tables as table blocks. Deleted revisions, field codes
//! and page headers/footers are not part of the text.

use std::collections::HashMap;

use zhiku_core::{Block, ParsedDocument, Parser, Result};

use super::xml::Node;
use super::{append_nested_table, push_nonblank, Package};

#[derive(Debug, Default, Clone, Copy)]
pub struct DocxParser;

/// What a paragraph style makes of a paragraph.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StyleRole {
    Title,
    Heading(u8),
}

#[derive(Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    outline_level: Option<u8>,
    list_level: Option<usize>,
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
}

impl Parser for DocxParser {
    fn format(&self) -> &'static str {
        "docx"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let mut package = Package::open(self.format(), bytes)?;
        let roles = match package.part("word/styles.xml")? {
            Some(xml) => style_roles(&package, &xml)?,
            None => HashMap::new(),
        };
        let body = package.required_part("word/document.xml")?;
        let mut title = package.title("docProps/core.xml")?;

        let mut blocks = Vec::new();
        // Paragraphs nest (a text box inside a paragraph holds paragraphs of its own), and so do
        // tables; a nested table's text goes into the cell of the outermost one.
        let mut paragraphs: Vec<Paragraph> = Vec::new();
        let mut tables: Vec<Table> = Vec::new();
        let mut in_text = false;
        let mut in_tab_stops = false;
        let mut in_paragraph_props = false;
        package.walk("word/document.xml", &body, |node| match node {
            Node::Open(e) => match e.name() {
                "p" => paragraphs.push(Paragraph::default()),
                "pPr" => in_paragraph_props = true,
                "pStyle" if in_paragraph_props => {
                    if let Some(p) = paragraphs.last_mut() {
                        p.style = e.attr("val");
                    }
                }
                "outlineLvl" if in_paragraph_props => {
                    if let Some(p) = paragraphs.last_mut() {
                        p.outline_level = e.attr("val").and_then(|v| v.parse().ok());
                    }
                }
                "numPr" if in_paragraph_props => {
                    if let Some(p) = paragraphs.last_mut() {
                        p.list_level.get_or_insert(0);
                    }
                }
                "ilvl" if in_paragraph_props => {
                    if let Some(p) = paragraphs.last_mut() {
                        p.list_level = Some(e.attr("val").and_then(|v| v.parse().ok()).unwrap_or(0).min(8));
                    }
                }
                "t" => in_text = true,
                "tabs" => in_tab_stops = true,
                "tab" if !in_tab_stops => push_text(&mut paragraphs, "\t"),
                "br" | "cr" => push_text(&mut paragraphs, "\n"),
                "tbl" => tables.push(Table::default()),
                "tr" if tables.len() == 1 => tables[0].row.clear(),
                "tc" if tables.len() == 1 => tables[0].cell.clear(),
                _ => {}
            },
            Node::Close(name) => match name {
                "t" => in_text = false,
                "tabs" => in_tab_stops = false,
                "pPr" => in_paragraph_props = false,
                "p" => {
                    let Some(p) = paragraphs.pop() else { return };
                    let text = p.text.trim();
                    if text.is_empty() {
                        return;
                    }
                    if let Some(outer) = paragraphs.last_mut() {
                        // A text box: its text follows the paragraph that anchors it.
                        outer.text.push(' ');
                        outer.text.push_str(text);
                    } else if let Some(table) = tables.first_mut() {
                        if !table.cell.is_empty() {
                            table.cell.push(' ');
                        }
                        table.cell.push_str(text);
                    } else {
                        let role = p.style.as_deref().and_then(|s| roles.get(s).copied().or_else(|| role_from_style_id(s)));
                        let role = role.or(p.outline_level.filter(|l| *l < 9).map(|l| StyleRole::Heading(l + 1)));
                        match role {
                            Some(StyleRole::Title) => {
                                title.get_or_insert_with(|| text.to_string());
                                blocks.push(Block::heading(1, text));
                            }
                            Some(StyleRole::Heading(level)) => blocks.push(Block::heading(level, text)),
                            None => match p.list_level {
                                Some(level) => blocks.push(Block::text(format!("{}- {text}", "  ".repeat(level)))),
                                None => blocks.push(Block::text(text)),
                            },
                        }
                    }
                }
                "tc" if tables.len() == 1 => {
                    let cell = std::mem::take(&mut tables[0].cell);
                    tables[0].row.push(cell);
                }
                "tr" if tables.len() == 1 => {
                    let row = std::mem::take(&mut tables[0].row);
                    if row.iter().any(|c| !c.trim().is_empty()) {
                        tables[0].rows.push(row);
                    }
                }
                "tbl" => {
                    let Some(table) = tables.pop() else { return };
                    if let Some(outer) = tables.first_mut() {
                        append_nested_table(&mut outer.cell, table.rows);
                    } else {
                        push_table(&mut blocks, table.rows);
                    }
                }
                _ => {}
            },
            Node::Text(t) if in_text => push_text(&mut paragraphs, t),
            Node::Text(_) => {}
        })?;
        Ok(ParsedDocument { title, blocks, ..Default::default() })
    }
}

fn push_text(paragraphs: &mut [Paragraph], text: &str) {
    if let Some(p) = paragraphs.last_mut() {
        p.text.push_str(text);
    }
}

/// A one-cell or one-column table is usually layout (a boxed note): its cells are paragraphs.
pub(super) fn push_table(blocks: &mut Vec<Block>, rows: Vec<Vec<String>>) {
    let columns = rows.iter().map(|r| r.iter().filter(|c| !c.trim().is_empty()).count()).max().unwrap_or(0);
    if columns <= 1 {
        for cell in rows.into_iter().flatten() {
            push_nonblank(blocks, Block::text(cell.trim()));
        }
    } else {
        blocks.push(Block::table(&rows));
    }
}

/// Heading roles by style id, from the style's name (`heading 2`, `Title`), its outline level,
/// or the style it is based on.
fn style_roles(package: &Package<'_>, xml: &str) -> Result<HashMap<String, StyleRole>> {
    struct Style {
        name: Option<String>,
        outline: Option<u8>,
        based_on: Option<String>,
    }
    let mut styles: HashMap<String, Style> = HashMap::new();
    let mut current: Option<String> = None;
    package.walk("word/styles.xml", xml, |node| match node {
        Node::Open(e) => match e.name() {
            "style" if e.attr("type").as_deref() == Some("paragraph") => {
                if let Some(id) = e.attr("styleId") {
                    styles.insert(id.clone(), Style { name: None, outline: None, based_on: None });
                    current = Some(id);
                }
            }
            "name" | "outlineLvl" | "basedOn" => {
                if let Some(style) = current.as_ref().and_then(|id| styles.get_mut(id)) {
                    let value = e.attr("val");
                    match e.name() {
                        "name" => style.name = value,
                        "outlineLvl" => style.outline = value.and_then(|v| v.parse().ok()),
                        _ => style.based_on = value,
                    }
                }
            }
            _ => {}
        },
        Node::Close("style") => current = None,
        _ => {}
    })?;
    let own_role = |style: &Style| {
        let name = style.name.as_deref().unwrap_or("").to_ascii_lowercase();
        if name == "title" {
            return Some(StyleRole::Title);
        }
        if let Some(level) = name.strip_prefix("heading ").and_then(|n| n.trim().parse::<u8>().ok()) {
            return Some(StyleRole::Heading(level.clamp(1, 6)));
        }
        style.outline.filter(|l| *l < 9).map(|l| StyleRole::Heading((l + 1).min(6)))
    };
    let mut roles = HashMap::new();
    for id in styles.keys() {
        let mut cursor = styles.get(id);
        // Follow basedOn a bounded number of steps: a cycle in a hostile file must terminate.
        for _ in 0..16 {
            let Some(style) = cursor else { break };
            if let Some(role) = own_role(style) {
                roles.insert(id.clone(), role);
                break;
            }
            cursor = style.based_on.as_ref().and_then(|b| styles.get(b));
        }
    }
    Ok(roles)
}

/// Without a styles part, the conventional ids (`Heading1`, `Title`) still say what they are.
fn role_from_style_id(id: &str) -> Option<StyleRole> {
    let lower = id.to_ascii_lowercase();
    if lower == "title" {
        return Some(StyleRole::Title);
    }
    lower.strip_prefix("heading").and_then(|n| n.parse::<u8>().ok()).map(|l| StyleRole::Heading(l.clamp(1, 6)))
}
