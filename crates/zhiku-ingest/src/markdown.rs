use pulldown_cmark::{Event, HeadingLevel, Options, Parser as CmarkParser, Tag, TagEnd};
use zhiku_core::{Block, Error, ParsedDocument, Parser, Result};

/// CommonMark with tables: headings become sections, code blocks stay preformatted and tables
/// become table blocks (a table row or code line is never split), inline markup is reduced to its text.
#[derive(Debug, Default, Clone, Copy)]
pub struct MarkdownParser;

impl Parser for MarkdownParser {
    fn format(&self) -> &'static str {
        "markdown"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse { format: "markdown", reason: e.to_string() })?;
        let mut builder = Builder::default();
        let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        for event in CmarkParser::new_ext(text, options) {
            builder.event(event);
        }
        builder.flush();
        let title = builder.blocks.iter().find_map(|b| match b.kind {
            zhiku_core::BlockKind::Heading(1) => Some(b.text.clone()),
            _ => None,
        });
        Ok(ParsedDocument { title, blocks: builder.blocks, ..Default::default() })
    }
}

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    buf: String,
    heading: Option<u8>,
    table_row: Vec<String>,
    table: Vec<Vec<String>>,
    in_table: bool,
}

impl Builder {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                self.flush();
                self.heading = Some(heading_level(level));
            }
            Event::End(TagEnd::Heading(_)) => {
                let text = std::mem::take(&mut self.buf);
                if let Some(level) = self.heading.take() {
                    if !text.trim().is_empty() {
                        self.blocks.push(Block::heading(level, text.trim()));
                    }
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                self.flush();
            }
            Event::End(TagEnd::CodeBlock) => {
                let code = std::mem::take(&mut self.buf);
                if !code.trim().is_empty() {
                    self.blocks.push(Block::preformatted(code));
                }
            }
            Event::Start(Tag::Table(_)) => {
                self.flush();
                self.in_table = true;
            }
            Event::End(TagEnd::Table) => {
                self.in_table = false;
                let rows = std::mem::take(&mut self.table);
                if !rows.is_empty() {
                    self.blocks.push(Block::table(&rows));
                }
            }
            Event::End(TagEnd::TableCell) => {
                self.table_row.push(std::mem::take(&mut self.buf).trim().to_string());
            }
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => {
                let row = std::mem::take(&mut self.table_row);
                self.table.push(row);
            }
            Event::Start(Tag::Paragraph | Tag::Item | Tag::BlockQuote(_)) | Event::End(TagEnd::Paragraph | TagEnd::Item)
                if !self.in_table =>
            {
                self.flush();
            }
            Event::Text(t) | Event::Code(t) => self.buf.push_str(&t),
            Event::Html(_) | Event::InlineHtml(_) => {}
            Event::SoftBreak => {
                let cjk_join = self.buf.chars().last().is_some_and(zhiku_core::is_cjk);
                if !cjk_join {
                    self.buf.push(' ');
                }
            }
            Event::HardBreak => self.buf.push('\n'),
            Event::Rule => self.flush(),
            _ => {}
        }
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.buf);
        if !text.trim().is_empty() {
            self.blocks.push(Block::text(text.trim()));
        }
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhiku_core::BlockKind;

    #[test]
    fn headings_code_tables_and_inline_markup() {
        let md = "# Guide\n\nSome *emphasis* and [a link](http://x).\n\n## Install\n\n```sh\napt install zhiku\n```\n\n| key | value |\n|---|---|\n| a | 1 |\n";
        let doc = MarkdownParser.parse(md.as_bytes()).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Guide"));
        assert_eq!(doc.blocks[0], Block::heading(1, "Guide"));
        assert_eq!(doc.blocks[1], Block::text("Some emphasis and a link."));
        assert_eq!(doc.blocks[2], Block::heading(2, "Install"));
        assert_eq!(doc.blocks[3].kind, BlockKind::Preformatted);
        assert!(doc.blocks[3].text.contains("apt install zhiku"));
        assert_eq!(doc.blocks[4].text, "| key | value |\n| --- | --- |\n| a | 1 |");
    }
}
