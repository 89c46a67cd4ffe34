//! From positioned text to structure, with no PDF in sight: spans on one baseline become a
//! line, wide gaps split a line into segments, rows of segments that keep to the same columns
//! become a table, bigger type becomes a heading, and the rest is re-flowed into paragraphs.

use zhiku_core::Block;

use super::content::Span;
use super::reflow;

/// A gap this wide (in ems) between two pieces of text on one line separates table cells or
/// page columns rather than words: justified prose stretches word spaces to half an em at most.
const SEGMENT_GAP: f32 = 1.0;
/// Gaps narrower than this (in ems) are kerning, not a space between words.
const WORD_GAP: f32 = 0.15;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    pub x0: f32,
    pub x1: f32,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    pub y: f32,
    pub size: f32,
    pub segments: Vec<Segment>,
    /// All of it in a fixed-pitch font: a line of code, kept as laid out.
    pub mono: bool,
}

impl Line {
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
    }

    fn x0(&self) -> f32 {
        self.segments.first().map_or(0.0, |s| s.x0)
    }

    fn x1(&self) -> f32 {
        self.segments.last().map_or(0.0, |s| s.x1)
    }

    fn chars(&self) -> usize {
        self.segments.iter().map(|s| s.text.chars().count()).sum()
    }
}

/// Dot leaders ("Chapter 1 . . . . 12") separate a table of contents' columns; they are no text.
fn is_leader(text: &str) -> bool {
    let mut dots = 0;
    for c in text.chars() {
        match c {
            '.' | '·' | '…' | '．' => dots += 1,
            c if c.is_whitespace() => {}
            _ => return false,
        }
    }
    dots >= 2 || (dots == 1 && text.trim().len() == 1)
}

/// Normalises a segment's spaces and cuts it where dot leaders run through it, as in a table of
/// contents: "Intro . . . . 12" is the cells "Intro" and "12". The pieces' positions are
/// estimated from their share of the characters.
fn split_at_leaders(segment: Segment) -> Vec<Segment> {
    let tokens: Vec<&str> = segment.text.split_whitespace().collect();
    let dotty = |t: &str| t.chars().all(|c| matches!(c, '.' | '·' | '…' | '．'));
    let mut pieces: Vec<Vec<&str>> = vec![Vec::new()];
    let mut i = 0;
    while i < tokens.len() {
        let run = tokens[i..].iter().take_while(|t| dotty(t)).count();
        let dots: usize = tokens[i..i + run].iter().map(|t| t.chars().count()).sum();
        if run > 0 && dots >= 3 {
            pieces.push(Vec::new());
            i += run;
        } else {
            pieces.last_mut().expect("starts with one piece").extend(&tokens[i..i + run.max(1)]);
            i += run.max(1);
        }
    }
    let pieces: Vec<String> = pieces.into_iter().filter(|p| !p.is_empty()).map(|p| p.join(" ")).collect();
    if pieces.len() <= 1 {
        return vec![Segment { text: pieces.into_iter().next().unwrap_or_default(), ..segment }];
    }
    let total = segment.text.chars().count().max(1) as f32;
    let width = segment.x1 - segment.x0;
    let mut from = 0usize;
    pieces
        .into_iter()
        .map(|text| {
            let at = segment.text[from..].find(text.split_whitespace().next().unwrap_or("")).map_or(from, |p| from + p);
            let start_chars = segment.text[..at].chars().count() as f32;
            let end_chars = start_chars + text.chars().count() as f32;
            from = at + text.split_whitespace().next().map_or(0, str::len);
            Segment { x0: segment.x0 + width * start_chars / total, x1: segment.x0 + width * end_chars / total, text }
        })
        .collect()
}

/// The page's lines from top to bottom, each with its segments from left to right.
pub(super) fn lines(mut spans: Vec<Span>) -> Vec<Line> {
    spans.retain(|s| s.size > 0.1);
    // Stable: pieces at one baseline keep their content order until sorted by x below.
    spans.sort_by(|a, b| b.y.total_cmp(&a.y));
    let mut grouped: Vec<Vec<Span>> = Vec::new();
    for span in spans {
        match grouped.last_mut() {
            Some(line) if (line[0].y - span.y).abs() <= 0.4 * line[0].size.min(span.size) => line.push(span),
            _ => grouped.push(vec![span]),
        }
    }
    grouped.into_iter().filter_map(line_of).collect()
}

fn line_of(mut spans: Vec<Span>) -> Option<Line> {
    spans.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    let size = spans.iter().max_by_key(|s| s.text.chars().count()).map_or(0.0, |s| s.size);
    let mut segments: Vec<Segment> = Vec::new();
    let mut previous: Option<&Span> = None;
    for span in &spans {
        // Fake bold: the same text drawn again a hair to the right.
        if previous.is_some_and(|p| p.text == span.text && (p.x0 - span.x0).abs() < 0.1 * size) {
            continue;
        }
        let gap = previous.map_or(f32::INFINITY, |p| span.x0 - p.x1);
        match segments.last_mut() {
            Some(segment) if gap < SEGMENT_GAP * size => {
                let joins_cjk =
                    segment.text.chars().last().is_some_and(zhiku_core::is_cjk) && span.text.chars().next().is_some_and(zhiku_core::is_cjk);
                let spaced = segment.text.ends_with(char::is_whitespace) || span.text.starts_with(char::is_whitespace);
                if gap > WORD_GAP * size && !joins_cjk && !spaced {
                    segment.text.push(' ');
                }
                segment.text.push_str(&span.text);
                segment.x1 = segment.x1.max(span.x1);
            }
            _ => segments.push(Segment { x0: span.x0, x1: span.x1, text: span.text.clone() }),
        }
        previous = Some(span);
    }
    let mut segments: Vec<Segment> = segments.into_iter().flat_map(split_at_leaders).collect();
    // A lone private-use glyph is a symbol font's bullet (Wingdings, OpenSymbol).
    for segment in &mut segments {
        let mut chars = segment.text.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if ('\u{E000}'..='\u{F8FF}').contains(&c) {
                segment.text = "•".into();
            }
        }
    }
    segments.retain(|s| !s.text.is_empty() && !is_leader(&s.text));
    let y = spans.first()?.y;
    let mono = spans.iter().all(|s| s.mono);
    (!segments.is_empty()).then_some(Line { y, size, segments, mono })
}

/// What the page's type sizes mean, measured over the whole document.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Typography {
    /// The size most text is set in.
    pub body: f32,
    /// Sizes clearly larger than the body's that set short lines, largest first: level 1, 2, …
    pub heading_sizes: Vec<f32>,
}

fn size_key(size: f32) -> i32 {
    (size * 2.0).round() as i32
}

impl Typography {
    pub fn measure<'a>(lines: impl Iterator<Item = &'a Line> + Clone) -> Self {
        let mut chars_by_size: std::collections::HashMap<i32, usize> = std::collections::HashMap::new();
        for line in lines.clone() {
            *chars_by_size.entry(size_key(line.size)).or_default() += line.chars();
        }
        let body = chars_by_size.iter().max_by_key(|(k, n)| (**n, -**k)).map_or(10.0, |(k, _)| *k as f32 / 2.0);
        let mut heading_keys: Vec<i32> = lines.filter(|l| is_heading_like(l, body)).map(|l| size_key(l.size)).collect();
        heading_keys.sort_unstable_by(|a, b| b.cmp(a));
        heading_keys.dedup();
        heading_keys.truncate(6);
        Self { body, heading_sizes: heading_keys.into_iter().map(|k| k as f32 / 2.0).collect() }
    }

    fn heading_level(&self, line: &Line) -> Option<u8> {
        if !is_heading_like(line, self.body) {
            return None;
        }
        let key = size_key(line.size);
        self.heading_sizes.iter().position(|s| size_key(*s) == key).map(|i| i as u8 + 1)
    }
}

fn is_heading_like(line: &Line, body: f32) -> bool {
    let text = line.text();
    !line.mono
        && line.size >= body * 1.15
        && line.segments.len() <= 2
        && text.chars().count() <= 120
        && text.chars().any(char::is_alphabetic)
}

/// The page's blocks in reading order.
pub(super) fn blocks(lines: &[Line], typography: &Typography) -> Vec<Block> {
    let mut out = Vec::new();
    let mut prose: Vec<Line> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(region) = grid_at(lines, i) {
            paragraphs(&std::mem::take(&mut prose), typography, &mut out);
            match region.kind(lines) {
                GridKind::Table => out.push(Block::table(&region.rows)),
                GridKind::PageColumns => {
                    for column in 0..region.columns.len() {
                        let column_lines: Vec<Line> = lines[region.start..region.end]
                            .iter()
                            .filter_map(|line| {
                                let segment = line.segments.iter().find(|s| region.column_of(s) == Some(column))?;
                                Some(Line { segments: vec![segment.clone()], ..line.clone() })
                            })
                            .collect();
                        paragraphs(&column_lines, typography, &mut out);
                    }
                }
            }
            i = region.end;
            continue;
        }
        prose.push(lines[i].clone());
        i += 1;
    }
    paragraphs(&prose, typography, &mut out);
    out
}

/// Rows of segments that keep to the same columns.
struct Grid {
    start: usize,
    end: usize,
    /// Each column's horizontal extent, left to right.
    columns: Vec<(f32, f32)>,
    rows: Vec<Vec<String>>,
}

enum GridKind {
    Table,
    /// Long lines side by side are a page set in columns, read one after the other.
    PageColumns,
}

impl Grid {
    fn column_of(&self, segment: &Segment) -> Option<usize> {
        self.columns.iter().position(|(x0, x1)| segment.x0 < *x1 && segment.x1 > *x0)
    }

    fn kind(&self, lines: &[Line]) -> GridKind {
        let cells: Vec<usize> = self.rows.iter().flatten().filter(|c| !c.is_empty()).map(|c| c.chars().count()).collect();
        let mean = cells.iter().sum::<usize>() as f32 / cells.len().max(1) as f32;
        let size = lines[self.start].size;
        let narrowest = self.columns.iter().map(|(a, b)| b - a).fold(f32::INFINITY, f32::min);
        if self.columns.len() == 2 && self.rows.len() >= 6 && mean > 30.0 && narrowest > 15.0 * size {
            GridKind::PageColumns
        } else {
            GridKind::Table
        }
    }
}

/// Places a line's segments in `columns`, widening them and adding new ones where a segment
/// falls between; `None` when a segment spans two columns or two segments share one.
fn fit(columns: &mut Vec<(f32, f32)>, segments: &[Segment]) -> Option<Vec<usize>> {
    let mut trial = columns.clone();
    for s in segments {
        let hits: Vec<usize> = trial.iter().enumerate().filter(|(_, (x0, x1))| s.x0 < *x1 && s.x1 > *x0).map(|(i, _)| i).collect();
        match hits.as_slice() {
            [] => {
                let at = trial.iter().position(|(x0, _)| *x0 > s.x0).unwrap_or(trial.len());
                trial.insert(at, (s.x0, s.x1));
            }
            [one] => {
                let c = &mut trial[*one];
                *c = (c.0.min(s.x0), c.1.max(s.x1));
            }
            _ => return None,
        }
    }
    // Widening may have made two columns touch: then the line does not fit.
    if trial.windows(2).any(|w| w[0].1 > w[1].0) {
        return None;
    }
    let placed: Vec<usize> =
        segments.iter().map(|s| trial.iter().position(|(x0, x1)| s.x0 < *x1 && s.x1 > *x0)).collect::<Option<Vec<_>>>()?;
    if placed.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    *columns = trial;
    Some(placed)
}

/// A table (or a page's text columns) starting at line `start`: at least three rows of two or
/// more columns, single-segment lines inside it continuing a wrapped cell.
fn grid_at(lines: &[Line], start: usize) -> Option<Grid> {
    let first = &lines[start];
    if first.segments.len() < 2 || first.mono {
        return None;
    }
    let mut columns: Vec<(f32, f32)> = first.segments.iter().map(|s| (s.x0, s.x1)).collect();
    let mut placements: Vec<Vec<(usize, String)>> = vec![first.segments.iter().enumerate().map(|(i, s)| (i, s.text.clone())).collect()];
    let mut multi_rows = 1;
    let mut end = start + 1;
    while end < lines.len() {
        let line = &lines[end];
        let previous = &lines[end - 1];
        if previous.y - line.y > 3.0 * previous.size.max(line.size) || line.mono {
            break;
        }
        let mut trial = columns.clone();
        let Some(placed) = fit(&mut trial, &line.segments) else { break };
        // Columns added later shift the indexes already recorded.
        let remap = |old: &[(f32, f32)], new: &[(f32, f32)], i: usize| new.iter().position(|c| c.0 <= old[i].0 && c.1 >= old[i].1);
        if line.segments.len() == 1 {
            // A wrapped cell: only in a column other than the first, and only below a row.
            if placed[0] == 0 || trial.len() != columns.len() {
                break;
            }
            let Some(last) = placements.last_mut() else { break };
            match last.iter_mut().find(|(c, _)| *c == placed[0]) {
                Some((_, text)) => {
                    text.push(' ');
                    text.push_str(&line.segments[0].text);
                }
                None => last.push((placed[0], line.segments[0].text.clone())),
            }
        } else {
            for row in &mut placements {
                for (c, _) in row.iter_mut() {
                    *c = remap(&columns, &trial, *c).unwrap_or(*c);
                }
            }
            placements.push(placed.into_iter().zip(line.segments.iter().map(|s| s.text.clone())).collect());
            multi_rows += 1;
        }
        columns = trial;
        end += 1;
    }
    if multi_rows < 3 || columns.len() < 2 {
        return None;
    }
    let rows: Vec<Vec<String>> = placements
        .into_iter()
        .map(|row| {
            let mut cells = vec![String::new(); columns.len()];
            for (c, text) in row {
                if let Some(cell) = cells.get_mut(c) {
                    cell.push_str(&text);
                }
            }
            cells
        })
        .collect();
    // Bullets or markers in a glyph without text leave a column of nothing: a list, not a table.
    let filled = (0..columns.len()).filter(|&c| rows.iter().any(|r| r[c].chars().any(char::is_alphanumeric))).count();
    if filled < 2 {
        return None;
    }
    Some(Grid { start, end, columns, rows })
}

const SENTENCE_END: &[char] = &['.', '!', '?', ':', ';', '。', '！', '？', '：', '；'];

/// Headings and paragraphs from lines of running text.
fn paragraphs(lines: &[Line], typography: &Typography, out: &mut Vec<Block>) {
    if lines.is_empty() {
        return;
    }
    let widest = lines.iter().filter(|l| typography.heading_level(l).is_none()).map(|l| l.x1() - l.x0()).fold(0.0f32, f32::max);
    let mut pitches: Vec<f32> = lines.windows(2).map(|w| w[0].y - w[1].y).filter(|g| *g > 0.0 && *g < 3.0 * typography.body).collect();
    pitches.sort_by(f32::total_cmp);
    let pitch = pitches.get(pitches.len() / 2).copied().unwrap_or(1.2 * typography.body);

    let mut paragraph: Vec<String> = Vec::new();
    let mut heading: Option<(u8, Vec<String>)> = None;
    let flush_paragraph = |paragraph: &mut Vec<String>, out: &mut Vec<Block>| {
        if !paragraph.is_empty() {
            out.push(Block::text(reflow(paragraph)));
            paragraph.clear();
        }
    };
    let flush_heading = |heading: &mut Option<(u8, Vec<String>)>, out: &mut Vec<Block>| {
        if let Some((level, parts)) = heading.take() {
            out.push(Block::heading(level, reflow(&parts)));
        }
    };
    let mut code: Vec<&Line> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.mono {
            flush_paragraph(&mut paragraph, out);
            flush_heading(&mut heading, out);
            code.push(line);
            continue;
        }
        if !code.is_empty() {
            out.push(Block::preformatted(code_text(&code, pitch)));
            code.clear();
        }
        let text = line.text();
        if let Some(level) = typography.heading_level(line) {
            flush_paragraph(&mut paragraph, out);
            // A heading wrapped over two lines stays one heading.
            let continues = heading.as_ref().is_some_and(|(l, _)| *l == level) && i > 0 && lines[i - 1].y - line.y < 2.0 * line.size;
            if !continues {
                flush_heading(&mut heading, out);
            }
            heading.get_or_insert_with(|| (level, Vec::new())).1.push(text);
            continue;
        }
        flush_heading(&mut heading, out);
        if let Some(previous) = i.checked_sub(1).map(|p| &lines[p]) {
            let gap = previous.y - line.y;
            let previous_text = previous.text();
            let ended_short = previous_text.trim_end().ends_with(SENTENCE_END) && previous.x1() - previous.x0() < 0.8 * widest;
            let resized = (previous.size - line.size).abs() > 0.1 * line.size;
            let bullet = text.starts_with(['•', '◦', '▪', '‣', '-', '*', '–']) && text.chars().nth(1).is_some_and(char::is_whitespace);
            if gap > 1.4 * pitch || gap < 0.0 || ended_short || resized || bullet {
                flush_paragraph(&mut paragraph, out);
            }
        }
        paragraph.push(text);
    }
    flush_paragraph(&mut paragraph, out);
    flush_heading(&mut heading, out);
    if !code.is_empty() {
        out.push(Block::preformatted(code_text(&code, pitch)));
    }
}

/// Lines of code as they stand on the page: indentation and aligned columns rebuilt from the
/// positions in character cells, a blank line where the page leaves one.
fn code_text(lines: &[&Line], pitch: f32) -> String {
    let left = lines.iter().map(|l| l.x0()).fold(f32::INFINITY, f32::min);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            if lines[i - 1].y - line.y > 1.8 * pitch {
                out.push('\n');
            }
        }
        // Fixed-pitch glyphs are about 0.6 em wide.
        let cell = (0.6 * line.size).max(0.1);
        let mut column = 0usize;
        for segment in &line.segments {
            let at = ((segment.x0 - left) / cell).round().clamp(0.0, 10_000.0) as usize;
            let pad = if column == 0 { at } else { at.saturating_sub(column).max(1) };
            out.extend(std::iter::repeat_n(' ', pad.min(200)));
            out.push_str(&segment.text);
            column = at.max(column) + segment.text.chars().count();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhiku_core::BlockKind;

    fn span(x0: f32, y: f32, size: f32, text: &str) -> Span {
        // Monospaced half-em glyphs keep the expected positions easy to read.
        let x1 = x0 + text.chars().count() as f32 * size * 0.5;
        Span { x0, x1, y, size, text: text.to_string(), mono: false }
    }

    fn body_typography() -> Typography {
        Typography { body: 10.0, heading_sizes: vec![14.0] }
    }

    #[test]
    fn spans_on_one_baseline_form_a_line_with_word_spaces_and_no_space_inside_cjk() {
        let spans = vec![
            span(78.0, 700.0, 10.0, "world"),
            span(50.0, 700.5, 10.0, "Hello"),
            span(50.0, 688.0, 10.0, "中文"),
            span(60.5, 688.0, 10.0, "排版"),
        ];
        let lines = lines(spans);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text(), "Hello world");
        assert_eq!(lines[1].text(), "中文排版");
        assert_eq!(lines[0].segments.len(), 1);
    }

    #[test]
    fn a_grid_of_aligned_segments_becomes_a_markdown_table_with_wrapped_cells_joined() {
        let mut spans = Vec::new();
        let rows = [["package", "popcon", "description"], ["vim", "V:95", "Vi IMproved, a programmer's"], ["emacs", "V:4", "GNU Emacs"]];
        for (r, row) in rows.iter().enumerate() {
            let y = 700.0 - 12.0 * r as f32;
            spans.push(span(50.0, y, 10.0, row[0]));
            spans.push(span(150.0, y, 10.0, row[1]));
            spans.push(span(250.0, y, 10.0, row[2]));
            if r == 1 {
                spans.push(span(250.0, y - 6.0, 10.0, "text editor"));
            }
        }
        let mut all = lines(spans);
        all.push(lines(vec![span(50.0, 600.0, 10.0, "After the table comes prose.")]).remove(0));
        let blocks = blocks(&all, &body_typography());
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0].kind, BlockKind::Table);
        assert_eq!(
            blocks[0].text,
            "| package | popcon | description |\n| --- | --- | --- |\n| vim | V:95 | Vi IMproved, a programmer's text editor |\n| emacs | V:4 | GNU Emacs |"
        );
        assert_eq!(blocks[1].text, "After the table comes prose.");
    }

    #[test]
    fn two_lines_with_a_gap_are_not_a_table() {
        let spans = vec![span(50.0, 700.0, 10.0, "Name"), span(200.0, 700.0, 10.0, "Value"), span(50.0, 688.0, 10.0, "Just prose here.")];
        let blocks = blocks(&lines(spans), &body_typography());
        assert!(blocks.iter().all(|b| b.kind != BlockKind::Table), "{blocks:?}");
    }

    #[test]
    fn two_page_columns_are_read_one_after_the_other() {
        let left = "The left column carries the first half of the argument";
        let right = "while the right column continues it further down the page";
        let mut spans = Vec::new();
        for r in 0..8 {
            let y = 700.0 - 12.0 * r as f32;
            spans.push(span(50.0, y, 10.0, &format!("{left} {r}")));
            spans.push(span(400.0, y, 10.0, &format!("{right} {r}")));
        }
        let text: Vec<String> = blocks(&lines(spans), &body_typography()).into_iter().map(|b| b.text).collect();
        let joined = text.join("\n");
        let last_left = joined.find(&format!("{left} 7")).expect("left column kept");
        let first_right = joined.find(&format!("{right} 0")).expect("right column kept");
        assert!(last_left < first_right, "{joined}");
    }

    #[test]
    fn larger_short_lines_are_headings_and_short_sentence_ends_close_paragraphs() {
        let spans = vec![
            span(50.0, 720.0, 14.0, "4.6 Security"),
            span(50.0, 700.0, 10.0, "The first paragraph runs across the full width of the"),
            span(50.0, 688.0, 10.0, "page and ends."),
            span(50.0, 676.0, 10.0, "A second paragraph follows without extra space."),
        ];
        let all = lines(spans);
        let typography = Typography::measure(all.iter());
        assert_eq!(typography.body, 10.0);
        let blocks = blocks(&all, &typography);
        assert_eq!(blocks[0], Block::heading(1, "4.6 Security"));
        assert_eq!(blocks[1].text, "The first paragraph runs across the full width of the page and ends.");
        assert_eq!(blocks[2].text, "A second paragraph follows without extra space.");
    }

    #[test]
    fn code_keeps_its_lines_and_indentation() {
        let code = |x0: f32, y: f32, text: &str| Span { mono: true, ..span(x0, y, 10.0, text) };
        let spans = vec![
            span(50.0, 720.0, 10.0, "Run this:"),
            code(50.0, 708.0, "$ for f in *; do"),
            code(74.0, 696.0, "echo \"$f\""),
            code(50.0, 684.0, "done"),
            span(50.0, 672.0, 10.0, "and read the output."),
        ];
        let blocks = blocks(&lines(spans), &body_typography());
        let kinds: Vec<BlockKind> = blocks.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, [BlockKind::Text, BlockKind::Preformatted, BlockKind::Text]);
        assert_eq!(blocks[1].text, "$ for f in *; do\n    echo \"$f\"\ndone");
    }

    #[test]
    fn dot_leaders_cut_a_contents_line_into_cells() {
        let cells: Vec<String> = split_at_leaders(Segment { x0: 0.0, x1: 100.0, text: "List of tools . . . . . 102".into() })
            .into_iter()
            .map(|s| s.text)
            .collect();
        assert_eq!(cells, ["List of tools", "102"]);
        let kept = split_at_leaders(Segment { x0: 0.0, x1: 100.0, text: "Wait... what  e.g. this".into() });
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].text, "Wait... what e.g. this");
    }

    #[test]
    fn dot_leaders_are_dropped() {
        assert!(is_leader(". . . . ."));
        assert!(is_leader("……"));
        assert!(!is_leader("e.g."));
    }
}
