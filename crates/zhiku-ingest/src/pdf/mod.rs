//! PDF: the text layer of each page (lopdf, pure Rust), with page numbers kept for provenance.
//! Each page's content stream is interpreted for where its text stands ([`content`]); the
//! positions then give lines, headings, paragraphs and tables ([`layout`]). Lines repeated at
//! the top or bottom of most pages (running headers, page footers) are dropped and words
//! hyphenated across lines are joined.

mod content;
mod layout;

use std::collections::HashMap;

use rayon::prelude::*;

use zhiku_core::{Error, ParsedDocument, Parser, Result};

use layout::{Line, Typography};

#[derive(Debug, Default, Clone, Copy)]
pub struct PdfParser;

impl Parser for PdfParser {
    fn format(&self) -> &'static str {
        "pdf"
    }

    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument> {
        let bad = |reason: String| Error::Parse { format: "pdf", reason };
        let doc = lopdf::Document::load_mem(bytes).map_err(|e| bad(format!("corrupt or unsupported PDF: {e}")))?;
        if doc.is_encrypted() {
            return Err(bad("the PDF is encrypted; decrypt it first (e.g. `qpdf --decrypt in.pdf out.pdf`)".into()));
        }
        // Pages are independent: interpret them on all cores (lopdf's document is read-only here).
        let numbered: Vec<(u32, lopdf::ObjectId)> = doc.get_pages().into_iter().collect();
        let extracted: Vec<(u32, lopdf::Result<Vec<Line>>)> =
            numbered.par_iter().map(|&(number, id)| (number, content::page_spans(&doc, id).map(layout::lines))).collect();
        let mut pages: Vec<(u32, Vec<Line>)> = Vec::new();
        let mut failed = 0usize;
        for (number, lines) in extracted {
            match lines {
                Ok(lines) => pages.push((number, lines)),
                Err(e) => {
                    failed += 1;
                    tracing::debug!(page = number, error = %e, "no text extracted from page");
                }
            }
        }
        if pages.iter().all(|(_, lines)| lines.is_empty()) {
            return Err(if failed > 0 { bad(format!("no text could be extracted ({failed} pages failed)")) } else { Error::NoTextLayer });
        }
        remove_running_lines(&mut pages);
        let typography = Typography::measure(pages.iter().flat_map(|(_, lines)| lines.iter()));
        let blocks = pages
            .par_iter()
            .flat_map_iter(|(number, lines)| layout::blocks(lines, &typography).into_iter().map(|b| b.on_page(*number)))
            .collect();
        Ok(ParsedDocument { title: None, blocks, ..Default::default() })
    }
}

/// A line's shape with each run of digits made one `#`, so "Page 3 of 9" and "Page 10 of 9"
/// count as one.
fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Drops the first and last two lines of each page when the same shape stands there on at least
/// half of the pages (at least 3 of them).
fn remove_running_lines(pages: &mut [(u32, Vec<Line>)]) {
    if pages.len() < 3 {
        return;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (_, lines) in pages.iter() {
        let n = lines.len();
        let mut edge: Vec<String> = lines.iter().take(2).chain(lines.iter().skip(n.saturating_sub(2))).map(|l| shape(&l.text())).collect();
        edge.sort();
        edge.dedup();
        for s in edge {
            *counts.entry(s).or_insert(0) += 1;
        }
    }
    let threshold = (pages.len() / 2).max(3);
    for (_, lines) in pages.iter_mut() {
        let n = lines.len();
        let keep: Vec<bool> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| !((i < 2 || i + 2 >= n) && counts.get(&shape(&l.text())).copied().unwrap_or(0) >= threshold))
            .collect();
        let mut index = 0;
        lines.retain(|_| {
            let k = keep[index];
            index += 1;
            k
        });
    }
}

/// Joins a page's lines into running text: "exam-" + "ple" → "example"; a space between Latin
/// words, nothing between CJK characters.
pub(crate) fn reflow<S: AsRef<str>>(lines: &[S]) -> String {
    let mut out = String::new();
    for line in lines {
        let line = line.as_ref();
        let last = out.chars().last();
        let first = line.chars().next();
        match (last, first) {
            (None, _) => {}
            (Some('-'), Some(f)) if f.is_lowercase() && out.chars().rev().nth(1).is_some_and(char::is_alphabetic) => {
                out.pop();
            }
            (Some(a), Some(b)) if zhiku_core::is_cjk(a) && zhiku_core::is_cjk(b) => {}
            _ => out.push(' '),
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_headers_and_footers_are_removed() {
        let bodies =
            ["Leave is 27 days.", "Expenses within 30 days.", "Trains are preferred.", "Laptops are provided.", "Report phishing."];
        let line =
            |y: f32, text: String| Line { y, size: 10.0, segments: vec![layout::Segment { x0: 50.0, x1: 300.0, text }], mono: false };
        let mut pages: Vec<(u32, Vec<Line>)> = (1..=5u32)
            .map(|n| {
                let body = bodies[n as usize - 1].to_string();
                // Page numbers of one and of two digits are the same footer.
                let footer = format!("Page {} of 12", n * 3);
                (n, vec![line(800.0, "ACME Handbook".into()), line(700.0, body), line(50.0, footer)])
            })
            .collect();
        remove_running_lines(&mut pages);
        for (n, lines) in &pages {
            let texts: Vec<String> = lines.iter().map(Line::text).collect();
            assert_eq!(texts, vec![bodies[*n as usize - 1].to_string()]);
        }
    }

    #[test]
    fn reflow_joins_hyphenation_and_cjk() {
        let lines = [
            "The exam-".to_string(),
            "ple shows re-".to_string(),
            "Use of X-".to_string(),
            "Ray.".to_string(),
            "中文".to_string(),
            "继续".to_string(),
        ];
        // A hyphen before a capital is kept: "re-" + "Use" is not one word.
        assert_eq!(reflow(&lines), "The example shows re- Use of X- Ray. 中文继续");
    }

    #[test]
    fn garbage_and_truncated_files_are_errors() {
        assert!(PdfParser.parse(b"%PDF-1.7\nnot really").is_err());
        assert!(PdfParser.parse(b"").is_err());
    }
}
