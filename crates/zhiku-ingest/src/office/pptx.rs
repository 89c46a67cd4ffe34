//! PowerPoint (`.pptx`): one section per slide, in presentation order, headed by the slide's
//! title; its text boxes and tables, then its speaker notes under a "Speaker notes" heading.
//! The slide number is the block's page.

use zhiku_core::{Block, ParsedDocument, Parser, Result};

use super::docx::push_table;
use super::xml::Node;
use super::{push_nonblank, Package};

#[derive(Debug, Default, Clone, Copy)]
pub struct PptxParser;

/// What one slide (or notes page) says.
#[derive(Default)]
struct SlideText {
    title: String,
    blocks: Vec<Block>,
}

impl Parser for PptxParser {
    fn format(&self) -> &'static str {
        "pptx"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let mut package = Package::open(self.format(), bytes)?;
        let presentation = package.required_part("ppt/presentation.xml")?;
        let mut slide_ids = Vec::new();
        package.walk("ppt/presentation.xml", &presentation, |node| {
            if let Node::Open(e) = node {
                if e.name() == "sldId" {
                    slide_ids.extend(e.relationship_id());
                }
            }
        })?;
        let rels = package.relationships("ppt/presentation.xml")?;
        let title = package.title("docProps/core.xml")?;

        let mut blocks = Vec::new();
        for (number, id) in slide_ids.iter().enumerate() {
            let page = number as u32 + 1;
            let Some(slide_part) = rels.iter().find(|r| &r.id == id).map(|r| r.target.clone()) else { continue };
            let Some(xml) = package.part(&slide_part)? else { continue };
            let slide = shapes_text(&package, &slide_part, &xml, false)?;
            let heading = if slide.title.trim().is_empty() { format!("Slide {page}") } else { slide.title.trim().to_string() };
            blocks.push(Block::heading(1, heading).on_page(page));
            blocks.extend(slide.blocks.into_iter().map(|b| b.on_page(page)));

            let notes_part = package.relationships(&slide_part)?.into_iter().find(|r| r.kind.ends_with("/notesSlide")).map(|r| r.target);
            if let Some(notes_part) = notes_part {
                if let Some(xml) = package.part(&notes_part)? {
                    let notes = shapes_text(&package, &notes_part, &xml, true)?;
                    if !notes.blocks.is_empty() {
                        blocks.push(Block::heading(2, "Speaker notes").on_page(page));
                        blocks.extend(notes.blocks.into_iter().map(|b| b.on_page(page)));
                    }
                }
            }
        }
        Ok(ParsedDocument { title, blocks, ..Default::default() })
    }
}

/// The text of a slide's shapes: the title placeholder's text apart, every other paragraph and
/// table in order. On a notes page only the notes body counts (not the slide image or number).
fn shapes_text(package: &Package<'_>, part: &str, xml: &str, notes: bool) -> Result<SlideText> {
    let mut out = SlideText::default();
    let mut placeholder: Option<String> = None;
    let mut paragraph = String::new();
    let mut in_text = false;
    let mut table: Option<(Vec<Vec<String>>, Vec<String>, String)> = None;
    let skipped = |ph: &Option<String>| {
        let kind = ph.as_deref().unwrap_or("");
        if notes {
            matches!(kind, "sldImg" | "sldNum" | "hdr" | "ftr" | "dt")
        } else {
            matches!(kind, "sldNum" | "ftr" | "dt")
        }
    };
    package.walk(part, xml, |node| match node {
        Node::Open(e) => match e.name() {
            "sp" => placeholder = None,
            "ph" => placeholder = Some(e.attr("type").unwrap_or_else(|| "body".into())),
            "p" => paragraph.clear(),
            "t" => in_text = true,
            "br" => paragraph.push('\n'),
            "tbl" => table = Some(Default::default()),
            "tr" => {
                if let Some(t) = table.as_mut() {
                    t.1.clear();
                }
            }
            "tc" => {
                if let Some(t) = table.as_mut() {
                    t.2.clear();
                }
            }
            _ => {}
        },
        Node::Close(name) => match name {
            "t" => in_text = false,
            "p" => {
                let text = std::mem::take(&mut paragraph);
                let text = text.trim();
                if text.is_empty() || skipped(&placeholder) {
                    return;
                }
                if let Some(t) = table.as_mut() {
                    if !t.2.is_empty() {
                        t.2.push(' ');
                    }
                    t.2.push_str(text);
                } else if matches!(placeholder.as_deref(), Some("title" | "ctrTitle")) && !notes {
                    if !out.title.is_empty() {
                        out.title.push(' ');
                    }
                    out.title.push_str(text);
                } else {
                    push_nonblank(&mut out.blocks, Block::text(text));
                }
            }
            "tc" => {
                if let Some(t) = table.as_mut() {
                    let cell = std::mem::take(&mut t.2);
                    t.1.push(cell);
                }
            }
            "tr" => {
                if let Some(t) = table.as_mut() {
                    let row = std::mem::take(&mut t.1);
                    if row.iter().any(|c| !c.trim().is_empty()) {
                        t.0.push(row);
                    }
                }
            }
            "tbl" => {
                if let Some((rows, _, _)) = table.take() {
                    push_table(&mut out.blocks, rows);
                }
            }
            "sp" => placeholder = None,
            _ => {}
        },
        Node::Text(t) if in_text => paragraph.push_str(t),
        Node::Text(_) => {}
    })?;
    Ok(out)
}
