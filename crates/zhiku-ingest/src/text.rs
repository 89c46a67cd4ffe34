use zhiku_core::{Block, Error, ParsedDocument, Parser, Result};

/// Plain text: paragraphs separated by blank lines. Hard-wrapped lines inside a paragraph are
/// joined with a space (or nothing, between CJK characters) so sentences are not broken.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextParser;

impl Parser for TextParser {
    fn format(&self) -> &'static str {
        "text"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse { format: "text", reason: e.to_string() })?;
        let text = text.replace("\r\n", "\n");
        let mut blocks = Vec::new();
        for paragraph in text.split("\n\n") {
            let joined = join_wrapped_lines(paragraph);
            if !joined.trim().is_empty() {
                blocks.push(Block::text(joined));
            }
        }
        Ok(ParsedDocument { title: None, blocks, ..Default::default() })
    }
}

pub(crate) fn join_wrapped_lines(paragraph: &str) -> String {
    let mut out = String::with_capacity(paragraph.len());
    for line in paragraph.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let glue = match (out.chars().last(), line.chars().next()) {
            (None, _) => "",
            (Some(a), Some(b)) if zhiku_core::is_cjk(a) && zhiku_core::is_cjk(b) => "",
            _ => " ",
        };
        out.push_str(glue);
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_wrapped_lines() {
        let doc = TextParser.parse("First line\nwraps here.\n\n第一行\n接着写。\n\n\n".as_bytes()).unwrap();
        assert_eq!(doc.blocks, vec![Block::text("First line wraps here."), Block::text("第一行接着写。")]);
    }
}
