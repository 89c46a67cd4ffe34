use unicode_normalization::UnicodeNormalization;
use zhiku_core::{BlockKind, ParsedDocument};

/// NFKC, drop control and zero-width characters, collapse runs of spaces. Line structure is
/// kept: line breaks matter to preformatted blocks and tables.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in text.nfkc() {
        match ch {
            '\n' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push('\n');
                pending_space = false;
            }
            '\r' => {}
            c if c == '\t' || c.is_whitespace() => pending_space = true,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => {}
            c if c.is_control() => {}
            c => {
                if pending_space && !out.is_empty() && !out.ends_with('\n') {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c);
            }
        }
    }
    let trimmed = out.trim_matches(|c: char| c == '\n' || c == ' ');
    collapse_blank_lines(trimmed)
}

fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut newlines = 0;
    for ch in text.chars() {
        if ch == '\n' {
            newlines += 1;
            if newlines <= 2 {
                out.push('\n');
            }
        } else {
            newlines = 0;
            out.push(ch);
        }
    }
    out
}

/// Normalises every block and removes those left empty. Preformatted blocks keep their
/// indentation, so only NFKC and control-character removal apply to them.
pub fn normalize_document(doc: &mut ParsedDocument) {
    for block in &mut doc.blocks {
        block.text = match block.kind {
            BlockKind::Preformatted => block
                .text
                .nfkc()
                .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
                .collect::<String>()
                .trim_end()
                .trim_start_matches('\n')
                .to_string(),
            _ => normalize(&block.text),
        };
    }
    doc.blocks.retain(|b| !b.text.trim().is_empty());
    if let Some(title) = &mut doc.title {
        *title = normalize(title).replace('\n', " ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfkc_whitespace_and_controls() {
        assert_eq!(normalize("ｆｕｌｌ　width"), "full width");
        assert_eq!(normalize("a\u{00AD}b\u{200B}c\u{0007}"), "abc");
        assert_eq!(normalize("  line one  \r\n\n\n\nline   two \t"), "line one\n\nline two");
        assert_eq!(normalize("ﬁle"), "file");
    }
}
