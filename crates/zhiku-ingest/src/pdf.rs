//! PDF: the text layer of each page (lopdf, pure Rust), with page numbers kept for provenance.
//! Lines repeated at the top or bottom of most pages (running headers, page footers) are dropped,
//! words hyphenated across lines are joined, and wrapped lines are re-flowed.

use std::collections::HashMap;

use rayon::prelude::*;

use zhiku_core::{Block, Error, ParsedDocument, Parser, Result};

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
        // Pages are independent: extract them on all cores (lopdf's document is read-only here).
        let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
        let extracted: Vec<(u32, std::result::Result<String, lopdf::Error>)> =
            numbers.par_iter().map(|&number| (number, doc.extract_text(&[number]))).collect();
        let mut pages: Vec<(u32, Vec<String>)> = Vec::new();
        let mut failed = 0usize;
        for (number, text) in extracted {
            match text {
                Ok(text) => pages.push((number, text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())),
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
        let blocks = pages
            .into_iter()
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(number, lines)| Block::text(reflow(&lines)).on_page(number))
            .collect();
        Ok(ParsedDocument { title: None, blocks, ..Default::default() })
    }
}

/// A line's shape with digits erased, so "Page 3 of 9" and "Page 4 of 9" count as one.
fn shape(line: &str) -> String {
    line.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect()
}

/// Drops the first and last two lines of each page when the same shape stands there on at least
/// half of the pages (at least 3 of them).
fn remove_running_lines(pages: &mut [(u32, Vec<String>)]) {
    if pages.len() < 3 {
        return;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (_, lines) in pages.iter() {
        let n = lines.len();
        let mut edge: Vec<String> = lines.iter().take(2).chain(lines.iter().skip(n.saturating_sub(2))).map(|l| shape(l)).collect();
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
            .map(|(i, l)| !((i < 2 || i + 2 >= n) && counts.get(&shape(l)).copied().unwrap_or(0) >= threshold))
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
        let mut pages: Vec<(u32, Vec<String>)> = (1..=5u32)
            .map(|n| (n, vec!["ACME Handbook".to_string(), bodies[n as usize - 1].to_string(), format!("Page {n} of 5")]))
            .collect();
        remove_running_lines(&mut pages);
        for (n, lines) in &pages {
            assert_eq!(lines, &vec![bodies[*n as usize - 1].to_string()]);
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
